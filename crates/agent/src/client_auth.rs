//! Client authentication from the agent's configuration to the broker, at start-up
//! and on `SIGHUP` (nats-server's config reload for `authorization` and the client
//! `tls` certificates).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use infinistream_broker::{
    Auth, Broker, Credential, DEFAULT_ACCOUNT, Permissions, ResponsePermission, StreamImport,
    SubjectPermission, User, Users,
};
use infinistream_config::{ClientAuth, OperatorSpec, PermissionsSpec, RawAgentConfig, TlsFiles};
use infinistream_cp_client::{CallError, ControlPlaneClient};
use infinistream_proto::v1;
use infinistream_protocol::jsapi::account::AccountLimits;

/// The broker's form of the configured client authentication.
pub fn broker_auth(auth: &ClientAuth) -> anyhow::Result<Auth> {
    Ok(match auth {
        ClientAuth::UserPass { user, pass } => Auth::UserPass {
            user: user.clone(),
            pass: pass.clone(),
        },
        ClientAuth::Token(token) => Auth::Token(token.clone()),
        ClientAuth::Users {
            users: specs,
            jetstream_account,
            stream_imports,
            service_imports,
            auth_callout,
            ..
        } => {
            let services = service_imports
                .iter()
                .map(|i| infinistream_broker::ServiceImport {
                    from: i.from.as_str().into(),
                    into: i.into.as_str().into(),
                    subject: i.subject.clone().into(),
                    local: i.local.clone().into(),
                })
                .collect();
            let imports = stream_imports
                .iter()
                .map(|i| StreamImport {
                    from: i.from.as_str().into(),
                    into: i.into.as_str().into(),
                    subject: i.subject.clone().into(),
                    prefix: i.prefix.clone().map(Into::into),
                })
                .collect();
            let users = specs
                .iter()
                .map(|spec| User {
                    name: spec.name.clone(),
                    credential: match &spec.password {
                        Some(pass) => Credential::password(pass.clone()),
                        None => Credential::NKey,
                    },
                    permissions: spec.permissions.as_ref().map(permissions),
                    account: spec.account.as_deref().unwrap_or(DEFAULT_ACCOUNT).into(),
                })
                .collect();
            let mut users = Users::new(users)
                .context("users")?
                .with_jetstream_account(jetstream_account)
                .with_stream_imports(imports)
                .with_service_imports(services);
            if let Some(callout) = auth_callout {
                users = users.with_callout(infinistream_broker::Callout {
                    issuer: callout.issuer.clone(),
                    auth_users: callout.auth_users.clone(),
                    account: callout.account.as_str().into(),
                });
            }
            Auth::Users(Arc::new(users))
        }
        ClientAuth::Operator(spec) => {
            let operator = infinistream_broker::jwt::Operator::new(&spec.operators, &spec.accounts)
                .context("operator mode (decentralized JWT auth)")?;
            Auth::Users(Arc::new(
                Users::operator(operator).context("operator mode (decentralized JWT auth)")?,
            ))
        }
    })
}

/// The JetStream account's limits in `$JS.API.INFO`'s form (-1 = unlimited): the
/// account's `jetstream = { ... }` table, or in operator mode its account JWT's
/// `mem_storage`, `disk_storage`, `streams` and `consumer`; unlimited without any.
pub fn jetstream_limits(auth: Option<&ClientAuth>) -> AccountLimits {
    if let Some(ClientAuth::Operator(spec)) = auth {
        return operator_jetstream(spec).map(|(_, l)| l).unwrap_or_default();
    }
    let Some(ClientAuth::Users {
        jetstream_limits: l,
        ..
    }) = auth
    else {
        return AccountLimits::default();
    };
    api_limits(l)
}

/// The JetStream accounts other than the one that owns the bare stream ids, with
/// their limits in `$JS.API.INFO`'s form (see `infinistream_config::accounts`).
pub fn more_jetstream(auth: Option<&ClientAuth>) -> Vec<(String, AccountLimits)> {
    match auth {
        Some(ClientAuth::Users { jetstream_more, .. }) => jetstream_more
            .iter()
            .map(|(account, l)| (account.clone(), api_limits(l)))
            .collect(),
        _ => Vec::new(),
    }
}

