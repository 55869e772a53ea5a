//! The record: what one NATS publish stores.
//!
//! Builders take a borrowed [`RecordRef`] so the gateway can push straight from its
//! receive buffers; readers hand back an owned [`Record`] whose fields are `Bytes`
//! slices of the chunk or block, so reading an uncompressed chunk copies no payload.
//! Subjects and message ids stay bytes: this crate stores, the protocol crate validates.

use bytes::Bytes;

/// A record to append, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The subject the message was published to.
    pub subject: &'a [u8],
    /// The raw NATS header block (`NATS/1.0\r\n...\r\n\r\n`), empty when none.
    pub headers: &'a [u8],
    /// The message body.
    pub payload: &'a [u8],
    /// Publish time, unix nanoseconds.
    pub timestamp: i64,
    /// The `Nats-Msg-Id`, if the publisher set one.
    pub msg_id: Option<&'a [u8]>,
}

/// A record read back from a chunk or block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// The subject the message was published to.
    pub subject: Bytes,
    /// The raw NATS header block, empty when none.
    pub headers: Bytes,
    /// The message body.
    pub payload: Bytes,
    /// Publish time, unix nanoseconds.
    pub timestamp: i64,
    /// The `Nats-Msg-Id`, if the publisher set one.
    pub msg_id: Option<Bytes>,
}

impl Record {
    /// Borrows this record, e.g. to push it into a segment builder during compaction.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            subject: &self.subject,
            headers: &self.headers,
            payload: &self.payload,
            timestamp: self.timestamp,
            msg_id: self.msg_id.as_deref(),
        }
    }
}

/// A record of a compacted segment, with its absolute stream sequence.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeqRecord {
    /// Stream sequence assigned at commit.
    pub seq: u64,
    /// The record.
    pub record: Record,
}
