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
        let mut cmd = member_command(
            etcd,
            &Member {
                name: "infinistream-test",
                data_dir: &self.data_dir(),
                client_url: &client_url,
                peer_url: &peer_url,
                initial_cluster: &format!("infinistream-test={peer_url}"),
                token: &format!("infinistream-test-{}", self.client_port),
            },
        );
        cmd.args(&self.extra_args)
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

/// What distinguishes one etcd member's command line.
struct Member<'a> {
    name: &'a str,
    data_dir: &'a Path,
    client_url: &'a str,
    peer_url: &'a str,
    initial_cluster: &'a str,
    token: &'a str,
}

/// The command line of one etcd member (stdin null; the caller sets stdout/stderr).
fn member_command(etcd: &Path, m: &Member<'_>) -> Command {
    let mut cmd = Command::new(etcd);
    cmd.arg("--name")
        .arg(m.name)
        .arg("--data-dir")
        .arg(m.data_dir)
        .arg("--listen-client-urls")
        .arg(m.client_url)
        .arg("--advertise-client-urls")
        .arg(m.client_url)
        .arg("--listen-peer-urls")
        .arg(m.peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(m.peer_url)
        .arg("--initial-cluster")
        .arg(m.initial_cluster)
        .arg("--initial-cluster-state")
        .arg("new")
        .arg("--initial-cluster-token")
        .arg(m.token)
        .arg("--max-txn-ops")
        .arg(MAX_TXN_OPS.to_string())
        .arg("--logger")
        .arg("zap")
        .arg("--log-level")
        .arg("warn")
        .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
        .stdin(Stdio::null());
    cmd
}

/// A multi-member etcd cluster on 127.0.0.1 for fault tests: members are killed and
/// restarted one by one (same ports and data), and the cluster keeps a quorum while a
/// majority runs. Members are paired with watchdogs like [`EtcdServer`]; dropping the
/// cluster kills every member and removes the directory.
#[derive(Debug)]
pub struct EtcdCluster {
    /// (client port, peer port) per member.
    ports: Vec<(u16, u16)>,
    dir: tempfile::TempDir,
    members: Mutex<Vec<Running>>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one reports a healthy cluster.
    pub fn start(n: usize) -> io::Result<EtcdCluster> {
        let etcd = etcd_binary()?;
        tools::start_on_free_ports(|| {
            let dir = tempfile::Builder::new()
                .prefix("infinistream-etcd-cluster-")
                .tempdir()?;
            let mut ports = Vec::with_capacity(n);
            for _ in 0..n {
                ports.push((tools::free_port()?, tools::free_port()?));
            }
            let cluster = EtcdCluster {
                ports,
                dir,
                members: Mutex::new((0..n).map(|_| Running::default()).collect()),
            };
            for i in 0..n {
                cluster.launch(&etcd, i)?;
            }
            for i in 0..n {
                cluster.wait_healthy(i)?;
            }
            Ok(cluster)
        })
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Whether the cluster has no member.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i].0)
    }

    /// Every member's `host:port`, comma-separated (for `--store etcd://…`).
    pub fn hosts(&self) -> String {
        self.ports
            .iter()
            .map(|(client, _)| format!("127.0.0.1:{client}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Member `i`'s process id while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.lock()[i].etcd.as_ref().map(Child::id)
    }

    /// `kill -9` of member `i`; its data stays for [`EtcdCluster::restart`].
    pub fn kill(&self, i: usize) -> io::Result<()> {
        let mut members = self.lock();
        let running = &mut members[i];
        if let Some(mut watchdog) = running.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        running.watchdog_stdin = None;
        if let Some(mut etcd) = running.etcd.take() {
            let _ = etcd.kill();
            etcd.wait()?;
        }
        Ok(())
    }

    /// Starts member `i` again on its ports and data, and waits until it is healthy.
    pub fn restart(&self, i: usize) -> io::Result<()> {
        self.kill(i)?;
        self.launch(&etcd_binary()?, i)?;
        self.wait_healthy(i)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Running>> {
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn launch(&self, etcd: &Path, i: usize) -> io::Result<()> {
        let peer = |j: usize| format!("http://127.0.0.1:{}", self.ports[j].1);
        let initial_cluster = (0..self.len())
            .map(|j| format!("m{j}={}", peer(j)))
            .collect::<Vec<_>>()
            .join(",");
        let data_dir = self.dir.path().join(format!("m{i}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("m{i}.log")))?;
        let mut cmd = member_command(
            etcd,
            &Member {
                name: &format!("m{i}"),
                data_dir: &data_dir,
                client_url: &self.endpoint(i),
                peer_url: &peer(i),
                initial_cluster: &initial_cluster,
                token: &format!("infinistream-cluster-{}", self.ports[0].0),
            },
        );
        cmd.stdout(log.try_clone()?).stderr(log);
        let child = cmd.spawn()?;
        let (stdin, watchdog) = tools::spawn_watchdog("etcd", child.id(), &data_dir)?;
        let mut members = self.lock();
        members[i] = Running {
            etcd: Some(child),
            watchdog_stdin: Some(stdin),
            watchdog: Some(watchdog),
        };
        Ok(())
    }

    fn wait_healthy(&self, i: usize) -> io::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if health(self.ports[i].0).unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                return Err(io::Error::other(format!(
                    "etcd member {i} not healthy after {}s; log tail (newest first):\n{}",
                    START_DEADLINE.as_secs(),
                    tail.join("\n")
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            let _ = self.kill(i);
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