fn api_limits(l: &infinistream_config::JetStreamLimits) -> AccountLimits {
    let limit = |v: Option<u64>| v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    AccountLimits {
        max_memory: limit(l.max_mem),
        max_store: limit(l.max_file),
        max_streams: limit(l.max_streams),
        max_consumers: limit(l.max_consumers),
        ..AccountLimits::default()
    }
}

/// Sends the JetStream account's limits ([`jetstream_limits`], all -1 without any)
/// to the control plane, which enforces them for every agent of the group (the
/// last agent started sets them; the agents of a group are meant to share them).
/// Retried while the control plane is unavailable.
pub(crate) async fn send_jetstream_limits(
    cp: &ControlPlaneClient,
    auth: Option<&ClientAuth>,
    readiness: &infinistream_runtime::health::Readiness,
    shutdown: &infinistream_runtime::CancellationToken,
) -> anyhow::Result<()> {
    let operator_account = match auth {
        Some(ClientAuth::Operator(spec)) => operator_jetstream(spec).map(|(a, _)| a),
        _ => None,
    };
    let account = match auth {
        Some(ClientAuth::Users {
            jetstream_account, ..
        }) => jetstream_account.as_str(),
        _ => operator_account.as_deref().unwrap_or(DEFAULT_ACCOUNT),
    };
    // The bare ids' limits, then each other JetStream account's.
    let mut all = vec![(String::new(), account.to_owned(), jetstream_limits(auth))];
    all.extend(
        more_jetstream(auth)
            .into_iter()
            .map(|(account, l)| (account.clone(), account, l)),
    );
    for (ids, account, l) in all {
        let limits = v1::AccountLimits {
            account,
            max_streams: l.max_streams,
            max_consumers: l.max_consumers,
            max_storage: l.max_store,
            max_memory: l.max_memory,
        };
        send_limits(cp, &ids, limits, readiness, shutdown).await?;
    }
    Ok(())
}

/// Sends one account's limits (`ids`: the account part of its streams' ids, empty
/// for the bare ids), retried while the control plane is unavailable.
async fn send_limits(
    cp: &ControlPlaneClient,
    ids: &str,
    limits: v1::AccountLimits,
    readiness: &infinistream_runtime::health::Readiness,
    shutdown: &infinistream_runtime::CancellationToken,
) -> anyhow::Result<()> {
    crate::health::retry(
        "control plane",
        crate::health::CONTROL_PLANE,
        readiness,
        shutdown,
        || async {
            match cp.set_account_limits_in(ids, limits.clone()).await {
                Ok(()) => Ok(()),
                Err(e @ CallError::Unavailable { .. }) => {
                    Err(crate::health::Failure::Retry(e.to_string()))
                }
                Err(e) => Err(crate::health::Failure::Fatal(anyhow::anyhow!(
                    "the control plane refused the JetStream account limits: {e}"
                ))),
            }
        },
    )
    .await
}

/// Operator mode: the account whose JWT enables JetStream, and the JetStream limits
/// that JWT sets. None: no such account (or JWTs `broker_auth` refuses at start-up,
/// before this is asked).
fn operator_jetstream(spec: &OperatorSpec) -> Option<(String, AccountLimits)> {
    let operator = infinistream_broker::jwt::Operator::new(&spec.operators, &spec.accounts).ok()?;
    let account = operator.jetstream_accounts().first()?.to_string();
    let limits = operator.jetstream_limits(&account)?;
    Some((account, limits))
}

fn permissions(spec: &PermissionsSpec) -> Permissions {
    let rule = |r: &(Option<Vec<String>>, Vec<String>)| SubjectPermission {
        allow: r.0.clone(),
        deny: r.1.clone(),
    };
    Permissions {
        publish: spec.publish.as_ref().map(rule),
        subscribe: spec.subscribe.as_ref().map(rule),
        allow_responses: spec
            .allow_responses
            .map(|(max, expires)| ResponsePermission {
                max_msgs: usize::try_from(max).unwrap_or(usize::MAX),
                expires,
            }),
    }
}

