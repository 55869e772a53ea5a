//! How many queued CommitBatch calls one writer round may fold into one store
//! transaction.
//!
//! A round writes, per stream it touched, one index key (holding that stream's chunks
//! of every batch in the round) and, per batch, its stored answer. etcd refuses a
//! transaction with more than `--max-txn-ops` ops or `--max-request-bytes` bytes, so a
//! round stops taking batches before its estimated size passes the store's limits. The
//! estimate counts every chunk as its own op and its records' metadata in full, so it
//! errs on the large side. A single batch over the limits still forms a round on its
//! own and gets the store's clear error.

use infinistream_proto::domain::CommitBatch;

use crate::store::TxnLimits;

/// Ops kept free for the fence compares, expired answers and state keys.
const OPS_RESERVE: usize = 64;
/// Bytes of a stream creation's share of a transaction besides its config: keys,
/// the record around the config, the state key.
const CREATE_OVERHEAD: usize = 512;

/// Most expired batch answers deleted in one round.
pub(super) fn expire_cap(limits: &TxnLimits) -> usize {
    limits.max_ops.map_or(256, |max| (max / 4).clamp(1, 256))
}

/// Estimated ops and bytes of one batch's share of a transaction.
fn estimate(batch: &CommitBatch) -> (usize, usize) {
    let ops = batch.chunks.len() + 1;
    let mut bytes = 64 + 2 * batch.batch_id.len() + batch.object_key.len();
    for chunk in &batch.chunks {
        bytes += 96 + 2 * chunk.stream.len() + batch.object_key.len();
        for r in &chunk.records {
            bytes += 32 + r.subject.len() + r.msg_id.as_ref().map_or(0, String::len);
        }
    }
    (ops, bytes)
}

/// The room left in the round being formed.
#[derive(Debug)]
pub(super) struct Budget {
    ops: Option<usize>,
    bytes: Option<usize>,
    taken: usize,
}

impl Budget {
    pub(super) fn new(limits: &TxnLimits) -> Budget {
        Budget {
            ops: limits
                .max_ops
                .map(|max| max.saturating_sub(OPS_RESERVE + expire_cap(limits))),
            // Keys carry the store's prefix and framing: keep a quarter free.
            bytes: limits.max_bytes.map(|max| max / 4 * 3),
            taken: 0,
        }
    }

    /// Takes `batch` into the round if it fits; the first batch always does.
    pub(super) fn take(&mut self, batch: &CommitBatch) -> bool {
        let (ops, bytes) = estimate(batch);
        self.take_estimate(ops, bytes)
    }

    /// Takes a stream creation (its config key, `config_len` bytes encoded, and its
    /// state key) into the round if it fits; the first always does.
    pub(super) fn take_create(&mut self, config_len: usize) -> bool {
        self.take_estimate(2, CREATE_OVERHEAD + 2 * config_len)
    }

    fn take_estimate(&mut self, ops: usize, bytes: usize) -> bool {
        let fits =
            self.ops.is_none_or(|left| ops <= left) && self.bytes.is_none_or(|left| bytes <= left);
        if !fits && self.taken > 0 {
            return false;
        }
        self.ops = self.ops.map(|left| left.saturating_sub(ops));
        self.bytes = self.bytes.map(|left| left.saturating_sub(bytes));
        self.taken += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use infinistream_proto::domain::Chunk;

    fn batch(streams: usize) -> CommitBatch {
        CommitBatch {
            batch_id: "b".into(),
            object_key: "o".into(),
            agent_id: "a".into(),
            chunks: (0..streams)
                .map(|s| Chunk {
                    stream: format!("S{s}"),
                    chunk_index: s as u32,
                    byte_size: 1,
                    records: Vec::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_round_stops_before_the_op_limit_but_always_takes_one_batch() {
        let limits = TxnLimits {
            max_ops: Some(1000),
            max_bytes: None,
            costly_keys: false,
        };
        let mut budget = Budget::new(&limits);
        assert!(budget.take(&batch(2000)), "the first batch always goes");
        assert!(!budget.take(&batch(1)));
        let mut budget = Budget::new(&limits);
        let taken = (0..100).take_while(|_| budget.take(&batch(100))).count();
        assert_eq!(taken, (1000 - 64 - 250) / 101);
    }

    #[test]
    fn no_limits_take_everything() {
        let mut budget = Budget::new(&TxnLimits::default());
        assert!((0..1000).all(|_| budget.take(&batch(1000))));
    }
}
