//! The broker's side of routing by client name: the live agents it was given and the
//! `connect_urls` it derives from them (the rules are [`crate::routing`]'s).

use std::sync::Arc;

use super::{Broker, Inner};
use crate::routing::{ClusterView, ProxyRole, RouteRequest};

impl Inner {
    /// The `connect_urls` for a connection that asked for `request` (`None`: the
    /// `INFO` a connection gets before its `CONNECT`, every proxy agent).
    pub(crate) fn connect_urls_for(&self, request: Option<&RouteRequest>) -> Vec<String> {
        match self.cluster.read().as_ref() {
            Some(view) => view.urls_for(request.unwrap_or(&RouteRequest::default())).0,
            None => self.config.connect_urls.clone(),
        }
    }
}

impl Broker {
    /// Replaces the live agents (from the agent registry). When they changed, every
    /// connected client whose `connect_urls` changed gets an async `INFO`.
    /// Connections already open are never moved.
    pub fn set_cluster(&self, view: ClusterView) {
        let inner = &self.inner;
        {
            let mut current = inner.cluster.write();
            if current.as_deref() == Some(&view) {
                return;
            }
            tracing::info!(
                agents = view.agents().len(),
                urls = %view.urls_for(&RouteRequest::default()).0.join(","),
                "cluster view changed"
            );
            *current = Some(Arc::new(view));
        }
        let clients: Vec<_> = inner.clients.lock().values().cloned().collect();
        for client in clients {
            let request = client.routing.lock().request.clone();
            let urls = inner.connect_urls_for(Some(&request));
            client.update_connect_urls(inner, urls);
        }
    }

    /// The live agents as last set by [`Broker::set_cluster`].
    pub fn cluster(&self) -> Option<Arc<ClusterView>> {
        self.inner.cluster.read().clone()
    }

    /// Client addresses of the live agents running `role`: those in this agent's zone
    /// when there are any, else all (for errors that say where a role runs).
    pub fn agents_running(&self, role: ProxyRole) -> Vec<String> {
        let request = RouteRequest {
            target: Some(role),
            zone: Some(self.inner.config.roles.zone.clone()),
        };
        self.inner.connect_urls_for(Some(&request))
    }

    /// Sends `-ERR '<message>'` to client connection `cid` (an [`crate::InternalMsg`]'s
    /// `client_id`) without closing it, as nats-server does for a refused publish.
    /// False when no such connection is open.
    pub fn send_client_error(&self, cid: u64, message: &str) -> bool {
        let client = self.inner.clients.lock().get(&cid).cloned();
        match client {
            Some(client) => {
                client.send_err(message);
                true
            }
            None => false,
        }
    }
}
