//! Sans-IO NATS client protocol and JetStream API types.
//!
//! Layer 0: no sockets, no async runtime. The codec parses whole frames from byte
//! buffers and encodes server operations into them; the `jsapi` module holds the
//! `$JS.API` request and response shapes and nats-server's error codes. Both are
//! tested on byte slices, fuzzed and benchmarked without a network.

pub mod jsapi;
