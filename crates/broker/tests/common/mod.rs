//! Test helpers: a broker on an ephemeral port and a raw protocol client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use infinistream_broker::{Broker, BrokerConfig};
use infinistream_protocol::{ServerOp, ServerParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous bound for "this event should happen"; never used to assert timing.
pub const EVENTUALLY: Duration = Duration::from_secs(10);

pub struct TestBroker {
    pub broker: Broker,
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<std::io::Result<()>>,
}

impl TestBroker {
    pub async fn start(config: BrokerConfig) -> TestBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let broker = Broker::new(config);
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn({
            let broker = broker.clone();
            let shutdown = shutdown.clone();
            async move { broker.serve(listener, shutdown).await }
        });
        TestBroker {
            broker,
            addr,
            shutdown,
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url()).await.expect("connect")
    }
}

/// A hand-driven protocol connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    parser: ServerParser,
}

impl Raw {
    /// Connects and consumes the server's `INFO`.
    pub async fn connect(addr: SocketAddr) -> (Raw, infinistream_protocol::Info) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut raw = Raw {
            stream,
            buf: BytesMut::new(),
            parser: ServerParser::default(),
        };
        match raw.next().await {
            Some(ServerOp::Info(info)) => (raw, *info),
            other => panic!("expected INFO, got {other:?}"),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        // The server may already have closed; tests look at what comes back.
        let _ = self.stream.write_all(bytes).await;
    }

    /// Next server op, or `None` on close / read error / unparsable data.
    pub async fn next(&mut self) -> Option<ServerOp> {
        loop {
            match self.parser.parse(&mut self.buf) {
                Ok(Some(op)) => return Some(op),
                Ok(None) => {}
                Err(e) => panic!("server sent unparsable data: {e}"),
            }
            let read = tokio::time::timeout(EVENTUALLY, self.stream.read_buf(&mut self.buf))
                .await
                .expect("server neither answered nor closed");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Reads until the server closes; returns every op seen.
    pub async fn until_closed(&mut self) -> Vec<ServerOp> {
        let mut ops = Vec::new();
        while let Some(op) = self.next().await {
            ops.push(op);
        }
        ops
    }

    /// Reads ops until `pred` matches one, answering server PINGs.
    pub async fn expect(&mut self, pred: impl Fn(&ServerOp) -> bool) -> ServerOp {
        loop {
            match self.next().await {
                Some(op) if pred(&op) => return op,
                Some(ServerOp::Ping) => self.send(b"PONG\r\n").await,
                Some(_) => {}
                None => panic!("connection closed before the expected op"),
            }
        }
    }
}

pub fn is_err(text: &str) -> impl Fn(&ServerOp) -> bool + '_ {
    move |op| matches!(op, ServerOp::Err(e) if e == text)
}

/// A request/reply round trip through a fresh client: the server is still serving.
pub async fn assert_serving(tb: &TestBroker) {
    use futures::StreamExt;
    let client = tb.client().await;
    let mut sub = client.subscribe("health.check").await.expect("sub");
    client.flush().await.expect("flush");
    client
        .publish("health.check", "ok".into())
        .await
        .expect("publish");
    let msg = tokio::time::timeout(EVENTUALLY, sub.next())
        .await
        .expect("delivery")
        .expect("message");
    assert_eq!(&msg.payload[..], b"ok");
}

/// Waits until the server has processed everything `client` sent so far.
///
/// async-nats' `flush` only drains the client's own write buffer. A request nobody
/// listens to comes back as a no-responders status only after the server handled
/// every earlier op of this connection (works with echo off too).
pub async fn sync(client: &async_nats::Client) {
    let subject = format!("sync.{}", client.new_inbox());
    let err = tokio::time::timeout(EVENTUALLY, client.request(subject, "".into()))
        .await
        .expect("sync round trip")
        .expect_err("nobody listens on the sync subject");
    assert_eq!(
        err.kind(),
        async_nats::client::RequestErrorKind::NoResponders
    );
}
