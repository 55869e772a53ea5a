//! The `infinistream` binary: `agent` runs the roles, `control-plane` the metadata
//! service. Flags override `INFINISTREAM_*` variables, which override `--config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use infinistream_agent::{AgentHandle, version};
use infinistream_config::{
    LogFormat, NumberOrString, RawAgentConfig, RawControlPlaneConfig, RolesValue,
};
use infinistream_runtime::{LogFormat as RtLogFormat, shutdown_signal, tracing_init};

#[derive(Debug, Parser)]
#[command(name = "infinistream", version = version(), about = "Diskless NATS JetStream on object storage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent: NATS listener plus the roles chosen with --roles.
    Agent(Box<AgentArgs>),
    /// Run the control-plane service (metadata only, state in the metadata store).
    ControlPlane(ControlPlaneArgs),
}

#[derive(Debug, Args)]
struct AgentArgs {
    /// TOML file with settings (lowest precedence after defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Roles to run: proxy-produce, proxy-consume, proxy, jobs, comma-combined [env: INFINISTREAM_AGENT_ROLES] [default: proxy,jobs]
    #[arg(long)]
    roles: Option<String>,
    /// Bucket URL: file:///path, memory://, s3://bucket, gs://, az:// [env: INFINISTREAM_BUCKET_NAME] [default: file://data/bucket]
    #[arg(long)]
    bucket: Option<String>,
    /// Batch window in ms, 50..=500 [env: INFINISTREAM_BATCH_WRITE] [default: 250]
    #[arg(long = "batch-write")]
    batch_write: Option<u64>,
    /// Remote control plane URL; unset runs it embedded [env: INFINISTREAM_CONTROL_PLANE]
    #[arg(long = "control-plane")]
    control_plane: Option<String>,
    /// Availability zone [env: INFINISTREAM_ZONE] [default: from the cloud's instance metadata, else default]
    #[arg(long)]
    zone: Option<String>,
    /// Address to bind [default: 0.0.0.0]
    #[arg(long, short = 'a')]
    host: Option<String>,
    /// Address clients and peer agents are told to use, host or host:port, when it is
    /// not the bind address [env: INFINISTREAM_CLIENT_ADVERTISE]
    #[arg(long = "client_advertise", alias = "client-advertise")]
    client_advertise: Option<String>,
    /// NATS client port [default: 4222]
    #[arg(long, short = 'p')]
    port: Option<u16>,
    /// HTTP monitoring port [default: 8222]
    #[arg(long = "http_port", short = 'm', alias = "http-port")]
    http_port: Option<u16>,
    /// Agent-to-agent zone cache port [default: http_port + 1000]
    #[arg(long = "peer_port", alias = "peer-port")]
    peer_port: Option<u16>,
    /// Local state directory (embedded control plane, default bucket) [default: data]
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// Server name shown to clients [default: infinistream-<pid>]
    #[arg(long = "server-name", short = 'n')]
    server_name: Option<String>,
    /// Largest accepted payload in bytes [default: 1048576]
    #[arg(long = "max-payload")]
    max_payload: Option<u64>,
    /// Log format: text or json [default: text]
    #[arg(long = "log-format")]
    log_format: Option<String>,
    /// TLS for NATS clients: PEM certificate chain [env: INFINISTREAM_TLS_CERT]
    #[arg(long = "tls-cert", alias = "tlscert")]
    tls_cert: Option<PathBuf>,
    /// TLS for NATS clients: PEM private key [env: INFINISTREAM_TLS_KEY]
    #[arg(long = "tls-key", alias = "tlskey")]
    tls_key: Option<PathBuf>,
    /// Require client certificates signed by these PEM CAs [env: INFINISTREAM_TLS_CA]
    #[arg(long = "tls-ca", alias = "tlscacert")]
    tls_ca: Option<PathBuf>,
    /// Clients start TLS before INFO (nats-server handshake_first) [env: INFINISTREAM_TLS_HANDSHAKE_FIRST]
    #[arg(long = "tls-handshake-first")]
    tls_handshake_first: bool,
}

