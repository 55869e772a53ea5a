//! Routing clients by connection name, WarpStream style.
//!
//! A client picks the agents it wants by ending its `CONNECT` `name` with
//! `,infinistream_proxy_target=proxy-produce` (or `proxy-consume`) and/or
//! `,infinistream_az=<zone>` — WarpStream's `,warpstream_proxy_target=` / `ws_az=`
//! client-id suffixes, spelled for InfiniStream. Grammar (see [`parse_client_name`]):
//!
//! ```text
//! name    = base *( "," segment )
//! segment = "infinistream_proxy_target=" ( "proxy-produce" / "proxy-consume" )
//!         / "infinistream_az=" 1*char          ; any non-empty zone without ","
//!         / other                              ; not starting with "infinistream_": ignored
//! ```
//!
//! The base (everything before the first comma) is the application's own name; the
//! routing keys may come in any order, each at most once; spaces around a segment are
//! ignored. An `infinistream_*` segment that is not one of the two keys, a target
//! other than the two roles, an empty zone or a repeated key is refused with `-ERR`.
//!
//! The broker knows nothing about the control plane: the agent feeds it the live
//! agents ([`ClusterView`], from the registry) with [`crate::Broker::set_cluster`], and
//! the broker derives every `connect_urls` list from it (see `docs/architecture.md`,
//! "Routing by client name").

use std::fmt;

/// The routing key naming the role a client wants.
pub const PROXY_TARGET_KEY: &str = "infinistream_proxy_target";
/// The routing key naming the zone a client prefers.
pub const ZONE_KEY: &str = "infinistream_az";
const KEY_PREFIX: &str = "infinistream_";

/// A client-facing role a connection can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyRole {
    Produce,
    Consume,
}

impl ProxyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyRole::Produce => "proxy-produce",
            ProxyRole::Consume => "proxy-consume",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "proxy-produce" => Some(ProxyRole::Produce),
            "proxy-consume" => Some(ProxyRole::Consume),
            _ => None,
        }
    }
}

impl fmt::Display for ProxyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a connection name asks for. Both `None`: no routing preference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRequest {
    pub target: Option<ProxyRole>,
    pub zone: Option<String>,
}

impl RouteRequest {
    pub fn is_empty(&self) -> bool {
        self.target.is_none() && self.zone.is_none()
    }
}

/// A routing suffix the agent refuses (sent to the client as `-ERR`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuffixError {
    #[error(
        "invalid connection name routing suffix: unknown key `{0}` (known: infinistream_proxy_target, infinistream_az)"
    )]
    UnknownKey(String),
    #[error("invalid connection name routing suffix: `{0}` is not of the form key=value")]
    NotKeyValue(String),
    #[error(
        "invalid connection name routing suffix: unknown infinistream_proxy_target `{0}` (expected proxy-produce or proxy-consume)"
    )]
    UnknownTarget(String),
    #[error("invalid connection name routing suffix: infinistream_az is empty")]
    EmptyZone,
    #[error("invalid connection name routing suffix: `{0}` is given more than once")]
    Repeated(&'static str),
}

/// Reads the routing keys from a `CONNECT` name (grammar in the module docs).
pub fn parse_client_name(name: &str) -> Result<RouteRequest, SuffixError> {
    let mut request = RouteRequest::default();
    for segment in name.split(',').skip(1).map(str::trim) {
        if !segment.starts_with(KEY_PREFIX) {
            continue;
        }
        let Some((key, value)) = segment.split_once('=') else {
            return Err(SuffixError::NotKeyValue(segment.to_owned()));
        };
        match key {
            PROXY_TARGET_KEY => {
                if request.target.is_some() {
                    return Err(SuffixError::Repeated(PROXY_TARGET_KEY));
                }
                let role = ProxyRole::parse(value)
                    .ok_or_else(|| SuffixError::UnknownTarget(value.to_owned()))?;
                request.target = Some(role);
            }
            ZONE_KEY => {
                if request.zone.is_some() {
                    return Err(SuffixError::Repeated(ZONE_KEY));
                }
                if value.is_empty() {
                    return Err(SuffixError::EmptyZone);
                }
                request.zone = Some(value.to_owned());
            }
            other => return Err(SuffixError::UnknownKey(other.to_owned())),
        }
    }
    Ok(request)
}

/// One live agent as clients can reach it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AgentEndpoint {
    /// `host:port` for NATS clients (what `connect_urls` lists).
    pub client_url: String,
    pub zone: String,
    pub produce: bool,
    pub consume: bool,
    /// The agent's registry id: what its peer link is known by (empty when unknown).
    pub agent_id: String,
}

