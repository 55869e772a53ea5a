//! Go-compatible RFC 3339 timestamps.

use infinistream_protocol::jsapi::Timestamp;
use proptest::prelude::*;

#[test]
fn formats_like_go() {
    assert_eq!(Timestamp::ZERO.to_string(), "0001-01-01T00:00:00Z");
    assert_eq!(
        Timestamp::from_unix_nanos(0).to_string(),
        "1970-01-01T00:00:00Z"
    );
    assert_eq!(
        Timestamp::from_unix_nanos(1_500_000_000).to_string(),
        "1970-01-01T00:00:01.5Z"
    );
    let t = Timestamp::parse("2026-11-22T07:48:44.121046507Z").expect("parses");
    assert_eq!(t.to_string(), "2026-11-22T07:48:44.121046507Z");
    // Go keeps the offset a client sent and writes it back; the instant is what compares.
    let local = Timestamp::parse("2024-02-29T23:59:59.1+01:00").expect("offset");
    assert_eq!(local.to_string(), "2024-02-29T23:59:59.1+01:00");
    assert_eq!(local.to_utc().to_string(), "2024-02-29T22:59:59.1Z");
    assert_eq!(
        local,
        Timestamp::parse("2024-02-29T22:59:59.1Z").expect("utc")
    );
    assert_eq!(local.offset_secs(), 3600);
    let west = Timestamp::parse("2024-03-01T00:30:00-05:30").expect("west");
    assert_eq!(west.to_string(), "2024-03-01T00:30:00-05:30");
    assert_eq!(west.to_utc().to_string(), "2024-03-01T06:00:00Z");
    assert_eq!(
        Timestamp::parse("0001-01-01T00:00:00Z"),
        Ok(Timestamp::ZERO)
    );
    for bad in [
        "",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T25:00:00Z",
        "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00.1234567891Z",
    ] {
        assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
    }
    let json = serde_json::to_string(&t).expect("ser");
    assert_eq!(serde_json::from_str::<Timestamp>(&json).expect("de"), t);
}

proptest! {
    #[test]
    fn round_trips(nanos in -62_135_596_800_000_000_000i128..253_402_300_799_000_000_000i128) {
        let t = Timestamp::from_unix_nanos(nanos);
        prop_assert_eq!(t.unix_nanos(), nanos);
        prop_assert_eq!(Timestamp::parse(&t.to_string()), Ok(t));
    }

    #[test]
    fn parse_never_panics(s in "[0-9T:.Z+-]{0,40}") {
        let _ = Timestamp::parse(&s);
    }
}
