//! The memory and embedded (redb) backends, shared by the suites that run on them.

use std::sync::Arc;

use infinistream_control_plane::store::MetaStore;
use infinistream_control_plane::store::embedded::EmbeddedStore;
use infinistream_control_plane::store::memory::MemoryStore;

use crate::suite::Backend;

/// The memory store; "reopening" hands back the same map, as a restarted control
/// plane would find it in a store that outlives it.
pub struct Memory(Arc<MemoryStore>);

#[async_trait::async_trait]
impl Backend for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }
    async fn open(&self) -> Arc<dyn MetaStore> {
        self.0.clone()
    }
}

/// A redb file in a temp dir, reopened from disk on every `open`.
pub struct Embedded(tempfile::TempDir);

#[async_trait::async_trait]
impl Backend for Embedded {
    fn name(&self) -> &'static str {
        "embedded"
    }
    async fn open(&self) -> Arc<dyn MetaStore> {
        // A control plane dropped just before ("restart") lets go of the file when its
        // background tasks have ended, a moment later: wait for that, boundedly.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match EmbeddedStore::open(self.0.path()).await {
                Ok(s) => return Arc::new(s),
                Err(e)
                    if e.to_string().contains("already open")
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(e) => panic!("open embedded store: {e}"),
            }
        }
    }
}

pub fn memory() -> Memory {
    Memory(Arc::new(MemoryStore::new()))
}

pub fn embedded() -> Embedded {
    match tempfile::tempdir() {
        Ok(d) => Embedded(d),
        Err(e) => panic!("tempdir: {e}"),
    }
}