#[derive(Debug, Args)]
struct ControlPlaneArgs {
    /// TOML file with settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// embedded:<dir> or etcd://host:port[,host:port…] [default: embedded:data/control-plane]
    #[arg(long)]
    store: Option<String>,
    /// gRPC listen address [default: 127.0.0.1:7070]
    #[arg(long)]
    listen: Option<String>,
    /// URL other replicas use to reach this one [default: http://<listen>]
    #[arg(long)]
    advertise: Option<String>,
    /// HTTP port for /healthz and /metrics [default: 8223]
    #[arg(long = "http_port", short = 'm', alias = "http-port")]
    http_port: Option<u16>,
    /// TOML file with [groups] id = "key" entries (instead of INFINISTREAM_GROUP_ID/KEY).
    #[arg(long)]
    groups: Option<PathBuf>,
    /// Log format: text or json [default: text]
    #[arg(long = "log-format")]
    log_format: Option<String>,
}

fn parse_log_format(value: Option<&str>) -> anyhow::Result<Option<LogFormat>> {
    match value {
        None => Ok(None),
        Some("text") => Ok(Some(LogFormat::Text)),
        Some("json") => Ok(Some(LogFormat::Json)),
        Some(other) => anyhow::bail!("--log-format must be text or json, got `{other}`"),
    }
}

fn rt_format(format: LogFormat) -> RtLogFormat {
    match format {
        LogFormat::Text => RtLogFormat::Text,
        LogFormat::Json => RtLogFormat::Json,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Two rustls crypto providers are linked in (ring, used by the NATS TLS listener
    // and async-nats; aws-lc-rs, by the object-store HTTP client): name the process
    // default, so no library that asks for it can fail to pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Agent(args) => run_agent(*args).await,
            Command::ControlPlane(args) => run_control_plane(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let flags = RawAgentConfig {
        roles: args.roles.map(RolesValue::List),
        bucket: args.bucket,
        batch_write: args.batch_write.map(NumberOrString::Number),
        control_plane: args.control_plane,
        zone: args.zone,
        host: args.host,
        client_advertise: args.client_advertise,
        port: args.port,
        http_port: args.http_port,
        peer_port: args.peer_port,
        data_dir: args.data_dir,
        server_name: args.server_name,
        max_payload: args.max_payload,
        log_format: parse_log_format(args.log_format.as_deref())?,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        tls_ca: args.tls_ca,
        tls_handshake_first: args.tls_handshake_first.then_some(true),
        ..Default::default()
    };
    let config = infinistream_config::load_agent(args.config.as_deref(), &flags)?;
    tracing_init(rt_format(config.log_format));
    let shutdown = shutdown_signal()?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let agent = match AgentHandle::start(config, shutdown.clone()).await {
        Ok(agent) => agent,
        // SIGTERM while waiting for the control plane or the bucket: a clean stop.
        Err(error) if shutdown.is_cancelled() => {
            tracing::info!(reason = %format!("{error:#}"), "agent stopped before it was ready");
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    // SIGHUP reloads client authorization from the config file, as nats-server's
    // reload does; a bad file is logged and the running settings stay.
    let broker = agent.broker().clone();
    let file = args.config.clone();
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if let Err(error) =
                infinistream_agent::client_auth::reload(&broker, file.as_deref(), &flags)
            {
                tracing::error!(error = %format!("{error:#}"), "configuration reload failed; keeping the running settings");
            }
        }
    });
    agent.wait().await
}

async fn run_control_plane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let flags = RawControlPlaneConfig {
        store: args.store,
        listen: args.listen,
        advertise: args.advertise,
        http_port: args.http_port,
        groups: args.groups,
        log_format: parse_log_format(args.log_format.as_deref())?,
        ..Default::default()
    };
    let config = infinistream_config::load_control_plane(args.config.as_deref(), &flags)?;
    tracing_init(rt_format(config.log_format));
    infinistream_agent::control_plane::run(config, shutdown_signal()?).await
}
