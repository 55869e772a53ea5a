//! The group under test, as real processes on loopback: a 3-member etcd cluster,
//! SeaweedFS behind the fault-injecting [`BucketProxy`], control-plane replicas on the
//! etcd cluster, and agents per role in two zones.
//!
//! Every process keeps its ports and data across `kill -9` and restart, so clients
//! and peers find it again. One agent reaches the control plane only through
//! [`Partition`] forwarders (the partition nemesis cuts them); one agent runs under
//! libfaketime with its wall clock read from a file the clock-skew nemesis rewrites.
//!
//! All calls block (they wait for a restarted process's ready line): the nemesis calls
//! them from its own thread.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use infinistream_testkit::etcd::EtcdCluster;
use infinistream_testkit::process::ChildProcess;
use infinistream_testkit::s3::{REGION, S3Server};
use infinistream_testkit::tools::free_port;

use crate::Error;
use crate::proxy::{BucketProxy, Partition};

/// Bound for a process to start; never a timing assertion.
const READY: Duration = Duration::from_secs(90);

pub const GROUP_ID: &str = "chaos";
pub const GROUP_KEY: &str = "chaos-key";

/// The libfaketime preload library (Debian's `faketime` package).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// One agent of the layout.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub name: &'static str,
    pub zone: &'static str,
    pub roles: &'static str,
    /// Reaches the control plane through the partition forwarders.
    pub partitionable: bool,
    /// Runs under libfaketime.
    pub skewed: bool,
}

/// The layout: every role in zone a on its own agent, combined roles in zone b.
pub fn layout(faketime: bool) -> Vec<AgentSpec> {
    let spec = |name, zone, roles, partitionable, skewed| AgentSpec {
        name,
        zone,
        roles,
        partitionable,
        skewed,
    };
    vec![
        spec("a-produce", "a", "proxy-produce", false, false),
        spec("a-consume", "a", "proxy-consume", false, false),
        spec("a-jobs", "a", "jobs", false, false),
        spec("b-proxy", "b", "proxy", false, faketime),
        spec("b-proxy-jobs", "b", "proxy,jobs", true, false),
    ]
}

/// A process slot: the child while it runs.
#[derive(Debug, Default)]
struct Slot {
    child: Option<ChildProcess>,
    paused: bool,
    /// The logs of this slot's earlier (killed) processes.
    earlier: String,
}

impl Slot {
    /// Runs `child` here, keeping the log of the one it replaces.
    fn start(&mut self, child: ChildProcess) {
        self.retire();
        self.child = Some(child);
        self.paused = false;
    }

    /// Keeps the current process's log (it is about to go).
    fn retire(&mut self) {
        if let Some(child) = self.child.as_mut() {
            self.earlier.push_str(&child.output());
            self.earlier.push('\n');
        }
    }

    /// Every line logged in this slot, earlier processes first.
    fn log(&mut self) -> String {
        let current = self.child.as_mut().map(ChildProcess::output);
        format!("{}{}", self.earlier, current.unwrap_or_default())
    }
}

#[derive(Debug)]
struct AgentProc {
    spec: AgentSpec,
    client_port: u16,
    http_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    control_plane: String,
    slot: Mutex<Slot>,
}

#[derive(Debug)]
struct CpProc {
    port: u16,
    slot: Mutex<Slot>,
}

/// The running group.
#[derive(Debug)]
pub struct Cluster {
    binary: PathBuf,
    bucket_url: String,
    dir: tempfile::TempDir,
    pub etcd: EtcdCluster,
    s3: S3Server,
    cps: Vec<CpProc>,
    agents: Vec<AgentProc>,
    skew_file: PathBuf,
}

