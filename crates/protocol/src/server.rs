//! Server → client operations: hot-path encoders and a parser.
//!
//! The broker calls [`write_msg`] once per delivered message while holding a
//! subscriber's outbound-buffer lock, so it writes straight into any `BufMut` with no
//! intermediate allocation. [`ServerOp`] and [`ServerParser`] exist for tests, tools
//! and clients built on this crate.

use bytes::{BufMut, Bytes, BytesMut};

use crate::client::{find_line, parse_size, split_args, split_op};
use crate::error::ProtocolError;
use crate::info::Info;

pub const PING: &[u8] = b"PING\r\n";
pub const PONG: &[u8] = b"PONG\r\n";
pub const OK: &[u8] = b"+OK\r\n";

/// Exact size [`write_msg`] will append.
#[inline]
pub fn msg_len(
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) -> usize {
    let digits = |n: usize| itoa::Buffer::new().format(n).len();
    let mut n = 4 + subject.len() + 1 + sid.len() + 1;
    if headers.is_some() {
        n += 1; // HMSG
    }
    if let Some(r) = reply {
        n += r.len() + 1;
    }
    let total = headers.map_or(0, <[u8]>::len) + payload.len();
    if let Some(h) = headers {
        n += digits(h.len()) + 1;
    }
    n + digits(total) + 2 + total + 2
}

/// Appends `MSG subject sid [reply] size\r\npayload\r\n`, or the `HMSG` form when
/// `headers` is present.
#[inline]
pub fn write_msg<B: BufMut>(
    dst: &mut B,
    subject: &[u8],
    sid: &[u8],
    reply: Option<&[u8]>,
    headers: Option<&[u8]>,
    payload: &[u8],
) {
    let mut num = itoa::Buffer::new();
    if headers.is_some() {
        dst.put_slice(b"HMSG ");
    } else {
        dst.put_slice(b"MSG ");
    }
    dst.put_slice(subject);
    dst.put_u8(b' ');
    dst.put_slice(sid);
    dst.put_u8(b' ');
    if let Some(r) = reply {
        dst.put_slice(r);
        dst.put_u8(b' ');
    }
    match headers {
        Some(h) => {
            dst.put_slice(num.format(h.len()).as_bytes());
            dst.put_u8(b' ');
            dst.put_slice(num.format(h.len() + payload.len()).as_bytes());
            dst.put_slice(b"\r\n");
            dst.put_slice(h);
        }
        None => {
            dst.put_slice(num.format(payload.len()).as_bytes());
            dst.put_slice(b"\r\n");
        }
    }
    dst.put_slice(payload);
    dst.put_slice(b"\r\n");
}

/// Appends `-ERR 'message'\r\n`.
pub fn write_err<B: BufMut>(dst: &mut B, message: &str) {
    dst.put_slice(b"-ERR '");
    dst.put_slice(message.as_bytes());
    dst.put_slice(b"'\r\n");
}

/// Appends `INFO {json}\r\n`.
pub fn write_info<B: BufMut>(dst: &mut B, info: &Info) {
    dst.put_slice(b"INFO ");
    // A struct of strings, numbers and bools always serializes.
    let json = serde_json::to_vec(info).unwrap_or_default();
    dst.put_slice(&json);
    dst.put_slice(b"\r\n");
}

/// A message delivered to a client (`MSG`, or `HMSG` when `headers` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: Bytes,
    pub sid: Bytes,
    pub reply: Option<Bytes>,
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

/// One operation sent by a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    Info(Box<Info>),
    Msg(Message),
    Ping,
    Pong,
    Ok,
    Err(String),
}

impl ServerOp {
    /// Appends this operation's wire form to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            ServerOp::Info(i) => write_info(dst, i),
            ServerOp::Msg(m) => write_msg(
                dst,
                &m.subject,
                &m.sid,
                m.reply.as_deref(),
                m.headers.as_deref(),
                &m.payload,
            ),
            ServerOp::Ping => dst.put_slice(PING),
            ServerOp::Pong => dst.put_slice(PONG),
            ServerOp::Ok => dst.put_slice(OK),
            ServerOp::Err(e) => write_err(dst, e),
        }
    }
}

/// Frame parser for server operations (the client side of the protocol).
#[derive(Debug, Clone)]
pub struct ServerParser {
    max_control_line: usize,
}

impl Default for ServerParser {
    fn default() -> Self {
        // INFO lines carry connect_urls and can be long.
        ServerParser {
            max_control_line: 64 * 1024,
        }
    }
}

impl ServerParser {
    pub fn new(max_control_line: usize) -> Self {
        ServerParser { max_control_line }
    }

