//! Advertised addresses (`INFINISTREAM_CLIENT_ADVERTISE`).

use std::net::SocketAddr;

use crate::error::{ConfigError, invalid};

/// An advertised address: a host name or IP, with a port when it differs from the
/// bound one (`nats.example.com`, `10.0.0.7:4222`, `[fd00::7]:4222`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertise {
    pub host: String,
    pub port: Option<u16>,
}

impl Advertise {
    /// Parses `INFINISTREAM_CLIENT_ADVERTISE`.
    pub fn parse(value: &str) -> Result<Advertise, ConfigError> {
        let bad = || {
            invalid(
                "INFINISTREAM_CLIENT_ADVERTISE",
                format!(
                    "must be host or host:port (e.g. nats.example.com or 10.0.0.7:4222), got `{value}`"
                ),
            )
        };
        if value.is_empty() || value.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(bad());
        }
        if let Ok(addr) = value.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(bad());
            }
            let host = match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            return Ok(Advertise {
                host,
                port: Some(addr.port()),
            });
        }
        if let Ok(ip) = value.parse::<std::net::Ipv6Addr>() {
            return Ok(Advertise {
                host: format!("[{ip}]"),
                port: None,
            });
        }
        match value.rsplit_once(':') {
            None => Ok(Advertise {
                host: value.to_owned(),
                port: None,
            }),
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(bad)?;
                if host.is_empty() || host.contains([':', '[', ']']) {
                    return Err(bad());
                }
                Ok(Advertise {
                    host: host.to_owned(),
                    port: Some(port),
                })
            }
        }
    }

    /// `host:port`, with `bound` when no port was given.
    pub fn address(&self, bound: u16) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(bound))
    }
}
