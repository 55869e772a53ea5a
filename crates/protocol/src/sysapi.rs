//! The NATS system API (`$SYS.REQ.*`) that operators' tools read: its subjects, request
//! options and answer shapes, as nats-server 2.15.1 has them (`server/events.go`).
//!
//! The `nats` CLI's `server list` sends `$SYS.REQ.SERVER.PING` and collects one
//! [`ServerStatsMsg`] per server; `server info`, `server report jetstream` and
//! `account info` send `$SYS.REQ.SERVER.PING.VARZ` (or `$SYS.REQ.SERVER.<id>.VARZ`),
//! `…PING.JSZ` and `$SYS.REQ.USER.INFO`, and read a [`ServerApiResponse`]: the answering
//! server ([`ServerInfo`]), then `data` (the monitoring endpoint's document) or `error`.
//! A request body may narrow which servers answer ([`EventFilterOptions`]) and carry the
//! endpoint's own options; a body that is not the expected JSON is answered with a 400
//! error, as nats-server does.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::jsapi::jsz::{DEFAULT_ACCOUNT_LIMIT, JetStreamStats, JszConfig, JszLimits, JszOptions};
use crate::jsapi::time::Timestamp;

/// Every server answers (STATSZ; nats-server keeps it for older tools).
pub const SERVER_PING: &str = "$SYS.REQ.SERVER.PING";
/// The requester's own connection: answered by the server it is connected to.
pub const USER_INFO: &str = "$SYS.REQ.USER.INFO";
/// Connections of an account (`PING` in the account position: the requester's).
pub const ACCOUNT_CONNZ: &str = "$SYS.REQ.ACCOUNT.*.CONNZ";
/// Statistics of an account (`PING` in the account position: every account in use).
pub const ACCOUNT_STATZ: &str = "$SYS.REQ.ACCOUNT.*.STATZ";
/// The account token that means "the requester's account, on every server".
pub const ACCOUNT_PING: &str = "PING";

/// `ServerInfo.flags` bit: JetStream is enabled (`JetStreamEnabled`).
pub const FLAG_JETSTREAM: u64 = 1;

/// A monitoring endpoint served over the system API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Varz,
    Jsz,
    Connz,
    Healthz,
    Statsz,
    Idz,
}

impl Endpoint {
    /// The endpoints InfiniStream serves.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Varz,
        Endpoint::Jsz,
        Endpoint::Connz,
        Endpoint::Healthz,
        Endpoint::Statsz,
        Endpoint::Idz,
    ];

    /// The subject token (`VARZ`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Varz => "VARZ",
            Endpoint::Jsz => "JSZ",
            Endpoint::Connz => "CONNZ",
            Endpoint::Healthz => "HEALTHZ",
            Endpoint::Statsz => "STATSZ",
            Endpoint::Idz => "IDZ",
        }
    }

    pub fn parse(token: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.as_str() == token)
    }

    /// `$SYS.REQ.SERVER.PING.<ENDPOINT>`: every server answers.
    pub fn ping_subject(self) -> String {
        format!("{SERVER_PING}.{}", self.as_str())
    }

    /// `$SYS.REQ.SERVER.<server id>.<ENDPOINT>`: that server answers.
    pub fn server_subject(self, server_id: &str) -> String {
        format!("$SYS.REQ.SERVER.{server_id}.{}", self.as_str())
    }
}

