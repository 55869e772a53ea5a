//! The objects under the index: footers (batch) and indexes (segment), chunks and
//! blocks, loaded through the zone cache and kept in two bounded tiers whose concurrent
//! misses share one load.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use infinistream_proto::v1;
use infinistream_protocol::jsapi::counter::value_body;
use infinistream_segment::{
    BatchFooter, Block, Chunk, DecodeError, SegmentIndex, TailRead, decode_block, decode_chunk,
};
use object_store::path::Path;
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use super::{ReadError, ReaderMetrics, StoredMessage, StreamReader};
use crate::cache::WeightedLru;
use crate::zone::RangeKey;

/// An object's decoded table of contents.
#[derive(Debug)]
pub(super) enum Toc {
    Batch(BatchFooter),
    Segment(SegmentIndex),
}

/// A decoded data range.
#[derive(Debug)]
pub(super) enum Data {
    Chunk(Chunk),
    Block(Block),
}

/// A cache tier with coalesced loads.
#[derive(Debug)]
pub(super) struct Tier<K, V> {
    pub(super) name: &'static str,
    pub(super) lru: Mutex<WeightedLru<K, V>>,
    pub(super) loading: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Tier<K, V> {
    pub(super) fn new(name: &'static str, capacity: u64) -> Self {
        Self {
            name,
            lru: Mutex::new(WeightedLru::new(capacity)),
            loading: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value, or the result of `load` (shared with concurrent callers of the
    /// same key). `load` returns the value and its weight.
    pub(super) async fn get_or_load<F, Fut>(
        &self,
        key: K,
        metrics: &ReaderMetrics,
        load: F,
    ) -> Result<V, ReadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, u64), ReadError>>,
    {
        if let Some(v) = self.lru.lock().get(&key) {
            metrics.hit(self.name);
            return Ok(v);
        }
        metrics.miss(self.name);
        let cell = self.loading.lock().entry(key.clone()).or_default().clone();
        let result = cell
            .get_or_try_init(|| async {
                let (value, weight) = load().await?;
                self.lru.lock().insert(key.clone(), value.clone(), weight);
                Ok::<V, ReadError>(value)
            })
            .await
            .cloned();
        let mut loading = self.loading.lock();
        if loading.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            loading.remove(&key);
        }
        result
    }
}

impl StreamReader {
    /// Loads the footer and chunk of `entry` into the caches (read-ahead: entries
    /// past a claim come without per-message positions, which only reading a message
    /// needs). A segment entry loads the block holding `seq`.
    pub(super) async fn warm(
        &self,
        stream: &str,
        entry: &v1::IndexEntry,
        seq: u64,
    ) -> Result<(), ReadError> {
        if entry.segment || entry.marker.is_some() {
            return self.load(stream, entry, seq).await.map(|_| ());
        }
        let Toc::Batch(footer) = &*self.toc(&entry.object_key, false).await? else {
            return Err(ReadError::Inconsistent {
                key: entry.object_key.clone(),
                reason: "object changed format",
            });
        };
        self.chunk(stream, entry, footer).await.map(|_| ())
    }

    /// The decoded chunk of batch `entry` (through the caches).
    async fn chunk(
        &self,
        stream: &str,
        entry: &v1::IndexEntry,
        footer: &BatchFooter,
    ) -> Result<Arc<Data>, ReadError> {
        let key = entry.object_key.as_str();
        let inconsistent = |reason| ReadError::Inconsistent {
            key: key.to_owned(),
            reason,
        };
        let meta = footer
            .chunk_at(entry.chunk_index)
            .ok_or_else(|| inconsistent("chunk index past the footer"))?;
        if meta.stream != stream {
            return Err(inconsistent("chunk belongs to another stream"));
        }
        let meta = meta.clone();
        let data_end = footer
            .chunks()
            .last()
            .map_or(0, |last| last.range().end)
            .min(footer.object_len());
        let fetch = span_of(&meta.range(), data_end);
        let data = self
            .data(key, entry.chunk_index, meta.range(), fetch, |bytes| {
                decode_chunk(&meta, bytes).map(|c| (u64::from(meta.raw_len), Data::Chunk(c)))
            })
            .await?;
        if !matches!(&*data, Data::Chunk(_)) {
            return Err(inconsistent("object changed format"));
        }
        Ok(data)
    }

    /// Loads `seq` (known live) from the object `entry` names.
    pub(super) async fn load(
        &self,
        stream: &str,
        entry: &v1::IndexEntry,
        seq: u64,
    ) -> Result<StoredMessage, ReadError> {
        if let Some(marker) = &entry.marker {
            // A subject delete marker: the control plane's index holds all of it.
            return Ok(StoredMessage {
                seq,
                subject: marker.subject.clone(),
                headers: Bytes::from(marker.headers.clone()),
                payload: Bytes::new(),
                timestamp: marker.timestamp_unix_nanos,
            });
        }
        let key = entry.object_key.as_str();
        let inconsistent = |reason| ReadError::Inconsistent {
            key: key.to_owned(),
            reason,
        };
        let toc = self.toc(key, entry.segment).await?;
        let record = match &*toc {
            Toc::Batch(footer) => {
                let offset = usize::try_from(seq - entry.first_seq)
                    .map_err(|_| inconsistent("sequence offset overflows"))?;
                let position = *entry
                    .positions
                    .get(offset)
                    .ok_or_else(|| inconsistent("no chunk position for the sequence"))?;
                let data = self.chunk(stream, entry, footer).await?;
                let Data::Chunk(chunk) = &*data else {
                    return Err(inconsistent("object changed format"));
                };
                chunk
                    .get(position as usize)
                    .ok_or_else(|| inconsistent("chunk position past the chunk"))?
            }
            Toc::Segment(index) => {
                if index.stream() != stream {
                    return Err(inconsistent("segment belongs to another stream"));
                }
                let (block_index, meta) = index
                    .block_at_or_after_seq(seq)
                    .filter(|(_, b)| b.first_seq <= seq)
                    .ok_or(ReadError::NoMessage)?;
                let meta = *meta;
                let block_index = u32::try_from(block_index)
                    .map_err(|_| inconsistent("block index overflows"))?;
                let data = self
                    .data(key, block_index, meta.range(), meta.range(), |bytes| {
                        decode_block(&meta, bytes)
                            .map(|b| (u64::from(meta.raw_len), Data::Block(b)))
                    })
                    .await?;
                let Data::Block(block) = &*data else {
                    return Err(inconsistent("object changed format"));
                };
                block.get(seq).ok_or(ReadError::NoMessage)?.record
            }
        };
        Ok(stored(entry, seq, record))
    }

    /// The decoded footer (batch) or index (compacted segment) of `key`.
    async fn toc(&self, key: &str, is_segment: bool) -> Result<Arc<Toc>, ReadError> {
        let inner = &self.inner;
        inner
            .tocs
            .get_or_load(key.to_owned(), &inner.metrics, || async {
                parse_key(key)?;
                let mut want = inner.tail_len;
                loop {
                    let (tail, object_len) = self.tail(key, want).await?;
                    let decode_err = |source| ReadError::Decode {
                        key: key.to_owned(),
                        source,
                    };
                    let (toc, needed) = if is_segment {
                        match SegmentIndex::decode_from_tail(&tail, object_len)
                            .map_err(decode_err)?
                        {
                            TailRead::Complete(i) => (Some(Toc::Segment(i)), 0),
                            TailRead::NeedTail(n) => (None, n),
                        }
                    } else {
                        match BatchFooter::decode_from_tail(&tail, object_len)
                            .map_err(decode_err)?
                        {
                            TailRead::Complete(f) => (Some(Toc::Batch(f)), 0),
                            TailRead::NeedTail(n) => (None, n),
                        }
                    };
                    if let Some(toc) = toc {
                        return Ok((Arc::new(toc), 1));
                    }
                    if needed <= want {
                        return Err(ReadError::Inconsistent {
                            key: key.to_owned(),
                            reason: "footer needs no more than the tail it was given",
                        });
                    }
                    want = needed;
                }
            })
            .await
    }

    /// The last `n` bytes of `key` and the object's length (one suffix GET on a
    /// zone-wide miss).
    async fn tail(&self, key: &str, n: u64) -> Result<(Bytes, u64), ReadError> {
        let data = self.inner.zone.get(&RangeKey::suffix(key, n)).await?;
        Ok((data.bytes, data.object_len))
    }

    /// The decoded data range `index` of `key`, at bytes `range`, read as part of
    /// `fetch` (which holds it: the range itself, or its span) on a miss: one ranged
    /// GET on a zone-wide miss.
    async fn data<F>(
        &self,
        key: &str,
        index: u32,
        range: Range<u64>,
        fetch: Range<u64>,
        decode: F,
    ) -> Result<Arc<Data>, ReadError>
    where
        F: FnOnce(Bytes) -> Result<(u64, Data), DecodeError>,
    {
        let inner = &self.inner;
        inner
            .data
            .get_or_load((key.to_owned(), index), &inner.metrics, || async {
                parse_key(key)?;
                let fetched = inner
                    .zone
                    .get(&RangeKey::bounded(key, fetch.clone()))
                    .await?
                    .bytes;
                let bytes = if fetch == range {
                    fetched
                } else {
                    // A copy, so the decoded chunk does not keep the whole span alive
                    // after the zone cache dropped it.
                    let within = usize::try_from(range.start - fetch.start)
                        .ok()
                        .zip(usize::try_from(range.end - fetch.start).ok())
                        .and_then(|(a, b)| fetched.get(a..b))
                        .ok_or_else(|| ReadError::Inconsistent {
                            key: key.to_owned(),
                            reason: "object shorter than its footer says",
                        })?;
                    Bytes::copy_from_slice(within)
                };
                let (weight, data) = decode(bytes).map_err(|source| ReadError::Decode {
                    key: key.to_owned(),
                    source,
                })?;
                Ok((Arc::new(data), weight))
            })
            .await
    }
}

/// Batch chunks are read with the rest of their aligned span of this many bytes (one
/// ranged GET, cached in the zone cache) when they are small: an object holds a
/// chunk per stream, so with many small streams one GET then serves the neighbouring
/// streams' chunks too, instead of a GET (and a disk-tier file) per message.
const SPAN_BYTES: u64 = 256 * 1024;
/// Chunks larger than this are read alone (a span would hardly hold another).
const SPAN_CHUNK_MAX: u64 = SPAN_BYTES / 8;

/// The bytes to fetch for a chunk at `range` of an object whose chunks end at
/// `data_end`: its aligned span (cut at `data_end`, so the footer is not read again),
/// or the chunk alone when it is large or crosses a span boundary (its neighbours'
/// spans are then read whole by their own reads, never overlapping ones).
pub(super) fn span_of(range: &Range<u64>, data_end: u64) -> Range<u64> {
    if range.end.saturating_sub(range.start) > SPAN_CHUNK_MAX {
        return range.clone();
    }
    let start = range.start / SPAN_BYTES * SPAN_BYTES;
    let end = start.saturating_add(SPAN_BYTES).min(data_end);
    if range.end > end || range.start < start {
        return range.clone();
    }
    start..end
}

/// Message `seq` of batch entry `entry` out of its decoded chunk `data` (which
/// [`StreamReader::load`] checked belongs to the entry's stream).
pub(super) fn from_chunk(
    entry: &v1::IndexEntry,
    seq: u64,
    data: &Data,
) -> Result<StoredMessage, ReadError> {
    let inconsistent = |reason| ReadError::Inconsistent {
        key: entry.object_key.clone(),
        reason,
    };
    let Data::Chunk(chunk) = data else {
        return Err(inconsistent("object changed format"));
    };
    let offset = usize::try_from(seq - entry.first_seq)
        .map_err(|_| inconsistent("sequence offset overflows"))?;
    let position = *entry
        .positions
        .get(offset)
        .ok_or_else(|| inconsistent("no chunk position for the sequence"))?;
    let record = chunk
        .get(position as usize)
        .ok_or_else(|| inconsistent("chunk position past the chunk"))?;
    Ok(stored(entry, seq, record))
}

/// Message `seq` as stored: the record's bytes, except that a counter stream's body is
/// the subject's total after it (`{"val":"…"}`, which the index carries because the
/// control plane computes it at commit and the object holds the empty increment).
fn stored(entry: &v1::IndexEntry, seq: u64, record: infinistream_segment::Record) -> StoredMessage {
    let total = usize::try_from(seq - entry.first_seq)
        .ok()
        .and_then(|i| entry.counter_values.get(i))
        .filter(|v| !v.is_empty());
    StoredMessage {
        seq,
        subject: String::from_utf8_lossy(&record.subject).into_owned(),
        headers: record.headers,
        payload: match total {
            Some(total) => Bytes::from(value_body(total)),
            None => record.payload,
        },
        timestamp: record.timestamp,
    }
}

fn parse_key(key: &str) -> Result<Path, ReadError> {
    Path::parse(key).map_err(|_| ReadError::BadKey(key.to_owned()))
}
