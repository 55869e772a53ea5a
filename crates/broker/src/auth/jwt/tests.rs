use serde_json::json;

use super::*;

struct Chain {
    operator: nkeys::KeyPair,
    operator_jwt: String,
    account: nkeys::KeyPair,
    signer: nkeys::KeyPair,
    user: nkeys::KeyPair,
}

fn chain() -> Chain {
    let operator = nkeys::KeyPair::new_operator();
    let operator_jwt = encode(
        &json!({"iss": operator.public_key(), "sub": operator.public_key(), "iat": 1,
                "nats": {"type": "operator", "version": 2}}),
        &operator,
    )
    .expect("operator jwt");
    Chain {
        operator,
        operator_jwt,
        account: nkeys::KeyPair::new_account(),
        signer: nkeys::KeyPair::new_account(),
        user: nkeys::KeyPair::new_user(),
    }
}

impl Chain {
    fn account_jwt(&self, nats: serde_json::Value) -> String {
        let mut nats = nats;
        nats["type"] = json!("account");
        encode(
            &json!({"iss": self.operator.public_key(), "sub": self.account.public_key(),
                    "iat": 1, "nats": nats}),
            &self.operator,
        )
        .expect("account jwt")
    }

    fn operator_with(&self, nats: serde_json::Value) -> Result<Operator, JwtError> {
        Operator::new(
            std::slice::from_ref(&self.operator_jwt),
            &BTreeMap::from([(self.account.public_key(), self.account_jwt(nats))]),
        )
    }

    fn user_jwt(&self, issuer: &nkeys::KeyPair, extra: serde_json::Value) -> String {
        let mut claims = json!({"iss": issuer.public_key(), "sub": self.user.public_key(),
                                "iat": 100, "nats": {"type": "user", "version": 2}});
        if let serde_json::Value::Object(extra) = extra {
            for (k, v) in extra {
                if k == "nats" {
                    for (nk, nv) in v.as_object().expect("nats object") {
                        claims["nats"][nk] = nv.clone();
                    }
                } else {
                    claims[k] = v;
                }
            }
        }
        encode(&claims, issuer).expect("user jwt")
    }

    fn signed(&self, nonce: &str) -> String {
        let sig = self.user.sign(nonce.as_bytes()).expect("sign");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    }
}

#[test]
fn a_signed_chain_signs_in_with_the_claimed_permissions() {
    let c = chain();
    let op = c.operator_with(json!({})).expect("operator");
    let jwt = c.user_jwt(
        &c.account,
        json!({"nats": {"pub": {"allow": ["orders.>"]}, "sub": {"deny": ["secret"]},
                         "resp": {"max": 2, "ttl": 1_000_000_000}}}),
    );
    let sig = c.signed("nonce1");
    let user = op
        .verify_user(&jwt, Some((Some("nonce1"), Some(&sig))))
        .expect("verified");
    assert_eq!(user.key, c.user.public_key());
    assert_eq!(&*user.account, c.account.public_key().as_str());
    let perms = user.permissions.expect("permissions");
    assert_eq!(
        perms.publish,
        Some(SubjectPermission {
            allow: Some(vec!["orders.>".into()]),
            deny: vec![]
        })
    );
    assert_eq!(
        perms.subscribe,
        Some(SubjectPermission {
            allow: None,
            deny: vec!["secret".into()]
        })
    );
    assert_eq!(
        perms.allow_responses,
        Some(ResponsePermission {
            max_msgs: 2,
            expires: std::time::Duration::from_secs(1)
        })
    );
    // The nonce signature must match.
    assert_eq!(
        op.verify_user(&jwt, Some((Some("other"), Some(&sig))))
            .err(),
        Some(JwtError::Nonce(c.user.public_key()))
    );
    assert!(op.verify_user(&jwt, Some((Some("nonce1"), None))).is_err());
}

