//! A real etcd on loopback for tests.
//!
//! The etcd store, leader election and control-plane failover are only worth testing
//! against the real server: its revision rules, lease expiry and request limits are the
//! contract. [`EtcdServer::start`] launches Debian's `etcd` (3.4) as a one-member
//! cluster on free 127.0.0.1 client and peer ports with a temporary data directory and
//! waits until `/health` answers. Dropping the server kills it and removes the
//! directory.
//!
//! Because start-up costs about a second, [`EtcdServer::shared`] keeps one server per
//! test process and hands each caller a unique key prefix, so tests sharing it never see
//! each other's keys.
//!
//! A process-global server is never dropped, so every etcd is paired with a tiny `sh`
//! watchdog that holds a pipe from this process: when the test process exits (even on
//! a panic or `kill -9`), the pipe closes and the watchdog kills etcd and deletes its
//! data directory. Nothing is left running.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::tools;

/// How long to wait for etcd to report healthy after a start.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// `--max-txn-ops` given to test servers. etcd's default (128) is too small for a
/// CommitBatch touching hundreds of streams in one transaction; deployments must raise it
/// the same way (see docs/operations.md).
pub const MAX_TXN_OPS: usize = 10_240;

/// A running single-member etcd cluster on 127.0.0.1.
#[derive(Debug)]
pub struct EtcdServer {
    client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    /// Flags added to every launch (e.g. `--quota-backend-bytes`).
    extra_args: Vec<String>,
    state: Mutex<Running>,
}

#[derive(Debug, Default)]
struct Running {
    etcd: Option<Child>,
    /// The watchdog's stdin; closing it makes the watchdog kill etcd.
    watchdog_stdin: Option<ChildStdin>,
    watchdog: Option<Child>,
}

/// A handle on the process-wide shared server with a key prefix unique to the caller.
#[derive(Debug, Clone)]
pub struct SharedEtcd {
    server: &'static EtcdServer,
    prefix: String,
}

impl SharedEtcd {
    /// The client URL, e.g. `http://127.0.0.1:23791`.
    pub fn endpoint(&self) -> String {
        self.server.endpoint()
    }

    /// A key prefix (`/test-<pid>-<n>/`) no other caller of [`EtcdServer::shared`] got.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl EtcdServer {
    /// Starts a fresh etcd and waits until it is healthy.
    ///
    /// The ports are picked free but only taken when etcd binds them, and a port freed
    /// by [`tools::free_port`] can meanwhile become another process's outgoing port; an
    /// etcd that exits with "address already in use" is started again on new ports.
    pub fn start() -> io::Result<EtcdServer> {
        EtcdServer::start_with_args(&[])
    }

    /// [`EtcdServer::start`] with extra etcd flags, kept across restarts.
    pub fn start_with_args(args: &[&str]) -> io::Result<EtcdServer> {
        let etcd = etcd_binary()?;
        tools::start_on_free_ports(|| {
            let dir = tempfile::Builder::new()
                .prefix("infinistream-etcd-")
                .tempdir()?;
            let server = EtcdServer {
                client_port: tools::free_port()?,
                peer_port: tools::free_port()?,
                dir,
                extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
                state: Mutex::new(Running::default()),
            };
            server.launch(&etcd)?;
            Ok(server)
        })
    }

