//! The `infinistream` binary.

fn main() {}
