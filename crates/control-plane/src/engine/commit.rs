//! The commit path: CommitBatch calls queue for the one writer task, which applies
//! them round by round in memory and writes each round in one fenced transaction,
//! pipelined behind the round before (see the module docs of `engine`).

use std::collections::BTreeSet;
use std::sync::Arc;

use infinistream_proto::domain::CommitBatch;
use infinistream_proto::v1;
use tokio::sync::{mpsc, oneshot};

use super::{CommitCmd, Durability, Engine, State, nanos, round, stale_cache};
use crate::errors::CpError;
use crate::store::{Op, StoreError};

type CommitReply = oneshot::Sender<Result<Arc<v1::CommitBatchResponse>, CpError>>;

/// A formed round, written by its own task.
struct RoundWrite {
    epoch: u64,
    ops: Vec<Op>,
    answered: Vec<(CommitReply, Arc<v1::CommitBatchResponse>)>,
    events: Vec<(String, Vec<v1::StreamEvent>)>,
    _order: tokio::sync::OwnedMutexGuard<()>,
    /// Batches in the round, and when it was formed (for the round's debug line).
    batches: usize,
    formed: std::time::Instant,
}

/// Re-creates an error for each waiter of a failed round.
fn replicate(e: &CpError) -> CpError {
    match e {
        CpError::Store(StoreError::Unavailable(m)) => StoreError::Unavailable(m.clone()).into(),
        CpError::Store(StoreError::Backend(m)) => StoreError::Backend(m.clone()).into(),
        CpError::Store(StoreError::Corrupt { key, reason }) => StoreError::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        }
        .into(),
        CpError::Invalid(i) => CpError::Invalid(i.clone()),
        CpError::NotFound(m) => CpError::NotFound(m.clone()),
        CpError::NotLeader(m) => CpError::NotLeader(m.clone()),
        CpError::ShuttingDown => CpError::ShuttingDown,
    }
}

impl Engine {
    /// Queues a batch for the writer and waits for its durable answer.
    pub(crate) async fn commit(
        &self,
        group: &str,
        batch: CommitBatch,
    ) -> Result<Arc<v1::CommitBatchResponse>, CpError> {
        let (reply, rx) = oneshot::channel();
        self.commit_tx
            .send(CommitCmd {
                group: group.to_owned(),
                batch,
                reply,
            })
            .await
            .map_err(|_| CpError::ShuttingDown)?;
        rx.await.map_err(|_| CpError::ShuttingDown)?
    }

    /// Forms one writer round: applies `first` and every batch queued after it in
    /// memory, and goes on applying batches as they arrive until the round before is
    /// written (or this round is full), so a round folds everything that queued
    /// during the previous write, as without pipelining, but is applied already when
    /// that write returns. Then takes what changed, first in line for the store. The
    /// state lock is held throughout: nobody sees the undurable changes.
    async fn apply_round(
        &self,
        first: CommitCmd,
        rx: &mut mpsc::Receiver<CommitCmd>,
        held: &mut Option<CommitCmd>,
    ) -> RoundWrite {
        let mut st = self.state.lock().await;
        let limits = self.store.txn_limits();
        let mut budget = round::Budget::new(&limits);
        budget.take(&first.batch);
        let mut count = 1;
        let mut answered = Vec::new();
        let mut groups = BTreeSet::new();
        self.apply_one(&mut st, first, &limits, &mut answered, &mut groups)
            .await;
        let max = self.opts.max_batches_per_txn;
        let mut open = true;
        // Take what is queued now.
        while open && count < max {
            match rx.try_recv() {
                Ok(c) if budget.take(&c.batch) => {
                    count += 1;
                    self.apply_one(&mut st, c, &limits, &mut answered, &mut groups)
                        .await;
                }
                Ok(c) => {
                    *held = Some(c);
                    open = false;
                }
                Err(_) => break,
            }
        }
        // Then what arrives until the write in flight returns.
        let order = self.order.clone().lock_owned();
        tokio::pin!(order);
        let guard = loop {
            if !open || count >= max {
                break order.await;
            }
            tokio::select! {
                biased;
                guard = &mut order => break guard,
                cmd = rx.recv() => match cmd {
                    Some(c) if budget.take(&c.batch) => {
                        count += 1;
                        self.apply_one(&mut st, c, &limits, &mut answered, &mut groups)
                            .await;
                    }
                    Some(c) => {
                        *held = Some(c);
                        open = false;
                    }
                    None => open = false,
                },
            }
        };
        let now = self.now();
        let mut ops = Vec::new();
        let mut events = Vec::new();
        for name in &groups {
            if let Some(g) = st.groups.get_mut(name) {
                g.take_ops(now, &mut ops);
                events.push((name.clone(), std::mem::take(&mut g.events)));
            }
        }
        RoundWrite {
            epoch: st.epoch,
            ops,
            answered,
            events,
            _order: guard,
            batches: count,
            formed: std::time::Instant::now(),
        }
    }

