//! The JSON bodies of `CONNECT` (client → server) and `INFO` (server → client).
//!
//! Field names are nats-server's; unknown fields are ignored on input so newer clients
//! keep working, and optional fields are omitted on output the way nats-server omits
//! them (`omitempty`), because some clients treat presence as meaning.

use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Options a client sends in `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connect {
    /// Ask for `+OK` after every operation. Absent means true, as in nats-server
    /// (every real client sends it explicitly).
    #[serde(default = "default_true")]
    pub verbose: bool,
    /// Ask for strict subject checking. Absent means true, as in nats-server.
    #[serde(default = "default_true")]
    pub pedantic: bool,
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// Connection name; InfiniStream routes on suffixes of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub lang: String,
    #[serde(default)]
    pub version: String,
    /// Client protocol level (0 or 1).
    #[serde(default)]
    pub protocol: i32,
    /// Deliver this connection's own publishes to its own subscriptions.
    #[serde(default = "default_true")]
    pub echo: bool,
    /// The client understands `HPUB`/`HMSG`.
    #[serde(default)]
    pub headers: bool,
    /// The client wants a 503 status message for requests nobody listens to.
    #[serde(default)]
    pub no_responders: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl Default for Connect {
    fn default() -> Self {
        Connect {
            verbose: false,
            pedantic: false,
            tls_required: false,
            auth_token: None,
            user: None,
            pass: None,
            name: None,
            lang: String::new(),
            version: String::new(),
            protocol: 1,
            echo: true,
            headers: true,
            no_responders: true,
            jwt: None,
            nkey: None,
            sig: None,
        }
    }
}

/// What the server tells a client in `INFO`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Info {
    pub server_id: String,
    pub server_name: String,
    /// nats-server compatible version: clients gate features on it.
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub go: String,
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub headers: bool,
    pub max_payload: usize,
    pub proto: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub auth_required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub jetstream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// Lame-duck mode: the server is going away, clients should reconnect elsewhere.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ldm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// InfiniStream's own crate version (the `version` field mimics nats-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infinistream_version: Option<String>,
}
