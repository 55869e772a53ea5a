//! Generated gRPC code from proto/ plus checked domain conversions (layer 0).
