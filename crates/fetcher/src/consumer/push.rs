//! A push consumer's loop: it delivers to the deliver subject while this agent has a
//! subscriber for it, with flow control and idle heartbeats; and the scanner that
//! starts push consumers on the agents their subscribers are connected to.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use infinistream_broker::BrokerError;
use infinistream_protocol::jsapi::ack::flow_control_subject;
use infinistream_protocol::jsapi::consumer::PullStatus;
use tokio::time::Instant;

use super::claim::{MAX_CLAIM, claim, load, paused_until};
use super::pace::{self, Pace};
use super::runtime::Runtime;
use super::wake::wait_change;
use super::{Engine, store};

/// Push flow control: ask the subscriber to confirm after this many bytes or messages.
const FC_MAX_BYTES: usize = 1 << 20;
const FC_MAX_MSGS: usize = 1024;
/// A push runtime without a local subscriber for this long stops.
const PUSH_UNBOUND_EXIT: Duration = Duration::from_secs(10);

pub(super) async fn push_loop(engine: &Arc<Engine>, rt: &Arc<Runtime>) {
    let deliver = rt.config.deliver_subject.clone();
    let heartbeat = (rt.config.heartbeat > 0)
        .then(|| Duration::from_nanos(u64::try_from(rt.config.heartbeat).unwrap_or(0)));
    let mut last_sent = Instant::now();
    let mut unbound_since: Option<Instant> = None;
    let (mut fc_bytes, mut fc_msgs) = (0usize, 0usize);
    let mut notes = engine.watch.subscribe(&rt.stream);
    let fallback = engine.watch.fallback();
    let mut pace = Pace::of(&rt.config, pace::burst(engine, &rt.stream));
    loop {
        if rt.cancel.is_cancelled() {
            return;
        }
        let now = Instant::now();
        if !engine.broker.serves_push(&deliver, rt.stream.as_bytes()) {
            let since = *unbound_since.get_or_insert(now);
            if rt.reap_if_inactive(engine, since.elapsed()).await {
                return;
            }
            if rt.config.inactive_threshold <= 0 && since.elapsed() >= PUSH_UNBOUND_EXIT {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = rt.cancel.cancelled() => return,
            }
            continue;
        }
        unbound_since = None;
        let heartbeat_due = heartbeat.is_some_and(|hb| last_sent + hb <= now);
        let stalled = rt.state.lock().fc_pending.clone();
        if heartbeat_due {
            let (c, s) = {
                let st = rt.state.lock();
                (st.last_consumer_seq, st.last_stream_seq)
            };
            engine.publish_status(
                &deliver,
                &PullStatus::IdleHeartbeat {
                    last_consumer: c,
                    last_stream: s,
                    stalled: stalled.clone(),
                },
            );
            last_sent = now;
        }
        let next_hb = heartbeat.map(|hb| last_sent + hb);
        if stalled.is_some() {
            let deadline = next_hb.unwrap_or(now + Duration::from_millis(100));
            tokio::select! {
                () = rt.kick.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
                () = rt.cancel.cancelled() => return,
            }
            continue;
        }
        let Some((resp, flight)) =
            claim(engine, rt, pace::claim_size(pace.as_ref(), MAX_CLAIM), None).await
        else {
            continue;
        };
        match resp {
            resp if resp.deliveries.is_empty() => {
                drop(flight);
                let mut deadline = next_hb.unwrap_or(now + Duration::from_secs(1));
                // Paused: heartbeats go on, deliveries resume when the pause ends.
                if let Some(until) = paused_until(&resp) {
                    deadline = deadline.min(until);
                }
                tokio::select! {
                    () = rt.kick.notified() => {}
                    () = wait_change(&mut notes, fallback) => {}
                    () = tokio::time::sleep_until(deadline) => {}
                    () = rt.cancel.cancelled() => return,
                }
            }
            mut resp => {
                let out = load(engine, rt, &mut resp).await;
                if !pace::hold(pace.as_mut(), engine, rt, &out).await {
                    return;
                }
                let mut st = rt.state.lock();
                let mut deliveries = engine.broker.deliveries(&deliver);
                for msg in out {
                    fc_bytes += msg.size();
                    fc_msgs += 1;
                    deliveries.send(
                        &msg.subject,
                        Some(&msg.ack),
                        msg.headers.clone(),
                        msg.payload.clone(),
                    );
                    st.last_consumer_seq = st.last_consumer_seq.max(msg.consumer_seq);
                    st.last_stream_seq = msg.stream_seq;
                }
                drop(deliveries);
                drop(flight);
                st.last_activity = Instant::now();
                last_sent = Instant::now();
                if rt.config.flow_control && (fc_bytes >= FC_MAX_BYTES || fc_msgs >= FC_MAX_MSGS) {
                    st.fc_counter += 1;
                    let subject =
                        flow_control_subject(&rt.stream, &rt.name, &st.fc_counter.to_string());
                    engine.broker.publish(
                        &deliver,
                        Some(&subject),
                        Some(Bytes::from(PullStatus::FlowControlRequest.header_block())),
                        Bytes::new(),
                    );
                    st.fc_pending = Some(subject);
                    fc_bytes = 0;
                    fc_msgs = 0;
                }
            }
        }
    }
}