    /// Applies one batch to the cached group (answered later, or now on error).
    async fn apply_one(
        &self,
        st: &mut State,
        cmd: CommitCmd,
        limits: &crate::store::TxnLimits,
        answered: &mut Vec<(CommitReply, Arc<v1::CommitBatchResponse>)>,
        groups: &mut BTreeSet<String>,
    ) {
        let now = self.now();
        let ttl = nanos(self.opts.batch_answer_ttl);
        match self.cached_group(st, &cmd.group).await {
            Ok(g) => {
                let resp = g.commit(&cmd.batch, now, ttl, round::expire_cap(limits));
                if !groups.contains(&cmd.group) {
                    groups.insert(cmd.group.clone());
                }
                answered.push((cmd.reply, resp));
            }
            Err(e) => {
                let _ = cmd.reply.send(Err(e));
            }
        }
    }

    /// Writes a formed round (after the rounds before it) and answers its callers.
    /// Even a round with nothing to write waits its turn: it may replay answers of a
    /// round still being written.
    async fn write_round(&self, round: RoundWrite) {
        let waited = round.formed.elapsed();
        let ops = round.ops.len();
        let res = if round.epoch < self.valid_from.load(std::sync::atomic::Ordering::Acquire) {
            Err(stale_cache())
        } else if round.ops.is_empty() {
            Ok(0)
        } else {
            self.fenced_txn(round.ops, Durability::Synced).await
        };
        tracing::debug!(
            batches = round.batches,
            ops,
            waited_us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
            written_us = u64::try_from(round.formed.elapsed().saturating_sub(waited).as_micros())
                .unwrap_or(u64::MAX),
            ok = res.is_ok(),
            "commit round written"
        );
        match res {
            Ok(_) => {
                for (group, events) in round.events {
                    self.publish_group_events(group, events);
                }
                for (reply, resp) in round.answered {
                    let _ = reply.send(Ok(resp));
                }
            }
            Err(e) => {
                self.fail_epoch(round.epoch);
                for (reply, _) in round.answered {
                    let _ = reply.send(Err(replicate(&e)));
                }
            }
        }
        // `round._order` is released here: the next write may go.
    }
}

/// The writer: drains queued batches into rounds until the engine is dropped.
/// A round takes what is queued, up to `max_batches_per_txn` and the store's
/// transaction limits (see `round`); a batch that does not fit starts the next round.
pub(super) async fn writer(engine: std::sync::Weak<Engine>, mut rx: mpsc::Receiver<CommitCmd>) {
    let mut held: Option<CommitCmd> = None;
    loop {
        let first = match held.take() {
            Some(cmd) => cmd,
            None => match rx.recv().await {
                Some(cmd) => cmd,
                None => break,
            },
        };
        let Some(engine) = engine.upgrade() else {
            let _ = first.reply.send(Err(CpError::ShuttingDown));
            break;
        };
        // Apply this round (while the previous one may still be writing), then write
        // it in its own task and go on with the next round.
        let round = engine.apply_round(first, &mut rx, &mut held).await;
        let writer = engine.clone();
        tokio::spawn(async move { writer.write_round(round).await });
    }
}
