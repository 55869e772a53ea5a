//! Figment configuration loading and validation for every role (layer 1).