/// Subscribes to `$JS.FC.>`: subscribers' answers to flow-control requests.
pub(crate) fn start_flow_control(engine: Arc<Engine>) -> Result<(), BrokerError> {
    let mut sub = engine.broker.subscribe_internal("$JS.FC.>", None, 1024)?;
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                () = engine.shutdown.cancelled() => return,
                msg = sub.recv() => match msg { Some(m) => m, None => return },
            };
            let tokens: Vec<&str> = msg.subject.split('.').collect();
            if let [_, _, stream, consumer, _] = tokens.as_slice()
                && let Some(rt) = engine.running(stream, consumer)
            {
                rt.flow_control_reply(&msg.subject);
            }
        }
    });
    Ok(())
}

/// Longest a push consumer whose deliver subject has a subscriber here waits to be
/// started when nothing announced it (a safety net: subscriptions, consumer events
/// and ended runtimes are the path).
const PUSH_RESCAN: Duration = Duration::from_secs(10);

/// Starts push consumers whose deliver subject gained a subscriber on this agent (a
/// push consumer is served by the agents its subscribers are connected to). Checks
/// every second, but lists the consumers of every stream (one control-plane call for
/// all streams) only when something could have changed: a subscription came or went here,
/// a consumer was created or updated anywhere (the control plane's consumer events),
/// a runtime here ended, or [`PUSH_RESCAN`] passed. Without consumer events (no
/// notifications), every second.
pub(crate) async fn push_scanner(engine: Arc<Engine>) {
    let mut events = engine.watch.consumer_events();
    let mut seen: Option<(u64, u64)> = None;
    let mut last_scan = Instant::now();
    loop {
        tokio::select! {
            () = engine.shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now = (
            engine.broker.subscription_generation(),
            engine.ended.load(std::sync::atomic::Ordering::Relaxed),
        );
        let announced = match &mut events {
            Some(rx) => match rx.has_changed() {
                Ok(changed) => {
                    rx.borrow_and_update();
                    changed
                }
                Err(_) => {
                    events = None;
                    true
                }
            },
            None => true,
        };
        if !announced && seen == Some(now) && last_scan.elapsed() < PUSH_RESCAN {
            continue;
        }
        // Marked before the scan: what changes during it is seen next time.
        seen = Some(now);
        last_scan = Instant::now();
        let streams: HashSet<String> = engine
            .catalog
            .snapshot()
            .iter()
            .map(|entry| entry.name.to_string())
            .collect();
        match store::list_every_stored(&engine.cp).await {
            Ok(all) => {
                for (stream, c) in all {
                    if streams.contains(&stream) {
                        start_if_served(&engine, &stream, c);
                    }
                }
            }
            // A control plane older than the every-stream listing: one call per stream.
            Err(_) => {
                for stream in streams {
                    let Ok(all) = store::list_stored(&engine.cp, &stream).await else {
                        continue;
                    };
                    for c in all {
                        start_if_served(&engine, &stream, c);
                    }
                }
            }
        }
    }
}

/// Starts push consumer `c` of `stream` here if its deliver subject has a subscriber
/// here and it is not running yet.
fn start_if_served(engine: &Arc<Engine>, stream: &str, c: store::StoredConsumer) {
    if c.config.deliver_subject.is_empty()
        || engine.running(stream, &c.config.name).is_some()
        || !engine
            .broker
            .serves_push(&c.config.deliver_subject, stream.as_bytes())
    {
        return;
    }
    let name = c.config.name.clone();
    engine.install(stream, &name, c.config, c.created_unix_nanos);
}