/// What the cluster needs from the async side: the proxies, already listening.
#[derive(Debug)]
pub struct Wiring<'a> {
    pub bucket: &'a BucketProxy,
    /// One forwarder per control-plane port in `cp_ports`.
    pub partitions: &'a [Partition],
    pub cp_ports: &'a [u16],
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Cluster {
    /// Starts etcd and SeaweedFS (before the proxies exist: see [`Cluster::start`]).
    pub fn start_stores() -> Result<(EtcdCluster, S3Server), Error> {
        let etcd = EtcdCluster::start(3).map_err(|e| Error::Setup(format!("etcd: {e}")))?;
        let s3 = S3Server::start().map_err(|e| Error::Setup(format!("SeaweedFS: {e}")))?;
        Ok((etcd, s3))
    }

    /// Starts the control planes and the agents of `layout`.
    pub fn start(
        binary: &Path,
        (etcd, s3): (EtcdCluster, S3Server),
        wiring: Wiring<'_>,
        layout: Vec<AgentSpec>,
    ) -> Result<Cluster, Error> {
        let dir = tempfile::Builder::new()
            .prefix("infinistream-chaos-")
            .tempdir()?;
        let bucket_url = format!(
            "s3://{}/chaos?endpoint=http://{}&region={REGION}&allow_http=true&path_style=true\
             &access_key_id={}&secret_access_key={}",
            s3.bucket(),
            wiring.bucket.addr(),
            s3.access_key_id(),
            s3.secret_access_key()
        );
        let skew_file = dir.path().join("skew");
        std::fs::write(&skew_file, "+0\n")?;
        let direct = wiring
            .cp_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let through_partition = wiring
            .partitions
            .iter()
            .map(|p| format!("http://{}", p.addr()))
            .collect::<Vec<_>>()
            .join(",");
        let mut agents = Vec::new();
        for spec in layout {
            let data_dir = dir.path().join(spec.name);
            std::fs::create_dir_all(&data_dir)?;
            agents.push(AgentProc {
                control_plane: if spec.partitionable {
                    through_partition.clone()
                } else {
                    direct.clone()
                },
                spec,
                client_port: free_port()?,
                http_port: free_port()?,
                peer_port: free_port()?,
                data_dir,
                slot: Mutex::default(),
            });
        }
        let cluster = Cluster {
            binary: binary.to_path_buf(),
            bucket_url,
            dir,
            etcd,
            s3,
            cps: wiring
                .cp_ports
                .iter()
                .map(|&port| CpProc {
                    port,
                    slot: Mutex::default(),
                })
                .collect(),
            agents,
            skew_file,
        };
        for i in 0..cluster.cps.len() {
            cluster.start_cp(i)?;
        }
        for i in 0..cluster.agents.len() {
            cluster.start_agent(i)?;
        }
        Ok(cluster)
    }

    /// `nats://` URLs of every agent, for clients.
    pub fn client_urls(&self) -> Vec<String> {
        self.agents
            .iter()
            .map(|a| format!("nats://127.0.0.1:{}", a.client_port))
            .collect()
    }

    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    pub fn agent_name(&self, i: usize) -> &'static str {
        self.agents[i].spec.name
    }

    pub fn cp_count(&self) -> usize {
        self.cps.len()
    }

    /// The index of the partitionable agent.
    pub fn partitionable_agent(&self) -> Option<usize> {
        self.agents.iter().position(|a| a.spec.partitionable)
    }

    /// The index of the clock-skewed agent.
    pub fn skewed_agent(&self) -> Option<usize> {
        self.agents.iter().position(|a| a.spec.skewed)
    }

    fn start_cp(&self, i: usize) -> Result<(), Error> {
        let cp = &self.cps[i];
        let mut cmd = Command::new(&self.binary);
        cmd.args([
            "control-plane",
            "--listen",
            &format!("127.0.0.1:{}", cp.port),
            "-m",
            "0",
            "--store",
            &format!("etcd://{}", self.etcd.hosts()),
        ])
        .env("INFINISTREAM_GROUP_ID", GROUP_ID)
        .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
        .env("RUST_LOG", "info");
        let mut child = ChildProcess::spawn(cmd)?;
        child
            .wait_for_line("control-plane replica serving", READY)
            .map_err(|e| Error::Setup(format!("control plane {i}: {e}")))?;
        lock(&cp.slot).start(child);
        Ok(())
    }

    fn start_agent(&self, i: usize) -> Result<(), Error> {
        let a = &self.agents[i];
        let mut cmd = Command::new(&self.binary);
        cmd.args(["agent", "-a", "127.0.0.1"])
            .args(["-p", &a.client_port.to_string()])
            .args(["-m", &a.http_port.to_string()])
            .args(["--peer_port", &a.peer_port.to_string()])
            .args(["--batch-write", "50"])
            .arg("--data-dir")
            .arg(&a.data_dir)
            .args(["--control-plane", &a.control_plane])
            .args(["--bucket", &self.bucket_url])
            .args(["--zone", a.spec.zone])
            .args(["--roles", a.spec.roles])
            .args(["--server-name", a.spec.name])
            .env("INFINISTREAM_GROUP_ID", GROUP_ID)
            .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
            .env("RUST_LOG", "info");
        if a.spec.skewed {
            // Only the wall clock moves: tokio's timers (leases, heartbeats) use the
            // monotonic clock, which a real skewed host keeps too.
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", &self.skew_file)
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let mut child = ChildProcess::spawn(cmd)?;
        child
            .wait_for_line("listening for NATS clients", READY)
            .map_err(|e| Error::Setup(format!("agent {}: {e}", a.spec.name)))?;
        lock(&a.slot).start(child);
        Ok(())
    }

    /// Waits (at most `timeout`) until every agent's route mesh links it to every
    /// other agent (`/varz` `routes`), as clients of a formed cluster expect; returns
    /// the agents still short of links.
    pub fn until_meshed(&self, timeout: Duration) -> Vec<&'static str> {
        let deadline = std::time::Instant::now() + timeout;
        let peers = self.agents.len() as u64 - 1;
        loop {
            let short: Vec<&'static str> = self
                .agents
                .iter()
                .filter(|a| varz_routes(a.http_port) != Some(peers))
                .map(|a| a.spec.name)
                .collect();
            if short.is_empty() || std::time::Instant::now() > deadline {
                return short;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `kill -9` of agent `i`.
    pub fn kill_agent(&self, i: usize) -> Result<(), Error> {
        kill(&self.agents[i].slot)
    }

    /// Starts agent `i` again (same ports, data directory).
    pub fn restart_agent(&self, i: usize) -> Result<(), Error> {
        self.kill_agent(i)?;
        self.start_agent(i)
    }

    /// `kill -9` of control plane `i`.
    pub fn kill_cp(&self, i: usize) -> Result<(), Error> {
        kill(&self.cps[i].slot)
    }

    pub fn restart_cp(&self, i: usize) -> Result<(), Error> {
        self.kill_cp(i)?;
        self.start_cp(i)
    }

    /// SIGSTOP (`true`) or SIGCONT of agent `i`.
    pub fn pause_agent(&self, i: usize, pause: bool) -> Result<(), Error> {
        let mut slot = lock(&self.agents[i].slot);
        let Some(pid) = slot.child.as_ref().map(ChildProcess::id) else {
            return Ok(());
        };
        signal(pid, if pause { "-STOP" } else { "-CONT" })?;
        slot.paused = pause;
        Ok(())
    }

    /// Sets the skewed agent's wall-clock offset (libfaketime syntax: `+90s`, `-2m`).
    pub fn set_skew(&self, offset: &str) -> Result<(), Error> {
        std::fs::write(&self.skew_file, format!("{offset}\n"))?;
        Ok(())
    }

    /// The control-plane replica holding the leader key in etcd, or what etcd held.
    pub fn cp_leader(&self) -> Result<usize, String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.etcd.hosts(), "--command-timeout=3s"])
            .args(["get", "--prefix", "infinistream/_leader/control-plane"])
            .args(["--print-value-only"])
            .output()
            .map_err(|e| format!("etcdctl: {e}"))?;
        let value = String::from_utf8_lossy(&out.stdout);
        self.cps
            .iter()
            .position(|cp| value.contains(&format!(":{}", cp.port)))
            .ok_or_else(|| {
                format!(
                    "leader key holds `{}` ({})",
                    value.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            })
    }

    /// The etcd member that leads, asking each running member.
    pub fn etcd_leader(&self) -> Option<usize> {
        for i in 0..self.etcd.len() {
            self.etcd.pid(i)?;
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &self.etcd.endpoint(i),
                    "--command-timeout=3s",
                ])
                .args(["endpoint", "status", "-w", "json"])
                .output()
                .ok()?;
            let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let entry = status.get(0)?.get("Status")?;
            let member = entry.get("header")?.get("member_id")?.as_u64()?;
            if entry.get("leader")?.as_u64()? == member {
                return Some(i);
            }
        }
        None
    }

    /// (name, pid) of every running process, for the memory sampler. Slots busy with
    /// a restart are skipped this round.
    pub fn pids(&self) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        for (i, cp) in self.cps.iter().enumerate() {
            if let Ok(slot) = cp.slot.try_lock()
                && let Some(child) = &slot.child
            {
                out.push((format!("control-plane-{i}"), child.id()));
            }
        }
        for a in &self.agents {
            if let Ok(slot) = a.slot.try_lock()
                && let Some(child) = &slot.child
            {
                out.push((format!("agent-{}", a.spec.name), child.id()));
            }
        }
        for i in 0..self.etcd.len() {
            if let Some(pid) = self.etcd.pid(i) {
                out.push((format!("etcd-{i}"), pid));
            }
        }
        out
    }

    /// Lines of every agent's log (its killed processes' too) that contain `needle`,
    /// with the agent's name.
    pub fn agent_log_lines(&self, needle: &str) -> Vec<String> {
        self.agents
            .iter()
            .flat_map(|a| {
                let log = lock(&a.slot).log();
                matching(&log, needle, a.spec.name)
            })
            .collect()
    }

    /// Lines of every control-plane replica's log (its killed processes' too) that
    /// contain `needle`, with `control-plane-<i>`.
    pub fn cp_log_lines(&self, needle: &str) -> Vec<String> {
        self.cps
            .iter()
            .enumerate()
            .flat_map(|(i, cp)| {
                let log = lock(&cp.slot).log();
                matching(&log, needle, &format!("control-plane-{i}"))
            })
            .collect()
    }

    /// Where the cluster's files live (kept for the report).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The S3 server (for its log path in a failure).
    pub fn s3(&self) -> &S3Server {
        &self.s3
    }
}

/// The `routes` count of the agent monitored on 127.0.0.1:`port` (`/varz`).
fn varz_routes(port: u16) -> Option<u64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /varz HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    let varz: serde_json::Value = serde_json::from_str(body).ok()?;
    varz["routes"].as_u64()
}

/// The lines of `log` containing `needle`, each prefixed with `name: `.
fn matching(log: &str, needle: &str, name: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(needle))
        .map(|l| format!("{name}: {l}"))
        .collect()
}

fn kill(slot: &Mutex<Slot>) -> Result<(), Error> {
    let mut slot = lock(slot);
    if let Some(child) = slot.child.as_mut() {
        child.kill()?;
    }
    slot.retire();
    slot.child = None;
    slot.paused = false;
    Ok(())
}

fn signal(pid: u32, sig: &str) -> Result<(), Error> {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Setup(format!("kill {sig} {pid} failed: {status}")))
    }
}

/// Resident memory of `pid` in bytes (`VmRSS` in /proc), if it runs.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
