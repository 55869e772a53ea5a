//! NATS message headers: `NATS/1.0[ status[ description]]\r\nKey: Value\r\n...\r\n\r\n`.
//!
//! JetStream reads `Nats-Msg-Id` and `Nats-Expected-*` from published headers (their
//! names are in `jsapi::headers`) and answers fetches and heartbeats with status-only header blocks (503, 404, 408, 409,
//! 100). Keys keep their case and may repeat; lookups ignore ASCII case.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// The version line every header block starts with.
pub const VERSION_LINE: &str = "NATS/1.0";

pub const STATUS_IDLE_HEARTBEAT: u16 = 100;
pub const STATUS_BAD_REQUEST: u16 = 400;
pub const STATUS_NOT_FOUND: u16 = 404;
pub const STATUS_REQUEST_TIMEOUT: u16 = 408;
pub const STATUS_CONFLICT: u16 = 409;
pub const STATUS_NO_RESPONDERS: u16 = 503;

/// A header block that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("header block does not start with NATS/1.0: {0:?}")]
    BadVersionLine(String),
    #[error("invalid header status code: {0:?}")]
    BadStatus(String),
    #[error("header line without a colon: {0:?}")]
    BadLine(String),
    #[error("header block is not valid utf-8 at byte {0}")]
    NotUtf8(usize),
}

/// Parsed headers: optional status line plus ordered, case-preserving entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    status: Option<u16>,
    description: Option<String>,
    entries: Vec<(String, String)>,
}

impl HeaderMap {
    pub fn new() -> Self {
        HeaderMap::default()
    }

    /// A status-only block, e.g. `NATS/1.0 503`.
    pub fn with_status(status: u16, description: Option<&str>) -> Self {
        HeaderMap {
            status: Some(status),
            description: description.map(str::to_owned),
            entries: Vec::new(),
        }
    }

    pub fn status(&self) -> Option<u16> {
        self.status
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn set_status(&mut self, status: u16, description: Option<&str>) {
        self.status = Some(status);
        self.description = description.map(str::to_owned);
    }

    /// Adds a value, keeping earlier values of the same key.
    pub fn append(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.entries.push((key.into(), value.into()));
    }

    /// Replaces every value of `key` with `value`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
        self.entries.push((key, value.into()));
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
    }

    /// First value of `key` (ASCII case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.status.is_none()
    }

    /// Parses a header block as carried by `HPUB`/`HMSG`.
    pub fn parse(block: &[u8]) -> Result<Self, HeaderError> {
        let text = std::str::from_utf8(block).map_err(|e| HeaderError::NotUtf8(e.valid_up_to()))?;
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let rest = first
            .strip_prefix(VERSION_LINE)
            .ok_or_else(|| HeaderError::BadVersionLine(first.chars().take(32).collect()))?;
        let mut map = HeaderMap::default();
        let rest = rest.trim_start();
        if !rest.is_empty() {
            let (code, desc) = match rest.split_once(' ') {
                Some((c, d)) => (c, Some(d.trim())),
                None => (rest, None),
            };
            if code.len() != 3 {
                return Err(HeaderError::BadStatus(code.to_owned()));
            }
            let code: u16 = code
                .parse()
                .map_err(|_| HeaderError::BadStatus(code.to_owned()))?;
            map.status = Some(code);
            map.description = desc.filter(|d| !d.is_empty()).map(str::to_owned);
        }
        for line in lines {
            if line.is_empty() {
                continue;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| HeaderError::BadLine(line.chars().take(64).collect()))?;
            let k = k.trim();
            if k.is_empty() {
                return Err(HeaderError::BadLine(line.chars().take(64).collect()));
            }
            map.entries.push((k.to_owned(), v.trim().to_owned()));
        }
        Ok(map)
    }

    /// Appends the wire form (ending in the blank line) to `dst`.
    pub fn encode_into<B: BufMut>(&self, dst: &mut B) {
        dst.put_slice(VERSION_LINE.as_bytes());
        if let Some(s) = self.status {
            dst.put_u8(b' ');
            dst.put_slice(itoa::Buffer::new().format(s).as_bytes());
            if let Some(d) = &self.description {
                dst.put_u8(b' ');
                dst.put_slice(d.as_bytes());
            }
        }
        dst.put_slice(b"\r\n");
        for (k, v) in &self.entries {
            dst.put_slice(k.as_bytes());
            dst.put_slice(b": ");
            dst.put_slice(v.as_bytes());
            dst.put_slice(b"\r\n");
        }
        dst.put_slice(b"\r\n");
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        self.encode_into(&mut b);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_entries() {
        let h = HeaderMap::parse(
            b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\nX: 1\r\nx: 2\r\n\r\n",
        )
        .expect("parse");
        assert_eq!(h.status(), Some(408));
        assert_eq!(h.description(), Some("Request Timeout"));
        assert_eq!(h.get("nats-pending-messages"), Some("5"));
        assert_eq!(h.get_all("X").collect::<Vec<_>>(), vec!["1", "2"]);
        let h = HeaderMap::parse(b"NATS/1.0 503\r\n\r\n").expect("parse");
        assert_eq!(h.status(), Some(503));
        assert_eq!(h.description(), None);
    }

    #[test]
    fn encodes_status_only() {
        let h = HeaderMap::with_status(STATUS_NO_RESPONDERS, None);
        assert_eq!(&h.to_bytes()[..], b"NATS/1.0 503\r\n\r\n");
        let mut h = HeaderMap::new();
        h.insert(crate::jsapi::headers::MSG_ID, "abc");
        assert_eq!(&h.to_bytes()[..], b"NATS/1.0\r\nNats-Msg-Id: abc\r\n\r\n");
        assert_eq!(HeaderMap::parse(&h.to_bytes()).expect("parse"), h);
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(
            HeaderMap::parse(b"HTTP/1.1\r\n\r\n"),
            Err(HeaderError::BadVersionLine(_))
        ));
        assert!(matches!(
            HeaderMap::parse(b"NATS/1.0 50x\r\n\r\n"),
            Err(HeaderError::BadStatus(_))
        ));
        assert!(matches!(
            HeaderMap::parse(b"NATS/1.0\r\nnocolon\r\n\r\n"),
            Err(HeaderError::BadLine(_))
        ));
        assert!(matches!(
            HeaderMap::parse(b"NATS/1.0\r\n\xff: a\r\n\r\n"),
            Err(HeaderError::NotUtf8(_))
        ));
    }
}
