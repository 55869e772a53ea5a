//! Precedence and validation tests. figment's `Jail` gives each test its own
//! environment and working directory.

// figment's `Jail` closures return `figment::Error`, which is large by design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use figment::Jail;
use infinistream_types::Role;

fn load(jail_file: Option<&str>, flags: &RawAgentConfig) -> Result<AgentConfig, ConfigError> {
    load_agent(jail_file.map(Path::new), flags)
}

fn err_text(raw: RawAgentConfig) -> String {
    match raw.validate() {
        Ok(cfg) => panic!("expected an error, got {cfg:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_match_the_brief() {
    Jail::expect_with(|_jail| {
        let cfg = load(None, &RawAgentConfig::default()).expect("defaults load");
        assert_eq!(cfg.batch_write, Duration::from_millis(250));
        assert_eq!(
            cfg.roles,
            BTreeSet::from([Role::ProxyProduce, Role::ProxyConsume, Role::Jobs])
        );
        assert_eq!(cfg.port, 4222);
        assert_eq!(cfg.http_port, 8222);
        assert_eq!(cfg.peer_port, 9222);
        assert_eq!(cfg.zone, "default");
        assert!(cfg.embedded_control_plane());
        assert!(cfg.bucket.starts_with("file:///"), "{}", cfg.bucket);
        assert!(cfg.bucket.ends_with("data/bucket"), "{}", cfg.bucket);
        assert_eq!(cfg.max_payload, 1024 * 1024);
        assert_eq!(cfg.auth, None);
        Ok(())
    });
}

#[test]
fn file_then_env_then_flags() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "agent.toml",
            r#"
                batch_write = 100
                zone = "file-zone"
                port = 5000
                roles = ["proxy-consume", "jobs"]
                bucket = "memory://"
            "#,
        )?;
        // File alone.
        let cfg = load(Some("agent.toml"), &RawAgentConfig::default()).expect("file");
        assert_eq!(cfg.batch_write, Duration::from_millis(100));
        assert_eq!(cfg.zone, "file-zone");
        assert_eq!(cfg.port, 5000);
        assert_eq!(cfg.roles, BTreeSet::from([Role::ProxyConsume, Role::Jobs]));
        assert_eq!(cfg.bucket, "memory://");

        // Env beats file.
        jail.set_env("INFINISTREAM_BATCH_WRITE", "300");
        jail.set_env("INFINISTREAM_ZONE", "env-zone");
        jail.set_env("INFINISTREAM_AGENT_ROLES", "proxy-produce");
        jail.set_env("INFINISTREAM_BUCKET_NAME", "s3://bucket");
        let cfg = load(Some("agent.toml"), &RawAgentConfig::default()).expect("env");
        assert_eq!(cfg.batch_write, Duration::from_millis(300));
        assert_eq!(cfg.zone, "env-zone");
        assert_eq!(cfg.roles, BTreeSet::from([Role::ProxyProduce]));
        assert_eq!(cfg.bucket, "s3://bucket");
        assert_eq!(cfg.port, 5000, "file value survives where env is silent");

        // Flags beat env.
        let flags = RawAgentConfig {
            batch_write: Some(NumberOrString::Number(75)),
            roles: Some(RolesValue::List("proxy,jobs".into())),
            port: Some(6000),
            ..Default::default()
        };
        let cfg = load(Some("agent.toml"), &flags).expect("flags");
        assert_eq!(cfg.batch_write, Duration::from_millis(75));
        assert_eq!(cfg.port, 6000);
        assert_eq!(
            cfg.zone, "env-zone",
            "env value survives where flags are silent"
        );
        assert_eq!(cfg.roles.len(), 3);
        Ok(())
    });
}

#[test]
fn env_names_are_mapped_explicitly() {
    Jail::expect_with(|jail| {
        jail.set_env("INFINISTREAM_GROUP_ID", "g1");
        jail.set_env("INFINISTREAM_GROUP_KEY", "secret");
        jail.set_env("INFINISTREAM_CONTROL_PLANE", "http://127.0.0.1:7070");
        jail.set_env("INFINISTREAM_BATCH_WRITE", "120ms");
        jail.set_env("INFINISTREAM_UNKNOWN_SETTING", "ignored");
        let cfg = load(None, &RawAgentConfig::default()).expect("env load");
        assert_eq!(cfg.group_id.as_deref(), Some("g1"));
        assert_eq!(cfg.group_key.as_deref(), Some("secret"));
        assert_eq!(cfg.control_plane.as_deref(), Some("http://127.0.0.1:7070"));
        assert_eq!(cfg.batch_write, Duration::from_millis(120));
        Ok(())
    });
}

