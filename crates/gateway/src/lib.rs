//! proxy-produce role: JetStream publish batching, upload, commit, PubAck (layer 2).
