//! `infinistream control-plane`: the metadata service as its own process.
//!
//! Besides gRPC on `--listen`, it serves `/healthz` and `/metrics` on its HTTP port
//! (`-m`), so orchestrators can probe it like the agents; `/metrics` counts the gRPC
//! requests by method (`infinistream_control_plane_requests_total`).

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use infinistream_config::{ControlPlaneConfig, StoreUrl};
use infinistream_control_plane::server::{ServeOptions, StoreSpec, run_control_plane};
use infinistream_control_plane::{GroupKeys, Options, RequestMetrics};
use infinistream_runtime::{CancellationToken, Metrics};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;

/// Runs the control-plane service until shutdown.
pub async fn run(config: ControlPlaneConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut pairs = Vec::new();
    if let Some((id, key)) = &config.group {
        pairs.push((id.clone(), key.clone()));
    }
    let groups = match &config.groups_file {
        Some(path) => {
            if !pairs.is_empty() {
                anyhow::bail!(
                    "set either INFINISTREAM_GROUP_ID/INFINISTREAM_GROUP_KEY or --groups, not both"
                );
            }
            GroupKeys::from_toml_file(path)
                .with_context(|| format!("cannot read the groups file {}", path.display()))?
        }
        None => GroupKeys::new(pairs).context("invalid group id or key")?,
    };
    let store = match &config.store {
        StoreUrl::Embedded(dir) => StoreSpec::Embedded(dir.clone()),
        StoreUrl::Etcd(endpoints) => StoreSpec::Etcd(
            endpoints
                .iter()
                .map(|e| {
                    if e.starts_with("http://") || e.starts_with("https://") {
                        e.clone()
                    } else {
                        format!("http://{e}")
                    }
                })
                .collect(),
        ),
    };
    tracing::info!(
        version = crate::version(),
        store = ?config.store,
        listen = %config.listen,
        "starting infinistream control plane"
    );

    if let (Some(tls), StoreSpec::Etcd(_)) = (&config.tls, &store)
        && tls.ca.is_none()
    {
        anyhow::bail!(
            "INFINISTREAM_TLS_CA is required for TLS on replicas over etcd (a follower checks the leader's certificate against it)"
        );
    }
    // gRPC's port first: monitoring on port 0 must not be given the port chosen for it.
    let listener = infinistream_control_plane::server::bind(config.listen)
        .await
        .context("control plane failed")?;
    let http_addr = format!("{}:{}", config.host, config.http_port);
    let http = tokio::net::TcpListener::bind(&http_addr)
        .await
        .with_context(|| format!("cannot listen for monitoring on {http_addr}"))?;
    let metrics = Metrics::new();
    let up = Gauge::<i64>::default();
    up.set(1);
    let requests = RequestMetrics::new();
    metrics.register(|r| {
        requests.register(r);
        r.register(
            "control_plane_up",
            "1 while the control plane process runs",
            up.clone(),
        );
        r.register(
            "control_plane_build",
            "Build information",
            Info::new(vec![("version", crate::version().to_owned())]),
        );
    });
    let render = Arc::new(move || metrics.render());
    let router = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/metrics",
            get(move || {
                let render = render.clone();
                async move { render() }
            }),
        );
    tracing::info!(addr = %http.local_addr()?, "control plane monitoring listening");
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        axum::serve(http, router)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await
    });

    let served = run_control_plane(
        ServeOptions {
            store,
            listen: config.listen,
            advertise: Some(config.advertise.clone()),
            groups,
            options: Options::default(),
            requests,
            tls: match &config.tls {
                Some(tls) => crate::links::server(tls, "control plane")?,
                None => None,
            },
            replica_tls: match &config.tls {
                Some(tls) => crate::links::client(tls, "control plane's replica links")?,
                None => None,
            },
        },
        listener,
        shutdown.clone().cancelled_owned(),
    )
    .await
    .context("control plane failed");
    shutdown.cancel();
    let _ = http_task.await;
    served?;
    tracing::info!("control plane stopped");
    Ok(())
}
