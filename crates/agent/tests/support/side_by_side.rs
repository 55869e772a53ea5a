//! The same requests to nats-server 2.15.1 and to an InfiniStream agent, for tests
//! that compare their answers. Included with
//! `#[path = "support/side_by_side.rs"] mod side_by_side;` next to `in_process` and
//! `py_client`.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use infinistream_agent::AgentHandle;
use infinistream_testkit::nats::NatsServer;
use serde_json::Value;

use super::in_process;

/// How long a reply, message or script may take on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(20);

/// A fresh nats-server and a fresh in-process agent (state in the temporary dir).
pub struct Both {
    pub reference: NatsServer,
    pub dir: tempfile::TempDir,
    pub agent: AgentHandle,
}

impl Both {
    pub async fn start() -> Both {
        let reference =
            NatsServer::start("# JetStream from the command line\n").expect("nats-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let agent = in_process::start_agent(&dir).await;
        Both {
            reference,
            dir,
            agent,
        }
    }

    /// nats-server's URL, then the agent's.
    pub fn urls(&self) -> [String; 2] {
        [
            self.reference.url(),
            format!("nats://{}", self.agent.client_addr()),
        ]
    }

    /// A client of each, nats-server's first.
    pub async fn clients(&self) -> [async_nats::Client; 2] {
        let [theirs, ours] = self.urls();
        [connect(&theirs).await, connect(&ours).await]
    }
}

pub async fn connect(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(WAIT))
        .connect(url)
        .await
        .expect("connect")
}

/// A raw JetStream API request (`body` sent verbatim); the parsed JSON reply.
pub async fn api(client: &async_nats::Client, subject: &str, body: &str) -> Value {
    let reply = client
        .request(subject.to_owned(), Bytes::from(body.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{subject}: no reply: {e}"));
    serde_json::from_slice(&reply.payload).expect("json reply")
}

/// The next message on `sub`, within [`WAIT`].
pub async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

/// Runs the nats.py script `source` with each URL as its argument; it must exit 0
/// and print `marker` every time.
pub async fn run_py(dir: &std::path::Path, source: &str, marker: &str, urls: &[String]) {
    let script = dir.join("script.py");
    std::fs::write(&script, source).expect("write script");
    for url in urls {
        let output = super::py_client::run(&script, url).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains(marker),
            "nats.py script failed against {url}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    }
}
