//! Batch-object and compacted-segment formats (layer 0, no I/O).