/// A reload with the URL resolver: the (possibly new) operator JWTs over the account
/// JWTs fetched or pushed so far, which a reload keeps (the resolver has no list of
/// its own); JetStream keeps serving the account it served.
fn url_resolver_auth(broker: &Broker, spec: &OperatorSpec) -> anyhow::Result<Auth> {
    let learned = match broker.auth() {
        Some(Auth::Users(users)) => users
            .trust()
            .map(|t| t.account_jwts().clone())
            .unwrap_or_default(),
        _ => Default::default(),
    };
    let operator = infinistream_broker::jwt::Operator::new(&spec.operators, &learned)
        .context("operator mode (decentralized JWT auth)")?;
    Ok(Auth::Users(Arc::new(Users::operator_serving(
        operator,
        broker.jetstream_account(),
    ))))
}

/// The broker's TLS settings for NATS clients, read from the configured PEM files.
pub fn client_tls(files: &TlsFiles) -> anyhow::Result<infinistream_broker::Tls> {
    let mut tls = infinistream_broker::Tls::from_pem_files(
        &files.cert,
        &files.key,
        files.client_ca.as_deref(),
    )
    .context("cannot set up TLS for NATS clients (INFINISTREAM_TLS_*)")?;
    tls.handshake_first = files.handshake_first;
    Ok(tls)
}

/// Re-reads the config file (with the same flags) and applies its client
/// authentication and client TLS certificates to `broker`: the others' connections
/// stay up; those whose user went away or changed its credential or account are
/// closed; new connections get the certificate the files hold now. Other settings
/// need a restart, and so do moving JetStream to another account and turning client
/// TLS on or off (refused here, changing nothing).
pub fn reload(broker: &Broker, file: Option<&Path>, flags: &RawAgentConfig) -> anyhow::Result<()> {
    let config =
        infinistream_config::load_agent(file, flags).context("reloading the configuration")?;
    let auth = match &config.auth {
        Some(ClientAuth::Operator(spec)) if spec.resolver_url.is_some() => {
            Some(url_resolver_auth(broker, spec)?)
        }
        auth => auth.as_ref().map(broker_auth).transpose()?,
    };
    let tls = config.tls.as_ref().map(client_tls).transpose()?;
    let jetstream_account = match &auth {
        Some(Auth::Users(users)) => users.jetstream_account().to_string(),
        _ => DEFAULT_ACCOUNT.to_owned(),
    };
    let mut wanted: Vec<String> = more_jetstream(config.auth.as_ref())
        .into_iter()
        .map(|(account, _)| account)
        .collect();
    let mut serving = broker.more_jetstream_accounts();
    wanted.sort();
    serving.sort();
    if wanted != serving {
        bail!(
            "reloading the configuration: the JetStream accounts would change from `{}` to `{}`, which needs a restart",
            serving.join("`, `"),
            wanted.join("`, `")
        );
    }
    if jetstream_account != broker.jetstream_account() {
        bail!(
            "reloading the configuration: JetStream would move from account `{}` to `{jetstream_account}`, which needs a restart",
            broker.jetstream_account()
        );
    }
    let users = match &config.auth {
        Some(ClientAuth::Users { users, .. }) => users.len(),
        Some(ClientAuth::Operator(spec)) => spec.accounts.len(),
        Some(_) => 1,
        None => 0,
    };
    broker
        .reload_tls(tls.as_ref())
        .context("reloading the TLS certificates for NATS clients")?;
    if let Some(files) = &config.tls {
        tracing::info!(cert = %files.cert.display(), "configuration reloaded: TLS certificate for NATS clients replaced");
    }
    let closed = broker.reload_auth(auth);
    tracing::info!(
        users,
        closed_connections = closed,
        "configuration reloaded: client authorization replaced"
    );
    Ok(())
}