    /// Parses one operation from the front of `buf`, removing its bytes; `Ok(None)`
    /// when more bytes are needed.
    pub fn parse(&self, buf: &mut BytesMut) -> Result<Option<ServerOp>, ProtocolError> {
        let Some((end, next)) = find_line(buf, self.max_control_line)? else {
            return Ok(None);
        };
        let line = &buf[..end];
        let (op, rest) = split_op(line);
        let rest_str = || {
            String::from_utf8_lossy(&line[rest.clone()])
                .trim()
                .to_owned()
        };
        let bad = |op: &'static str| ProtocolError::BadArguments {
            op,
            args: String::from_utf8_lossy(&line[rest.clone()]).into_owned(),
        };
        if op.eq_ignore_ascii_case(b"MSG") || op.eq_ignore_ascii_case(b"HMSG") {
            let hmsg = op.len() == 4;
            let name = if hmsg { "HMSG" } else { "MSG" };
            let mut a = [0..0, 0..0, 0..0, 0..0, 0..0, 0..0];
            let n = split_args(line, rest.clone(), &mut a).ok_or_else(|| bad(name))?;
            let (reply, sizes) = match (hmsg, n) {
                (false, 3) => (None, 2),
                (false, 4) => (Some(a[2].clone()), 3),
                (true, 4) => (None, 2),
                (true, 5) => (Some(a[2].clone()), 3),
                _ => return Err(bad(name)),
            };
            let (hsize, size) = if hmsg {
                let h = parse_size(&line[a[sizes].clone()]).ok_or_else(|| bad(name))?;
                let t = parse_size(&line[a[sizes + 1].clone()]).ok_or_else(|| bad(name))?;
                if h > t {
                    return Err(bad(name));
                }
                (Some(h), t)
            } else {
                (
                    None,
                    parse_size(&line[a[sizes].clone()]).ok_or_else(|| bad(name))?,
                )
            };
            let total = next + size + 2;
            if buf.len() < total {
                return Ok(None);
            }
            if &buf[next + size..total] != b"\r\n" {
                return Err(ProtocolError::SizeMismatch { op: name, size });
            }
            let (subject, sid) = (a[0].clone(), a[1].clone());
            let frame = buf.split_to(total).freeze();
            let hsize = hsize.unwrap_or(0);
            return Ok(Some(ServerOp::Msg(Message {
                subject: frame.slice(subject),
                sid: frame.slice(sid),
                reply: reply.map(|r| frame.slice(r)),
                headers: hmsg.then(|| frame.slice(next..next + hsize)),
                payload: frame.slice(next + hsize..next + size),
            })));
        }
        let op = if op.eq_ignore_ascii_case(b"PING") {
            ServerOp::Ping
        } else if op.eq_ignore_ascii_case(b"PONG") {
            ServerOp::Pong
        } else if op.eq_ignore_ascii_case(b"+OK") {
            ServerOp::Ok
        } else if op.eq_ignore_ascii_case(b"-ERR") {
            let text = rest_str();
            let text = text
                .strip_prefix('\'')
                .and_then(|t| t.strip_suffix('\''))
                .unwrap_or(&text)
                .to_owned();
            ServerOp::Err(text)
        } else if op.eq_ignore_ascii_case(b"INFO") {
            let info: Info = serde_json::from_slice(&line[rest.clone()]).map_err(|e| {
                ProtocolError::InvalidJson {
                    op: "INFO",
                    reason: e.to_string(),
                }
            })?;
            ServerOp::Info(Box::new(info))
        } else {
            return Err(ProtocolError::UnknownOperation(
                String::from_utf8_lossy(&op[..op.len().min(32)]).into_owned(),
            ));
        };
        let _ = buf.split_to(next);
        Ok(Some(op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_len_matches_written() {
        for (reply, headers) in [
            (None, None),
            (Some(&b"r.1"[..]), None),
            (None, Some(&b"NATS/1.0\r\n\r\n"[..])),
            (Some(&b"_INBOX.x"[..]), Some(&b"NATS/1.0 503\r\n\r\n"[..])),
        ] {
            let mut v = Vec::new();
            write_msg(&mut v, b"a.b", b"12", reply, headers, &[7u8; 1234]);
            assert_eq!(
                v.len(),
                msg_len(b"a.b", b"12", reply, headers, &[7u8; 1234])
            );
        }
    }

    #[test]
    fn parses_server_ops() {
        let mut buf = BytesMut::new();
        let ops = vec![
            ServerOp::Ping,
            ServerOp::Pong,
            ServerOp::Ok,
            ServerOp::Err("Slow Consumer".into()),
            ServerOp::Msg(Message {
                subject: Bytes::from_static(b"foo"),
                sid: Bytes::from_static(b"1"),
                reply: Some(Bytes::from_static(b"bar")),
                headers: Some(Bytes::from_static(b"NATS/1.0\r\n\r\n")),
                payload: Bytes::from_static(b"hi"),
            }),
            ServerOp::Info(Box::new(Info {
                server_id: "N1".into(),
                max_payload: 5,
                proto: 1,
                ..Info::default()
            })),
        ];
        for op in &ops {
            op.encode(&mut buf);
        }
        let p = ServerParser::default();
        let mut got = Vec::new();
        while let Some(op) = p.parse(&mut buf).expect("parse") {
            got.push(op);
        }
        assert_eq!(got, ops);
    }
}
