//! `ConsumerConfig::check_and_default`, the create-subject checks, update rules and
//! pull request parsing, one case per nats-server rule.

use infinistream_protocol::jsapi::GoDuration;
use infinistream_protocol::jsapi::consumer::{
    AckPolicy, ConsumerAction, ConsumerConfig, CreateConsumerRequest, DeliverPolicy, NextRequest,
    PriorityPolicy, PullStatus,
};
use infinistream_protocol::jsapi::stream::{RetentionPolicy, StreamConfig};
use infinistream_protocol::jsapi::subjects::{ApiRoute, ConsumerCreateRoute};
use infinistream_protocol::jsapi::{ApiError, Timestamp, parse_request};

fn stream() -> StreamConfig {
    StreamConfig::new("S", ["s.>"])
        .check_and_default()
        .expect("valid")
}

fn check(f: impl FnOnce(&mut ConsumerConfig)) -> Result<ConsumerConfig, ApiError> {
    let mut cfg = ConsumerConfig {
        durable: "D".into(),
        ack_policy: AckPolicy::Explicit,
        ..ConsumerConfig::default()
    };
    f(&mut cfg);
    cfg.check_and_default(&stream())
}

fn policy(msg: &str) -> ApiError {
    ApiError::consumer_invalid_policy(msg)
}