#[test]
fn forged_expired_and_revoked_users_are_refused() {
    let c = chain();
    let op = c
        .operator_with(json!({"revocations": {}}))
        .expect("operator");
    let sig = c.signed("n");
    let signed = Some((Some("n"), Some(sig.as_str())));
    // Signed by a key the account does not know.
    let stranger = nkeys::KeyPair::new_account();
    let forged = c.user_jwt(
        &stranger,
        json!({"nats": {"issuer_account": c.account.public_key()}}),
    );
    assert!(matches!(
        op.verify_user(&forged, signed),
        Err(JwtError::UntrustedUser { .. })
    ));
    // A tampered claim breaks the signature.
    let good = c.user_jwt(&c.account, json!({}));
    let mut parts: Vec<&str> = good.split('.').collect();
    let tampered_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        json!({"iss": c.account.public_key(), "sub": c.user.public_key(), "iat": 100,
               "nats": {"type": "user", "pub": {"allow": [">"]}}})
        .to_string(),
    );
    parts[1] = &tampered_claims;
    assert!(matches!(
        op.verify_user(&parts.join("."), signed),
        Err(JwtError::Signature(_))
    ));
    let expired = c.user_jwt(&c.account, json!({"exp": 1000}));
    assert_eq!(
        op.verify_user(&expired, signed).err(),
        Some(JwtError::Expired("user"))
    );
    let early = c.user_jwt(&c.account, json!({"nbf": i64::MAX / 2}));
    assert_eq!(
        op.verify_user(&early, signed).err(),
        Some(JwtError::NotYetValid("user"))
    );
    // Revoked at or after the JWT's iat (100); a JWT issued later passes.
    for revocations in [json!({c.user.public_key(): 100}), json!({"*": 150})] {
        let op = c
            .operator_with(json!({"revocations": revocations}))
            .expect("operator");
        assert_eq!(
            op.verify_user(&good, signed).err(),
            Some(JwtError::Revoked(c.user.public_key()))
        );
        let reissued = c.user_jwt(&c.account, json!({"iat": 200}));
        assert!(op.verify_user(&reissued, signed).is_ok());
    }
}

#[test]
fn signing_keys_bearer_tokens_and_default_permissions() {
    let c = chain();
    let op = c
        .operator_with(json!({
            "signing_keys": [c.signer.public_key()],
            "default_permissions": {"pub": {"allow": ["default.>"]}}
        }))
        .expect("operator");
    let by_signer = c.user_jwt(
        &c.signer,
        json!({"nats": {"issuer_account": c.account.public_key()}}),
    );
    let sig = c.signed("n");
    let user = op
        .verify_user(&by_signer, Some((Some("n"), Some(&sig))))
        .expect("signing key accepted");
    assert_eq!(&*user.account, c.account.public_key().as_str());
    assert_eq!(
        user.permissions
            .and_then(|p| p.publish)
            .and_then(|p| p.allow),
        Some(vec!["default.>".to_owned()]),
        "the account's default permissions apply to a user without its own"
    );
    let bearer = c.user_jwt(&c.account, json!({"nats": {"bearer_token": true}}));
    assert!(op.verify_user(&bearer, Some((None, None))).is_ok());

    // A scoped signing key's template sets the permissions and limits.
    let scoped = c
        .operator_with(
            json!({"signing_keys": [{"kind": "user_scope", "key": c.signer.public_key(),
            "role": "r", "template": {"sub": {"allow": ["scoped.>"]}, "subs": 5, "payload": -1}}]}),
        )
        .expect("operator");
    let user = scoped
        .verify_user(&by_signer, Some((Some("n"), Some(&sig))))
        .expect("scoped key accepted");
    assert_eq!(
        (user.limits.max_subs, user.limits.max_payload),
        (Some(5), None)
    );
    assert_eq!(
        user.permissions
            .and_then(|p| p.subscribe)
            .and_then(|p| p.allow),
        Some(vec!["scoped.>".to_owned()])
    );
    // As nats-server: a scoped key's users carry no permissions or limits of their own.
    let with_limits = c.user_jwt(
        &c.signer,
        json!({"nats": {"issuer_account": c.account.public_key(), "subs": -1}}),
    );
    assert_eq!(
        scoped.verify_user(&with_limits, None).err(),
        Some(JwtError::ScopedUserClaims(c.user.public_key()))
    );
}

