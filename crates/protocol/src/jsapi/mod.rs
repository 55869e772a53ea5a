//! `$JS.API` request and response shapes and nats-server's error codes.
