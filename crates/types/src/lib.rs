//! Shared identifiers, limits and the injectable clock.
//!
//! Layer 0: no I/O, no async runtime. Every other crate may depend on this one, so it
//! stays small: names that cross crate boundaries, the numeric limits the contract
//! fixes, and the [`Clock`] trait that lets retention, leases and ack deadlines be
//! tested without sleeping.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod limits {
    //! Numeric limits fixed by the contract (docs/configuration.md).
    use std::time::Duration;

    /// Smallest accepted batch window (`INFINISTREAM_BATCH_WRITE`).
    pub const BATCH_WRITE_MIN: Duration = Duration::from_millis(50);
    /// Largest accepted batch window.
    pub const BATCH_WRITE_MAX: Duration = Duration::from_millis(500);
    /// Default batch window.
    pub const BATCH_WRITE_DEFAULT: Duration = Duration::from_millis(250);
    /// A batch is flushed early once it holds this many bytes.
    pub const BATCH_SIZE_CAP: usize = 4 * 1024 * 1024;
    /// Default `max_payload` advertised in `INFO` (nats-server's default).
    pub const MAX_PAYLOAD_DEFAULT: usize = 1024 * 1024;
    /// Default longest control line accepted (nats-server's `max_control_line`).
    pub const MAX_CONTROL_LINE_DEFAULT: usize = 4096;
    /// Default client port.
    pub const CLIENT_PORT_DEFAULT: u16 = 4222;
    /// Default monitoring port.
    pub const HTTP_PORT_DEFAULT: u16 = 8222;
    /// The peer (zone cache) port is the monitoring port plus this offset.
    pub const PEER_PORT_OFFSET: u16 = 1000;
    /// Longest group id or zone name.
    pub const NAME_MAX_LEN: usize = 128;
}

/// Whether `value` can be a group id or a zone name: 1 to [`limits::NAME_MAX_LEN`]
/// characters of `[A-Za-z0-9._-]` (they become key segments and log fields).
pub fn is_plain_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= limits::NAME_MAX_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A role an agent can run. `proxy` is shorthand for both proxy roles and is expanded
/// when parsed, so a [`Role`] set never contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Accepts JetStream publishes: batches, uploads, commits, acks.
    ProxyProduce,
    /// Serves stream reads and consumers, owns part of the zone cache.
    ProxyConsume,
    /// Runs compaction, retention and garbage collection.
    Jobs,
}

impl Role {
    /// The name used on the command line, in the environment and in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ProxyProduce => "proxy-produce",
            Role::ProxyConsume => "proxy-consume",
            Role::Jobs => "jobs",
        }
    }

    /// Parses one comma-separated element of a roles list; `proxy` yields both proxy
    /// roles. Returns `None` for an unknown name.
    pub fn parse_one(name: &str) -> Option<&'static [Role]> {
        match name.trim() {
            "proxy-produce" => Some(&[Role::ProxyProduce]),
            "proxy-consume" => Some(&[Role::ProxyConsume]),
            "proxy" => Some(&[Role::ProxyProduce, Role::ProxyConsume]),
            "jobs" => Some(&[Role::Jobs]),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Milliseconds-or-nanoseconds wall-clock time as JetStream reports it: nanoseconds
/// since the Unix epoch.
pub type UnixNanos = i64;

/// A source of time. Production code uses [`SystemClock`]; tests inject a mock so
/// retention, leases and ack deadlines are exercised without sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Wall-clock time, used for message timestamps and max_age.
    fn now(&self) -> SystemTime;

    /// Wall-clock time as nanoseconds since the Unix epoch.
    fn now_unix_nanos(&self) -> UnixNanos {
        self.now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// A clock that only moves when told to. For tests.
#[derive(Debug)]
pub struct MockClock {
    now: std::sync::Mutex<SystemTime>,
}

impl MockClock {
    /// A mock clock starting at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            now: std::sync::Mutex::new(start),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for MockClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_expands_to_both_proxy_roles() {
        assert_eq!(
            Role::parse_one("proxy"),
            Some(&[Role::ProxyProduce, Role::ProxyConsume][..])
        );
        assert_eq!(Role::parse_one(" jobs "), Some(&[Role::Jobs][..]));
        assert_eq!(Role::parse_one("proxy-fetch"), None);
    }

    #[test]
    fn plain_names_are_bounded_and_simple() {
        assert!(is_plain_name("us-east-1a"));
        assert!(is_plain_name(&"z".repeat(limits::NAME_MAX_LEN)));
        assert!(!is_plain_name(""));
        assert!(!is_plain_name(&"z".repeat(limits::NAME_MAX_LEN + 1)));
        assert!(!is_plain_name("us east"));
        assert!(!is_plain_name("projects/1/zones/a"));
    }

    #[test]
    fn mock_clock_moves_only_when_advanced() {
        let clock = MockClock::new(UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(clock.now_unix_nanos(), 10_000_000_000);
        clock.advance(Duration::from_millis(5));
        assert_eq!(clock.now_unix_nanos(), 10_005_000_000);
    }
}
