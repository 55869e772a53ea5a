//! The same stream workload against the reference: a 3-node nats-server 2.15.1 cluster
//! with an R3 stream, under the same process kills (`kill -9` of a random node, restart
//! after 2 s, a 2 s gap), so docs/reliability.md can show both side by side.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::stream;
use infinistream_testkit::nats::nats_server_binary;
use infinistream_testkit::process::ChildProcess;
use infinistream_testkit::tools::free_port;
use serde::Serialize;
use tokio::sync::Notify;

use crate::Error;
use crate::nemesis::{FaultEvent, FaultKind};
use crate::rng::Rng;
use crate::run::{StreamCounts, check_stream, stalls};
use crate::workloads::{self, Clock, StreamRecord};

const NODES: usize = 3;
const READY: Duration = Duration::from_secs(60);

/// What the reference run saw.
#[derive(Debug, Serialize)]
pub struct ReferenceReport {
    pub seed: u64,
    pub duration_s: f64,
    pub faults: Vec<FaultEvent>,
    pub stream: StreamCounts,
    pub ack_rate_per_s: f64,
    pub longest_stall_ms: BTreeMap<FaultKind, u64>,
}

impl ReferenceReport {
    pub fn summary(&self) -> String {
        let st = &self.stream;
        let stall = self
            .longest_stall_ms
            .get(&FaultKind::AgentKill)
            .copied()
            .unwrap_or(0);
        format!(
            "nats-server R3 reference: seed {} for {:.0} s, {} node kills\n\
             stream: {} acked ({:.0}/s), {} in stream, {} retries, {} given up; lost {}, \
             duplicated {}, wrong sequence {}, gaps {}, out of order {}\n\
             longest ack stall after a node kill: {stall} ms",
            self.seed,
            self.duration_s,
            self.faults.len(),
            st.acked,
            self.ack_rate_per_s,
            st.in_stream,
            st.retries,
            st.unacked_given_up,
            st.lost,
            st.duplicated,
            st.wrong_sequence,
            st.sequence_gaps,
            st.out_of_order
        )
    }
}

struct Node {
    config: PathBuf,
    child: Option<ChildProcess>,
}

fn start(binary: &std::path::Path, node: &mut Node) -> Result<(), Error> {
    let mut cmd = Command::new(binary);
    cmd.arg("-c").arg(&node.config);
    let mut child = ChildProcess::spawn(cmd)?;
    child
        .wait_for_line("Server is ready", READY)
        .map_err(|e| Error::Setup(format!("nats-server: {e}")))?;
    node.child = Some(child);
    Ok(())
}

/// Runs the publishers against the cluster for `duration` with node kills.
pub async fn run(duration: Duration, seed: u64, publishers: u64) -> Result<ReferenceReport, Error> {
    let started = Instant::now();
    let binary = nats_server_binary()?;
    let dir = tempfile::Builder::new()
        .prefix("infinistream-chaos-nats-")
        .tempdir()?;
    let ports: Vec<(u16, u16)> = (0..NODES)
        .map(|_| Ok((free_port()?, free_port()?)))
        .collect::<Result<_, std::io::Error>>()?;
    let routes = ports
        .iter()
        .map(|(_, c)| format!("nats-route://127.0.0.1:{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut nodes = Vec::new();
    for (i, (port, cluster)) in ports.iter().enumerate() {
        let config = dir.path().join(format!("n{i}.conf"));
        std::fs::write(
            &config,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{port}\n\
                 jetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: chaos, listen: 127.0.0.1:{cluster}, routes: [{routes}] }}\n",
                dir.path().join(format!("n{i}")).display()
            ),
        )?;
        nodes.push(Node {
            config,
            child: None,
        });
    }
    let nodes = Arc::new(Mutex::new(nodes));
    {
        let (binary, nodes) = (binary.clone(), nodes.clone());
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            let mut nodes = nodes.lock().unwrap_or_else(|p| p.into_inner());
            for node in nodes.iter_mut() {
                start(&binary, node)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Setup(e.to_string()))??;
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|(p, _)| format!("nats://127.0.0.1:{p}"))
        .collect();
    let admin = workloads::connect(&urls).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let created = admin
            .get_or_create_stream(stream::Config {
                name: workloads::STREAM.into(),
                subjects: vec!["chaos.>".into()],
                num_replicas: NODES,
                duplicate_window: Duration::from_secs(600),
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(Error::Nats(format!("R3 stream: {e}"))),
        }
    }

    let clock = Clock::new();
    let stop = Arc::new(Notify::new());
    let record: Arc<Mutex<StreamRecord>> = Arc::default();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let js = workloads::connect(&urls).await?;
        tasks.push(tokio::spawn(workloads::publisher(
            js,
            p,
            clock,
            stop.clone(),
            record.clone(),
        )));
    }
    let faults = {
        let nodes = nodes.clone();
        tokio::task::spawn_blocking(move || {
            let mut rng = Rng::new(seed);
            let mut faults = Vec::new();
            let end = Instant::now() + duration;
            while Instant::now() < end {
                let i = rng.below(NODES as u64) as usize;
                let start_ms = clock.ms();
                let mut nodes = nodes.lock().unwrap_or_else(|p| p.into_inner());
                let result = (|| -> Result<(), Error> {
                    if let Some(mut child) = nodes[i].child.take() {
                        child.kill()?;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                    start(&binary, &mut nodes[i])
                })();
                drop(nodes);
                faults.push(FaultEvent {
                    kind: FaultKind::AgentKill,
                    start_ms,
                    end_ms: clock.ms(),
                    detail: format!("kill -9 nats-server n{i}"),
                    error: result.err().map(|e| e.to_string()),
                    zombie: None,
                });
                std::thread::sleep(Duration::from_secs(2));
            }
            faults
        })
        .await
        .map_err(|e| Error::Setup(e.to_string()))?
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.notify_waiters();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(120), task).await;
    }
    let record = std::mem::take(&mut *record.lock().unwrap_or_else(|p| p.into_inner()));
    let stream = check_stream(&admin, &record).await?;
    let mut ack_times: Vec<u64> = record.acked.iter().map(|a| a.at_ms).collect();
    ack_times.sort_unstable();
    Ok(ReferenceReport {
        seed,
        duration_s: started.elapsed().as_secs_f64(),
        ack_rate_per_s: stream.acked as f64 / (clock.ms().max(1) as f64 / 1000.0),
        longest_stall_ms: stalls(&faults, &ack_times),
        faults,
        stream,
    })
}
