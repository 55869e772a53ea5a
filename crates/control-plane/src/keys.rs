//! The metadata key layout in the [`MetaStore`](crate::store::MetaStore).
//!
//! Everything of a group lives under `g/<group>/`, so groups are isolated by
//! construction (a group id cannot contain `/`). Per stream the store holds a config
//! key, a small state key and index keys holding committed chunks (per batch per
//! stream, never per message), keyed by the first sequence in fixed-width hex so a
//! range read walks them in sequence order. On etcd (where every key of a
//! transaction is costly) a writer round appends to every stream it touched with ONE
//! round log key and streams are folded from the log into their index keys a few per
//! round (see `model::LogRecord`); elsewhere a round writes one index key per stream:
//!
//! ```text
//! cp/leader                         fence: id of the instance allowed to write
//! g/<group>/cfg/<stream>            StreamConfig (JSON + limits) + creation time
//! g/<group>/st/<stream>             last seq, last msg id, first seq
//! g/<group>/ix/<stream>/<seq:016x>  the chunks (or compacted segments) of one or more
//!                                   writer rounds, folded from the round log
//! g/<group>/log/<round:016x>        what one writer round appended to every stream
//! g/<group>/batch/<batch id>        stored CommitBatch answer, for idempotent retries
//! g/<group>/agent/<agent id>        registration + lease expiry
//! g/<group>/lease/<name>            job lease
//! g/<group>/rel/<object key>        object no longer referenced, with release time
//! g/<group>/acct/jetstream          `$G`'s JetStream limits
//! g/<group>/acct/jetstream.<acct>   another account's JetStream limits
//! ```
//!
//! `<stream>` is the stream's id (`infinistream_proto::domain::stream_id`): its bare
//! name in `$G`, so a store written before accounts reads the same, and
//! `<account>.<name>` in another account (no stream or account name has a `.`).
//! Consumers, KV buckets and object stores live under their stream's id.

use infinistream_proto::domain::GLOBAL_ACCOUNT;

/// The fence key every writing transaction compares on.
pub const LEADER: &[u8] = b"cp/leader";

fn key(group: &str, kind: &str, rest: &str) -> Vec<u8> {
    format!("g/{group}/{kind}/{rest}").into_bytes()
}

pub fn kind_prefix(group: &str, kind: &str) -> Vec<u8> {
    format!("g/{group}/{kind}/").into_bytes()
}

pub fn stream_cfg(group: &str, stream: &str) -> Vec<u8> {
    key(group, "cfg", stream)
}

pub fn stream_state(group: &str, stream: &str) -> Vec<u8> {
    key(group, "st", stream)
}

pub fn index_prefix(group: &str, stream: &str) -> Vec<u8> {
    format!("g/{group}/ix/{stream}/").into_bytes()
}

pub fn index_entry(group: &str, stream: &str, first_seq: u64) -> Vec<u8> {
    format!("g/{group}/ix/{stream}/{first_seq:016x}").into_bytes()
}

pub fn log_entry(group: &str, round: u64) -> Vec<u8> {
    format!("g/{group}/log/{round:016x}").into_bytes()
}

pub fn batch(group: &str, batch_id: &str) -> Vec<u8> {
    key(group, "batch", batch_id)
}

pub fn agent(group: &str, agent_id: &str) -> Vec<u8> {
    key(group, "agent", agent_id)
}

pub fn lease(group: &str, name: &str) -> Vec<u8> {
    key(group, "lease", name)
}

pub fn released(group: &str, object_key: &str) -> Vec<u8> {
    key(group, "rel", object_key)
}

/// The part of `key` after `prefix`, as UTF-8.
pub fn suffix<'a>(key: &'a [u8], prefix: &[u8]) -> Option<&'a str> {
    key.strip_prefix(prefix)
        .and_then(|s| std::str::from_utf8(s).ok())
}

pub fn consumer_prefix(group: &str, stream: &str) -> Vec<u8> {
    format!("g/{group}/con/{stream}/").into_bytes()
}

pub fn consumer(group: &str, stream: &str, name: &str) -> Vec<u8> {
    format!("g/{group}/con/{stream}/{name}").into_bytes()
}

/// `g/<group>/acct/jetstream`: the limits of the streams named by their bare name
/// (`$G`'s, the one key before JetStream served several accounts), and
/// `g/<group>/acct/jetstream.<account>` those of `<account>`'s streams (see
/// `engine::accounts`).
pub fn account_limits(group: &str, account: &str) -> Vec<u8> {
    if account.is_empty() || account == GLOBAL_ACCOUNT {
        key(group, "acct", "jetstream")
    } else {
        key(group, "acct", &format!("jetstream.{account}"))
    }
}

/// The account of an account limits key's suffix after `g/<group>/acct/` (see
/// [`account_limits`]); `None` when it is not one.
pub fn limits_account(suffix: &str) -> Option<&str> {
    match suffix.strip_prefix("jetstream")? {
        "" => Some(GLOBAL_ACCOUNT),
        rest => rest.strip_prefix('.').filter(|a| !a.is_empty()),
    }
}
