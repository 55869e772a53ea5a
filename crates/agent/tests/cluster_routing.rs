//! Routing by connection name across processes: a produce-only and a consume-only
//! agent on one standalone control plane. Clients are unmodified async-nats (and
//! nats-py) clients; they learn the agents from `INFO` `connect_urls` and follow the
//! lame-duck redirect of an agent that does not run the role their name asks for.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::BytesMut;
use futures::StreamExt;
use infinistream_protocol::{Info, ServerOp, ServerParser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[path = "support/procs.rs"]
mod procs;
use procs::{Agent, ControlPlane, agent_cmd, http_get, remote_agent_cmd, start_agent};

/// Bound for "this should happen"; never a timing assertion.
const EVENTUALLY: Duration = Duration::from_secs(60);

struct Cluster {
    _dir: tempfile::TempDir,
    _cp: ControlPlane,
    produce: Agent,
    consume: Agent,
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cp, bucket) = procs::embedded_control_plane(dir.path());
    let agent = |name: &str, role: &str| {
        start_agent(remote_agent_cmd(
            &dir.path().join(name),
            &cp,
            &bucket,
            &["--roles", role],
        ))
    };
    let (produce, consume) = (agent("p", "proxy-produce"), agent("c", "proxy-consume"));
    let cluster = Cluster {
        _dir: dir,
        _cp: cp,
        produce,
        consume,
    };
    // Both agents know both (the produce agent learns of the later one on its next
    // registry refresh).
    let mut want = vec![
        cluster.produce.client.to_string(),
        cluster.consume.client.to_string(),
    ];
    want.sort();
    for http in [cluster.produce.http, cluster.consume.http] {
        let want = serde_json::json!(want);
        wait_for(|| {
            let want = want.clone();
            async move {
                let varz: serde_json::Value =
                    serde_json::from_str(&http_get(http, "/varz").await.1).expect("varz json");
                varz["connect_urls"] == want
            }
        })
        .await;
    }
    cluster
}

/// Polls `check` until it holds (bounded by [`EVENTUALLY`]).
async fn wait_for<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(EVENTUALLY, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("condition never held");
}

/// A hand-driven protocol connection, for what clients hide (INFO contents).
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    parser: ServerParser,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> (Raw, Info) {
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

    async fn next(&mut self) -> Option<ServerOp> {
        loop {
            if let Some(op) = self.parser.parse(&mut self.buf).expect("parsable") {
                return Some(op);
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

    async fn until_closed(&mut self) -> Vec<ServerOp> {
        let mut ops = Vec::new();
        while let Some(op) = self.next().await {
            ops.push(op);
        }
        ops
    }
}

fn connect_line(name: &str) -> Vec<u8> {
    format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":true,\"name\":\"{name}\"}}\r\nPING\r\n"
    )
    .into_bytes()
}

/// An async-nats client named `name` on `addr`, with its events.
async fn named_client(
    addr: SocketAddr,
    name: &str,
) -> (
    async_nats::Client,
    mpsc::UnboundedReceiver<async_nats::Event>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event);
            }
        })
        .connect(format!("nats://{addr}"))
        .await
        .expect("connect");
    (client, rx)
}

/// Waits until `client` is connected to `want` (following Connected events).
async fn await_server(
    client: &async_nats::Client,
    events: &mut mpsc::UnboundedReceiver<async_nats::Event>,
    want: SocketAddr,
) -> usize {
    let mut hops = 0;
    tokio::time::timeout(EVENTUALLY, async {
        loop {
            if client.connection_state() == async_nats::connection::State::Connected
                && client.server_info().port == want.port()
            {
                return;
            }
            match events.recv().await {
                Some(async_nats::Event::Connected) => hops += 1,
                Some(_) => {}
                None => panic!("client closed"),
            }
        }
    })
    .await
    .expect("client never reached the wanted agent");
    hops
}

