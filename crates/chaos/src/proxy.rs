//! Loopback proxies the nemesis controls at run time.
//!
//! [`BucketProxy`] sits between the agents and the S3 server and injects bucket faults
//! into a share of the requests: 503 `SlowDown`, 403 `AccessDenied`, slow answers, a
//! request that hangs (the client's timeout fires), and an answer cut in the middle of
//! its body. It speaks just enough HTTP/1.1: it reads one request (head and
//! `Content-Length` body), forwards it on a new upstream connection with
//! `Connection: close`, relays the answer until the upstream closes, and closes the
//! client connection, so every request gets its own connection and its own fault draw.
//! SigV4 signs the `Host` header the client sent, which the proxy forwards unchanged.
//!
//! [`Partition`] is a TCP forwarder per upstream (an agent's view of a control-plane
//! replica): while partitioned it stops moving bytes on open connections and holds new
//! ones unanswered, as a dropped-packet partition looks to the agent; on heal it closes
//! the held connections so the agent reconnects.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::rng::Rng;

/// A fault the bucket proxy injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketFault {
    /// 503 `SlowDown`.
    ServerError,
    /// 403 `AccessDenied`.
    Forbidden,
    /// The answer is forwarded after a delay.
    Slow(Duration),
    /// No answer; the connection is held this long, then closed.
    Hang(Duration),
    /// Half of the answer's bytes, then the connection closes.
    CutMidBody,
}

#[derive(Debug, Default)]
struct Control {
    /// The fault and the share of requests (0..=1) it hits.
    fault: Option<(BucketFault, f64)>,
}

/// Counts of what the proxy did.
#[derive(Debug, Default, Serialize)]
pub struct ProxyCounts {
    pub requests: u64,
    pub faulted: u64,
}

/// The fault-injecting S3 proxy.
#[derive(Debug, Clone)]
pub struct BucketProxy {
    addr: SocketAddr,
    control: Arc<Mutex<Control>>,
    requests: Arc<AtomicU64>,
    faulted: Arc<AtomicU64>,
}

impl BucketProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, seed: u64) -> std::io::Result<BucketProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let proxy = BucketProxy {
            addr: listener.local_addr()?,
            control: Arc::default(),
            requests: Arc::default(),
            faulted: Arc::default(),
        };
        let this = proxy.clone();
        tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            while let Ok((client, _)) = listener.accept().await {
                let draw = rng.unit();
                let this = this.clone();
                tokio::spawn(async move {
                    let _ = this.serve(client, upstream, draw).await;
                });
            }
        });
        Ok(proxy)
    }

    /// Where the agents send S3 requests.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects `fault` into `share` (0..=1) of the requests from now on.
    pub fn inject(&self, fault: BucketFault, share: f64) {
        lock(&self.control).fault = Some((fault, share));
    }

    /// Stops injecting.
    pub fn heal(&self) {
        lock(&self.control).fault = None;
    }

    pub fn counts(&self) -> ProxyCounts {
        ProxyCounts {
            requests: self.requests.load(Ordering::Relaxed),
            faulted: self.faulted.load(Ordering::Relaxed),
        }
    }

    async fn serve(
        &self,
        mut client: TcpStream,
        upstream: SocketAddr,
        draw: f64,
    ) -> std::io::Result<()> {
        let Some(request) = read_request(&mut client).await? else {
            return Ok(());
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let fault = lock(&self.control)
            .fault
            .filter(|&(_, share)| draw < share)
            .map(|(fault, _)| fault);
        if fault.is_some() {
            self.faulted.fetch_add(1, Ordering::Relaxed);
        }
        match fault {
            Some(BucketFault::ServerError) => {
                return answer(&mut client, 503, "Service Unavailable", "SlowDown").await;
            }
            Some(BucketFault::Forbidden) => {
                return answer(&mut client, 403, "Forbidden", "AccessDenied").await;
            }
            Some(BucketFault::Hang(hold)) => {
                tokio::time::sleep(hold).await;
                return Ok(());
            }
            Some(BucketFault::Slow(delay)) => tokio::time::sleep(delay).await,
            Some(BucketFault::CutMidBody) | None => {}
        }
        let mut up = TcpStream::connect(upstream).await?;
        up.write_all(&request).await?;
        let mut response = Vec::new();
        up.read_to_end(&mut response).await?;
        if fault == Some(BucketFault::CutMidBody) {
            let half = response.len() / 2;
            client.write_all(&response[..half]).await?;
        } else {
            client.write_all(&response).await?;
        }
        client.shutdown().await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads one request and returns it rewritten for the upstream (`Connection: close`),
/// or `None` when the client closed without sending one.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    const MAX_HEAD: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head over 64 KiB"));
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut length = 0usize;
    let mut out = Vec::with_capacity(buf.len());
    for (i, line) in head.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") {
            return Err(std::io::Error::other("chunked requests are not proxied"));
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v
                .trim()
                .parse()
                .map_err(|_| std::io::Error::other("bad content-length"))?;
        }
        if i > 0 && lower.starts_with("connection:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; (length - body.len()).min(256 * 1024)];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("client closed mid-body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    out.extend_from_slice(&body);
    Ok(Some(out))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An S3 error answer with `Connection: close`.
async fn answer(
    client: &mut TcpStream,
    status: u16,
    reason: &str,
    code: &str,
) -> std::io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the chaos proxy</Message></Error>"
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

/// A TCP forwarder to one upstream that the nemesis can partition.
#[derive(Debug, Clone)]
pub struct Partition {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

impl Partition {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Partition> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let (cut, _) = watch::channel(false);
        let partition = Partition {
            addr: listener.local_addr()?,
            cut,
        };
        let this = partition.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let cut = this.cut.subscribe();
                tokio::spawn(forward(client, upstream, cut));
            }
        });
        Ok(partition)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts (`true`) or heals (`false`) the link.
    pub fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut cut: watch::Receiver<bool>) {
    // Partitioned at connect time: hold the connection unanswered until healed.
    if *cut.borrow_and_update() {
        let _ = cut.wait_for(|c| !*c).await;
        return;
    }
    let Ok(mut up) = TcpStream::connect(upstream).await else {
        return;
    };
    let was_cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut up) => false,
        _ = cut.wait_for(|c| *c) => true,
    };
    if was_cut {
        // Stop moving bytes; the agent sees silence until the heal closes it.
        let _ = cut.wait_for(|c| !*c).await;
    }
}
