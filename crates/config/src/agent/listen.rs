//! The agent's listeners: client, monitoring and peer ports.

use infinistream_types::limits;

use super::RawAgentConfig;
use crate::error::{ConfigError, invalid};

/// The validated ports (0 = any free port).
pub(super) struct Ports {
    pub(super) client: u16,
    pub(super) http: u16,
    pub(super) peer: u16,
}

impl RawAgentConfig {
    /// The three ports, the peer port defaulting to `http_port + PEER_PORT_OFFSET`; no two
    /// of them may be the same fixed port.
    pub(super) fn ports(&self) -> Result<Ports, ConfigError> {
        let port = self.port.unwrap_or(limits::CLIENT_PORT_DEFAULT);
        let http_port = self.http_port.unwrap_or(limits::HTTP_PORT_DEFAULT);
        let peer_port = match self.peer_port {
            Some(p) => p,
            None if http_port == 0 => 0,
            None => http_port.checked_add(limits::PEER_PORT_OFFSET).ok_or_else(|| {
                invalid(
                    "--http_port",
                    format!(
                        "must leave room for the peer port (http_port + {}); set --peer_port explicitly, got {http_port}",
                        limits::PEER_PORT_OFFSET
                    ),
                )
            })?,
        };
        if port != 0 && (port == http_port || port == peer_port) {
            return Err(invalid(
                "--port",
                format!("must differ from --http_port and --peer_port, got {port}"),
            ));
        }
        if http_port != 0 && http_port == peer_port {
            return Err(invalid(
                "--peer_port",
                format!("must differ from --http_port, got {peer_port}"),
            ));
        }
        Ok(Ports {
            client: port,
            http: http_port,
            peer: peer_port,
        })
    }
}