async fn connz_names(http: SocketAddr) -> Vec<String> {
    let connz: serde_json::Value =
        serde_json::from_str(&http_get(http, "/connz").await.1).expect("connz json");
    connz["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_routing_by_connection_name() {
    let c = cluster().await;
    let (p_addr, c_addr) = (c.produce.client, c.consume.client);

    // connect_urls: the first INFO names every proxy agent; a targeted CONNECT on an
    // agent that runs the role gets an async INFO naming only the agents of that role.
    let (mut raw, info) = Raw::connect(p_addr).await;
    let mut all = vec![p_addr.to_string(), c_addr.to_string()];
    all.sort();
    assert_eq!(info.connect_urls, all);
    raw.stream
        .write_all(&connect_line("raw,infinistream_proxy_target=proxy-produce"))
        .await
        .expect("send");
    // As nats-server: the handshake's PONG first (nats.go fails on anything else
    // there), the narrowed INFO right after.
    assert!(matches!(raw.next().await, Some(ServerOp::Pong)));
    match raw.next().await {
        Some(ServerOp::Info(info)) => {
            assert!(!info.ldm);
            assert_eq!(info.connect_urls, vec![p_addr.to_string()]);
        }
        other => panic!("expected INFO, got {other:?}"),
    }

    // The wrong agent answers the handshake, then lame-duck INFO and close.
    let (mut raw, _) = Raw::connect(p_addr).await;
    raw.stream
        .write_all(&connect_line(
            "raw,infinistream_proxy_target=proxy-consume,infinistream_az=default",
        ))
        .await
        .expect("send");
    let ops = raw.until_closed().await;
    assert!(matches!(ops.first(), Some(ServerOp::Pong)), "{ops:?}");
    let ldm = ops
        .iter()
        .find_map(|op| match op {
            ServerOp::Info(info) => Some(info.clone()),
            _ => None,
        })
        .expect("lame-duck INFO");
    assert!(ldm.ldm);
    assert_eq!(ldm.connect_urls, vec![c_addr.to_string()]);

    // An unmodified async-nats client named for proxy-consume, pointed at the produce
    // agent, ends up served by the consume agent.
    let name = "reader,infinistream_proxy_target=proxy-consume";
    let (reader, mut reader_events) = named_client(p_addr, name).await;
    let hops = await_server(&reader, &mut reader_events, c_addr).await;
    assert!(hops >= 1, "the client moved");
    println!("async-nats: served by the consume agent after {hops} connects");
    let consume_http = c.consume.http;
    wait_for(|| async move { connz_names(consume_http).await.contains(&name.to_owned()) }).await;
    assert!(!connz_names(c.produce.http).await.contains(&name.to_owned()));

    // A writer named for proxy-produce stays on the produce agent; the stream
    // round-trips through the two roles.
    let (writer, _writer_events) =
        named_client(p_addr, "writer,infinistream_proxy_target=proxy-produce").await;
    let writer_js = jetstream::new(writer.clone());
    writer_js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .expect("create stream");
    writer_js
        .publish("orders.1", "one".into())
        .await
        .expect("publish")
        .await
        .expect("acked");
    let reader_js = jetstream::new(reader.clone());
    let consumer = reader_js
        .get_stream("ORDERS")
        .await
        .expect("stream")
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("r".into()),
            ..Default::default()
        })
        .await
        .expect("consumer on the consume agent");
    let mut messages = consumer
        .fetch()
        .max_messages(1)
        .messages()
        .await
        .expect("fetch");
    let msg = messages.next().await.expect("one").expect("message");
    assert_eq!(&msg.payload[..], b"one");
    assert_eq!(writer.server_info().port, p_addr.port(), "writer stayed");

    // Requests for a role the agent does not run are forwarded to an agent that runs
    // it: the consumer API and a pull request on the produce agent are answered.
    let plain_p = jetstream::new(
        async_nats::connect(format!("nats://{p_addr}"))
            .await
            .expect("connect"),
    );
    let info = plain_p
        .get_stream("ORDERS")
        .await
        .expect("stream info works on every agent")
        .get_consumer::<jetstream::consumer::pull::Config>("r")
        .await
        .expect("consumer info forwarded to the consume agent")
        .cached_info()
        .clone();
    assert_eq!(info.name, "r");
    let raw_p = async_nats::connect(format!("nats://{p_addr}"))
        .await
        .expect("connect");
    let reply = raw_p
        .request(
            "$JS.API.CONSUMER.MSG.NEXT.ORDERS.r",
            "{\"batch\":1,\"no_wait\":true}".into(),
        )
        .await
        .expect("reply");
    // Everything was delivered already: a no-wait pull gets the 404 status.
    assert_eq!(reply.status, async_nats::StatusCode::from_u16(404).ok());

    // A publish to a stream on the consume agent is stored by the produce agent, and
    // a core publish there (no reply subject) gets no -ERR: the connection stays.
    let (plain_c, mut plain_c_events) = named_client(c_addr, "plain").await;
    let plain_c_js = jetstream::new(plain_c.clone());
    let ack = plain_c_js
        .publish("orders.2", "two".into())
        .await
        .expect("publish")
        .await
        .expect("acked through the consume agent");
    assert_eq!(ack.stream, "ORDERS");
    assert_eq!(ack.sequence, 2);
    plain_c
        .publish("orders.3", "three".into())
        .await
        .expect("core publish");
    plain_c.flush().await.expect("flush");
    let mut orders = plain_c_js.get_stream("ORDERS").await.expect("stream");
    tokio::time::timeout(EVENTUALLY, async {
        while orders.info().await.expect("info").state.messages != 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the core publish was stored");
    while let Ok(event) = plain_c_events.try_recv() {
        assert!(
            !matches!(event, async_nats::Event::ServerError(_)),
            "no -ERR: {event:?}"
        );
    }
    assert_eq!(
        plain_c.connection_state(),
        async_nats::connection::State::Connected
    );

    // A bad suffix fails the connect with the -ERR text.
    let err = async_nats::ConnectOptions::new()
        .name("bad,infinistream_proxy_target=proxy")
        .connect(format!("nats://{p_addr}"))
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("expected proxy-produce or proxy-consume"),
        "{err}"
    );

    // nats.py follows the same redirect (async INFO + lame duck + close).
    let python = infinistream_testkit::tools::venv_bin("python");
    assert!(
        python.exists(),
        "nats.py venv missing at {}",
        python.display()
    );
    let script = c._dir.path().join("routing.py");
    std::fs::write(&script, PY_ROUTING).expect("write script");
    let output = tokio::time::timeout(
        EVENTUALLY,
        tokio::process::Command::new(&python)
            .arg(&script)
            .arg(p_addr.to_string())
            .arg(c_addr.to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python finished in time")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("PY ROUTING OK"),
        "nats.py routing script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    println!("nats.py: {stdout}");
}

const PY_ROUTING: &str = r#"
import asyncio, sys, time
import nats

async def main():
    p, c = sys.argv[1], sys.argv[2]
    events = {"reconnects": 0, "ldm": 0}

    async def reconnected():
        events["reconnects"] += 1

    async def lame_duck():
        events["ldm"] += 1

    async def errors(e):
        pass

    nc = await nats.connect(
        servers=[f"nats://{p}"],
        name="py,infinistream_az=default,infinistream_proxy_target=proxy-consume",
        reconnected_cb=reconnected,
        lame_duck_mode_cb=lame_duck,
        error_cb=errors,
        max_reconnect_attempts=-1,
    )
    deadline = time.monotonic() + 30
    while nc.connected_url is None or nc.connected_url.netloc != c:
        assert time.monotonic() < deadline, f"stuck on {nc.connected_url}"
        await asyncio.sleep(0.05)
    print("LANDED", nc.connected_url.netloc, "reconnects", events["reconnects"], "ldm", events["ldm"],
          "pool", [s.uri.netloc for s in nc._server_pool])
    assert events["ldm"] >= 1, events

    try:
        bad = await nats.connect(
            servers=[f"nats://{p}"],
            name="py,infinistream_az=",
            allow_reconnect=False,
            connect_timeout=5,
            error_cb=errors,
        )
        await bad.close()
        raise SystemExit("bad suffix accepted")
    except Exception as e:
        assert "infinistream_az is empty" in str(e), repr(e)
        print("BAD SUFFIX", repr(e))
    await nc.close()
    print("PY ROUTING OK")

asyncio.run(main())
"#;

/// `--client_advertise` is what the registry gives out (and so what `connect_urls`
/// lists): the bind address stays private, as with nats-server's `client_advertise`.
#[tokio::test]
async fn cluster_client_advertise_replaces_the_bind_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent(agent_cmd(
        dir.path(),
        &["--client_advertise", "agent-0.infinistream.example:4333"],
    ));
    let client = agent.client;
    let (_raw, info) = Raw::connect(client).await;
    assert_eq!(
        info.connect_urls,
        vec!["agent-0.infinistream.example:4333".to_owned()]
    );
}
