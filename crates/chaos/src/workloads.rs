//! The workloads, run together while the nemesis works, each recording what its
//! clients saw for the checkers.
//!
//! - **stream**: publishers each send `Nats-Msg-Id` `p<i>-<n>` in order, retrying one
//!   message until it is acked (or a bound passes); afterwards the stream is read back.
//! - **kv**: clients run get / put / create / update-with-revision / delete on a few
//!   keys of a KV bucket, recorded as a history for [`crate::linearizability`].
//! - **work queue**: a producer publishes with Msg-Ids, workers fetch from one durable
//!   pull consumer and double-ack; the fetch's start time and each confirmed ack are
//!   recorded.
//!
//! Times are milliseconds (microseconds for the KV history) since the run's start.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{HeaderMap, ServerAddr};
use bytes::Bytes;
use futures::StreamExt;

use crate::Error;
use crate::linearizability::{Input, Operation, Output};
use crate::rng::Rng;

pub const STREAM: &str = "CHAOS";
pub const KV_BUCKET: &str = "chaoskv";
pub const WORK_STREAM: &str = "CHAOSWQ";
const WORKERS: &str = "workers";

/// How long one publish may be retried before the publisher gives up on it (it is then
/// "unacked", not lost).
const RETRY_FOR: Duration = Duration::from_secs(90);
/// One request's bound.
const REQUEST: Duration = Duration::from_secs(10);

/// A shared clock for every record.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Clock {
        Clock(Instant::now())
    }
    pub fn ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
    pub fn us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// Connects one client that knows every agent and reconnects for ever.
pub async fn connect(urls: &[String]) -> Result<jetstream::Context, Error> {
    let servers: Vec<ServerAddr> = urls
        .iter()
        .map(|u| u.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Nats(format!("bad agent url: {e}")))?;
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .request_timeout(Some(REQUEST))
        .connect(servers)
        .await
        .map_err(|e| Error::Nats(format!("connect: {e}")))?;
    let mut js = jetstream::new(client);
    js.set_timeout(REQUEST);
    Ok(js)
}