impl AgentEndpoint {
    pub(crate) fn runs(&self, target: Option<ProxyRole>) -> bool {
        match target {
            Some(ProxyRole::Produce) => self.produce,
            Some(ProxyRole::Consume) => self.consume,
            None => self.produce || self.consume,
        }
    }
}

/// The live agents of the group (this one included), from the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterView {
    agents: Vec<AgentEndpoint>,
}

impl ClusterView {
    /// Agents in any order; duplicates (same address) are dropped.
    pub fn new(mut agents: Vec<AgentEndpoint>) -> Self {
        agents.sort();
        agents.dedup_by(|a, b| a.client_url == b.client_url);
        ClusterView { agents }
    }

    pub fn agents(&self) -> &[AgentEndpoint] {
        &self.agents
    }

    /// The client addresses of the agents that serve `request`: those running the
    /// target role (any proxy role when none is asked), in the asked zone when one of
    /// them is there. The flag says the zone was asked but nobody runs the role in it.
    pub fn urls_for(&self, request: &RouteRequest) -> (Vec<String>, bool) {
        let running: Vec<&AgentEndpoint> = self
            .agents
            .iter()
            .filter(|a| a.runs(request.target))
            .collect();
        let Some(zone) = &request.zone else {
            return (urls(&running), false);
        };
        let in_zone: Vec<&AgentEndpoint> = running
            .iter()
            .copied()
            .filter(|a| &a.zone == zone)
            .collect();
        if in_zone.is_empty() {
            (urls(&running), !running.is_empty())
        } else {
            (urls(&in_zone), false)
        }
    }
}

fn urls(agents: &[&AgentEndpoint]) -> Vec<String> {
    agents.iter().map(|a| a.client_url.clone()).collect()
}

/// The roles and zone of the agent this broker belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRoles {
    pub produce: bool,
    pub consume: bool,
    pub zone: String,
    /// This agent's registry id (how peers know it; empty for a standalone broker).
    pub agent_id: String,
}

impl Default for LocalRoles {
    /// A standalone broker serves everything, so it never sends a client away.
    fn default() -> Self {
        LocalRoles {
            produce: true,
            consume: true,
            zone: "default".to_owned(),
            agent_id: String::new(),
        }
    }
}

impl LocalRoles {
    pub fn runs(&self, role: ProxyRole) -> bool {
        match role {
            ProxyRole::Produce => self.produce,
            ProxyRole::Consume => self.consume,
        }
    }
}

/// What to do with a connection whose name asked for something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// This agent serves it; tell the client about `urls`.
    Stay { urls: Vec<String> },
    /// Another agent serves it: point the client at `urls` and close (lame duck).
    Redirect { urls: Vec<String> },
}