#[test]
fn accounts_must_chain_to_the_operator_and_unbuilt_claims_are_refused() {
    let c = chain();
    let other = nkeys::KeyPair::new_operator();
    let foreign = encode(
        &json!({"iss": other.public_key(), "sub": c.account.public_key(), "iat": 1,
                "nats": {"type": "account"}}),
        &other,
    )
    .expect("jwt");
    let err = Operator::new(
        std::slice::from_ref(&c.operator_jwt),
        &BTreeMap::from([(c.account.public_key(), foreign)]),
    )
    .expect_err("untrusted");
    assert!(matches!(err, JwtError::UntrustedAccount { .. }));
    let misfiled = Operator::new(
        std::slice::from_ref(&c.operator_jwt),
        &BTreeMap::from([("AWRONG".to_owned(), c.account_jwt(json!({})))]),
    );
    assert!(matches!(misfiled, Err(JwtError::PreloadKey { .. })));
    for (nats, what) in [
        (
            json!({"exports": [{"subject": "svc", "type": "service", "response_type": "Stream"}]}),
            "service export",
        ),
        (
            json!({"limits": {"disk_storage": 1024, "disk_max_stream_bytes": 10}}),
            "disk_max_stream_bytes",
        ),
        (
            json!({"limits": {"disk_storage": 1024}, "tiered_limits": {"R1": {}}}),
            "tiered",
        ),
    ] {
        let err = c.operator_with(nats).expect_err("refused").to_string();
        assert!(
            err.contains(what) && err.contains("not supported yet"),
            "{err}"
        );
    }
    // Unlimited everything (nsc's defaults) and unlimited JetStream are fine.
    let op = c
        .operator_with(
            json!({"limits": {"conn": -1, "subs": -1, "data": -1, "payload": -1,
                                         "mem_storage": -1, "disk_storage": -1,
                                         "streams": -1, "consumer": -1}}),
        )
        .expect("unlimited");
    assert_eq!(op.jetstream_accounts().len(), 1);
}

#[test]
fn malformed_tokens_are_refused() {
    let c = chain();
    let op = c.operator_with(json!({})).expect("operator");
    for bad in ["", "a.b", "a.b.c.d", "!!.??.**"] {
        assert!(op.verify_user(bad, None).is_err(), "{bad}");
    }
    let unlimited = c.user_jwt(
        &c.account,
        json!({"nats": {"subs": -1, "data": -1, "payload": -1}}),
    );
    assert!(op.verify_user(&unlimited, None).is_ok());
    let account_as_user = c.account_jwt(json!({}));
    assert!(matches!(
        op.verify_user(&account_as_user, None),
        Err(JwtError::Type { .. })
    ));
}

#[test]
fn limits_come_from_the_user_and_its_account() {
    let c = chain();
    let op = c
        .operator_with(
            json!({"limits": {"conn": 2, "subs": 10, "payload": 512, "data": 7,
                                         "disk_storage": 4096, "mem_storage": 0,
                                         "streams": 3, "consumer": -1}}),
        )
        .expect("limited account");
    let js = op
        .jetstream_limits(&c.account.public_key())
        .expect("JetStream enabled");
    assert_eq!(
        (
            js.max_memory,
            js.max_store,
            js.max_streams,
            js.max_consumers
        ),
        (0, 4096, 3, -1)
    );
    // The smaller of the user's and the account's, per limit.
    let jwt = c.user_jwt(&c.account, json!({"nats": {"subs": 20, "payload": 100}}));
    let user = op.verify_user(&jwt, None).expect("limited user");
    assert_eq!(
        user.limits,
        ConnLimits {
            max_subs: Some(10),
            max_payload: Some(100),
            max_account_conns: Some(2),
        }
    );
    let none = c
        .operator_with(json!({}))
        .expect("operator")
        .verify_user(&c.user_jwt(&c.account, json!({})), None)
        .expect("user");
    assert_eq!(none.limits, ConnLimits::default());
    assert!(
        c.operator_with(json!({}))
            .expect("op")
            .jetstream_limits(&c.account.public_key())
            .is_none()
    );
}

#[test]
fn src_admits_only_its_cidr_blocks() {
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(source_allowed(&[], ip("8.8.8.8")));
    let local = list(&["127.0.0.0/8", "::1/128"]);
    assert!(source_allowed(&local, ip("127.0.0.1")));
    assert!(source_allowed(&local, ip("::1")));
    assert!(source_allowed(&local, ip("::ffff:127.0.0.2")));
    assert!(!source_allowed(&local, ip("10.0.0.1")));
    assert!(!source_allowed(
        &list(&["10.0.0.0/33", "nonsense"]),
        ip("10.0.0.1")
    ));
    assert!(source_allowed(&list(&["0.0.0.0/0"]), ip("10.0.0.1")));
    // A comma-separated string, as older JWTs write it.
    let c = chain();
    let op = c.operator_with(json!({})).expect("operator");
    let jwt = c.user_jwt(
        &c.account,
        json!({"nats": {"src": "10.0.0.0/8, 192.168.1.0/24"}}),
    );
    let user = op.verify_user(&jwt, None).expect("user");
    assert!(source_allowed(&user.sources, ip("192.168.1.9")));
    assert!(!source_allowed(&user.sources, ip("127.0.0.1")));
}

