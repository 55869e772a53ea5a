//! Protocol garbage over raw TCP: each bad connection gets `-ERR` and/or a clean
//! close, never a panic, while another client keeps being served throughout.

mod common;

use common::{Raw, TestBroker, assert_serving, is_err};
use infinistream_broker::BrokerConfig;
use infinistream_protocol::ServerOp;

async fn broker() -> TestBroker {
    TestBroker::start(BrokerConfig {
        max_payload: 4096,
        ..BrokerConfig::default()
    })
    .await
}

/// Sends `input` on a fresh connection and returns everything until the close.
async fn feed(tb: &TestBroker, input: &[u8]) -> Vec<ServerOp> {
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(input).await;
    raw.until_closed().await
}

#[tokio::test]
async fn garbage_line() {
    let tb = broker().await;
    let ops = feed(&tb, b"HELLO WORLD\r\n").await;
    assert!(
        ops.iter().any(is_err("Unknown Protocol Operation")),
        "{ops:?}"
    );
    assert_serving(&tb).await;
}

#[tokio::test]
async fn pub_with_wrong_size() {
    let tb = broker().await;
    let ops = feed(&tb, b"CONNECT {}\r\nPUB foo 3\r\nhello world\r\n").await;
    assert!(
        ops.iter().any(is_err("Unknown Protocol Operation")),
        "{ops:?}"
    );
    let ops = feed(&tb, b"PUB foo notanumber\r\nx\r\n").await;
    assert!(
        ops.iter().any(is_err("Unknown Protocol Operation")),
        "{ops:?}"
    );
    assert_serving(&tb).await;
}

#[tokio::test]
async fn huge_control_line() {
    let tb = broker().await;
    let mut line = b"SUB ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 100_000));
    let ops = feed(&tb, &line).await;
    assert!(
        ops.iter().any(is_err("maximum control line exceeded")),
        "{ops:?}"
    );
    assert_serving(&tb).await;
}

#[tokio::test]
async fn binary_blob() {
    let tb = broker().await;
    let blob: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let ops = feed(&tb, &blob).await;
    assert!(
        ops.iter()
            .all(|o| matches!(o, ServerOp::Err(_) | ServerOp::Pong)),
        "{ops:?}"
    );
    assert_serving(&tb).await;
}

#[tokio::test]
async fn half_written_frame_then_close() {
    let tb = broker().await;
    for partial in [
        &b"PUB foo 100\r\nonly part of it"[..],
        b"SUB foo",
        b"CONNECT {\"verbose\":",
        b"HPUB a 10 20\r\nNATS/1.0",
    ] {
        let (raw, _) = Raw::connect(tb.addr).await;
        let mut raw = raw;
        raw.send(partial).await;
        drop(raw);
        assert_serving(&tb).await;
    }
}

#[tokio::test]
async fn bad_json_and_bad_subjects() {
    let tb = broker().await;
    let ops = feed(&tb, b"CONNECT {not json}\r\n").await;
    assert!(
        ops.iter().any(is_err("Unknown Protocol Operation")),
        "{ops:?}"
    );
    // Invalid subjects are reported but do not close the connection.
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(
        b"CONNECT {\"pedantic\":true}\r\nSUB a..b 1\r\nSUB a.>.b 2\r\nPUB a.* 1\r\nx\r\nPING\r\n",
    )
    .await;
    raw.expect(is_err("Invalid Subject")).await;
    raw.expect(is_err("Invalid Subject")).await;
    raw.expect(is_err("Invalid Publish Subject")).await;
    raw.expect(|o| matches!(o, ServerOp::Pong)).await;
    assert_serving(&tb).await;
}

#[tokio::test]
async fn oversized_payload_declared_up_front() {
    let tb = broker().await;
    // Declares 1 GB but sends nothing more: rejected from the control line alone.
    let ops = feed(&tb, b"CONNECT {}\r\nPUB foo 1000000000\r\n").await;
    assert!(
        ops.iter().any(is_err("Maximum Payload Violation")),
        "{ops:?}"
    );
    let ops = feed(&tb, b"HPUB foo 12 999999\r\n").await;
    assert!(
        ops.iter().any(is_err("Maximum Payload Violation")),
        "{ops:?}"
    );
    assert_serving(&tb).await;
}

#[tokio::test]
async fn verbose_and_ping() {
    let tb = broker().await;
    let (mut raw, _) = Raw::connect(tb.addr).await;
    raw.send(b"CONNECT {\"verbose\":true}\r\nSUB a 1\r\nPUB a 2\r\nhi\r\nUNSUB 1\r\nPING\r\n")
        .await;
    let mut seen = Vec::new();
    loop {
        let op = raw.next().await.expect("open");
        let done = matches!(op, ServerOp::Pong);
        seen.push(op);
        if done {
            break;
        }
    }
    let oks = seen.iter().filter(|o| matches!(o, ServerOp::Ok)).count();
    assert_eq!(oks, 4, "{seen:?}");
    assert!(
        seen.iter()
            .any(|o| matches!(o, ServerOp::Msg(m) if &m.payload[..] == b"hi"))
    );
}

#[tokio::test]
async fn no_responders_requires_headers() {
    let tb = broker().await;
    let ops = feed(
        &tb,
        b"CONNECT {\"no_responders\":true,\"headers\":false}\r\n",
    )
    .await;
    assert!(
        ops.iter()
            .any(is_err("no responders requires headers support")),
        "{ops:?}"
    );
    assert_serving(&tb).await;
}

#[tokio::test]
async fn many_bad_clients_at_once() {
    let tb = broker().await;
    let inputs: Vec<&[u8]> = vec![
        b"\x00\x01\x02\r\n",
        b"PUB\r\n",
        b"UNSUB\r\n",
        b"SUB a b c d e\r\n",
        b"HPUB a 20 10\r\n",
        b"PING extra\r\n",
        b"+OK\r\n",
        b"MSG a 1 2\r\nhi\r\n",
    ];
    let mut tasks = Vec::new();
    for input in inputs {
        let addr = tb.addr;
        tasks.push(tokio::spawn(async move {
            let (mut raw, _) = Raw::connect(addr).await;
            raw.send(input).await;
            raw.until_closed().await
        }));
    }
    for t in tasks {
        let ops = t.await.expect("task");
        assert!(ops.iter().any(|o| matches!(o, ServerOp::Err(_))), "{ops:?}");
    }
    assert_serving(&tb).await;
}