/// Decides where a connection that asked for `request` belongs.
pub(crate) fn decide(local: &LocalRoles, view: &ClusterView, request: &RouteRequest) -> Decision {
    let (urls, fell_back) = view.urls_for(request);
    let runs_role = match request.target {
        Some(role) => local.runs(role),
        None => local.produce || local.consume,
    };
    let zone_ok = request
        .zone
        .as_ref()
        .is_none_or(|zone| *zone == local.zone || fell_back);
    if (runs_role && zone_ok) || urls.is_empty() {
        Decision::Stay { urls }
    } else {
        Decision::Redirect { urls }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: Option<ProxyRole>, zone: Option<&str>) -> RouteRequest {
        RouteRequest {
            target,
            zone: zone.map(str::to_owned),
        }
    }

    #[test]
    fn names_without_keys_ask_for_nothing() {
        for name in ["", "orders", "orders,blue", "a,b,c", "my app, v2"] {
            assert_eq!(
                parse_client_name(name),
                Ok(RouteRequest::default()),
                "{name}"
            );
        }
    }

    #[test]
    fn keys_after_the_first_comma_in_any_order() {
        assert_eq!(
            parse_client_name("orders,infinistream_proxy_target=proxy-produce"),
            Ok(req(Some(ProxyRole::Produce), None))
        );
        assert_eq!(
            parse_client_name(
                "orders,infinistream_az=us-east-1a,infinistream_proxy_target=proxy-consume"
            ),
            Ok(req(Some(ProxyRole::Consume), Some("us-east-1a")))
        );
        assert_eq!(
            parse_client_name(
                "orders, infinistream_proxy_target=proxy-consume ,extra,infinistream_az=z1"
            ),
            Ok(req(Some(ProxyRole::Consume), Some("z1")))
        );
        assert_eq!(
            parse_client_name(",infinistream_az=z1"),
            Ok(req(None, Some("z1")))
        );
        // The base name is the application's, even if it looks like a key.
        assert_eq!(
            parse_client_name("infinistream_proxy_target=bogus"),
            Ok(RouteRequest::default())
        );
    }

    #[test]
    fn bad_suffixes_are_refused() {
        let cases = [
            (
                "a,infinistream_proxy_target=proxy",
                SuffixError::UnknownTarget("proxy".into()),
            ),
            (
                "a,infinistream_proxy_target=",
                SuffixError::UnknownTarget(String::new()),
            ),
            (
                "a,infinistream_proxy_target=Proxy-Produce",
                SuffixError::UnknownTarget("Proxy-Produce".into()),
            ),
            ("a,infinistream_az=", SuffixError::EmptyZone),
            (
                "a,infinistream_zone=z",
                SuffixError::UnknownKey("infinistream_zone".into()),
            ),
            (
                "a,infinistream_az",
                SuffixError::NotKeyValue("infinistream_az".into()),
            ),
            (
                "a,infinistream_az=x,infinistream_az=y",
                SuffixError::Repeated(ZONE_KEY),
            ),
            (
                "a,infinistream_proxy_target=proxy-consume,infinistream_proxy_target=proxy-consume",
                SuffixError::Repeated(PROXY_TARGET_KEY),
            ),
        ];
        for (name, want) in cases {
            assert_eq!(parse_client_name(name), Err(want), "{name}");
        }
        let message = parse_client_name("a,infinistream_proxy_target=x")
            .expect_err("bad target")
            .to_string();
        assert!(
            message.contains("proxy-produce or proxy-consume"),
            "{message}"
        );
    }

    fn agent(url: &str, zone: &str, produce: bool, consume: bool) -> AgentEndpoint {
        AgentEndpoint {
            agent_id: String::new(),
            client_url: url.to_owned(),
            zone: zone.to_owned(),
            produce,
            consume,
        }
    }

    fn view() -> ClusterView {
        ClusterView::new(vec![
            agent("p-a:4222", "a", true, false),
            agent("c-a:4222", "a", false, true),
            agent("c-b:4222", "b", false, true),
            agent("jobs:4222", "a", false, false),
            agent("c-b:4222", "b", false, true),
        ])
    }

    #[test]
    fn urls_follow_role_then_zone() {
        let v = view();
        assert_eq!(v.agents().len(), 4, "duplicates dropped");
        assert_eq!(
            v.urls_for(&RouteRequest::default()),
            (
                vec!["c-a:4222".into(), "c-b:4222".into(), "p-a:4222".into()],
                false
            ),
            "no preference: every proxy agent, jobs-only agents left out"
        );
        assert_eq!(
            v.urls_for(&req(Some(ProxyRole::Consume), None)).0,
            vec!["c-a:4222", "c-b:4222"]
        );
        assert_eq!(
            v.urls_for(&req(Some(ProxyRole::Consume), Some("b"))),
            (vec!["c-b:4222".into()], false)
        );
        assert_eq!(
            v.urls_for(&req(Some(ProxyRole::Produce), Some("b"))),
            (vec!["p-a:4222".into()], true),
            "nobody produces in zone b: any zone"
        );
        assert_eq!(
            v.urls_for(&req(None, Some("b"))),
            (vec!["c-b:4222".into()], false)
        );
    }

    #[test]
    fn decisions() {
        let v = view();
        let produce_a = LocalRoles {
            produce: true,
            consume: false,
            zone: "a".into(),
            agent_id: String::new(),
        };
        let consume_a = LocalRoles {
            produce: false,
            consume: true,
            zone: "a".into(),
            agent_id: String::new(),
        };
        assert_eq!(
            decide(&produce_a, &v, &req(Some(ProxyRole::Consume), None)),
            Decision::Redirect {
                urls: vec!["c-a:4222".into(), "c-b:4222".into()]
            }
        );
        assert_eq!(
            decide(&produce_a, &v, &req(Some(ProxyRole::Produce), None)),
            Decision::Stay {
                urls: vec!["p-a:4222".into()]
            }
        );
        // Runs the role, but the client wants zone b where a consume agent runs.
        assert_eq!(
            decide(&consume_a, &v, &req(Some(ProxyRole::Consume), Some("b"))),
            Decision::Redirect {
                urls: vec!["c-b:4222".into()]
            }
        );
        // Nobody produces in zone b: stay on a produce agent of another zone.
        assert_eq!(
            decide(&produce_a, &v, &req(Some(ProxyRole::Produce), Some("b"))),
            Decision::Stay {
                urls: vec!["p-a:4222".into()]
            }
        );
        // Nobody runs the role at all: stay (requests get the role error).
        let only_produce = ClusterView::new(vec![agent("p-a:4222", "a", true, false)]);
        assert_eq!(
            decide(
                &produce_a,
                &only_produce,
                &req(Some(ProxyRole::Consume), None)
            ),
            Decision::Stay { urls: vec![] }
        );
    }
}
