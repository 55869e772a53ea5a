//! The commit path: CommitBatch calls (and stream creations) queue for the one writer
//! task, which applies them round by round in memory and writes each round in one
//! fenced transaction, pipelined behind the round before (see the module docs of
//! `engine`).

use std::collections::BTreeSet;
use std::sync::Arc;

use infinistream_proto::domain::{CommitBatch, StreamSpec};
use infinistream_proto::v1;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::{CommitCmd, Durability, Engine, State, nanos, round, stale_cache};
use crate::errors::CpError;
use crate::store::{Op, StoreError};

type CommitReply = oneshot::Sender<Result<Arc<v1::CommitBatchResponse>, CpError>>;
type CreateReply = oneshot::Sender<Result<v1::StreamInfoResponse, CpError>>;

/// What the writer is asked to apply.
#[derive(Debug)]
pub(crate) enum Work {
    Commit {
        batch: CommitBatch,
        reply: CommitReply,
    },
    CreateStream {
        spec: StreamSpec,
        reply: CreateReply,
    },
}

impl Work {
    /// Takes this work into `budget`'s round if it fits.
    fn fits(&self, budget: &mut round::Budget) -> bool {
        match self {
            Work::Commit { batch, .. } => budget.take(batch),
            Work::CreateStream { spec, .. } => {
                budget.take_create(v1::StreamConfig::from(spec).encoded_len())
            }
        }
    }
}

/// An answer given once its round is durable.
enum Answer {
    Commit(CommitReply, Arc<v1::CommitBatchResponse>),
    Create(CreateReply, Box<v1::StreamInfoResponse>),
}

impl Answer {
    fn send(self) {
        match self {
            Answer::Commit(reply, resp) => drop(reply.send(Ok(resp))),
            Answer::Create(reply, resp) => drop(reply.send(Ok(*resp))),
        }
    }

    fn fail(self, e: &CpError) {
        match self {
            Answer::Commit(reply, _) => drop(reply.send(Err(replicate(e)))),
            Answer::Create(reply, _) => drop(reply.send(Err(replicate(e)))),
        }
    }
}

/// A formed round, written by its own task.
struct RoundWrite {
    epoch: u64,
    ops: Vec<Op>,
    answered: Vec<Answer>,
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
        self.queue(group, Work::Commit { batch, reply }).await?;
        rx.await.map_err(|_| CpError::ShuttingDown)?
    }

    /// Queues a stream creation for the writer and waits for its durable answer.
    pub(crate) async fn create_stream(
        &self,
        group: &str,
        spec: StreamSpec,
    ) -> Result<v1::StreamInfoResponse, CpError> {
        let (reply, rx) = oneshot::channel();
        self.queue(group, Work::CreateStream { spec, reply })
            .await?;
        rx.await.map_err(|_| CpError::ShuttingDown)?
    }

    async fn queue(&self, group: &str, work: Work) -> Result<(), CpError> {
        self.commit_tx
            .send(CommitCmd {
                group: group.to_owned(),
                work,
            })
            .await
            .map_err(|_| CpError::ShuttingDown)
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
        first.work.fits(&mut budget);
        let mut count = 1;
        let mut answered = Vec::new();
        let mut groups = BTreeSet::new();
        // Ops of the round's stream creations, written before what the groups changed.
        let mut ops = Vec::new();
        self.apply_one(
            &mut st,
            first,
            &limits,
            &mut answered,
            &mut groups,
            &mut ops,
        )
        .await;
        let max = self.opts.max_batches_per_txn;
        let mut open = true;
        // Take what is queued now.
        while open && count < max {
            match rx.try_recv() {
                Ok(c) if c.work.fits(&mut budget) => {
                    count += 1;
                    self.apply_one(&mut st, c, &limits, &mut answered, &mut groups, &mut ops)
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
                    Some(c) if c.work.fits(&mut budget) => {
                        count += 1;
                        self.apply_one(&mut st, c, &limits, &mut answered, &mut groups, &mut ops)
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

    /// Applies one batch or creation to the cached group (answered later, or now on
    /// error).
    async fn apply_one(
        &self,
        st: &mut State,
        cmd: CommitCmd,
        limits: &crate::store::TxnLimits,
        answered: &mut Vec<Answer>,
        groups: &mut BTreeSet<String>,
        ops: &mut Vec<Op>,
    ) {
        let now = self.now();
        let ttl = nanos(self.opts.batch_answer_ttl);
        let g = match self.cached_group(st, &cmd.group).await {
            Ok(g) => g,
            Err(e) => {
                match cmd.work {
                    Work::Commit { reply, .. } => drop(reply.send(Err(e))),
                    Work::CreateStream { reply, .. } => drop(reply.send(Err(e))),
                }
                return;
            }
        };
        match cmd.work {
            Work::Commit { batch, reply } => {
                let resp = g.commit(&batch, now, ttl, round::expire_cap(limits));
                answered.push(Answer::Commit(reply, resp));
            }
            Work::CreateStream { spec, reply } => {
                let resp = g.create_stream(&cmd.group, spec, now, ops);
                answered.push(Answer::Create(reply, Box::new(resp)));
            }
        }
        if !groups.contains(&cmd.group) {
            groups.insert(cmd.group);
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
                for answer in round.answered {
                    answer.send();
                }
            }
            Err(e) => {
                self.fail_epoch(round.epoch);
                for answer in round.answered {
                    answer.fail(&e);
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
            match first.work {
                Work::Commit { reply, .. } => drop(reply.send(Err(CpError::ShuttingDown))),
                Work::CreateStream { reply, .. } => drop(reply.send(Err(CpError::ShuttingDown))),
            }
            break;
        };
        // Apply this round (while the previous one may still be writing), then write
        // it in its own task and go on with the next round.
        let round = engine.apply_round(first, &mut rx, &mut held).await;
        let writer = engine.clone();
        tokio::spawn(async move { writer.write_round(round).await });
    }
}
