//! Core NATS server: listener, connections, subject routing, monitoring (layer 1).
