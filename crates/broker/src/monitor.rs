//! Monitoring data in nats-server's shape: what `/varz`, `/connz` and `/metrics` answer.
//! The broker only gathers it; the agent serves it over HTTP (`infinistream::monitor`),
//! so no crate that links the broker links an HTTP server.
//!
//! Dashboards and tools (the `nats` CLI, Prometheus exporters written for nats-server)
//! read these field names, so they follow nats-server's JSON. Memory and CPU come from
//! `/proc/self` (Linux); elsewhere they read as 0.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::Broker;

/// `/varz`.
#[derive(Debug, Clone, Serialize)]
pub struct Varz {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub infinistream_version: String,
    pub proto: i32,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub auth_required: bool,
    pub max_connections: i64,
    pub ping_interval: u64,
    pub ping_max: u32,
    pub max_control_line: usize,
    pub max_payload: usize,
    pub max_pending: usize,
    pub connect_urls: Vec<String>,
    pub start: String,
    pub now: String,
    pub uptime: String,
    pub mem: u64,
    pub cores: usize,
    pub cpu: f64,
    pub connections: usize,
    pub total_connections: u64,
    pub routes: u32,
    pub remotes: u32,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub slow_consumers: u64,
    pub subscriptions: usize,
    pub jetstream_enabled: bool,
}

/// A client connection as [`crate::Broker::client_details`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDetails {
    pub start: SystemTime,
    /// Its IP address.
    pub host: String,
    pub id: u64,
    /// The account it signed in to.
    pub account: String,
    /// As in `/connz` (`[REDACTED]` for a token, empty without authentication).
    pub user: String,
    pub name: String,
    pub lang: String,
    pub version: String,
}

/// One entry of `/connz`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnInfo {
    pub cid: u64,
    pub kind: String,
    #[serde(rename = "type")]
    pub conn_type: String,
    pub ip: String,
    pub port: u16,
    pub start: String,
    pub uptime: String,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The user it authenticated as (nats-server shows it with `auth=true`; never a
    /// password or token).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authorized_user: String,
}

/// `/connz`.
#[derive(Debug, Clone, Serialize)]
pub struct Connz {
    pub server_id: String,
    pub now: String,
    pub num_connections: usize,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub connections: Vec<ConnInfo>,
}

/// Default page size of `/connz`, as nats-server's.
pub const DEFAULT_CONNZ_LIMIT: usize = 1024;

impl Broker {
    pub fn varz(&self) -> Varz {
        let inner = &self.inner;
        let c = &inner.config;
        let now = SystemTime::now();
        let peer_links = inner.peers.read().len() as u32;
        let (mem, cpu) = inner.cpu.lock().sample();
        Varz {
            server_id: inner.server_id.clone(),
            server_name: c.server_name.clone(),
            version: c.version.clone(),
            infinistream_version: crate::config::INFINISTREAM_VERSION.to_owned(),
            proto: 1,
            go: "go1.24.0".to_owned(),
            host: c.host.clone(),
            port: self.local_addr().map_or(0, |a| a.port()),
            auth_required: inner.auth_required(),
            max_connections: 65536,
            ping_interval: u64::try_from(c.ping_interval.as_nanos()).unwrap_or(u64::MAX),
            ping_max: c.max_pings_out,
            max_control_line: c.max_control_line,
            max_payload: c.max_payload,
            max_pending: c.max_pending,
            connect_urls: inner.connect_urls_for(None),
            start: rfc3339(inner.start),
            now: rfc3339(now),
            uptime: format_uptime(inner.start_instant.elapsed()),
            mem,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            connections: inner.clients.lock().len(),
            total_connections: inner.stats.total_connections.get(),
            // The route mesh's links to peer agents (nats-server counts its cluster routes).
            routes: peer_links,
            remotes: peer_links,
            in_msgs: inner.stats.in_msgs.get(),
            out_msgs: inner.stats.out_msgs.get(),
            in_bytes: inner.stats.in_bytes.get(),
            out_bytes: inner.stats.out_bytes.get(),
            slow_consumers: inner.stats.slow_consumers.get(),
            subscriptions: inner.sublist.read().len(),
            jetstream_enabled: c.jetstream,
        }
    }

    /// All connections (first [`DEFAULT_CONNZ_LIMIT`]).
    pub fn connz(&self) -> Connz {
        self.connz_page(0, DEFAULT_CONNZ_LIMIT)
    }