#[test]
fn the_earlier_of_user_and_account_expiry_closes_the_connection() {
    let c = chain();
    let far = now_millis() / 1000 + 3600;
    let op = Operator::new(
        std::slice::from_ref(&c.operator_jwt),
        &BTreeMap::from([(
            c.account.public_key(),
            encode(
                &json!({"iss": c.operator.public_key(), "sub": c.account.public_key(),
                        "iat": 1, "exp": far, "nats": {"type": "account"}}),
                &c.operator,
            )
            .expect("account jwt"),
        )]),
    )
    .expect("operator");
    let user = |exp: i64| {
        op.verify_user(&c.user_jwt(&c.account, json!({"exp": exp})), None)
            .expect("user")
            .expires
    };
    assert_eq!(
        user(far - 10),
        Some(Expiry {
            at: far - 10,
            message: "User Authentication Expired"
        })
    );
    assert_eq!(
        user(far + 10),
        Some(Expiry {
            at: far,
            message: "Account Authentication Expired"
        })
    );
}

#[test]
fn connect_times_are_read_as_nats_server_reads_them() {
    let range = |start: &str, end: &str| RawTimeRange {
        start: start.into(),
        end: end.into(),
    };
    let times = |ranges: Vec<RawTimeRange>, location: &str| Times {
        ranges,
        location: location.into(),
    };
    // 2026-12-08 10:30:00 UTC.
    let now = 1_796_725_800;
    let day = |h: i64, m: i64| now - (10 * 3600 + 30 * 60) + h * 3600 + m * 60;
    let inside = times(vec![range("09:00:00", "11:00:00")], "");
    assert_eq!(inside.window_end(now), Some(day(11, 0)));
    assert_eq!(
        times(vec![range("11:00:00", "12:00:00")], "").window_end(now),
        None
    );
    // The first window that holds `now` wins; a one-digit hour parses as in Go.
    let two = times(
        vec![range("1:00:00", "2:00:00"), range("10:00:00", "10:45:00")],
        "UTC",
    );
    assert_eq!(two.window_end(now), Some(day(10, 45)));
    // An end before the start is the next day's: 10:00 → 09:00 tomorrow holds now,
    // 11:00 → 10:45 tomorrow does not (nats-server's reading, not "until 10:45 today").
    assert_eq!(
        times(vec![range("10:00:00", "09:00:00")], "").window_end(now),
        Some(day(24 + 9, 0))
    );
    assert_eq!(
        times(vec![range("11:00:00", "10:45:00")], "").window_end(now),
        None
    );
    // Strictly inside: not at the start second itself.
    assert_eq!(
        times(vec![range("10:30:00", "11:00:00")], "").window_end(now),
        None
    );
    // In another zone: 10:30 UTC is 19:30 in Tokyo.
    assert_eq!(
        times(vec![range("19:00:00", "20:00:00")], "Asia/Tokyo").window_end(now),
        Some(day(11, 0))
    );
    // What does not parse holds nothing, as nats-server refuses it.
    assert_eq!(
        times(vec![range("09:00:00", "11:00:00")], "Nowhere/Bad").window_end(now),
        None
    );
    for bad in ["25:00:00", "10:5:00", "10:00", "aa:00:00", "10:00:00:00"] {
        assert_eq!(
            times(vec![range(bad, "23:00:00")], "").window_end(now),
            None,
            "{bad}"
        );
    }
}

#[test]
fn a_user_outside_its_connect_times_is_refused() {
    let c = chain();
    let op = c.operator_with(json!({})).expect("operator");
    let now = super::now_millis() / 1000;
    let hms = |t: i64| {
        let t = t.rem_euclid(86_400);
        format!("{:02}:{:02}:{:02}", t / 3600, t % 3600 / 60, t % 60)
    };
    let outside = json!({"times": [{"start": hms(now + 3600), "end": hms(now + 7200)}]});
    let jwt = c.user_jwt(&c.account, json!({"nats": outside}));
    assert!(matches!(
        op.verify_user(&jwt, None),
        Err(JwtError::OutsideTimes(_))
    ));
    // From a minute ago, but not across midnight (a window whose start is after its
    // end reaches into tomorrow, not back into yesterday).
    let start = (now - 60).max(now - now.rem_euclid(86_400));
    let inside = json!({"times": [{"start": hms(start), "end": hms(now + 7200)}]});
    let jwt = c.user_jwt(&c.account, json!({"nats": inside}));
    let user = op.verify_user(&jwt, None).expect("inside its window");
    let expiry = user.expires.expect("closed when the window ends");
    assert_eq!(expiry.message, "User Authentication Expired");
    // The window's end, on today's date or (across midnight) tomorrow's.
    assert_eq!((expiry.at - (now + 7200)).rem_euclid(86_400), 0);
}
