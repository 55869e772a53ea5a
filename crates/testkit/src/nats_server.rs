//! The reference nats-server (`-js`, the version `cargo xtask install-tools` pins:
//! 2.15.1) on loopback, for tests that send the same requests to it and to InfiniStream
//! and compare the answers.
//!
//! The server picks its own port (`-p -1`) and says which in its log; readiness is its
//! "Server is ready" line. Killed on drop, and by a watchdog if the test process dies.

use std::io;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command};
use std::time::Duration;

use crate::process::ChildProcess;
use crate::tools;

const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running nats-server with JetStream enabled.
#[derive(Debug)]
pub struct NatsServer {
    addr: SocketAddr,
    watchdog: Option<(ChildStdin, Child)>,
    process: ChildProcess,
    _dir: tempfile::TempDir,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // Stop the watchdog first: it must not outlive the pid it would kill.
        if let Some((_stdin, mut watchdog)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let _ = self.process.kill();
    }
}

impl NatsServer {
    /// Starts nats-server from the tools venv (`INFINISTREAM_TOOLS_DIR`).
    pub fn start() -> io::Result<NatsServer> {
        let bin = tools::venv_bin("nats-server");
        if !bin.exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "nats-server missing at {}: run `cargo xtask install-tools`",
                    bin.display()
                ),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("infinistream-nats-server-")
            .tempdir()?;
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.path().join("jetstream"));
        let mut process = ChildProcess::spawn(cmd)?;
        let watchdog = tools::spawn_watchdog("nats-server", process.id(), dir.path())?;
        let line = process.wait_for_line("Listening for client connections on", START_DEADLINE)?;
        let addr = line
            .rsplit(' ')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| io::Error::other(format!("no address in nats-server's line: {line}")))?;
        process.wait_for_line("Server is ready", START_DEADLINE)?;
        Ok(NatsServer {
            addr,
            watchdog: Some(watchdog),
            process,
            _dir: dir,
        })
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}