#[test]
fn batch_write_bounds_are_named() {
    for (value, ok) in [
        (49, false),
        (50, true),
        (500, true),
        (501, false),
        (20, false),
    ] {
        let raw = RawAgentConfig {
            batch_write: Some(NumberOrString::Number(value)),
            ..Default::default()
        };
        match raw.validate() {
            Ok(cfg) => {
                assert!(ok, "{value} should be refused");
                assert_eq!(cfg.batch_write, Duration::from_millis(value));
            }
            Err(e) => {
                assert!(!ok, "{value} should be accepted: {e}");
                assert_eq!(
                    e.to_string(),
                    format!("INFINISTREAM_BATCH_WRITE must be between 50 and 500 ms, got {value}")
                );
            }
        }
    }
    let text = err_text(RawAgentConfig {
        batch_write: Some(NumberOrString::String("fast".into())),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_BATCH_WRITE must be a number of milliseconds, got `fast`"
    );
}

#[test]
fn env_batch_write_out_of_bounds_is_a_named_error() {
    Jail::expect_with(|jail| {
        jail.set_env("INFINISTREAM_BATCH_WRITE", "20");
        let err = load(None, &RawAgentConfig::default()).expect_err("20 ms refused");
        assert_eq!(
            err.to_string(),
            "INFINISTREAM_BATCH_WRITE must be between 50 and 500 ms, got 20"
        );
        Ok(())
    });
}

#[test]
fn unknown_and_empty_roles_are_errors() {
    let text = err_text(RawAgentConfig {
        roles: Some(RolesValue::List("proxy,compaction".into())),
        ..Default::default()
    });
    assert!(
        text.starts_with("INFINISTREAM_AGENT_ROLES must be"),
        "{text}"
    );
    assert!(text.ends_with("got unknown role `compaction`"), "{text}");
    let text = err_text(RawAgentConfig {
        roles: Some(RolesValue::List(" , ".into())),
        ..Default::default()
    });
    assert!(text.contains("at least one role"), "{text}");
}

#[test]
fn roles_combine_and_expand() {
    let cfg = RawAgentConfig {
        roles: Some(RolesValue::List("proxy-produce,jobs".into())),
        ..Default::default()
    }
    .validate()
    .expect("valid roles");
    assert_eq!(cfg.roles, BTreeSet::from([Role::ProxyProduce, Role::Jobs]));
}

#[test]
fn bucket_scheme_is_checked() {
    let text = err_text(RawAgentConfig {
        bucket: Some("ftp://x".into()),
        ..Default::default()
    });
    assert!(
        text.starts_with("INFINISTREAM_BUCKET_NAME must be a URL starting with one of file://"),
        "{text}"
    );
    assert!(text.ends_with("got `ftp://x`"), "{text}");
    let text = err_text(RawAgentConfig {
        bucket: Some("file://".into()),
        ..Default::default()
    });
    assert!(text.contains("must name a directory"), "{text}");
    let cfg = RawAgentConfig {
        bucket: Some("file:///abs/dir".into()),
        ..Default::default()
    }
    .validate()
    .expect("absolute file URL");
    assert_eq!(cfg.bucket, "file:///abs/dir");
}

#[test]
fn remote_control_plane_needs_group_credentials() {
    let text = err_text(RawAgentConfig {
        control_plane: Some("http://cp:7070".into()),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_GROUP_ID is required when INFINISTREAM_CONTROL_PLANE is set"
    );
    let text = err_text(RawAgentConfig {
        control_plane: Some("http://cp:7070".into()),
        group_id: Some("g".into()),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_GROUP_KEY is required when INFINISTREAM_CONTROL_PLANE is set"
    );
    let text = err_text(RawAgentConfig {
        control_plane: Some("cp:7070".into()),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_CONTROL_PLANE must be an http:// or https:// URL, got `cp:7070`"
    );
}

#[test]
fn names_are_checked() {
    let text = err_text(RawAgentConfig {
        zone: Some("us east".into()),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_ZONE may only contain letters, digits, `-`, `_` and `.`, got `us east`"
    );
    let text = err_text(RawAgentConfig {
        group_id: Some(String::new()),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_GROUP_ID must be 1 to 128 characters, got ``"
    );
}

#[test]
fn ports_derive_and_collide() {
    let cfg = RawAgentConfig {
        http_port: Some(8300),
        ..Default::default()
    }
    .validate()
    .expect("valid");
    assert_eq!(cfg.peer_port, 9300);
    let cfg = RawAgentConfig {
        port: Some(0),
        http_port: Some(0),
        ..Default::default()
    }
    .validate()
    .expect("port 0 everywhere for tests");
    assert_eq!((cfg.port, cfg.http_port, cfg.peer_port), (0, 0, 0));
    let text = err_text(RawAgentConfig {
        http_port: Some(65000),
        ..Default::default()
    });
    assert!(
        text.starts_with("--http_port must leave room for the peer port"),
        "{text}"
    );
    let text = err_text(RawAgentConfig {
        port: Some(8222),
        ..Default::default()
    });
    assert_eq!(
        text,
        "--port must differ from --http_port and --peer_port, got 8222"
    );
    let text = err_text(RawAgentConfig {
        peer_port: Some(8222),
        ..Default::default()
    });
    assert_eq!(text, "--peer_port must differ from --http_port, got 8222");
}

#[test]
fn payload_and_pending_bounds() {
    let text = err_text(RawAgentConfig {
        max_payload: Some(0),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_MAX_PAYLOAD must be between 1 byte and 64 MiB, got 0"
    );
    let text = err_text(RawAgentConfig {
        max_payload: Some(1024),
        max_pending: Some(10),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_MAX_PENDING must be at least max_payload (1024), got 10"
    );
    let text = err_text(RawAgentConfig {
        publish_buffer: Some(100),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_PUBLISH_BUFFER must be between 1 KiB and 4 GiB - 1, got 100"
    );
}

#[test]
fn auth_combinations() {
    let cfg = RawAgentConfig {
        user: Some("u".into()),
        pass: Some("p".into()),
        ..Default::default()
    }
    .validate()
    .expect("user/pass");
    assert_eq!(
        cfg.auth,
        Some(ClientAuth::UserPass {
            user: "u".into(),
            pass: "p".into()
        })
    );
    let text = err_text(RawAgentConfig {
        user: Some("u".into()),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_USER and INFINISTREAM_PASS must be set together"
    );
    let text = err_text(RawAgentConfig {
        user: Some("u".into()),
        pass: Some("p".into()),
        token: Some("t".into()),
        ..Default::default()
    });
    assert!(
        text.starts_with("INFINISTREAM_TOKEN cannot be combined"),
        "{text}"
    );
}

#[test]
fn wrong_types_in_the_file_are_reported_with_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file("agent.toml", "port = \"not-a-port\"\n")?;
        let err = load(Some("agent.toml"), &RawAgentConfig::default()).expect_err("bad type");
        let text = err.to_string();
        assert!(text.contains("port"), "{text}");
        Ok(())
    });
}

#[test]
fn missing_config_file_is_an_error() {
    Jail::expect_with(|_jail| {
        let err = load(Some("nope.toml"), &RawAgentConfig::default()).expect_err("missing file");
        assert!(err.to_string().contains("nope.toml"), "{err}");
        Ok(())
    });
}

#[test]
fn store_urls() {
    assert_eq!(
        StoreUrl::parse("embedded:/var/lib/cp").expect("embedded"),
        StoreUrl::Embedded(PathBuf::from("/var/lib/cp"))
    );
    assert_eq!(
        StoreUrl::parse("etcd://a:2379,b:2379").expect("etcd"),
        StoreUrl::Etcd(vec!["a:2379".into(), "b:2379".into()])
    );
    for bad in ["embedded:", "etcd://", "etcd://nohost", "redis://x"] {
        let text = StoreUrl::parse(bad).expect_err(bad).to_string();
        assert!(text.starts_with("--store must"), "{text}");
    }
}

#[test]
fn control_plane_needs_a_group() {
    let text = RawControlPlaneConfig::default()
        .validate()
        .expect_err("no group")
        .to_string();
    assert!(
        text.starts_with("INFINISTREAM_GROUP_ID and INFINISTREAM_GROUP_KEY"),
        "{text}"
    );
    let cfg = RawControlPlaneConfig {
        group_id: Some("g".into()),
        group_key: Some("k".into()),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    }
    .validate()
    .expect("valid control plane config");
    assert_eq!(cfg.group, Some(("g".into(), "k".into())));
    let text = RawControlPlaneConfig {
        group_id: Some("g".into()),
        group_key: Some("k".into()),
        listen: Some("nowhere".into()),
        ..Default::default()
    }
    .validate()
    .expect_err("bad listen")
    .to_string();
    assert_eq!(
        text,
        "--listen must be an ip:port socket address, got `nowhere`"
    );
}

#[test]
fn jobs_defaults_and_env() {
    Jail::expect_with(|jail| {
        let cfg = load(None, &RawAgentConfig::default()).expect("defaults load");
        assert_eq!(cfg.jobs.retention_interval, Duration::from_secs(10));
        assert_eq!(cfg.jobs.gc_interval, Duration::from_secs(300));
        assert_eq!(cfg.jobs.compaction_interval, Duration::from_secs(60));
        assert_eq!(cfg.jobs.orphan_grace, Duration::from_secs(600));
        assert_eq!(cfg.jobs.release_grace, Duration::from_secs(60));
        assert_eq!(cfg.jobs.compaction_min_entries, 8);
        assert_eq!(cfg.jobs.compaction_target_bytes, 32 * 1024 * 1024);

        jail.set_env("INFINISTREAM_JOBS_RETENTION_INTERVAL", "2500");
        jail.set_env("INFINISTREAM_JOBS_GC_INTERVAL", "60000ms");
        jail.set_env("INFINISTREAM_JOBS_COMPACTION_INTERVAL", "1000");
        jail.set_env("INFINISTREAM_JOBS_ORPHAN_GRACE", "120000");
        jail.set_env("INFINISTREAM_JOBS_RELEASE_GRACE", "0");
        jail.set_env("INFINISTREAM_JOBS_COMPACTION_MIN_ENTRIES", "4");
        jail.set_env("INFINISTREAM_JOBS_COMPACTION_TARGET_BYTES", "2097152");
        let cfg = load(None, &RawAgentConfig::default()).expect("env");
        assert_eq!(cfg.jobs.retention_interval, Duration::from_millis(2500));
        assert_eq!(cfg.jobs.gc_interval, Duration::from_secs(60));
        assert_eq!(cfg.jobs.compaction_interval, Duration::from_secs(1));
        assert_eq!(cfg.jobs.orphan_grace, Duration::from_secs(120));
        assert_eq!(cfg.jobs.release_grace, Duration::ZERO);
        assert_eq!(cfg.jobs.compaction_min_entries, 4);
        assert_eq!(cfg.jobs.compaction_target_bytes, 2 * 1024 * 1024);
        Ok(())
    });
}

#[test]
fn jobs_settings_are_checked_by_name() {
    let text = err_text(RawAgentConfig {
        jobs_orphan_grace: Some(NumberOrString::Number(1000)),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_JOBS_ORPHAN_GRACE must be at least 40000 ms (10 × the 4 s flush deadline, so a slow commit is never taken for an orphan), got 1000"
    );
    let text = err_text(RawAgentConfig {
        jobs_retention_interval: Some(NumberOrString::Number(10)),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_JOBS_RETENTION_INTERVAL must be between 100 and 86400000 ms, got 10"
    );
    let text = err_text(RawAgentConfig {
        jobs_gc_interval: Some(NumberOrString::String("soon".into())),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_JOBS_GC_INTERVAL must be a number of milliseconds, got `soon`"
    );
    let text = err_text(RawAgentConfig {
        jobs_compaction_min_entries: Some(1),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_JOBS_COMPACTION_MIN_ENTRIES must be between 2 and 10000, got 1"
    );
    let text = err_text(RawAgentConfig {
        jobs_compaction_target_bytes: Some(10),
        ..Default::default()
    });
    assert!(
        text.starts_with(
            "INFINISTREAM_JOBS_COMPACTION_TARGET_BYTES must be between 1 MiB and 1 GiB"
        ),
        "{text}"
    );
}

#[test]
fn zone_cache_sizes_and_directory() {
    let cfg = RawAgentConfig {
        data_dir: Some("/var/lib/is".into()),
        ..Default::default()
    }
    .validate()
    .expect("defaults");
    assert_eq!(cfg.cache_memory_bytes, CACHE_MEMORY_DEFAULT);
    assert_eq!(cfg.cache_disk_bytes, 0, "no disk tier by default");
    assert_eq!(cfg.cache_dir, PathBuf::from("/var/lib/is/cache"));

    let cfg = RawAgentConfig {
        cache_memory_bytes: Some(NumberOrString::String("64MiB".into())),
        cache_disk_bytes: Some(NumberOrString::String("2 GiB".into())),
        cache_dir: Some("/ssd/cache".into()),
        ..Default::default()
    }
    .validate()
    .expect("sizes with units");
    assert_eq!(cfg.cache_memory_bytes, 64 << 20);
    assert_eq!(cfg.cache_disk_bytes, 2 << 30);
    assert_eq!(cfg.cache_dir, PathBuf::from("/ssd/cache"));

    let text = err_text(RawAgentConfig {
        cache_disk_bytes: Some(NumberOrString::Number(1000)),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_CACHE_DISK_BYTES must be 0 (no disk tier) or at least 16MiB, got 1000"
    );
    let text = err_text(RawAgentConfig {
        cache_memory_bytes: Some(NumberOrString::String("lots".into())),
        ..Default::default()
    });
    assert_eq!(
        text,
        "INFINISTREAM_CACHE_MEMORY_BYTES must be a byte size such as 268435456, 256MiB or 2GiB, got `lots`"
    );
    let text = err_text(RawAgentConfig {
        cache_dir: Some(PathBuf::new()),
        ..Default::default()
    });
    assert_eq!(text, "INFINISTREAM_CACHE_DIR must not be empty");
}

#[test]
fn zone_cache_from_environment() {
    Jail::expect_with(|jail| {
        jail.set_env("INFINISTREAM_CACHE_MEMORY_BYTES", "1048576");
        jail.set_env("INFINISTREAM_CACHE_DISK_BYTES", "1GiB");
        jail.set_env("INFINISTREAM_CACHE_DIR", "/tmp/zc");
        let cfg = load(None, &RawAgentConfig::default()).expect("env");
        assert_eq!(cfg.cache_memory_bytes, 1 << 20);
        assert_eq!(cfg.cache_disk_bytes, 1 << 30);
        assert_eq!(cfg.cache_dir, PathBuf::from("/tmp/zc"));
        Ok(())
    });
}

#[test]
fn client_advertise_forms() {
    let parse = |v: &str| Advertise::parse(v);
    assert_eq!(
        parse("nats.example.com").expect("host"),
        Advertise {
            host: "nats.example.com".into(),
            port: None
        }
    );
    assert_eq!(
        parse("10.0.0.7:4333").expect("ip:port"),
        Advertise {
            host: "10.0.0.7".into(),
            port: Some(4333)
        }
    );
    assert_eq!(
        parse("[fd00::7]:4222").expect("v6:port"),
        Advertise {
            host: "[fd00::7]".into(),
            port: Some(4222)
        }
    );
    assert_eq!(
        parse("fd00::7").expect("v6").address(4222),
        "[fd00::7]:4222"
    );
    assert_eq!(
        parse("agent-0.agents:5222").expect("dns").address(4222),
        "agent-0.agents:5222"
    );
    for bad in [
        "",
        "host:",
        "host:0",
        "host:99999",
        "nats://host:4222",
        "a b",
        ":4222",
    ] {
        let text = parse(bad).expect_err(bad).to_string();
        assert!(
            text.starts_with("INFINISTREAM_CLIENT_ADVERTISE must be host or host:port"),
            "{text}"
        );
    }
}

#[test]
fn client_advertise_from_environment() {
    Jail::expect_with(|jail| {
        jail.set_env("INFINISTREAM_CLIENT_ADVERTISE", "10.1.2.3");
        let cfg = load(None, &RawAgentConfig::default()).expect("loads");
        assert_eq!(
            cfg.client_advertise,
            Some(Advertise {
                host: "10.1.2.3".into(),
                port: None
            })
        );
        Ok(())
    });
}

#[test]
fn zone_source_names_where_the_zone_came_from() {
    Jail::expect_with(|jail| {
        let cfg = load(None, &RawAgentConfig::default()).expect("defaults");
        assert_eq!(
            (cfg.zone.as_str(), cfg.zone_source),
            ("default", ZoneSource::Unset)
        );

        jail.create_file("agent.toml", r#"zone = "file-zone""#)?;
        let cfg = load(Some("agent.toml"), &RawAgentConfig::default()).expect("file");
        assert_eq!(
            (cfg.zone.as_str(), cfg.zone_source),
            ("file-zone", ZoneSource::File)
        );

        jail.set_env("INFINISTREAM_ZONE", "env-zone");
        let cfg = load(Some("agent.toml"), &RawAgentConfig::default()).expect("env");
        assert_eq!(
            (cfg.zone.as_str(), cfg.zone_source),
            ("env-zone", ZoneSource::Env)
        );

        let flags = RawAgentConfig {
            zone: Some("flag-zone".into()),
            ..Default::default()
        };
        let cfg = load(Some("agent.toml"), &flags).expect("flag");
        assert_eq!(
            (cfg.zone.as_str(), cfg.zone_source),
            ("flag-zone", ZoneSource::Flag)
        );
        Ok(())
    });
}

#[test]
fn metadata_urls_default_switch_off_and_are_checked() {
    Jail::expect_with(|jail| {
        let cfg = load(None, &RawAgentConfig::default()).expect("defaults");
        let default = Some(METADATA_URL_DEFAULT.to_owned());
        assert_eq!(
            cfg.metadata,
            MetadataUrls {
                aws: default.clone(),
                gcp: default.clone(),
                azure: default,
            }
        );

        jail.set_env("INFINISTREAM_METADATA_AWS_URL", "http://127.0.0.1:4567/");
        jail.set_env("INFINISTREAM_METADATA_GCP_URL", "off");
        let cfg = load(None, &RawAgentConfig::default()).expect("env");
        assert_eq!(cfg.metadata.aws.as_deref(), Some("http://127.0.0.1:4567"));
        assert_eq!(cfg.metadata.gcp, None);

        jail.set_env("INFINISTREAM_METADATA_AZURE_URL", "169.254.169.254");
        let err = load(None, &RawAgentConfig::default()).expect_err("no scheme");
        assert_eq!(
            err.to_string(),
            "INFINISTREAM_METADATA_AZURE_URL must be an http:// URL or `off`, got `169.254.169.254`"
        );
        Ok(())
    });
}

#[test]
fn internal_link_tls_settings_are_checked() {
    let remote = |url: &str| RawAgentConfig {
        control_plane: Some(url.into()),
        group_id: Some("g".into()),
        group_key: Some("k".into()),
        ..Default::default()
    };
    assert_eq!(
        err_text(remote("https://cp:7070")),
        "INFINISTREAM_CP_TLS_CA is required by the https:// control plane `https://cp:7070`"
    );
    assert_eq!(
        err_text(RawAgentConfig {
            cp_tls_ca: Some("ca.pem".into()),
            ..remote("http://cp:7070")
        }),
        "INFINISTREAM_CONTROL_PLANE must be https:// when INFINISTREAM_CP_TLS_* is set, got `http://cp:7070`"
    );
    assert_eq!(
        err_text(RawAgentConfig {
            cp_tls_ca: Some("ca.pem".into()),
            cp_tls_cert: Some("c.pem".into()),
            ..remote("https://cp:7070")
        }),
        "INFINISTREAM_CP_TLS_KEY is required with INFINISTREAM_CP_TLS_CERT"
    );
    assert_eq!(
        err_text(RawAgentConfig {
            peer_tls_cert: Some("c.pem".into()),
            peer_tls_key: Some("k.pem".into()),
            ..Default::default()
        }),
        "INFINISTREAM_PEER_TLS_CA is required for TLS on the peer port (dialled peers are checked against it)"
    );
    let cfg = RawAgentConfig {
        cp_tls_ca: Some("ca.pem".into()),
        peer_tls_cert: Some("c.pem".into()),
        peer_tls_key: Some("k.pem".into()),
        peer_tls_ca: Some("ca.pem".into()),
        peer_tls_verify: Some(true),
        ..remote("https://cp:7070")
    }
    .validate()
    .expect("valid TLS settings");
    let peer = cfg.peer_tls.expect("peer TLS");
    assert!(peer.verify_clients && peer.identity.is_some());
    assert_eq!(cfg.cp_tls.and_then(|t| t.ca), Some("ca.pem".into()));

    let cp = |raw: RawControlPlaneConfig| {
        RawControlPlaneConfig {
            group_id: Some("g".into()),
            group_key: Some("k".into()),
            ..raw
        }
        .validate()
        .map_err(|e| e.to_string())
    };
    assert_eq!(
        cp(RawControlPlaneConfig {
            tls_ca: Some("ca.pem".into()),
            tls_verify: Some(true),
            ..Default::default()
        })
        .expect_err("no certificate"),
        "INFINISTREAM_TLS_CERT and INFINISTREAM_TLS_KEY are required to serve the control plane over TLS"
    );
    assert_eq!(
        cp(RawControlPlaneConfig {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            tls_verify: Some(true),
            ..Default::default()
        })
        .expect_err("no CA"),
        "INFINISTREAM_TLS_CA is required with INFINISTREAM_TLS_VERIFY (client certificates chain to it)"
    );
}
