//! Client → server operations: a frame parser and an encoder.
//!
//! The parser is sans-IO: give it the connection's read buffer and it returns one whole
//! operation, `Ok(None)` when more bytes are needed, or a fatal [`ProtocolError`]. Limits
//! are checked *before* waiting for data, so a control line without an end is rejected
//! once it passes `max_control_line`, and a `PUB` declaring a payload above `max_payload`
//! is rejected from its control line alone — a hostile peer cannot make us buffer it.
//!
//! Payloads, headers, subjects and sids are `Bytes` slices of the read buffer (zero
//! copy): one `split_to` per frame, then reference-counted slices.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::info::Connect;
use crate::{DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD};

/// Limits the parser enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest control line accepted (without its line end).
    pub max_control_line: usize,
    /// Largest `PUB` payload / `HPUB` headers + payload accepted.
    pub max_payload: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// A message published by a client (`PUB`, or `HPUB` when `headers` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub subject: Bytes,
    pub reply: Option<Bytes>,
    /// The raw header block (`NATS/1.0\r\n...\r\n\r\n`) of an `HPUB`.
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

/// One operation sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    Connect(Box<Connect>),
    Pub(Publish),
    Sub {
        subject: Bytes,
        queue: Option<Bytes>,
        sid: Bytes,
    },
    Unsub {
        sid: Bytes,
        max: Option<u64>,
    },
    Ping,
    Pong,
}

impl ClientOp {
    /// Short operation name, for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            ClientOp::Connect(_) => "CONNECT",
            ClientOp::Pub(p) if p.headers.is_some() => "HPUB",
            ClientOp::Pub(_) => "PUB",
            ClientOp::Sub { .. } => "SUB",
            ClientOp::Unsub { .. } => "UNSUB",
            ClientOp::Ping => "PING",
            ClientOp::Pong => "PONG",
        }
    }

    /// Appends this operation's wire form to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            ClientOp::Connect(c) => {
                dst.put_slice(b"CONNECT ");
                // Serializing a struct of strings and bools cannot fail.
                let json = serde_json::to_vec(c).unwrap_or_default();
                dst.put_slice(&json);
                dst.put_slice(b"\r\n");
            }
            ClientOp::Pub(p) => {
                let mut num = itoa::Buffer::new();
                match &p.headers {
                    None => dst.put_slice(b"PUB "),
                    Some(_) => dst.put_slice(b"HPUB "),
                }
                dst.put_slice(&p.subject);
                dst.put_u8(b' ');
                if let Some(r) = &p.reply {
                    dst.put_slice(r);
                    dst.put_u8(b' ');
                }
                if let Some(h) = &p.headers {
                    dst.put_slice(num.format(h.len()).as_bytes());
                    dst.put_u8(b' ');
                    dst.put_slice(num.format(h.len() + p.payload.len()).as_bytes());
                    dst.put_slice(b"\r\n");
                    dst.put_slice(h);
                } else {
                    dst.put_slice(num.format(p.payload.len()).as_bytes());
                    dst.put_slice(b"\r\n");
                }
                dst.put_slice(&p.payload);
                dst.put_slice(b"\r\n");
            }
            ClientOp::Sub {
                subject,
                queue,
                sid,
            } => {
                dst.put_slice(b"SUB ");
                dst.put_slice(subject);
                dst.put_u8(b' ');
                if let Some(q) = queue {
                    dst.put_slice(q);
                    dst.put_u8(b' ');
                }
                dst.put_slice(sid);
                dst.put_slice(b"\r\n");
            }
            ClientOp::Unsub { sid, max } => {
                dst.put_slice(b"UNSUB ");
                dst.put_slice(sid);
                if let Some(m) = max {
                    dst.put_u8(b' ');
                    dst.put_slice(itoa::Buffer::new().format(*m).as_bytes());
                }
                dst.put_slice(b"\r\n");
            }
            ClientOp::Ping => dst.put_slice(b"PING\r\n"),
            ClientOp::Pong => dst.put_slice(b"PONG\r\n"),
        }
    }
}

/// Frame parser for client operations.
#[derive(Debug, Clone, Default)]
pub struct ClientParser {
    limits: Limits,
}

