//! jobs role: compaction, retention and garbage collection (layer 2).
