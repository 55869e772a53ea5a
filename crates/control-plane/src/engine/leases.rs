//! Job leases: one holder per job name at a time, with fencing tokens.

use std::time::Duration;

use infinistream_proto::v1;
use prost::Message;

use super::{Engine, nanos};
use crate::errors::CpError;
use crate::keys;
use crate::model::{LeaseRecord, decode};
use crate::store::{Compare, Op, StoreError};

impl Engine {
    pub(crate) async fn acquire_lease(
        &self,
        group: &str,
        name: &str,
        holder: &str,
        ttl: Duration,
        renew_only: bool,
    ) -> Result<v1::LeaseResponse, CpError> {
        let key = keys::lease(group, name);
        // A CAS loop: retried only when someone else changed the lease meanwhile.
        for _ in 0..16 {
            let now = self.now();
            let current = self.store.get(&key).await?;
            let (rec, rev) = match &current {
                Some(kv) => (
                    Some(decode::<LeaseRecord>(&kv.key, &kv.value)?),
                    Some(kv.mod_revision),
                ),
                None => (None, None),
            };
            let free = rec
                .as_ref()
                .is_none_or(|r| r.expires_unix_nanos <= now || r.holder == holder);
            let ours = rec
                .as_ref()
                .is_some_and(|r| r.holder == holder && r.expires_unix_nanos > now);
            if !free || (renew_only && !ours) {
                let r = rec.unwrap_or_default();
                return Ok(v1::LeaseResponse {
                    acquired: false,
                    holder: r.holder,
                    expires_unix_nanos: r.expires_unix_nanos,
                    generation: r.generation,
                });
            }
            let generation = match &rec {
                Some(r) if r.holder == holder && r.expires_unix_nanos > now => r.generation,
                Some(r) => r.generation + 1,
                None => 1,
            };
            let next = LeaseRecord {
                holder: holder.to_owned(),
                expires_unix_nanos: now.saturating_add(nanos(ttl)),
                generation,
            };
            let ok = self
                .write_plain(
                    vec![Compare::ModRevision {
                        key: key.clone(),
                        revision: rev,
                    }],
                    vec![Op::Put {
                        key: key.clone(),
                        value: next.encode_to_vec(),
                    }],
                )
                .await?;
            if ok {
                return Ok(v1::LeaseResponse {
                    acquired: true,
                    holder: next.holder,
                    expires_unix_nanos: next.expires_unix_nanos,
                    generation: next.generation,
                });
            }
        }
        Err(StoreError::Unavailable(format!("lease `{name}` is contended")).into())
    }

    pub(crate) async fn release_lease(
        &self,
        group: &str,
        name: &str,
        holder: &str,
    ) -> Result<bool, CpError> {
        let key = keys::lease(group, name);
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(false);
        };
        let rec: LeaseRecord = decode(&kv.key, &kv.value)?;
        if rec.holder != holder {
            return Ok(false);
        }
        // Keep the generation: expire the lease instead of deleting it.
        let expired = LeaseRecord {
            expires_unix_nanos: 0,
            ..rec
        };
        self.write_plain(
            vec![Compare::ModRevision {
                key: key.clone(),
                revision: Some(kv.mod_revision),
            }],
            vec![Op::Put {
                key,
                value: expired.encode_to_vec(),
            }],
        )
        .await
    }
}
