//! `StreamConfig::check_and_default`, `check_create`, `check_update` and
//! `unsupported_features`: one case per nats-server rule, with its exact error.

use infinistream_protocol::jsapi::ApiError;
use infinistream_protocol::jsapi::stream::{
    DiscardPolicy, PersistMode, Placement, RePublish, RetentionPolicy, StorageType, StreamConfig,
    StreamConfigRequest, StreamSource, SubjectTransform,
};
use infinistream_protocol::jsapi::{MAX_NAME_LEN, parse_request};

fn base() -> StreamConfig {
    StreamConfig::new("S", ["s.>"])
}

fn invalid(msg: &str) -> ApiError {
    ApiError::stream_invalid_config(msg)
}

fn check(f: impl FnOnce(&mut StreamConfig)) -> Result<StreamConfig, ApiError> {
    let mut cfg = base();
    f(&mut cfg);
    cfg.check_and_default()
}

#[test]
fn defaults_are_nats_servers() {
    let cfg: StreamConfig = parse_request(br#"{"name":"S"}"#).expect("parses");
    assert_eq!(cfg.max_msgs, -1);
    assert_eq!(cfg.max_bytes, -1);
    assert_eq!(cfg.max_msgs_per_subject, -1);
    assert_eq!(cfg.max_msg_size, -1);
    assert_eq!(cfg.max_consumers, -1);
    assert_eq!(cfg.storage, StorageType::File);
    assert_eq!(cfg.retention, RetentionPolicy::Limits);
    let cfg = cfg.check_and_default().expect("valid");
    assert_eq!(cfg.subjects, vec!["S".to_owned()]);
    assert_eq!(cfg.num_replicas, 1);
    assert_eq!(cfg.duplicate_window, 120_000_000_000);
}

#[test]
fn zero_and_below_minus_one_become_unlimited() {
    let cfg = check(|c| {
        c.max_msgs = 0;
        c.max_bytes = -5;
        c.max_msg_size = -7;
        c.max_consumers = 0;
        c.max_msgs_per_subject = -2;
        c.num_replicas = 0;
    })
    .expect("valid");
    assert_eq!(
        (
            cfg.max_msgs,
            cfg.max_bytes,
            cfg.max_msg_size,
            cfg.max_consumers
        ),
        (-1, -1, -1, -1)
    );
    assert_eq!(cfg.max_msgs_per_subject, -1);
    assert_eq!(cfg.num_replicas, 1);
    let mut c = base();
    c.max_msgs = -2;
    assert_eq!(
        c.check_and_default_with(true),
        Err(ApiError::pedantic("max_msgs must be set to -1"))
    );
}

#[test]
fn name_rules() {
    let name_err = invalid("stream name is required and can not contain '.', '*', '>', '\\', '/'");
    for bad in ["", "a.b", "a*", "a>", "a b", "a\tb", "a/b", "a\\b"] {
        assert_eq!(
            check(|c| c.name = bad.into()),
            Err(name_err.clone()),
            "{bad:?}"
        );
    }
    assert_eq!(
        check(|c| c.name = "n".repeat(MAX_NAME_LEN + 1)),
        Err(invalid("stream name is too long, maximum allowed is 255"))
    );
    assert_eq!(
        check(|c| c.description = "d".repeat(4097)),
        Err(invalid(
            "stream description is too long, maximum allowed is 4096"
        ))
    );
    assert_eq!(
        check(|c| {
            c.metadata.insert("k".into(), "v".repeat(128 * 1024));
        }),
        Err(invalid(
            "stream metadata exceeds maximum size of 131072 bytes"
        ))
    );
}

#[test]
fn replicas_and_ages() {
    assert_eq!(
        check(|c| c.num_replicas = 6),
        Err(invalid("maximum replicas is 5"))
    );
    assert_eq!(
        check(|c| c.num_replicas = -1),
        Err(ApiError::replicas_count_cannot_be_negative())
    );
    assert_eq!(
        check(|c| c.max_age = -1),
        Err(invalid("max age can not be negative"))
    );
    assert_eq!(
        check(|c| c.max_age = 99_000_000),
        Err(invalid("max age needs to be >= 100ms"))
    );
    assert_eq!(
        check(|c| c.duplicate_window = -1),
        Err(invalid("duplicates window can not be negative"))
    );
    assert_eq!(
        check(|c| c.duplicate_window = 50_000_000),
        Err(invalid("duplicates window needs to be >= 100ms"))
    );
    assert_eq!(
        check(|c| {
            c.max_age = 1_000_000_000;
            c.duplicate_window = 2_000_000_000;
        }),
        Err(invalid("duplicates window can not be larger then max age"))
    );
    let cfg = check(|c| c.max_age = 30_000_000_000).expect("valid");
    assert_eq!(cfg.duplicate_window, 30_000_000_000, "capped by max_age");
    let cfg = check(|c| c.max_age = 600_000_000_000).expect("valid");
    assert_eq!(cfg.duplicate_window, 120_000_000_000);
}

#[test]
fn policy_combinations() {
    assert_eq!(
        check(|c| {
            c.deny_purge = true;
            c.allow_rollup = true;
        }),
        Err(invalid("roll-ups require the purge permission"))
    );
    assert_eq!(
        check(|c| c.discard_new_per_subject = true),
        Err(invalid(
            "discard new per subject requires discard new policy to be set"
        ))
    );
    assert_eq!(
        check(|c| {
            c.discard_new_per_subject = true;
            c.discard = DiscardPolicy::New;
        }),
        Err(invalid(
            "discard new per subject requires max msgs per subject > 0"
        ))
    );
    check(|c| {
        c.discard_new_per_subject = true;
        c.discard = DiscardPolicy::New;
        c.max_msgs_per_subject = 1;
    })
    .expect("valid");
    let counter = |f: fn(&mut StreamConfig)| {
        check(|c| {
            c.allow_msg_counter = true;
            f(c)
        })
    };
    assert_eq!(
        counter(|c| c.discard = DiscardPolicy::New),
        Err(invalid("counter stream cannot use discard new"))
    );
    assert_eq!(
        counter(|c| c.allow_msg_ttl = true),
        Err(invalid("counter stream cannot use message TTLs"))
    );
    assert_eq!(
        counter(|c| c.allow_msg_schedules = true),
        Err(invalid("counter stream cannot use message schedules"))
    );
    assert_eq!(
        counter(|c| c.retention = RetentionPolicy::Interest),
        Err(invalid("counter stream can only use limits retention"))
    );
}

#[test]
fn delete_markers_schedules_persist_mode() {
    assert_eq!(
        check(|c| c.subject_delete_marker_ttl = 500_000_000),
        Err(invalid(
            "subject delete marker TTL must be at least 1 second"
        ))
    );
    assert_eq!(
        check(|c| c.subject_delete_marker_ttl = -1),
        Err(invalid("subject delete marker TTL must not be negative"))
    );
    let cfg = check(|c| {
        c.subject_delete_marker_ttl = 1_000_000_000;
        c.deny_purge = false;
    })
    .expect("valid");
    assert!(
        cfg.allow_msg_ttl && cfg.allow_rollup,
        "markers turn on TTL and rollups"
    );
    assert_eq!(
        check(|c| {
            c.allow_msg_schedules = true;
            c.discard = DiscardPolicy::New;
        }),
        Err(invalid("message scheduling cannot use discard new"))
    );
    assert_eq!(
        check(|c| {
            c.persist_mode = PersistMode::Async;
            c.storage = StorageType::Memory;
        }),
        Err(invalid(
            "async persist mode is only supported on file storage"
        ))
    );
    assert_eq!(
        check(|c| {
            c.persist_mode = PersistMode::Async;
            c.num_replicas = 3;
        }),
        Err(invalid(
            "async persist mode is not supported on replicated streams"
        ))
    );
}

#[test]
fn subject_rules() {
    assert_eq!(
        check(|c| c.subjects = vec!["a..b".into()]),
        Err(invalid("invalid subject"))
    );
    assert_eq!(
        check(|c| c.subjects = vec!["a.>.b".into()]),
        Err(invalid("invalid subject"))
    );
    assert_eq!(
        check(|c| c.subjects = vec!["a".into(), "a".into()]),
        // nats-server's overlap check runs before its duplicate check can see the copy.
        Err(invalid("subject \"a\" overlaps with \"a\""))
    );
    assert_eq!(
        check(|c| c.subjects = vec![">".into()]),
        Err(invalid("capturing all subjects requires no-ack to be true"))
    );
    check(|c| {
        c.subjects = vec![">".into()];
        c.no_ack = true;
    })
    .expect("valid with no_ack");
    assert_eq!(
        check(|c| c.subjects = vec!["$JS.API.>".into()]),
        Err(invalid(
            "subjects that overlap with jetstream api require no-ack to be true"
        ))
    );
    check(|c| c.subjects = vec!["$JS.EVENT.ADVISORY.>".into()]).expect("advisories allowed");
    assert_eq!(
        check(|c| c.subjects = vec!["$SYS.>".into()]),
        Err(invalid(
            "subjects that overlap with system api require no-ack to be true"
        ))
    );
    check(|c| c.subjects = vec!["$SYS.ACCOUNT.>".into()]).expect("account events allowed");
    assert_eq!(
        check(|c| c.subjects = vec!["a.*".into(), "a.b".into()]),
        Err(invalid("subject \"a.*\" overlaps with \"a.b\""))
    );
    assert_eq!(
        check(|c| c.subjects = vec!["a.b".into(), "a.>".into()]),
        Err(invalid("subject \"a.b\" overlaps with \"a.>\""))
    );
    check(|c| c.subjects = vec!["a.*".into(), "b.*".into(), "a.b.c".into()]).expect("disjoint");
}

#[test]
fn mirror_and_source_rules() {
    let mirror = || StreamSource {
        name: "O".into(),
        ..StreamSource::default()
    };
    assert_eq!(
        check(|c| c.mirror = Some(mirror())),
        Err(ApiError::mirror_with_subjects())
    );
    let only_mirror = |f: fn(&mut StreamConfig)| {
        check(|c| {
            c.subjects.clear();
            c.mirror = Some(mirror());
            f(c)
        })
    };
    only_mirror(|_| {}).expect("plain mirror is valid");
    assert_eq!(
        only_mirror(|c| c.first_seq = 5),
        Err(ApiError::mirror_with_first_seq())
    );
    assert_eq!(
        only_mirror(|c| c.sources = vec![StreamSource {
            name: "X".into(),
            ..StreamSource::default()
        }]),
        Err(ApiError::mirror_with_sources())
    );
    assert_eq!(
        only_mirror(|c| c.mirror.as_mut().expect("m").name = "a.b".into()),
        Err(ApiError::mirror_invalid_stream_name())
    );
    let src = |name: &str| StreamSource {
        name: name.into(),
        ..StreamSource::default()
    };
    assert_eq!(
        check(|c| c.sources = vec![src("a.b")]),
        Err(ApiError::source_invalid_stream_name())
    );
    assert_eq!(
        check(|c| c.sources = vec![src("A"), src("A")]),
        Err(ApiError::source_duplicate_detected())
    );
    check(|c| {
        let mut filtered = src("A");
        filtered.filter_subject = "x.>".into();
        c.sources = vec![src("A"), filtered];
    })
    .expect("same origin, different filters");
}

#[test]
fn transforms_republish_placement() {
    assert_eq!(
        check(|c| c.republish = Some(RePublish {
            source: ">".into(),
            destination: "s.x".into(),
            headers_only: false
        })),
        Err(invalid(
            "stream configuration for republish destination forms a cycle"
        ))
    );
    let cfg = check(|c| {
        c.republish = Some(RePublish {
            destination: "out.>".into(),
            ..RePublish::default()
        })
    })
    .expect("valid");
    assert_eq!(
        cfg.republish.expect("kept").source,
        ">",
        "empty source means all"
    );
    assert_eq!(
        check(|c| c.subject_transform = Some(SubjectTransform {
            source: "a..b".into(),
            destination: "x".into()
        })),
        Err(ApiError::stream_transform_invalid_source(
            "invalid subject a..b"
        ))
    );
    let cfg = check(|c| c.placement = Some(Placement::default())).expect("valid");
    assert_eq!(cfg.placement, None, "empty placement is dropped");
    assert_eq!(
        check(|c| c.placement = Some(Placement {
            preferred: "n1".into(),
            ..Placement::default()
        })),
        Err(invalid("preferred server not permitted in placement"))
    );
}

#[test]
fn create_checks() {
    let req: StreamConfigRequest =
        parse_request(br#"{"name":"A","sealed":true,"pedantic":true}"#).expect("parses");
    assert!(req.pedantic);
    assert_eq!(
        req.config.check_create("B", false),
        Err(ApiError::stream_mismatch())
    );
    assert_eq!(
        req.config.check_create("A", false),
        Err(invalid("stream configuration for create can not be sealed"))
    );
    let mut c = base();
    c.mirror_direct = true;
    assert_eq!(
        c.check_create("S", false),
        Err(invalid("stream has no mirror but does have mirror direct"))
    );
}

#[test]
fn update_rules() {
    let old = base().check_and_default().expect("valid");
    let upd = |f: fn(&mut StreamConfig)| {
        let mut new = old.clone();
        f(&mut new);
        new.check_update(&old, false)
    };
    upd(|c| c.max_msgs = 10).expect("limits may change");
    assert_eq!(
        upd(|c| c.storage = StorageType::Memory),
        Err(invalid(
            "stream configuration update can not change storage type"
        ))
    );
    assert_eq!(
        upd(|c| c.retention = RetentionPolicy::WorkQueue),
        Err(invalid(
            "stream configuration update can not change retention policy to/from workqueue"
        ))
    );
    upd(|c| c.retention = RetentionPolicy::Interest).expect("limits to interest is allowed");
    let sealed = upd(|c| c.sealed = true).expect("sealing is allowed");
    assert!(sealed.deny_delete && sealed.deny_purge && sealed.discard == DiscardPolicy::New);
    let mut strict = old.clone();
    strict.deny_delete = true;
    strict.deny_purge = true;
    strict.allow_msg_ttl = true;
    strict.sealed = true;
    let back = |f: fn(&mut StreamConfig)| {
        let mut new = strict.clone();
        f(&mut new);
        new.check_update(&strict, false)
    };
    assert_eq!(
        back(|c| c.sealed = false),
        Err(invalid(
            "stream configuration update can not unseal a sealed stream"
        ))
    );
    assert_eq!(
        back(|c| c.deny_delete = false),
        Err(invalid(
            "stream configuration update can not cancel deny message deletes"
        ))
    );
    assert_eq!(
        back(|c| c.deny_purge = false),
        Err(invalid(
            "stream configuration update can not cancel deny purge"
        ))
    );
    assert_eq!(
        back(|c| c.allow_msg_ttl = false),
        Err(invalid("message TTL status can not be disabled"))
    );
    let mut renamed = old.clone();
    renamed.name = "T".into();
    assert_eq!(
        renamed.check_update(&old, false),
        Err(invalid("stream configuration name must match original"))
    );
    assert_eq!(
        old.check_update_request("X", &old, false),
        Err(ApiError::stream_mismatch())
    );
}

#[test]
fn unsupported_features_are_named() {
    assert_eq!(base().unsupported_features(), None);
    let mut c = base();
    c.compression = infinistream_protocol::jsapi::stream::StoreCompression::S2;
    c.placement = Some(Placement {
        cluster: "c".into(),
        ..Placement::default()
    });
    c.storage = StorageType::Memory;
    c.num_replicas = 3;
    c.allow_msg_ttl = true;
    assert_eq!(
        c.unsupported_features(),
        None,
        "storage details are accepted"
    );
    for (field, set) in [
        (
            "mirror",
            (|c: &mut StreamConfig| c.mirror = Some(StreamSource::default()))
                as fn(&mut StreamConfig),
        ),
        ("sources", |c| c.sources = vec![StreamSource::default()]),
        ("republish", |c| c.republish = Some(RePublish::default())),
        ("subject_transform", |c| {
            c.subject_transform = Some(SubjectTransform::default())
        }),
    ] {
        let mut c = base();
        set(&mut c);
        let err = c.unsupported_features().expect("refused");
        assert_eq!(err.err_code, 10052);
        assert!(
            err.description.contains(&format!("`{field}`")),
            "{field}: {}",
            err.description
        );
        assert!(
            err.description
                .ends_with("is not supported by InfiniStream yet")
        );
    }
}

#[test]
fn serialization_round_trips() {
    let json = br#"{"name":"R","subjects":["r.>"],"retention":"workqueue","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"persist_mode":"async","metadata":{"a":"1"}}"#;
    let cfg: StreamConfig = parse_request(json).expect("parses");
    assert_eq!(cfg.persist_mode, PersistMode::Async);
    let back: serde_json::Value = serde_json::to_value(&cfg).expect("serializes");
    assert_eq!(
        back,
        serde_json::from_slice::<serde_json::Value>(json).expect("json")
    );
    let err = parse_request::<StreamConfig>(br#"{"name":"R","retention":"forever"}"#)
        .expect_err("bad enum");
    assert_eq!(err.err_code, 10025);
}