/// Creates the streams, the bucket and the consumer, retrying through start-up.
pub async fn setup(js: &jetstream::Context) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let attempt = async {
            js.get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec!["chaos.>".into()],
                duplicate_window: Duration::from_secs(600),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
            js.create_key_value(kv::Config {
                bucket: KV_BUCKET.into(),
                history: 1,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
            let wq = js
                .get_or_create_stream(stream::Config {
                    name: WORK_STREAM.into(),
                    subjects: vec!["wq.>".into()],
                    retention: stream::RetentionPolicy::WorkQueue,
                    duplicate_window: Duration::from_secs(600),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            wq.get_or_create_consumer(
                WORKERS,
                consumer::pull::Config {
                    durable_name: Some(WORKERS.into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(5),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing_note(&format!("setup retry: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(Error::Nats(format!("setup: {e}"))),
        }
    }
}

fn tracing_note(line: &str) {
    if std::env::var_os("CHAOS_VERBOSE").is_some() {
        eprintln!("chaos: {line}");
    }
}

/// Connects to the agent at `url` alone (no other server to fail over to) and tries a
/// stream publish, a KV put and a KV get through it: what each answered, so a run
/// names the agent behind client errors.
pub async fn probe(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let client = match async_nats::ConnectOptions::new()
        .request_timeout(Some(REQUEST))
        .connect(url)
        .await
    {
        Ok(c) => c,
        Err(e) => return vec![format!("connect: {e}")],
    };
    let js = jetstream::new(client);
    let published = async {
        js.publish("chaos.probe", Bytes::from_static(b"probe"))
            .await?
            .await
            .map_err(async_nats::Error::from)
    };
    out.push(match published.await {
        Ok(ack) => format!("stream publish: ok seq {}", ack.sequence),
        Err(e) => format!("stream publish: {e}"),
    });
    match js.get_key_value(KV_BUCKET).await {
        Err(e) => out.push(format!("kv bucket: {e}")),
        Ok(store) => {
            out.push(match store.put("probe", Bytes::from_static(b"1")).await {
                Ok(rev) => format!("kv put: ok revision {rev}"),
                Err(e) => format!("kv put: {e}"),
            });
            out.push(match store.entry("probe").await {
                Ok(Some(e)) => format!("kv get: ok revision {}", e.revision),
                Ok(None) => "kv get: not found".into(),
                Err(e) => format!("kv get: {e}"),
            });
        }
    }
    out
}

/// What a publisher saw for one message.
#[derive(Debug, Clone)]
pub struct Acked {
    pub publisher: u64,
    pub n: u64,
    pub seq: u64,
    pub at_ms: u64,
}

/// The stream workload's record.
#[derive(Debug, Default)]
pub struct StreamRecord {
    pub acked: Vec<Acked>,
    /// Messages given up on after [`RETRY_FOR`].
    pub unacked: u64,
    /// Publish attempts that failed and were retried.
    pub retries: u64,
}

/// Publishes `p<i>-<n>` until `stop`; each message retried until acked.
pub async fn publisher(
    js: jetstream::Context,
    publisher: u64,
    clock: Clock,
    stop: Arc<tokio::sync::Notify>,
    record: Arc<Mutex<StreamRecord>>,
) {
    let mut n = 0u64;
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        n += 1;
        let id = format!("p{publisher}-{n}");
        let subject = format!("chaos.p{publisher}");
        let started = Instant::now();
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            let sent = async {
                js.publish_with_headers(subject.clone(), headers, Bytes::from(id.clone()))
                    .await?
                    .await
                    .map_err(|e| e.into())
            };
            let result: Result<_, async_nats::Error> = sent.await;
            match result {
                Ok(ack) => {
                    lock(&record).acked.push(Acked {
                        publisher,
                        n,
                        seq: ack.sequence,
                        at_ms: clock.ms(),
                    });
                    break;
                }
                Err(e) if started.elapsed() < RETRY_FOR => {
                    tracing_note(&format!("publish {id}: {e}"));
                    lock(&record).retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => {
                    lock(&record).unacked += 1;
                    break;
                }
            }
        }
        if futures::poll!(&mut stopped).is_ready() {
            return;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads every message of `stream` from sequence 1: (sequence, Msg-Id, payload).
pub async fn read_all(
    js: &jetstream::Context,
    stream: &str,
) -> Result<Vec<(u64, String, Bytes)>, Error> {
    let mut s = js
        .get_stream(stream)
        .await
        .map_err(|e| Error::Nats(format!("get stream {stream}: {e}")))?;
    let last = s
        .info()
        .await
        .map_err(|e| Error::Nats(format!("stream info {stream}: {e}")))?
        .state
        .last_sequence;
    let mut out = Vec::with_capacity(last as usize);
    if last == 0 {
        return Ok(out);
    }
    let consumer = s
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::Nats(format!("ordered consumer on {stream}: {e}")))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| Error::Nats(format!("read {stream}: {e}")))?;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(60), messages.next())
        .await
        .map_err(|_| Error::Nats(format!("reading {stream} stalled for 60 s")))?
    {
        let message = message.map_err(|e| Error::Nats(format!("read {stream}: {e}")))?;
        let seq = message
            .info()
            .map_err(|e| Error::Nats(format!("message info: {e}")))?
            .stream_sequence;
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push((seq, id, message.payload.clone()));
        if seq >= last {
            break;
        }
    }
    Ok(out)
}

/// The KV workload's record.
#[derive(Debug, Default)]
pub struct KvRecord {
    pub history: Vec<Operation>,
    /// Client errors by operation and kind (ambiguous writes, failed reads).
    pub errors: BTreeMap<String, u64>,
}

/// One KV client: random operations on `keys` keys until `stop`.
pub async fn kv_client(
    js: jetstream::Context,
    client: u64,
    keys: u64,
    mut rng: Rng,
    clock: Clock,
    stop: Arc<tokio::sync::Notify>,
    record: Arc<Mutex<KvRecord>>,
) {
    let note = |what: &str, e: &dyn std::fmt::Display| {
        // One line per kind of error: object names and addresses cut off.
        let mut line = format!("{what}: {e}");
        if let Some(cut) = line.find('`') {
            line.truncate(cut);
        }
        line.truncate(120);
        *lock(&record).errors.entry(line).or_default() += 1;
    };
    let store = loop {
        match js.get_key_value(KV_BUCKET).await {
            Ok(store) => break store,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let stopped = stop.notified();
    tokio::pin!(stopped);
    let mut counter = 0u64;
    // The last revision this client saw per key (for updates).
    let mut seen: HashMap<String, u64> = HashMap::new();
    loop {
        if futures::poll!(&mut stopped).is_ready() {
            return;
        }
        let key = format!("k{}", rng.below(keys));
        counter += 1;
        let value = (client << 32) | counter;
        let payload = Bytes::from(value.to_string());
        let call = clock.us();
        let roll = rng.below(100);
        let (input, output) = if roll < 40 {
            let output = match tokio::time::timeout(REQUEST, store.entry(key.clone())).await {
                Ok(Ok(Some(entry))) if entry.operation == kv::Operation::Put => {
                    seen.insert(key.clone(), entry.revision);
                    match std::str::from_utf8(&entry.value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                    {
                        Some(v) => Output::Found(v, entry.revision),
                        None => Output::Found(u64::MAX, entry.revision),
                    }
                }
                Ok(Ok(_)) => Output::NotFound,
                // A failed read has no effect: leave it out of the history.
                Ok(Err(e)) => {
                    note("get", &e);
                    continue;
                }
                Err(e) => {
                    note("get", &e);
                    continue;
                }
            };
            (Input::Get, output)
        } else if roll < 55 {
            let out = tokio::time::timeout(REQUEST, store.put(&key, payload)).await;
            let output = match out {
                Ok(Ok(rev)) => Output::Written(rev),
                Ok(Err(e)) => {
                    note("put", &e);
                    if definitely_failed(&e) {
                        continue;
                    }
                    Output::Unknown
                }
                Err(e) => {
                    note("put", &e);
                    Output::Unknown
                }
            };
            (Input::Put(value), output)
        } else if roll < 65 {
            let out = tokio::time::timeout(REQUEST, kv_create(&store, &key, payload)).await;
            let output = match out {
                Ok(Ok(Some(output))) => output,
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => {
                    note("create", &e);
                    Output::Unknown
                }
                Err(e) => {
                    note("create", &e);
                    Output::Unknown
                }
            };
            (Input::Create(value), output)
        } else if roll < 90 {
            let expected = seen.get(&key).copied().unwrap_or(0);
            let out = tokio::time::timeout(REQUEST, store.update(&key, payload, expected)).await;
            let output = match out {
                Ok(Ok(rev)) => Output::Written(rev),
                Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    Output::WrongRevision
                }
                Ok(Err(e)) => {
                    note("update", &e);
                    if definitely_failed(&e) {
                        continue;
                    }
                    Output::Unknown
                }
                Err(e) => {
                    note("update", &e);
                    Output::Unknown
                }
            };
            (Input::Update(value, expected), output)
        } else {
            // A delete marker published directly, so its revision is known.
            let mut headers = HeaderMap::new();
            headers.insert("KV-Operation", "DEL");
            let subject = format!("$KV.{KV_BUCKET}.{key}");
            let sent = async {
                js.publish_with_headers(subject, headers, Bytes::new())
                    .await?
                    .await
                    .map_err(async_nats::Error::from)
            };
            let output = match tokio::time::timeout(REQUEST, sent).await {
                Ok(Ok(ack)) => Output::Written(ack.sequence),
                Ok(Err(e)) => {
                    note("delete", &e);
                    if definitely_failed(&e) {
                        continue;
                    }
                    Output::Unknown
                }
                Err(e) => {
                    note("delete", &e);
                    Output::Unknown
                }
            };
            (Input::Delete, output)
        };
        if let Output::Written(rev) = output {
            seen.insert(key.clone(), rev);
        }
        let ret = clock.us();
        lock(&record).history.push(Operation {
            client,
            key,
            input,
            output,
            call,
            ret,
        });
    }
}

/// `create` as the register model defines it: written when the key has no value
/// (never written, or deleted), "exists" when it has one.
///
/// The client's own `create` is not used: after a first attempt whose outcome is
/// unknown (a timeout, a commit whose answer was lost) it reads the key and reports
/// "already exists" on seeing the value that very attempt may have written, or
/// writes a second time over a later delete, and neither is what was asked. Here a
/// fallback read follows only a definite "wrong last revision". `Ok(None)`: nothing
/// was written (the operation leaves the history); `Err`: the outcome is unknown.
pub async fn kv_create(
    store: &kv::Store,
    key: &str,
    value: Bytes,
) -> Result<Option<Output>, async_nats::Error> {
    match store.update(key, value.clone(), 0).await {
        Ok(rev) => return Ok(Some(Output::Written(rev))),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
        Err(e) if definitely_failed(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let revision = match store.entry(key).await {
        Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
            return Ok(Some(Output::Exists));
        }
        Ok(Some(entry)) => entry.revision,
        // Nothing was written by the first attempt, and the read says nothing more.
        Ok(None) | Err(_) => return Ok(None),
    };
    match store.update(key, value, revision).await {
        Ok(rev) => Ok(Some(Output::Written(rev))),
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision || definitely_failed(&e) => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// How an agent's answer to a publish whose commit may have been applied begins
/// (`infinistream_gateway::batcher::COMMIT_OUTCOME_UNKNOWN`; this crate runs the
/// agents as processes and does not link the gateway).
const COMMIT_OUTCOME_UNKNOWN: &str = "commit outcome unknown";

/// An error that proves the write never happened, so the operation leaves the
/// history: no stream took the publish (the server answered "no responders"), the
/// agent's batch upload failed (nothing is committed without its object), or the
/// control plane refused the commit as a whole at its first attempt (for example a
/// clock-skewed agent's group proof). A refusal after an attempt that may have been
/// applied (its answer lost) is answered "commit outcome unknown" by the agent, and
/// stays in the history as ambiguous.
fn definitely_failed(e: &dyn std::fmt::Display) -> bool {
    let e = e.to_string();
    if e.contains(COMMIT_OUTCOME_UNKNOWN) {
        return false;
    }
    e.contains("no stream found for given subject")
        || e.contains("batch upload failed")
        || e.contains("control plane refused the commit")
}

/// The work-queue workload's record.
#[derive(Debug, Default)]
pub struct WorkRecord {
    /// Msg-Id number → (ack time of its publish, its stream sequence).
    pub published: HashMap<u64, (u64, u64)>,
    /// (number, start time of the fetch that delivered it).
    pub deliveries: Vec<(u64, u64)>,
    /// Number → time its ack was confirmed (first confirmation).
    pub confirmed: HashMap<u64, u64>,
    pub unacked_publishes: u64,
}

/// Publishes work items `w-<n>` until `stop`, each retried until acked.
pub async fn work_producer(
    js: jetstream::Context,
    clock: Clock,
    stop: Arc<tokio::sync::Notify>,
    record: Arc<Mutex<WorkRecord>>,
) {
    let stopped = stop.notified();
    tokio::pin!(stopped);
    let mut n = 0u64;
    loop {
        if futures::poll!(&mut stopped).is_ready() {
            return;
        }
        n += 1;
        let started = Instant::now();
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                format!("w-{n}").as_str(),
            );
            let sent = async {
                js.publish_with_headers(format!("wq.{}", n % 4), headers, n.to_string().into())
                    .await?
                    .await
                    .map_err(async_nats::Error::from)
            };
            match sent.await {
                Ok(ack) => {
                    lock(&record)
                        .published
                        .insert(n, (clock.ms(), ack.sequence));
                    break;
                }
                Err(_) if started.elapsed() < RETRY_FOR => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => {
                    lock(&record).unacked_publishes += 1;
                    break;
                }
            }
        }
        // A steady trickle: the queue should drain between faults.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker: fetches batches from the durable consumer and double-acks each message,
/// until `stop` and then until `drained` says the queue is done.
pub async fn worker(
    js: jetstream::Context,
    clock: Clock,
    stop: Arc<tokio::sync::Notify>,
    record: Arc<Mutex<WorkRecord>>,
    until: Arc<std::sync::atomic::AtomicBool>,
) {
    let consumer: consumer::PullConsumer = loop {
        let got = async {
            js.get_stream(WORK_STREAM)
                .await
                .map_err(|e| e.to_string())?
                .get_consumer(WORKERS)
                .await
                .map_err(|e| e.to_string())
        };
        match got.await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let _ = stop;
    while !until.load(std::sync::atomic::Ordering::Relaxed) {
        let fetch_started = clock.ms();
        let batch = consumer
            .fetch()
            .max_messages(20)
            .expires(Duration::from_secs(2))
            .messages()
            .await;
        let Ok(mut batch) = batch else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(5), batch.next()).await
        {
            let Some(n) = std::str::from_utf8(&message.payload)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            lock(&record).deliveries.push((n, fetch_started));
            if tokio::time::timeout(REQUEST, message.double_ack())
                .await
                .is_ok_and(|r| r.is_ok())
            {
                lock(&record).confirmed.entry(n).or_insert(clock.ms());
            }
        }
    }
}