#[test]
fn defaults_are_nats_servers() {
    let cfg = check(|_| {}).expect("valid");
    assert_eq!(cfg.ack_wait, 30_000_000_000);
    assert_eq!(cfg.max_deliver, -1);
    assert_eq!(cfg.max_waiting, 512);
    assert_eq!(cfg.max_ack_pending, 1000);
    assert_eq!(cfg.inactive_threshold, 0, "durables have none");
    let eph = check(|c| c.durable.clear()).expect("valid");
    assert_eq!(eph.inactive_threshold, 5_000_000_000);
    let none = check(|c| c.ack_policy = AckPolicy::None).expect("valid");
    assert_eq!((none.ack_wait, none.max_ack_pending), (0, 0));
    let bo = check(|c| c.backoff = vec![1_000_000_000, 5_000_000_000]).expect("valid");
    assert_eq!(bo.ack_wait, 1_000_000_000);
    let push = check(|c| c.deliver_subject = "out".into()).expect("valid");
    assert_eq!(push.max_waiting, 0);
    let parsed: ConsumerConfig = parse_request(br#"{"durable_name":"D"}"#).expect("parses");
    assert_eq!(
        (parsed.ack_policy, parsed.deliver_policy),
        (AckPolicy::None, DeliverPolicy::All)
    );
}

#[test]
fn stream_consumer_limits_apply() {
    let mut s = stream();
    s.consumer_limits.max_ack_pending = 10;
    s.consumer_limits.inactive_threshold = 1_000_000_000;
    let d = ConsumerConfig {
        durable: "D".into(),
        ack_policy: AckPolicy::Explicit,
        ..ConsumerConfig::default()
    };
    let cfg = d.check_and_default(&s).expect("valid");
    assert_eq!(
        (cfg.max_ack_pending, cfg.inactive_threshold),
        (10, 1_000_000_000)
    );
    let mut over = d.clone();
    over.max_ack_pending = 11;
    assert_eq!(
        over.check_and_default(&s),
        Err(ApiError::consumer_max_pending_ack_excess(10))
    );
    let mut idle = d;
    idle.inactive_threshold = 2_000_000_000;
    assert_eq!(
        idle.check_and_default(&s),
        Err(ApiError::consumer_inactive_threshold_excess("1s"))
    );
}

#[test]
fn names_replicas_waits() {
    assert_eq!(
        check(|c| c.name = "a.b".into()),
        Err(ApiError::stream_invalid_config(
            "consumer name can not contain '.', '*', '>', '\\', '/'"
        ))
    );
    assert_eq!(
        check(|c| c.durable = "a*".into()),
        Err(ApiError::stream_invalid_config(
            "consumer durable name can not contain '.', '*', '>', '\\', '/'"
        ))
    );
    assert_eq!(
        check(|c| c.replicas = 3),
        Err(ApiError::consumer_replicas_exceeds_stream())
    );
    assert_eq!(
        check(|c| c.replicas = -1),
        Err(ApiError::replicas_count_cannot_be_negative())
    );
    assert_eq!(
        check(|c| c.ack_wait = -1),
        Err(ApiError::consumer_ack_wait_negative())
    );
    assert_eq!(
        check(|c| c.backoff = vec![-1]),
        Err(ApiError::consumer_back_off_negative())
    );
    assert_eq!(
        check(|c| {
            c.backoff = vec![1, 2, 3];
            c.max_deliver = 2;
        }),
        Err(ApiError::consumer_max_deliver_backoff())
    );
    assert_eq!(
        check(|c| c.description = "x".repeat(4097)),
        Err(ApiError::consumer_description_too_long(4096))
    );
    assert_eq!(
        check(|c| c.name = "X".into()),
        Err(ApiError::consumer_create_durable_and_name_mismatch())
    );
    let mut wq = stream();
    wq.retention = RetentionPolicy::WorkQueue;
    wq.num_replicas = 3;
    let c = ConsumerConfig {
        durable: "D".into(),
        replicas: 1,
        ..ConsumerConfig::default()
    };
    assert_eq!(
        c.check_and_default(&wq),
        Err(ApiError::consumer_replicas_should_match_stream())
    );
}

#[test]
fn push_rules() {
    let push = |f: fn(&mut ConsumerConfig)| {
        check(|c| {
            c.deliver_subject = "out".into();
            f(c)
        })
    };
    assert_eq!(
        push(|c| c.deliver_subject = "out.*".into()),
        Err(ApiError::consumer_deliver_to_wildcards())
    );
    assert_eq!(
        push(|c| c.deliver_subject = "out..x".into()),
        Err(ApiError::consumer_invalid_deliver_subject())
    );
    assert_eq!(
        push(|c| c.deliver_subject = "s.x".into()),
        Err(ApiError::consumer_deliver_cycle())
    );
    assert_eq!(
        push(|c| c.max_waiting = 5),
        Err(ApiError::consumer_push_max_waiting())
    );
    assert_eq!(
        push(|c| {
            c.ack_policy = AckPolicy::None;
            c.max_ack_pending = 5;
        }),
        Err(ApiError::consumer_max_pending_ack_policy_required())
    );
    assert_eq!(
        push(|c| c.heartbeat = 50_000_000),
        Err(ApiError::consumer_small_heartbeat())
    );
    assert_eq!(
        push(|c| c.flow_control = true),
        Err(ApiError::consumer_with_flow_control_needs_heartbeats())
    );
    push(|c| {
        c.flow_control = true;
        c.heartbeat = 1_000_000_000;
    })
    .expect("flow control with heartbeats");
}

#[test]
fn pull_rules() {
    let mut wq = stream();
    wq.retention = RetentionPolicy::WorkQueue;
    let none = ConsumerConfig {
        durable: "D".into(),
        ..ConsumerConfig::default()
    };
    assert_eq!(
        none.check_and_default(&wq),
        Err(ApiError::consumer_pull_requires_ack())
    );
    assert_eq!(
        check(|c| c.rate_limit = 8),
        Err(ApiError::consumer_pull_with_rate_limit())
    );
    assert_eq!(
        check(|c| c.heartbeat = 1_000_000_000),
        Err(ApiError::consumer_hb_requires_push())
    );
    assert_eq!(
        check(|c| c.flow_control = true),
        Err(ApiError::consumer_fc_requires_push())
    );
    assert_eq!(
        check(|c| c.max_request_expires = 10),
        Err(ApiError::consumer_max_request_expires_too_small())
    );
    let cfg = check(|c| c.max_waiting = -3).expect("negative max_waiting defaults");
    assert_eq!(cfg.max_waiting, 512);
}

#[test]
fn filters() {
    assert_eq!(
        check(|c| {
            c.filter_subject = "s.a".into();
            c.filter_subjects = vec!["s.b".into()];
        }),
        Err(ApiError::consumer_duplicate_filter_subjects())
    );
    assert_eq!(
        check(|c| c.filter_subject = "s..a".into()),
        Err(ApiError::stream_invalid_config("invalid subject"))
    );
    assert_eq!(
        check(|c| c.filter_subjects = vec!["".into()]),
        Err(ApiError::consumer_empty_filter())
    );
    assert_eq!(
        check(|c| c.filter_subjects = vec!["s.*".into(), "s.a".into()]),
        Err(ApiError::consumer_overlapping_subject_filters())
    );
    check(|c| c.filter_subjects = vec!["s.a".into(), "s.b".into()]).expect("disjoint filters");
}

#[test]
fn deliver_policy_combinations() {
    let t = Some(Timestamp::parse("2026-01-01T00:00:00Z").expect("ts"));
    assert_eq!(
        check(|c| c.opt_start_seq = 5),
        Err(policy(
            "consumer delivery policy is deliver all, but optional start sequence is also set"
        ))
    );
    assert_eq!(
        check(|c| {
            c.deliver_policy = DeliverPolicy::Last;
            c.opt_start_time = t;
        }),
        Err(policy(
            "consumer delivery policy is deliver last, but optional start time is also set"
        ))
    );
    assert_eq!(
        check(|c| c.deliver_policy = DeliverPolicy::LastPerSubject),
        Err(policy(
            "consumer delivery policy is deliver last per subject, but optional filter subject is not set"
        ))
    );
    assert_eq!(
        check(|c| c.deliver_policy = DeliverPolicy::ByStartSequence),
        Err(policy(
            "consumer delivery policy is deliver by start sequence, but optional start sequence is not set"
        ))
    );
    assert_eq!(
        check(|c| {
            c.deliver_policy = DeliverPolicy::ByStartTime;
            c.opt_start_seq = 1;
        }),
        Err(policy(
            "consumer delivery policy is deliver by start time, but optional start time is not set"
        ))
    );
    assert_eq!(
        check(|c| {
            c.deliver_policy = DeliverPolicy::ByStartTime;
            c.opt_start_time = t;
            c.opt_start_seq = 1;
        }),
        Err(policy(
            "consumer delivery policy is deliver by start time, but optional start start sequence is also set"
        ))
    );
    check(|c| {
        c.deliver_policy = DeliverPolicy::ByStartTime;
        c.opt_start_time = t;
    })
    .expect("valid");
}

#[test]
fn priority_groups() {
    assert_eq!(
        check(|c| c.priority_groups = vec!["g".into()]),
        Err(ApiError::consumer_priority_group_with_policy_none())
    );
    assert_eq!(
        check(|c| c.priority_policy = PriorityPolicy::Overflow),
        Err(ApiError::consumer_priority_policy_without_group())
    );
    assert_eq!(
        check(|c| {
            c.priority_policy = PriorityPolicy::Overflow;
            c.priority_groups = vec!["bad name".into()];
        }),
        Err(ApiError::consumer_invalid_group_name())
    );
    let cfg = check(|c| {
        c.priority_policy = PriorityPolicy::PinnedClient;
        c.priority_groups = vec!["g1".into()];
    })
    .expect("valid");
    assert_eq!(cfg.pinned_ttl, 120_000_000_000);
    // overflow, pinned_client and prioritized are built.
    assert_eq!(cfg.unsupported_features(), None);
    let cfg = check(|c| {
        c.priority_policy = PriorityPolicy::Prioritized;
        c.priority_groups = vec!["g1".into()];
    })
    .expect("valid");
    assert_eq!(cfg.unsupported_features(), None);
    // pinned_client's default timeout is not set for prioritized, as in nats-server.
    assert_eq!(cfg.pinned_ttl, 0);
}

#[test]
fn create_subject_checks() {
    let route = |s: &str| match ApiRoute::from_subject(s).expect("api") {
        ApiRoute::ConsumerCreate(r) => r,
        other => panic!("{other:?}"),
    };
    let req = |json: &str| parse_request::<CreateConsumerRequest>(json.as_bytes()).expect("parses");
    assert_eq!(
        req(r#"{"stream_name":"X","config":{}}"#)
            .check_subject(&route("$JS.API.CONSUMER.CREATE.S")),
        Err(ApiError::stream_mismatch())
    );
    assert_eq!(
        req(r#"{"stream_name":"S","config":{"durable_name":"D"}}"#)
            .check_subject(&route("$JS.API.CONSUMER.CREATE.S")),
        Err(ApiError::consumer_ephemeral_with_durable_name())
    );
    assert_eq!(
        req(r#"{"stream_name":"S","config":{}}"#)
            .check_subject(&route("$JS.API.CONSUMER.DURABLE.CREATE.S.D")),
        Err(ApiError::consumer_durable_name_not_set())
    );
    assert_eq!(
        req(r#"{"stream_name":"S","config":{"durable_name":"E"}}"#)
            .check_subject(&route("$JS.API.CONSUMER.DURABLE.CREATE.S.D")),
        Err(ApiError::consumer_durable_name_not_match_subject())
    );
    assert_eq!(
        req(r#"{"stream_name":"S","config":{"filter_subject":"s.b"}}"#)
            .check_subject(&route("$JS.API.CONSUMER.CREATE.S.C.s.a")),
        Err(ApiError::consumer_create_filter_subject_mismatch())
    );
    assert_eq!(
        req(r#"{"stream_name":"S","config":{"filter_subjects":["s.a"]}}"#)
            .check_subject(&route("$JS.API.CONSUMER.CREATE.S.C.s.a")),
        Err(ApiError::consumer_multiple_filters_not_allowed())
    );
    let r = req(r#"{"stream_name":"S","config":{"filter_subject":"s.a"},"action":"create"}"#);
    assert_eq!(r.action, ConsumerAction::Create);
    let cfg = r
        .check_subject(&route("$JS.API.CONSUMER.CREATE.S.C.s.a"))
        .expect("ok");
    assert_eq!(cfg.name, "C");
    assert!(
        matches!(route("$JS.API.CONSUMER.CREATE.S.C.s.a"), ConsumerCreateRoute::Named { filter: Some(f), .. } if f == "s.a")
    );
    let bad = parse_request::<CreateConsumerRequest>(
        br#"{"stream_name":"S","config":{},"action":"upsert"}"#,
    );
    assert_eq!(bad.expect_err("bad action").err_code, 10025);
}

#[test]
fn update_and_workqueue_rules() {
    let old = check(|_| {}).expect("valid");
    let upd = |f: fn(&mut ConsumerConfig)| {
        let mut n = old.clone();
        f(&mut n);
        n.check_update(&old)
    };
    upd(|c| c.max_ack_pending = 5).expect("allowed");
    assert_eq!(
        upd(|c| c.deliver_policy = DeliverPolicy::New),
        Err(ApiError::consumer_create(
            "deliver policy can not be updated"
        ))
    );
    assert_eq!(
        upd(|c| c.ack_policy = AckPolicy::All),
        Err(ApiError::consumer_create("ack policy can not be updated"))
    );
    assert_eq!(
        upd(|c| c.deliver_subject = "x".into()),
        Err(ApiError::consumer_create(
            "can not update pull consumer to push based"
        ))
    );
    assert_eq!(
        upd(|c| c.max_waiting = 1),
        Err(ApiError::consumer_create("max waiting can not be updated"))
    );
    let mut wq = stream();
    wq.retention = RetentionPolicy::WorkQueue;
    let all = ConsumerConfig {
        ack_policy: AckPolicy::All,
        ..ConsumerConfig::default()
    };
    assert_eq!(
        all.check_workqueue(&wq),
        Err(ApiError::consumer_wq_requires_explicit_ack())
    );
    let last = ConsumerConfig {
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::Last,
        ..ConsumerConfig::default()
    };
    assert_eq!(
        last.check_workqueue(&wq),
        Err(ApiError::consumer_wq_consumer_not_deliver_all())
    );
    let a = ConsumerConfig {
        filter_subject: "s.a".into(),
        ..ConsumerConfig::default()
    };
    let b = ConsumerConfig {
        filter_subjects: vec!["s.b".into(), "s.c".into()],
        ..ConsumerConfig::default()
    };
    assert!(!a.filters_overlap(&b));
    assert!(
        a.filters_overlap(&ConsumerConfig::default()),
        "unfiltered overlaps all"
    );
}

#[test]
fn next_requests() {
    assert_eq!(NextRequest::parse(b"").expect("ok"), NextRequest::single());
    assert_eq!(NextRequest::parse(b" 10 ").expect("ok").batch, 10);
    let r = NextRequest::parse(br#"{"batch":5,"expires":1000000000,"no_wait":true,"max_bytes":100,"idle_heartbeat":100000000}"#).expect("ok");
    assert_eq!(
        (r.batch, r.expires, r.no_wait, r.max_bytes, r.heartbeat),
        (5, 1_000_000_000, true, 100, 100_000_000)
    );
    assert_eq!(
        NextRequest::parse(br#"{"batch":1,"idle_heartbeat":1000000000}"#),
        Err(PullStatus::BadRequest("heartbeat value too large".into()))
    );
    assert!(matches!(
        NextRequest::parse(br#"{"batch":"x"}"#),
        Err(PullStatus::BadRequest(_))
    ));
    let cfg = ConsumerConfig {
        max_request_batch: 10,
        max_request_expires: 5_000_000_000,
        ..ConsumerConfig::default()
    };
    let big = NextRequest {
        batch: 11,
        ..NextRequest::default()
    };
    assert_eq!(
        big.check_limits(&cfg),
        Err(PullStatus::ExceededMaxRequestBatch(10))
    );
    let long = NextRequest {
        batch: 1,
        expires: 6_000_000_000,
        ..NextRequest::default()
    };
    assert_eq!(
        long.check_limits(&cfg)
            .expect_err("too long")
            .header_block(),
        b"NATS/1.0 409 Exceeded MaxRequestExpires of 5s\r\n\r\n"
    );
}

#[test]
fn pull_status_lines() {
    assert_eq!(
        PullStatus::NoMessages.header_block(),
        b"NATS/1.0 404 No Messages\r\n\r\n"
    );
    assert_eq!(
        PullStatus::RequestTimeout { pending_msgs: 3, pending_bytes: 0 }.header_block(),
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\nNats-Pending-Bytes: 0\r\n\r\n"
    );
    assert_eq!(
        PullStatus::IdleHeartbeat {
            last_consumer: 4,
            last_stream: 9,
            stalled: None
        }
        .header_block(),
        b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 4\r\nNats-Last-Stream: 9\r\n\r\n"
    );
    assert_eq!(
        PullStatus::ConsumerDeleted.header_block(),
        b"NATS/1.0 409 Consumer Deleted\r\n\r\n"
    );
    for (nanos, text) in [
        (0, "0s"),
        (1_500_000_000, "1.5s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (250_000_000, "250ms"),
        (1_500, "1.5µs"),
        (12, "12ns"),
    ] {
        assert_eq!(GoDuration(nanos).to_string(), text);
    }
}
