//! The metadata store as the simulation sees it: the real in-memory store behind a
//! decorator that, on the seeded RNG's say, fails a transaction before applying it,
//! applies it and loses the answer (the ambiguous case every caller must survive),
//! delays it (reordering against other callers), or crashes the control plane that
//! owns it at the await point before or after the write.
//!
//! A crashed control plane stops at that await forever, as a killed process would:
//! what it wrote stays written, nothing after the crash point happens, and its
//! callers time out.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use infinistream_metastore::memory::MemoryStore;
use infinistream_metastore::{Compare, KeyValue, MetaStore, Op, StoreError, TxnLimits, TxnOutcome};

use crate::sched::{Ctx, Node};

/// A [`MetaStore`] decorator owned by one control-plane incarnation.
#[derive(Debug)]
pub struct FaultyMeta {
    inner: Arc<MemoryStore>,
    node: Arc<Node>,
    ctx: Arc<Ctx>,
}

impl FaultyMeta {
    pub(crate) fn new(inner: Arc<MemoryStore>, node: Arc<Node>, ctx: Arc<Ctx>) -> Self {
        Self { inner, node, ctx }
    }

    async fn before_read(&self) -> Result<(), StoreError> {
        self.node.gate().await;
        let rates = &self.ctx.rates;
        if self.node.armed() && self.ctx.draw("meta.read_unavailable", rates.meta_fail) {
            return Err(StoreError::Unavailable("injected: read failed".into()));
        }
        Ok(())
    }

    async fn write(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
        deferred: bool,
    ) -> Result<TxnOutcome, StoreError> {
        self.node.gate().await;
        let armed = self.node.armed();
        let rates = &self.ctx.rates;
        if armed {
            if self
                .ctx
                .draw("meta.txn_failed_before_apply", rates.meta_fail)
            {
                return Err(StoreError::Unavailable(
                    "injected: transaction not applied".into(),
                ));
            }
            if self.ctx.draw("cp.crash_before_txn", rates.cp_crash) {
                self.node.crash().await;
            }
            if self.ctx.draw("meta.txn_delayed", rates.delay) {
                let ms = self.ctx.below(300) + 1;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        let outcome = if deferred {
            self.inner.txn_deferred(compares, ops).await
        } else {
            self.inner.txn(compares, ops).await
        };
        if armed {
            if self.ctx.draw("cp.crash_after_txn", rates.cp_crash) {
                self.node.crash().await;
            }
            if self.ctx.draw("meta.txn_answer_lost", rates.meta_fail) {
                return Err(StoreError::Unavailable(
                    "injected: transaction applied, answer lost".into(),
                ));
            }
        }
        self.node.gate().await;
        outcome
    }
}

#[async_trait]
impl MetaStore for FaultyMeta {
    async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        self.before_read().await?;
        let value = self.inner.get(key).await;
        self.node.gate().await;
        value
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.before_read().await?;
        let values = self.inner.range(start, end, limit).await;
        self.node.gate().await;
        values
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> Result<TxnOutcome, StoreError> {
        self.write(compares, ops, false).await
    }

    async fn txn_deferred(
        &self,
        compares: Vec<Compare>,
        ops: Vec<Op>,
    ) -> Result<TxnOutcome, StoreError> {
        self.write(compares, ops, true).await
    }

    fn txn_limits(&self) -> TxnLimits {
        self.inner.txn_limits()
    }
}