    /// Connections ordered by cid, `limit` of them starting at `offset`.
    pub fn connz_page(&self, offset: usize, limit: usize) -> Connz {
        let mut clients: Vec<_> = self.inner.clients.lock().values().cloned().collect();
        clients.sort_by_key(|c| c.cid);
        let total = clients.len();
        let connections: Vec<ConnInfo> = clients
            .iter()
            .skip(offset)
            .take(limit)
            .map(|c| {
                let info = c.info.lock().clone();
                let (out_msgs, out_bytes) = {
                    let out = c.out.lock();
                    (out.out_msgs, out.out_bytes)
                };
                let pending = c.pending_bytes();
                ConnInfo {
                    cid: c.cid,
                    kind: "Client".to_owned(),
                    conn_type: "nats".to_owned(),
                    ip: c.addr.ip().to_string(),
                    port: c.addr.port(),
                    start: rfc3339(c.start),
                    uptime: format_uptime(c.start.elapsed().unwrap_or_default()),
                    pending_bytes: pending,
                    in_msgs: c.in_msgs.load(Ordering::Relaxed),
                    out_msgs,
                    in_bytes: c.in_bytes.load(Ordering::Relaxed),
                    out_bytes,
                    subscriptions: c.subs.lock().len(),
                    name: info.name,
                    lang: info.lang,
                    version: info.version,
                    authorized_user: info.user,
                }
            })
            .collect();
        Connz {
            server_id: self.inner.server_id.clone(),
            now: rfc3339(SystemTime::now()),
            num_connections: connections.len(),
            total,
            offset,
            limit,
            connections,
        }
    }

    /// The user connection `cid` authenticated as (see `$SYS.REQ.USER.INFO`): the
    /// user name, `[REDACTED]` for a token, empty without authentication; `None` when
    /// no such connection is open.
    pub fn connection_user(&self, cid: u64) -> Option<String> {
        let client = self.inner.clients.lock().get(&cid).cloned()?;
        let user = client.info.lock().user.clone();
        Some(user)
    }

    /// Who connection `cid` is, as nats-server's advisories describe a client (the
    /// API audit's `client`); `None` when no such connection is open.
    pub fn client_details(&self, cid: u64) -> Option<ClientDetails> {
        let client = self.inner.clients.lock().get(&cid).cloned()?;
        let info = client.info.lock().clone();
        let account = client.login().map_or_else(
            || self.inner.internal_account.to_string(),
            |l| l.account.to_string(),
        );
        Some(ClientDetails {
            start: client.start,
            host: client.addr.ip().to_string(),
            id: cid,
            account,
            user: info.user,
            name: info.name,
            lang: info.lang,
            version: info.version,
        })
    }

    /// The broker's own counters in Prometheus text format.
    pub fn encode_metrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.own_registry);
        out
    }
}

impl Broker {
    /// The `/metrics` body: `extra` (the agent's registry, in OpenMetrics text) followed
    /// by the broker's own counters unless they are registered in that registry already,
    /// with a single `# EOF` at the end.
    pub fn metrics_text(&self, extra: &str) -> String {
        let own_registered = self
            .inner
            .metrics_registered_externally
            .load(Ordering::Acquire);
        let mut body = String::new();
        if own_registered {
            body.push_str(extra);
        } else {
            // Two OpenMetrics documents: keep a single `# EOF` at the very end.
            body.push_str(extra.trim_end().trim_end_matches("# EOF").trim_end());
            if !body.is_empty() {
                body.push('\n');
            }
            body.push_str(&self.encode_metrics());
        }
        body
    }
}

/// nats-style duration: `1y2d3h4m5s`, leading zero units omitted.
pub fn format_uptime(d: Duration) -> String {
    let mut secs = d.as_secs();
    let years = secs / (365 * 86400);
    secs %= 365 * 86400;
    let days = secs / 86400;
    secs %= 86400;
    let hours = secs / 3600;
    secs %= 3600;
    let mins = secs / 60;
    secs %= 60;
    let mut out = String::new();
    let mut started = false;
    for (v, unit) in [(years, 'y'), (days, 'd'), (hours, 'h'), (mins, 'm')] {
        if v > 0 || started {
            out.push_str(&v.to_string());
            out.push(unit);
            started = true;
        }
    }
    out.push_str(&secs.to_string());
    out.push('s');
    out
}

/// RFC 3339 UTC timestamp with microseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_like_nats() {
        assert_eq!(format_uptime(Duration::from_secs(5)), "5s");
        assert_eq!(format_uptime(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(format_uptime(Duration::from_secs(86400 + 5)), "1d0h0m5s");
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000Z"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59.000000Z");
    }
}