/// Where a frame's parts are, relative to the frame start.
#[derive(Debug)]
enum Raw {
    Connect(Range<usize>),
    Pub {
        subject: Range<usize>,
        reply: Option<Range<usize>>,
        headers: Option<Range<usize>>,
        payload: Range<usize>,
    },
    Sub {
        subject: Range<usize>,
        queue: Option<Range<usize>>,
        sid: Range<usize>,
    },
    Unsub {
        sid: Range<usize>,
        max: Option<u64>,
    },
    Ping,
    Pong,
}

impl ClientParser {
    pub fn new(limits: Limits) -> Self {
        ClientParser { limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Parses one operation from the front of `buf`, removing its bytes.
    ///
    /// Returns `Ok(None)` (leaving `buf` untouched) when the frame is not complete yet.
    pub fn parse(&self, buf: &mut BytesMut) -> Result<Option<ClientOp>, ProtocolError> {
        let Some((raw, len)) = self.scan(buf)? else {
            return Ok(None);
        };
        let frame = buf.split_to(len).freeze();
        build(&frame, raw).map(Some)
    }

    /// Parses one operation from the front of `buf` without consuming it; returns the
    /// operation and the number of bytes it used. Copies the frame (use
    /// [`parse`](Self::parse) on hot paths).
    pub fn parse_slice(&self, buf: &[u8]) -> Result<Option<(ClientOp, usize)>, ProtocolError> {
        let Some((raw, len)) = self.scan(buf)? else {
            return Ok(None);
        };
        let frame = Bytes::copy_from_slice(&buf[..len]);
        build(&frame, raw).map(|op| Some((op, len)))
    }

    /// How many bytes the frame at the front of `buf` will need in total, when its
    /// control line is complete; lets a reader reserve once for a large payload.
    pub fn frame_len_hint(&self, buf: &[u8]) -> Option<usize> {
        let (end, next) = find_line(buf, self.limits.max_control_line).ok()??;
        let line = &buf[..end];
        let (op, rest) = split_op(line);
        let mut args = [0..0, 0..0, 0..0, 0..0];
        let n = split_args(line, rest, &mut args)?;
        if op.eq_ignore_ascii_case(b"PUB") && (n == 2 || n == 3) {
            let size = parse_size(&line[args[n - 1].clone()])?;
            return Some(next + size + 2);
        }
        if op.eq_ignore_ascii_case(b"HPUB") && (n == 3 || n == 4) {
            let size = parse_size(&line[args[n - 1].clone()])?;
            return Some(next + size + 2);
        }
        Some(next)
    }

    fn scan(&self, buf: &[u8]) -> Result<Option<(Raw, usize)>, ProtocolError> {
        let Some((end, next)) = find_line(buf, self.limits.max_control_line)? else {
            return Ok(None);
        };
        let line = &buf[..end];
        let (op, rest) = split_op(line);
        let mut args = [0..0, 0..0, 0..0, 0..0, 0..0];
        let bad = |op: &'static str| ProtocolError::BadArguments {
            op,
            args: String::from_utf8_lossy(&line[rest.clone()]).into_owned(),
        };
        match op.len() {
            3 if op.eq_ignore_ascii_case(b"PUB") => {
                let n = split_args(line, rest.clone(), &mut args).ok_or_else(|| bad("PUB"))?;
                let (subject, reply, size) = match n {
                    2 => (args[0].clone(), None, &line[args[1].clone()]),
                    3 => (
                        args[0].clone(),
                        Some(args[1].clone()),
                        &line[args[2].clone()],
                    ),
                    _ => return Err(bad("PUB")),
                };
                let size = parse_size(size).ok_or_else(|| bad("PUB"))?;
                self.check_payload(size)?;
                let total = next + size + 2;
                if buf.len() < total {
                    return Ok(None);
                }
                if &buf[next + size..total] != b"\r\n" {
                    return Err(ProtocolError::SizeMismatch { op: "PUB", size });
                }
                let raw = Raw::Pub {
                    subject,
                    reply,
                    headers: None,
                    payload: next..next + size,
                };
                Ok(Some((raw, total)))
            }
            4 if op.eq_ignore_ascii_case(b"HPUB") => {
                let n = split_args(line, rest.clone(), &mut args).ok_or_else(|| bad("HPUB"))?;
                let (subject, reply, hsize, size) = match n {
                    3 => (
                        args[0].clone(),
                        None,
                        &line[args[1].clone()],
                        &line[args[2].clone()],
                    ),
                    4 => (
                        args[0].clone(),
                        Some(args[1].clone()),
                        &line[args[2].clone()],
                        &line[args[3].clone()],
                    ),
                    _ => return Err(bad("HPUB")),
                };
                let hsize = parse_size(hsize).ok_or_else(|| bad("HPUB"))?;
                let size = parse_size(size).ok_or_else(|| bad("HPUB"))?;
                if hsize > size {
                    return Err(bad("HPUB"));
                }
                self.check_payload(size)?;
                let total = next + size + 2;
                if buf.len() < total {
                    return Ok(None);
                }
                if &buf[next + size..total] != b"\r\n" {
                    return Err(ProtocolError::SizeMismatch { op: "HPUB", size });
                }
                let raw = Raw::Pub {
                    subject,
                    reply,
                    headers: Some(next..next + hsize),
                    payload: next + hsize..next + size,
                };
                Ok(Some((raw, total)))
            }
            3 if op.eq_ignore_ascii_case(b"SUB") => {
                let n = split_args(line, rest.clone(), &mut args).ok_or_else(|| bad("SUB"))?;
                let raw = match n {
                    2 => Raw::Sub {
                        subject: args[0].clone(),
                        queue: None,
                        sid: args[1].clone(),
                    },
                    3 => Raw::Sub {
                        subject: args[0].clone(),
                        queue: Some(args[1].clone()),
                        sid: args[2].clone(),
                    },
                    _ => return Err(bad("SUB")),
                };
                Ok(Some((raw, next)))
            }
            5 if op.eq_ignore_ascii_case(b"UNSUB") => {
                let n = split_args(line, rest.clone(), &mut args).ok_or_else(|| bad("UNSUB"))?;
                let raw = match n {
                    1 => Raw::Unsub {
                        sid: args[0].clone(),
                        max: None,
                    },
                    2 => {
                        let max = parse_size(&line[args[1].clone()]).ok_or_else(|| bad("UNSUB"))?;
                        Raw::Unsub {
                            sid: args[0].clone(),
                            max: Some(max as u64),
                        }
                    }
                    _ => return Err(bad("UNSUB")),
                };
                Ok(Some((raw, next)))
            }
            4 if op.eq_ignore_ascii_case(b"PING") => {
                if !trim(line, rest.clone()).is_empty() {
                    return Err(bad("PING"));
                }
                Ok(Some((Raw::Ping, next)))
            }
            4 if op.eq_ignore_ascii_case(b"PONG") => {
                if !trim(line, rest.clone()).is_empty() {
                    return Err(bad("PONG"));
                }
                Ok(Some((Raw::Pong, next)))
            }
            7 if op.eq_ignore_ascii_case(b"CONNECT") => {
                let json = trim(line, rest.clone());
                Ok(Some((Raw::Connect(json), next)))
            }
            _ => Err(ProtocolError::UnknownOperation(
                String::from_utf8_lossy(&op[..op.len().min(32)]).into_owned(),
            )),
        }
    }

    fn check_payload(&self, size: usize) -> Result<(), ProtocolError> {
        if size > self.limits.max_payload {
            return Err(ProtocolError::MaxPayload {
                size,
                limit: self.limits.max_payload,
            });
        }
        Ok(())
    }
}

fn build(frame: &Bytes, raw: Raw) -> Result<ClientOp, ProtocolError> {
    Ok(match raw {
        Raw::Connect(r) => {
            let connect: Connect =
                serde_json::from_slice(&frame[r]).map_err(|e| ProtocolError::InvalidJson {
                    op: "CONNECT",
                    reason: e.to_string(),
                })?;
            ClientOp::Connect(Box::new(connect))
        }
        Raw::Pub {
            subject,
            reply,
            headers,
            payload,
        } => ClientOp::Pub(Publish {
            subject: frame.slice(subject),
            reply: reply.map(|r| frame.slice(r)),
            headers: headers.map(|r| frame.slice(r)),
            payload: frame.slice(payload),
        }),
        Raw::Sub {
            subject,
            queue,
            sid,
        } => ClientOp::Sub {
            subject: frame.slice(subject),
            queue: queue.map(|r| frame.slice(r)),
            sid: frame.slice(sid),
        },
        Raw::Unsub { sid, max } => ClientOp::Unsub {
            sid: frame.slice(sid),
            max,
        },
        Raw::Ping => ClientOp::Ping,
        Raw::Pong => ClientOp::Pong,
    })
}

/// Finds the end of the control line: `(end of line content, start of next data)`.
/// Accepts `\r\n` and a bare `\n`, like nats-server.
pub(crate) fn find_line(
    buf: &[u8],
    max_control_line: usize,
) -> Result<Option<(usize, usize)>, ProtocolError> {
    let window = &buf[..buf.len().min(max_control_line.saturating_add(2))];
    match memchr::memchr(b'\n', window) {
        Some(i) => {
            let end = if i > 0 && buf[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            if end > max_control_line {
                return Err(ProtocolError::MaxControlLine(max_control_line));
            }
            Ok(Some((end, i + 1)))
        }
        None if window.len() >= max_control_line.saturating_add(2) => {
            Err(ProtocolError::MaxControlLine(max_control_line))
        }
        None => Ok(None),
    }
}

/// Splits the operation name off a control line; returns it and the range of the rest.
pub(crate) fn split_op(line: &[u8]) -> (&[u8], Range<usize>) {
    let start = line
        .iter()
        .position(|b| !is_space(*b))
        .unwrap_or(line.len());
    let end = line[start..]
        .iter()
        .position(|b| is_space(*b))
        .map_or(line.len(), |p| start + p);
    (&line[start..end], end..line.len())
}

#[inline]
fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits whitespace-separated arguments of `line[rest]` into `out`; returns how many,
/// or `None` when there are more than `out` holds.
#[inline]
pub(crate) fn split_args(
    line: &[u8],
    rest: Range<usize>,
    out: &mut [Range<usize>],
) -> Option<usize> {
    let mut n = 0;
    let mut start: Option<usize> = None;
    for i in rest.clone() {
        if is_space(line[i]) {
            if let Some(s) = start.take() {
                *out.get_mut(n)? = s..i;
                n += 1;
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        *out.get_mut(n)? = s..rest.end;
        n += 1;
    }
    Some(n)
}

fn trim(line: &[u8], rest: Range<usize>) -> Range<usize> {
    let mut s = rest.start;
    let mut e = rest.end;
    while s < e && is_space(line[s]) {
        s += 1;
    }
    while e > s && is_space(line[e - 1]) {
        e -= 1;
    }
    s..e
}

/// Parses a decimal size: digits only, no overflow.
#[inline]
pub(crate) fn parse_size(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut n: usize = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<ClientOp>, ProtocolError> {
        let p = ClientParser::default();
        let mut buf = BytesMut::from(input);
        let mut ops = Vec::new();
        while let Some(op) = p.parse(&mut buf)? {
            ops.push(op);
        }
        Ok(ops)
    }

    #[test]
    fn parses_pub_with_and_without_reply() {
        let ops = parse_all(b"PUB foo 5\r\nhello\r\npub foo.bar INBOX.1 0\r\n\r\n").expect("parse");
        assert_eq!(
            ops[0],
            ClientOp::Pub(Publish {
                subject: Bytes::from_static(b"foo"),
                reply: None,
                headers: None,
                payload: Bytes::from_static(b"hello"),
            })
        );
        let ClientOp::Pub(p) = &ops[1] else {
            panic!("not pub")
        };
        assert_eq!(p.reply.as_deref(), Some(&b"INBOX.1"[..]));
        assert!(p.payload.is_empty());
    }

    #[test]
    fn parses_hpub() {
        let hdr = b"NATS/1.0\r\nA: b\r\n\r\n";
        let mut input = format!("HPUB s r {} {}\r\n", hdr.len(), hdr.len() + 3).into_bytes();
        input.extend_from_slice(hdr);
        input.extend_from_slice(b"abc\r\n");
        let ops = parse_all(&input).expect("parse");
        let ClientOp::Pub(p) = &ops[0] else {
            panic!("not pub")
        };
        assert_eq!(p.headers.as_deref(), Some(&hdr[..]));
        assert_eq!(&p.payload[..], b"abc");
    }

    #[test]
    fn parses_sub_unsub_ping_pong_connect() {
        let ops = parse_all(
            b"SUB foo 1\r\nSUB foo.* q 2\r\nUNSUB 1\r\nUNSUB 2 10\r\nPING\r\nPONG\nCONNECT {\"verbose\":true,\"name\":\"x\"}\r\n",
        )
        .expect("parse");
        assert_eq!(ops.len(), 7);
        assert!(matches!(&ops[1], ClientOp::Sub { queue: Some(q), .. } if &q[..] == b"q"));
        assert!(matches!(&ops[3], ClientOp::Unsub { max: Some(10), .. }));
        let ClientOp::Connect(c) = &ops[6] else {
            panic!("not connect")
        };
        assert!(c.verbose && c.echo);
        assert_eq!(c.name.as_deref(), Some("x"));
    }

    #[test]
    fn incomplete_leaves_buffer_untouched() {
        let p = ClientParser::default();
        let mut buf = BytesMut::from(&b"PUB foo 5\r\nhel"[..]);
        assert_eq!(p.parse(&mut buf).expect("ok"), None);
        assert_eq!(buf.len(), 14);
        assert_eq!(p.frame_len_hint(&buf), Some(18));
    }

    #[test]
    fn rejects_huge_declared_payload_without_data() {
        let p = ClientParser::new(Limits {
            max_control_line: 4096,
            max_payload: 10,
        });
        let mut buf = BytesMut::from(&b"PUB foo 11\r\n"[..]);
        let err = p.parse(&mut buf).expect_err("too big");
        assert_eq!(err.wire_message(), "Maximum Payload Violation");
    }

    #[test]
    fn rejects_long_control_line() {
        let p = ClientParser::new(Limits {
            max_control_line: 16,
            max_payload: 10,
        });
        let mut buf = BytesMut::from(&b"SUB aaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
        assert_eq!(p.parse(&mut buf), Err(ProtocolError::MaxControlLine(16)));
        let mut ok = BytesMut::from(&b"SUB aaaaaaaaa 1\r\n"[..]);
        assert!(p.parse(&mut ok).expect("fits").is_some());
    }

    #[test]
    fn rejects_size_mismatch_and_bad_args() {
        assert!(matches!(
            parse_all(b"PUB foo 3\r\nhello\r\n"),
            Err(ProtocolError::SizeMismatch { .. })
        ));
        assert!(matches!(
            parse_all(b"PUB foo\r\n"),
            Err(ProtocolError::BadArguments { .. })
        ));
        assert!(matches!(
            parse_all(b"PUB foo -1\r\n"),
            Err(ProtocolError::BadArguments { .. })
        ));
        assert!(matches!(
            parse_all(b"SUB\r\n"),
            Err(ProtocolError::BadArguments { .. })
        ));
        assert!(matches!(
            parse_all(b"HPUB a 5 3\r\n"),
            Err(ProtocolError::BadArguments { .. })
        ));
        assert!(matches!(
            parse_all(b"FOO bar\r\n"),
            Err(ProtocolError::UnknownOperation(_))
        ));
        assert!(matches!(
            parse_all(b"CONNECT {\r\n"),
            Err(ProtocolError::InvalidJson { .. })
        ));
        assert!(matches!(
            parse_all(b"PUB a 99999999999999999999999\r\n"),
            Err(ProtocolError::BadArguments { .. })
        ));
    }

    #[test]
    fn encode_roundtrip_simple() {
        let op = ClientOp::Unsub {
            sid: Bytes::from_static(b"7"),
            max: Some(3),
        };
        let mut buf = BytesMut::new();
        op.encode(&mut buf);
        assert_eq!(&buf[..], b"UNSUB 7 3\r\n");
        assert_eq!(
            ClientParser::default().parse(&mut buf).expect("ok"),
            Some(op)
        );
    }
}
