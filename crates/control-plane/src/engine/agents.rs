//! The agent registry: registration with a lease, heartbeats, deregistration, list.

use std::time::Duration;

use infinistream_proto::domain::AgentSpec;
use infinistream_proto::v1;
use prost::Message;

use super::{Engine, nanos};
use crate::errors::CpError;
use crate::keys;
use crate::model::{AgentRecord, decode};
use crate::store::{Compare, Op, StoreError};

impl Engine {
    pub(crate) async fn register_agent(
        &self,
        group: &str,
        spec: AgentSpec,
        lease: Duration,
    ) -> Result<v1::RegisterResponse, CpError> {
        let lease = if lease.is_zero() {
            self.opts.agent_lease_default
        } else {
            lease.clamp(Duration::from_secs(1), Duration::from_secs(300))
        };
        let expires = self.now().saturating_add(nanos(lease));
        let info = v1::AgentInfo {
            agent_id: spec.agent_id.clone(),
            roles: spec.roles,
            zone: spec.zone,
            client_address: spec.client_address,
            peer_address: spec.peer_address,
            lease_expires_unix_nanos: expires,
            version: spec.version,
        };
        self.write_plain(
            vec![],
            vec![Op::Put {
                key: keys::agent(group, &spec.agent_id),
                value: AgentRecord {
                    info: Some(info),
                    lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
                }
                .encode_to_vec(),
            }],
        )
        .await?;
        Ok(v1::RegisterResponse {
            lease_expires_unix_nanos: expires,
            lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
        })
    }

    pub(crate) async fn heartbeat(&self, group: &str, agent_id: &str) -> Result<i64, CpError> {
        let key = keys::agent(group, agent_id);
        for _ in 0..16 {
            let now = self.now();
            let Some(kv) = self.store.get(&key).await? else {
                return Err(CpError::NotFound(format!(
                    "agent `{agent_id}`: register again"
                )));
            };
            let rec: AgentRecord = decode(&kv.key, &kv.value)?;
            let mut info = rec.info.unwrap_or_default();
            let lease = info.lease_expires_unix_nanos;
            if lease <= now {
                return Err(CpError::NotFound(format!(
                    "agent `{agent_id}`: lease expired, register again"
                )));
            }
            let ext = nanos(Duration::from_millis(rec.lease_ms.max(1000)));
            info.lease_expires_unix_nanos = now.saturating_add(ext).max(lease);
            let expires = info.lease_expires_unix_nanos;
            let ok = self
                .write_plain(
                    vec![Compare::ModRevision {
                        key: key.clone(),
                        revision: Some(kv.mod_revision),
                    }],
                    vec![Op::Put {
                        key: key.clone(),
                        value: AgentRecord {
                            info: Some(info),
                            lease_ms: rec.lease_ms,
                        }
                        .encode_to_vec(),
                    }],
                )
                .await?;
            if ok {
                return Ok(expires);
            }
        }
        Err(StoreError::Unavailable(format!("agent `{agent_id}` is contended")).into())
    }

    pub(crate) async fn deregister(&self, group: &str, agent_id: &str) -> Result<(), CpError> {
        self.write_plain(
            vec![],
            vec![Op::Delete {
                key: keys::agent(group, agent_id),
            }],
        )
        .await
        .map(|_| ())
    }

    pub(crate) async fn list_agents(
        &self,
        group: &str,
        role: &str,
        zone: &str,
    ) -> Result<Vec<v1::AgentInfo>, CpError> {
        let now = self.now();
        let mut out = Vec::new();
        for kv in self
            .store
            .scan_prefix(&keys::kind_prefix(group, "agent"))
            .await?
        {
            let rec: AgentRecord = decode(&kv.key, &kv.value)?;
            let Some(info) = rec.info else { continue };
            if info.lease_expires_unix_nanos <= now
                || (!role.is_empty() && !info.roles.iter().any(|r| r == role))
                || (!zone.is_empty() && info.zone != zone)
            {
                continue;
            }
            out.push(info);
        }
        Ok(out)
    }
}