    /// One server per test process, started on first use; every call returns a new
    /// unique key prefix. Use [`EtcdServer::start`] instead when a test kills or
    /// restarts etcd.
    pub fn shared() -> io::Result<SharedEtcd> {
        static SHARED: OnceLock<Result<EtcdServer, String>> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let server = SHARED
            .get_or_init(|| EtcdServer::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ok(SharedEtcd {
            server,
            prefix: format!("/test-{}-{n}/", std::process::id()),
        })
    }

    /// The client URL, e.g. `http://127.0.0.1:23791`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The data directory (kept across [`EtcdServer::kill`] and [`EtcdServer::restart`]).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Kills etcd with SIGKILL and waits for it to exit. Data stays for a restart.
    pub fn kill(&self) -> io::Result<()> {
        let mut state = self.lock();
        // Stop the watchdog first: it must not outlive the pid it would kill.
        if let Some(mut watchdog) = state.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        state.watchdog_stdin = None;
        if let Some(mut etcd) = state.etcd.take() {
            let _ = etcd.kill();
            etcd.wait()?;
        }
        Ok(())
    }

    /// Starts etcd again on the same ports and data directory after [`EtcdServer::kill`].
    pub fn restart(&self) -> io::Result<()> {
        self.kill()?;
        self.launch(&etcd_binary()?)
    }

    fn lock(&self) -> MutexGuard<'_, Running> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn launch(&self, etcd: &Path) -> io::Result<()> {
        let client_url = self.endpoint();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut cmd = Command::new(etcd);
        cmd.arg("--name")
            .arg("infinistream-test")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("infinistream-test={peer_url}"))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(format!("infinistream-test-{}", self.client_port))
            .arg("--max-txn-ops")
            .arg(MAX_TXN_OPS.to_string())
            .arg("--logger")
            .arg("zap")
            .arg("--log-level")
            .arg("warn")
            .args(&self.extra_args)
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn()?;
        let pid = child.id();

        let watchdog = tools::spawn_watchdog("etcd", pid, self.dir.path());
        let mut state = self.lock();
        state.etcd = Some(child);
        match watchdog {
            Ok((stdin, child)) => {
                state.watchdog_stdin = Some(stdin);
                state.watchdog = Some(child);
            }
            Err(error) => {
                drop(state);
                let _ = self.kill();
                return Err(io::Error::other(format!(
                    "cannot start the etcd watchdog (`sh`): {error}"
                )));
            }
        }
        drop(state);
        self.wait_healthy()
    }

    /// Polls `GET /health` until etcd has a leader, or fails with the log's tail.
    fn wait_healthy(&self) -> io::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        let mut delay = Duration::from_millis(10);
        loop {
            if let Some(status) = self
                .lock()
                .etcd
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                return Err(self.failure(&format!("etcd exited during start-up ({status})")));
            }
            if health(self.client_port).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.kill();
                return Err(self.failure(&format!(
                    "etcd not healthy after {}s",
                    START_DEADLINE.as_secs()
                )));
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    fn failure(&self, what: &str) -> io::Error {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        io::Error::other(format!(
            "{what} on {}; log tail:\n{}",
            self.endpoint(),
            tail.join("\n")
        ))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let mut state = self.lock();
        // Closing the pipe makes the watchdog kill etcd; etcd is not reaped yet, so its
        // pid cannot have been reused.
        state.watchdog_stdin = None;
        if let Some(mut watchdog) = state.watchdog.take() {
            let _ = watchdog.wait();
        }
        if let Some(mut etcd) = state.etcd.take() {
            let _ = etcd.kill();
            let _ = etcd.wait();
        }
    }
}

/// The etcd binary: `INFINISTREAM_ETCD`, else `etcd` on the PATH, else `/usr/bin/etcd`.
pub fn etcd_binary() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("INFINISTREAM_ETCD") {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = tools::on_path("etcd") {
        return Ok(path);
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.is_file() {
        return Ok(debian);
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "etcd not found (looked at $INFINISTREAM_ETCD, the PATH and /usr/bin/etcd): \
         run `cargo xtask test`, which installs Debian's etcd-server",
    ))
}

/// One `GET /health` with short timeouts; true when etcd reports `"health":"true"`.
fn health(port: u16) -> io::Result<bool> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.starts_with("HTTP/1.") && response.contains("\"health\":\"true\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_starts_answers_and_stops() -> io::Result<()> {
        let server = EtcdServer::start()?;
        assert!(health(server.client_port)?);
        let port = server.client_port;
        let dir = server.dir.path().to_path_buf();
        server.kill()?;
        assert!(health(port).is_err(), "etcd still answering after kill");
        server.restart()?;
        assert!(health(port)?);
        drop(server);
        assert!(health(port).is_err(), "etcd still answering after drop");
        assert!(!dir.exists(), "data dir left behind: {}", dir.display());
        Ok(())
    }

    #[test]
    fn shared_prefixes_are_unique() -> io::Result<()> {
        let a = EtcdServer::shared()?;
        let b = EtcdServer::shared()?;
        assert_eq!(a.endpoint(), b.endpoint());
        assert_ne!(a.prefix(), b.prefix());
        Ok(())
    }
}
