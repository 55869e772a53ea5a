//! The read APIs: messages by sequence, by subject and by time, answered from the
//! control plane's index and the objects it names.

use std::collections::HashMap;
use std::sync::Arc;

use infinistream_proto::v1;
use infinistream_protocol::subject::matches as subject_matches;

use super::error::cp_error;
use super::objects::{Data, from_chunk};
use super::{ReadError, StoredMessage, StreamReader};

/// How many index entries one `ReadIndex` call asks for while scanning forward.
const SCAN_ENTRIES: u32 = 32;

/// Sequences closer than this to the first of a cluster share one index read in
/// [`StreamReader::get_many`].
const MANY_CLUSTER_SPAN: u64 = 4096;
/// Most index entries one clustered read returns.
const MANY_INDEX_LIMIT: u32 = 4096;

impl StreamReader {
    /// The live message at `seq`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get(&self, stream: &str, seq: u64) -> Result<StoredMessage, ReadError> {
        if seq == 0 {
            return Err(ReadError::NoMessage);
        }
        let entries = self.read_index(stream, seq, seq, 1).await?;
        let entry = entries
            .into_iter()
            .find(|e| e.first_seq <= seq && seq <= e.last_seq)
            .ok_or(ReadError::NoMessage)?;
        if entry.deleted.contains(&seq) {
            return Err(ReadError::NoMessage);
        }
        self.load(stream, &entry, seq).await
    }

    /// The messages at `seqs`, answered in the same order, with one index read per
    /// cluster of nearby sequences rather than one per message (consumer deliveries
    /// load whole claims through here). A sequence that is not live answers
    /// [`ReadError::NoMessage`]; a sequence the clustered index read did not cover
    /// (an index error, or more entries than one read returns) is read on its own.
    #[tracing::instrument(level = "debug", skip(self, seqs), fields(count = seqs.len()))]
    pub async fn get_many(
        &self,
        stream: &str,
        seqs: &[u64],
    ) -> Vec<Result<StoredMessage, ReadError>> {
        let mut sorted: Vec<u64> = seqs.iter().copied().filter(|s| *s > 0).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let mut entries: Vec<v1::IndexEntry> = Vec::new();
        let mut i = 0;
        while i < sorted.len() {
            let start = sorted[i];
            let mut j = i;
            while j + 1 < sorted.len() && sorted[j + 1] - start < MANY_CLUSTER_SPAN {
                j += 1;
            }
            // Entries overlapping [start, end]; an error leaves these sequences to
            // the single reads below, which report it.
            if let Ok(mut found) = self
                .read_index(stream, start, sorted[j], MANY_INDEX_LIMIT)
                .await
            {
                entries.append(&mut found);
            }
            i = j + 1;
        }
        self.load_many(stream, seqs, entries).await
    }

    /// The messages at `seqs` (answered in the same order) located through `entries`,
    /// index entries the caller already holds (a consumer claim answers with those of
    /// the claimed messages); a sequence none of them covers is read through the
    /// index on its own.
    #[tracing::instrument(level = "debug", skip(self, seqs, entries), fields(count = seqs.len()))]
    pub async fn get_many_in(
        &self,
        stream: &str,
        seqs: &[u64],
        entries: Vec<v1::IndexEntry>,
    ) -> Vec<Result<StoredMessage, ReadError>> {
        self.load_many(stream, seqs, entries).await
    }

    /// Starts loading the footers and chunks `entries` name into the caches, in the
    /// background (read-ahead: a consumer's next claim finds them loaded). What is
    /// cached already costs a lookup; a load already under way is joined, not
    /// repeated; a failed read-ahead is dropped (the real read reports errors).
    pub fn prefetch(&self, stream: &str, entries: Vec<v1::IndexEntry>) {
        for entry in entries {
            if entry.marker.is_some() {
                continue;
            }
            let Some(seq) = (entry.first_seq..=entry.last_seq).find(|s| !entry.deleted.contains(s))
            else {
                continue;
            };
            let cached = self.inner.tocs.lru.lock().contains(&entry.object_key)
                && (entry.segment
                    || self
                        .inner
                        .data
                        .lru
                        .lock()
                        .contains(&(entry.object_key.clone(), entry.chunk_index)));
            if cached {
                continue;
            }
            let reader = self.clone();
            let stream = stream.to_owned();
            tokio::spawn(async move {
                if let Err(e) = reader.warm(&stream, &entry, seq).await {
                    tracing::debug!(key = %entry.object_key, error = %e, "read-ahead failed");
                }
            });
        }
    }

    /// Loads `seqs` through `entries`, in order; see [`StreamReader::get_many`].
    async fn load_many(
        &self,
        stream: &str,
        seqs: &[u64],
        mut entries: Vec<v1::IndexEntry>,
    ) -> Vec<Result<StoredMessage, ReadError>> {
        entries.sort_by_key(|e| e.first_seq);
        let mut out = Vec::with_capacity(seqs.len());
        // The decoded chunk of the entry read last: neighbouring sequences share it
        // without a cache lookup (key copy, hash, lock) per message.
        let mut memo: Option<(usize, Arc<Data>)> = None;
        for &seq in seqs {
            let at = entries.partition_point(|e| e.first_seq <= seq);
            let found = at
                .checked_sub(1)
                .and_then(|k| entries.get(k).map(|e| (k, e)))
                .filter(|(_, e)| seq <= e.last_seq);
            out.push(match found {
                _ if seq == 0 => Err(ReadError::NoMessage),
                Some((_, e)) if e.deleted.contains(&seq) => Err(ReadError::NoMessage),
                Some((k, e)) => match &memo {
                    Some((mk, data)) if *mk == k => from_chunk(e, seq, data),
                    _ => {
                        let read = self.load(stream, e, seq).await;
                        memo = if read.is_ok() && !e.segment {
                            self.inner
                                .data
                                .lru
                                .lock()
                                .get(&(e.object_key.clone(), e.chunk_index))
                                .map(|d| (k, d))
                        } else {
                            None
                        };
                        read
                    }
                },
                None => self.get(stream, seq).await,
            });
        }
        out
    }

    /// The last live message on the literal subject `subject`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn last_by_subject(
        &self,
        stream: &str,
        subject: &str,
    ) -> Result<StoredMessage, ReadError> {
        // The last sequence and the message are two reads: a commit between them can
        // supersede the message (a KV put under `max_msgs_per_subject`), and its
        // sequence then reads as deleted. Ask again while the answer moves on, so a
        // subject that always had a message never reads as "no message" (found by the
        // chaos suite's linearizability check; regression test in
        // crates/agent/tests/kv.rs).
        const ATTEMPTS: usize = 16;
        let mut previous = None;
        for _ in 0..ATTEMPTS {
            let last = self.last_seqs(stream, vec![subject.to_owned()]).await?;
            // `subject` may be a filter with wildcards: the newest message on any
            // subject it matches (nats-server's last_by_subj).
            let seq = last
                .iter()
                .filter(|s| infinistream_protocol::subject::matches(subject, &s.subject))
                .map(|s| s.last_seq)
                .max()
                .ok_or(ReadError::NoMessage)?;
            match self.get(stream, seq).await {
                Err(ReadError::NoMessage) if previous != Some(seq) => previous = Some(seq),
                done => return done,
            }
        }
        Err(ReadError::ControlPlane(format!(
            "the last message on `{subject}` kept changing during {ATTEMPTS} reads"
        )))
    }

    /// Last live sequence per subject (all subjects when `subjects` is empty).
    pub async fn last_seqs(
        &self,
        stream: &str,
        subjects: Vec<String>,
    ) -> Result<Vec<v1::SubjectLast>, ReadError> {
        self.inner
            .cp
            .last_by_subject(stream, subjects)
            .await
            .map_err(|e| cp_error(stream, e))
    }

    /// The first live sequence stored at or after `timestamp` (unix ns).
    pub async fn seq_for_time(&self, stream: &str, timestamp: i64) -> Result<u64, ReadError> {
        let seq = self
            .inner
            .cp
            .seq_for_time(stream, timestamp)
            .await
            .map_err(|e| cp_error(stream, e))?;
        match seq {
            0 => Err(ReadError::NoMessage),
            seq => Ok(seq),
        }
    }

    /// The first live message with sequence ≥ `from` (and ≤ `up_to`, 0 = no bound)
    /// whose subject matches `filter` (wildcards allowed; empty or `>` = any).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn next_matching(
        &self,
        stream: &str,
        filter: &str,
        from: u64,
        up_to: u64,
    ) -> Result<StoredMessage, ReadError> {
        let any = filter.is_empty() || filter == ">";
        let literal = !any && infinistream_protocol::subject::is_literal(filter);
        if literal {
            // A literal subject with nothing at or after `from` needs no scan.
            let last = self.last_seqs(stream, vec![filter.to_owned()]).await?;
            match last.first() {
                Some(s) if s.last_seq >= from.max(1) => {}
                _ => return Err(ReadError::NoMessage),
            }
        }
        let mut next = from.max(1);
        loop {
            if up_to != 0 && next > up_to {
                return Err(ReadError::NoMessage);
            }
            let entries = self.read_index(stream, next, up_to, SCAN_ENTRIES).await?;
            let Some(last_entry) = entries.last() else {
                return Err(ReadError::NoMessage);
            };
            let after = last_entry.last_seq.saturating_add(1);
            for entry in &entries {
                let first = entry.first_seq.max(next);
                let last = if up_to == 0 {
                    entry.last_seq
                } else {
                    entry.last_seq.min(up_to)
                };
                for seq in first..=last {
                    if entry.deleted.contains(&seq) {
                        continue;
                    }
                    let msg = self.load(stream, entry, seq).await?;
                    if any || subject_matches(filter, &msg.subject) {
                        return Ok(msg);
                    }
                }
            }
            if after <= next {
                return Err(ReadError::NoMessage);
            }
            next = after;
        }
    }

    /// How many live messages with sequence ≥ `from` (and ≤ `up_to`, 0 = no bound)
    /// match `filter` (empty or `>` = any). One index walk; without a filter no chunk
    /// is read at all, with one each chunk is read once (and cached).
    pub async fn count_matching(
        &self,
        stream: &str,
        filter: &str,
        from: u64,
        up_to: u64,
    ) -> Result<u64, ReadError> {
        let any = filter.is_empty() || filter == ">";
        let mut count = 0u64;
        let mut next = from.max(1);
        while up_to == 0 || next <= up_to {
            let entries = self.read_index(stream, next, up_to, SCAN_ENTRIES).await?;
            let Some(last_entry) = entries.last() else {
                break;
            };
            let after = last_entry.last_seq.saturating_add(1);
            for entry in &entries {
                let first = entry.first_seq.max(next);
                let last = if up_to == 0 {
                    entry.last_seq
                } else {
                    entry.last_seq.min(up_to)
                };
                if first > last {
                    continue;
                }
                if any {
                    let deleted = entry
                        .deleted
                        .iter()
                        .filter(|&&d| first <= d && d <= last)
                        .count() as u64;
                    count += last - first + 1 - deleted;
                    continue;
                }
                for seq in first..=last {
                    if entry.deleted.contains(&seq) {
                        continue;
                    }
                    let msg = self.load(stream, entry, seq).await?;
                    if subject_matches(filter, &msg.subject) {
                        count += 1;
                    }
                }
            }
            if after <= next {
                break;
            }
            next = after;
        }
        Ok(count)
    }

    /// The stream's last assigned sequence (0 when nothing was ever stored).
    pub async fn last_seq(&self, stream: &str) -> Result<u64, ReadError> {
        let resp = self.read_index_raw(stream, u64::MAX, 0, 1).await?;
        Ok(resp.state.map_or(0, |s| s.last_seq))
    }

    /// The last live sequence at or below `up_to` of every subject matching one of
    /// `filters`: a forward scan of `1..=up_to`, for reads bounded in the past (the
    /// index only knows each subject's newest sequence).
    pub async fn last_seqs_up_to(
        &self,
        stream: &str,
        filters: &[String],
        up_to: u64,
    ) -> Result<HashMap<String, u64>, ReadError> {
        let mut lasts = HashMap::new();
        let mut next = 1;
        while up_to > 0 && next <= up_to {
            let entries = self.read_index(stream, next, up_to, SCAN_ENTRIES).await?;
            let Some(last_entry) = entries.last() else {
                break;
            };
            let after = last_entry.last_seq.saturating_add(1);
            for entry in &entries {
                for seq in entry.first_seq.max(next)..=entry.last_seq.min(up_to) {
                    if entry.deleted.contains(&seq) {
                        continue;
                    }
                    let msg = self.load(stream, entry, seq).await?;
                    if filters.iter().any(|f| subject_matches(f, &msg.subject)) {
                        lasts.insert(msg.subject, seq);
                    }
                }
            }
            if after <= next {
                break;
            }
            next = after;
        }
        Ok(lasts)
    }

    async fn read_index(
        &self,
        stream: &str,
        start: u64,
        end: u64,
        limit: u32,
    ) -> Result<Vec<v1::IndexEntry>, ReadError> {
        Ok(self
            .read_index_raw(stream, start, end, limit)
            .await?
            .entries)
    }

    async fn read_index_raw(
        &self,
        stream: &str,
        start: u64,
        end: u64,
        limit: u32,
    ) -> Result<v1::ReadIndexResponse, ReadError> {
        self.inner
            .cp
            .read_index(v1::ReadIndexRequest {
                stream: stream.to_owned(),
                start_seq: start,
                end_seq: end,
                limit,
            })
            .await
            .map_err(|e| cp_error(stream, e))
    }
}
