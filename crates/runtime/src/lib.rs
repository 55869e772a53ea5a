//! Tracing setup, shutdown signals, role supervision and metrics registry (layer 1).
