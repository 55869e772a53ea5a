//! Child processes of the `infinistream` binary for tests that need a real process:
//! `kill -9`, several agents sharing a control plane, a standalone control plane.
//!
//! Readiness is an event, not a sleep: the fixture reads the child's log lines and
//! waits for the line that says the process is serving (bounded by a deadline whose
//! error includes what the child printed). Children are killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running child process.
#[derive(Debug)]
pub struct ChildProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ChildProcess {
    /// Spawns `cmd` with stderr captured (the binary logs there).
    pub fn spawn(mut cmd: Command) -> std::io::Result<ChildProcess> {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("child has no stderr"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(line) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(ChildProcess {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Waits for a log line containing `needle`; returns that line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> std::io::Result<String> {
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.seen.push(line.clone());
                    if hit {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(std::io::Error::other(format!(
                        "no log line containing `{needle}` within {timeout:?} (exit status {status:?}); output:\n{}",
                        self.seen.join("\n")
                    )));
                }
            }
        }
    }

    /// Everything logged so far.
    pub fn output(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    /// `kill -9`.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()?;
        self.child.wait().map(|_| ())
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Extracts `addr=IP:PORT` from a log line such as
/// `listening for NATS clients addr=127.0.0.1:40123`.
pub fn addr_in(line: &str) -> Option<std::net::SocketAddr> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))
        .and_then(|a| a.trim_matches('"').parse().ok())
}