/// What a `$SYS.REQ.*` subject asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysRequest<'a> {
    /// `$SYS.REQ.SERVER.PING` (STATSZ) or `$SYS.REQ.SERVER.PING.<ENDPOINT>`.
    Ping(Endpoint),
    /// `$SYS.REQ.SERVER.<id>.<ENDPOINT>`.
    Server { id: &'a str, endpoint: Endpoint },
    /// `$SYS.REQ.USER.INFO`.
    UserInfo,
    /// `$SYS.REQ.ACCOUNT.<account>.CONNZ`; `None` for `PING` (the requester's account).
    AccountConnz { account: Option<&'a str> },
    /// `$SYS.REQ.ACCOUNT.<account>.STATZ`; `None` for `PING` (the accounts the body
    /// names, else every account in use).
    AccountStatz { account: Option<&'a str> },
}

impl<'a> SysRequest<'a> {
    /// Parses a request subject; `None` for anything this API does not serve.
    pub fn parse(subject: &'a str) -> Option<SysRequest<'a>> {
        let rest = subject.strip_prefix("$SYS.REQ.")?;
        let tokens: Vec<&str> = rest.split('.').collect();
        match tokens.as_slice() {
            ["SERVER", "PING"] => Some(SysRequest::Ping(Endpoint::Statsz)),
            ["SERVER", "PING", ep] => Endpoint::parse(ep).map(SysRequest::Ping),
            ["SERVER", id, ep] if !id.is_empty() => {
                Endpoint::parse(ep).map(|endpoint| SysRequest::Server { id, endpoint })
            }
            ["USER", "INFO"] => Some(SysRequest::UserInfo),
            ["ACCOUNT", acc, "CONNZ"] if !acc.is_empty() => Some(SysRequest::AccountConnz {
                account: (*acc != ACCOUNT_PING).then_some(*acc),
            }),
            ["ACCOUNT", acc, "STATZ"] if !acc.is_empty() => Some(SysRequest::AccountStatz {
                account: (*acc != ACCOUNT_PING).then_some(*acc),
            }),
            _ => None,
        }
    }
}

/// The answering server, in every system API answer (nats-server's `ServerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    pub host: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// The nats-server version advertised (as in `INFO`).
    #[serde(rename = "ver")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// JetStream enabled (the older form of [`FLAG_JETSTREAM`]).
    pub jetstream: bool,
    /// Capability bits ([`FLAG_JETSTREAM`], …).
    pub flags: u64,
    /// This server's message sequence (one counter for all its answers).
    pub seq: u64,
    pub time: Timestamp,
}

/// An error in a system API answer (nats-server's `ApiError`, HTTP-style code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysApiError {
    pub code: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl SysApiError {
    /// A request body that is not the endpoint's options.
    pub fn bad_request(description: impl Into<String>) -> Self {
        SysApiError {
            code: 400,
            description: description.into(),
        }
    }

    /// The server could not build the answer.
    pub fn internal(description: impl Into<String>) -> Self {
        SysApiError {
            code: 500,
            description: description.into(),
        }
    }
}

/// The envelope of every endpoint answer but STATSZ and IDZ (`ServerAPIResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerApiResponse<T> {
    pub server: ServerInfo,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<SysApiError>,
}

fn none<T>() -> Option<T> {
    None
}

impl<T> ServerApiResponse<T> {
    pub fn from_result(server: ServerInfo, result: Result<T, SysApiError>) -> Self {
        match result {
            Ok(data) => ServerApiResponse {
                server,
                data: Some(data),
                error: None,
            },
            Err(error) => ServerApiResponse {
                server,
                data: None,
                error: Some(error),
            },
        }
    }
}

/// The STATSZ answer (`ServerStatsMsg`), which `nats server list` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatsMsg {
    pub server: ServerInfo,
    pub statsz: ServerStats,
}

/// A server's counters (`ServerStats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    pub start: Timestamp,
    /// Resident memory, bytes.
    pub mem: i64,
    pub cores: usize,
    /// CPU use, percent of one core.
    pub cpu: f64,
    pub connections: usize,
    pub total_connections: u64,
    pub active_accounts: usize,
    pub subscriptions: u64,
    pub sent: DataStats,
    pub sent_to_clients: DataStats,
    pub received: DataStats,
    pub received_from_clients: DataStats,
    pub slow_consumers: i64,
    /// Servers this one knows of, itself included.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub active_servers: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStreamVarz>,
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub gomaxprocs: usize,
}

fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

/// Messages and bytes (`DataStats` without the per-connection-kind splits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataStats {
    pub msgs: i64,
    pub bytes: i64,
}

impl DataStats {
    pub fn new(msgs: u64, bytes: u64) -> Self {
        DataStats {
            msgs: i64::try_from(msgs).unwrap_or(i64::MAX),
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
        }
    }
}

/// The `jetstream` section of VARZ and STATSZ (`JetStreamVarz`, without the meta group).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JetStreamVarz {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<JszConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<JetStreamStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<JszLimits>,
}

/// `$SYS.REQ.USER.INFO` data (`UserInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name the connection authenticated with (`[REDACTED]` for a token,
    /// empty without authentication).
    pub user: String,
    pub account: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub account_name: String,
}

/// ACCOUNT STATZ data (`AccountStatz`): the accounts asked for that are in use here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStatz {
    pub server_id: String,
    pub now: Timestamp,
    pub account_statz: Vec<AccountStat>,
}

/// One account's counters on one server (`AccountStat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStat {
    pub acc: String,
    pub name: String,
    pub conns: usize,
    pub leafnodes: usize,
    pub total_conns: usize,
    pub num_subscriptions: u64,
    pub sent: DataStats,
    pub received: DataStats,
    pub slow_consumers: i64,
}

