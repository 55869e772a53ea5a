//! Bucket URLs, key naming and object-store decorators (layer 1).
