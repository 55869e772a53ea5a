//! Control plane: metadata service, sequencing, embedded and etcd stores (layer 2).

pub mod store;