/// ACCOUNT STATZ options (`AccountStatzEventOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct AccountStatzEventOptions {
    #[serde(flatten)]
    pub filter: EventFilterOptions,
    /// Only these accounts (empty: every account).
    pub accounts: Vec<String>,
    /// Also accounts without connections here (else a server without any stays silent).
    pub include_unused: bool,
}

/// What nats-server shows as the user of a token-authenticated connection.
pub const REDACTED_USER: &str = "[REDACTED]";

/// The IDZ answer (sent bare, without the envelope, as nats-server does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerId {
    pub name: String,
    pub host: String,
    pub id: String,
}

/// HEALTHZ data (`HealthStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    pub status: String,
    pub status_code: u16,
    /// Why the server is not healthy (nats-server's `error`), absent when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HealthStatus {
    pub fn ok() -> Self {
        HealthStatus {
            status: "ok".to_owned(),
            status_code: 200,
            error: None,
        }
    }

    /// nats-server's unhealthy answer: `unavailable`, 503, and the reason.
    pub fn unavailable(error: impl Into<String>) -> Self {
        HealthStatus {
            status: "unavailable".to_owned(),
            status_code: 503,
            error: Some(error.into()),
        }
    }
}

/// Which servers should answer a PING (`EventFilterOptions`): a server that does not
/// match stays silent. Names, hosts and clusters match by substring unless
/// `exact_match`; every tag must be the server's; the domain must be its own.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EventFilterOptions {
    #[serde(rename = "server_name", skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exact_match: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

impl EventFilterOptions {
    /// Whether `server` (with `tags`) should answer (nats-server's `filterRequest`, negated).
    pub fn selects(&self, server: &ServerInfo) -> bool {
        let field = |want: &str, have: &str| {
            want.is_empty()
                || if self.exact_match {
                    want == have
                } else {
                    have.contains(want)
                }
        };
        field(&self.name, &server.name)
            && field(&self.host, &server.host)
            && field(&self.cluster, &server.cluster)
            && self.tags.iter().all(|t| server.tags.contains(t))
            && (self.domain.is_empty() || self.domain == server.domain)
    }
}

/// Options of endpoints that take only the filter (VARZ, STATSZ, HEALTHZ; HEALTHZ's
/// own options are read and ignored: every agent reports its own health).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct FilterOnly {
    #[serde(flatten)]
    pub filter: EventFilterOptions,
}

/// CONNZ options (`ConnzEventOptions`): the filter and paging.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct ConnzEventOptions {
    #[serde(flatten)]
    pub filter: EventFilterOptions,
    pub offset: i64,
    pub limit: i64,
}

impl ConnzEventOptions {
    /// `(offset, limit)` as nats-server pages: negative offset 0, limit ≤ 0 the default.
    pub fn page(&self, default_limit: usize) -> (usize, usize) {
        let offset = usize::try_from(self.offset.max(0)).unwrap_or(0);
        let limit = if self.limit <= 0 {
            default_limit
        } else {
            usize::try_from(self.limit).unwrap_or(usize::MAX)
        };
        (offset, limit)
    }
}

/// JSZ options (`JszEventOptions`): the filter and `/jsz`'s options by their JSON names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default)]
pub struct JszEventOptions {
    #[serde(flatten)]
    pub filter: EventFilterOptions,
    pub account: String,
    pub accounts: bool,
    pub streams: bool,
    pub consumer: bool,
    pub config: bool,
    pub leader_only: bool,
    pub offset: i64,
    pub limit: i64,
    pub raft: bool,
}

impl JszEventOptions {
    /// The same options as `/jsz` reads them from its query string.
    pub fn jsz_options(&self) -> JszOptions {
        let streams = self.streams || self.consumer;
        JszOptions {
            account: self.account.clone(),
            accounts: self.accounts || streams,
            streams,
            consumers: self.consumer,
            config: self.config,
            leader_only: self.leader_only,
            raft: self.raft,
            offset: usize::try_from(self.offset.max(0)).unwrap_or(0),
            limit: if self.limit <= 0 {
                DEFAULT_ACCOUNT_LIMIT
            } else {
                usize::try_from(self.limit).unwrap_or(usize::MAX)
            },
        }
    }
}

/// Reads a request body as an endpoint's options: an empty body is the defaults, JSON
/// that does not fit is a 400 naming the problem.
pub fn parse_options<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, SysApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| SysApiError::bad_request(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, host: &str, cluster: &str) -> ServerInfo {
        ServerInfo {
            name: name.to_owned(),
            host: host.to_owned(),
            id: "NID".to_owned(),
            cluster: cluster.to_owned(),
            domain: String::new(),
            version: "2.11.0".to_owned(),
            tags: Vec::new(),
            jetstream: true,
            flags: FLAG_JETSTREAM,
            seq: 1,
            time: Timestamp::ZERO,
        }
    }

    #[test]
    fn subjects() {
        assert_eq!(
            SysRequest::parse("$SYS.REQ.SERVER.PING"),
            Some(SysRequest::Ping(Endpoint::Statsz))
        );
        assert_eq!(
            SysRequest::parse("$SYS.REQ.SERVER.PING.JSZ"),
            Some(SysRequest::Ping(Endpoint::Jsz))
        );
        assert_eq!(SysRequest::parse("$SYS.REQ.SERVER.PING.PROFILEZ"), None);
        assert_eq!(
            SysRequest::parse("$SYS.REQ.SERVER.NABC.VARZ"),
            Some(SysRequest::Server {
                id: "NABC",
                endpoint: Endpoint::Varz
            })
        );
        assert_eq!(
            SysRequest::parse("$SYS.REQ.USER.INFO"),
            Some(SysRequest::UserInfo)
        );
        assert_eq!(
            SysRequest::parse("$SYS.REQ.ACCOUNT.PING.CONNZ"),
            Some(SysRequest::AccountConnz { account: None })
        );
        assert_eq!(
            SysRequest::parse("$SYS.REQ.ACCOUNT.$G.CONNZ"),
            Some(SysRequest::AccountConnz {
                account: Some("$G")
            })
        );
        assert_eq!(
            SysRequest::parse("$SYS.REQ.ACCOUNT.PING.STATZ"),
            Some(SysRequest::AccountStatz { account: None })
        );
        assert_eq!(SysRequest::parse("$SYS.REQ.ACCOUNT.PING.SUBSZ"), None);
        assert_eq!(SysRequest::parse("$JS.API.INFO"), None);
        for ep in Endpoint::ALL {
            assert_eq!(
                SysRequest::parse(&ep.ping_subject()),
                Some(SysRequest::Ping(ep))
            );
            let direct = ep.server_subject("NX");
            assert_eq!(
                SysRequest::parse(&direct),
                Some(SysRequest::Server {
                    id: "NX",
                    endpoint: ep
                })
            );
        }
    }

    #[test]
    fn filters_like_nats_server() {
        let me = server("agent-a", "10.0.0.1", "team");
        let f = |json: &str| parse_options::<FilterOnly>(json.as_bytes()).expect("options");
        assert!(f("").filter.selects(&me));
        assert!(f("{}").filter.selects(&me));
        assert!(f(r#"{"server_name":"agent"}"#).filter.selects(&me));
        assert!(
            !f(r#"{"server_name":"agent","exact_match":true}"#)
                .filter
                .selects(&me)
        );
        assert!(
            f(r#"{"server_name":"agent-a","exact_match":true}"#)
                .filter
                .selects(&me)
        );
        assert!(!f(r#"{"cluster":"other"}"#).filter.selects(&me));
        assert!(f(r#"{"host":"10.0.0"}"#).filter.selects(&me));
        assert!(!f(r#"{"tags":["az:1"]}"#).filter.selects(&me));
        assert!(!f(r#"{"domain":"hub"}"#).filter.selects(&me));
    }

    #[test]
    fn options_and_errors() {
        let bad =
            parse_options::<ConnzEventOptions>(br#"{"offset":"x"}"#).expect_err("a string offset");
        assert_eq!(bad.code, 400);
        assert!(parse_options::<FilterOnly>(b"{bad").is_err());
        let c: ConnzEventOptions = parse_options(br#"{"offset":2,"limit":0}"#).expect("connz");
        assert_eq!(c.page(1024), (2, 1024));
        let j: JszEventOptions =
            parse_options(br#"{"consumer":true,"server_name":"a"}"#).expect("jsz");
        let o = j.jsz_options();
        assert!(o.streams && o.accounts && o.consumers);
        assert_eq!(o.limit, DEFAULT_ACCOUNT_LIMIT);
        assert_eq!(j.filter.name, "a");
    }

    #[test]
    fn envelope_shape() {
        let ok = ServerApiResponse::from_result(server("a", "h", ""), Ok(HealthStatus::ok()));
        let v = serde_json::to_value(&ok).expect("json");
        assert_eq!(v["data"]["status_code"], 200);
        assert!(v.get("error").is_none());
        assert!(v["server"].get("cluster").is_none());
        assert_eq!(v["server"]["ver"], "2.11.0");
        let err = ServerApiResponse::<HealthStatus>::from_result(
            server("a", "h", "c"),
            Err(SysApiError::bad_request("nope")),
        );
        let v = serde_json::to_value(&err).expect("json");
        assert!(v.get("data").is_none());
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["server"]["cluster"], "c");
    }
}
