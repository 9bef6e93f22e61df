use anyhow::Context as _;
use musketeer_server::cluster::{self, ClusterOptions, Node, Stopped};
use musketeer_server::domain::placement::NetworkRule;
use musketeer_server::domain::reputation::Policy;
use musketeer_server::state::{AppState, ServeOptions};
use musketeer_server::store::{Store, StoreLocation};

use crate::cli::ServeArgs;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Before the store is opened (and perhaps migrated), so that a wrong path fails fast.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            musketeer_server::tls::server_config(cert, key)
                .context("loading --tls-cert and --tls-key (PEM files)")?,
        ),
        _ => None,
    };
    let location = args.store.location()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let StoreLocation::Postgres(_) = location
        && args.advertise_url.is_none()
        && args.listen.ip().is_unspecified()
    {
        anyhow::bail!(
            "--listen {} takes every address, so the other servers on this PostgreSQL store \
             cannot tell which one reaches this server: give --advertise-url {scheme}://ADDRESS:{} \
             (or MUSKETEER_ADVERTISE_URL), or listen on one address",
            args.listen,
            args.listen.port()
        );
    }
    let options = ServeOptions {
        invite_code: args.invite_code.filter(|c| !c.is_empty()),
        public_dashboard: args.public_dashboard,
        register_per_minute: args.register_per_minute,
        stall_timeout_ms: u64::try_from(args.stall_timeout.as_millis()).unwrap_or(u64::MAX),
        retain_finished_ms: args.retain_finished,
        network_rule: NetworkRule {
            ipv4_prefix: args.reputation.network_prefix_v4,
            ipv6_prefix: args.reputation.network_prefix_v6,
        },
        reputation: Policy {
            trust_after: args.reputation.trust_after,
            spot_checks_per_mille: args.reputation.spot_checks_per_mille,
            adaptive_replication: !args.reputation.no_adaptive_replication,
            max_daily_quota: args.reputation.max_daily_quota,
            new_host_quota: args.reputation.max_daily_quota,
            max_batch_share_percent: args.reputation.max_batch_share,
            batch_share_floor: args.reputation.batch_share_floor,
        },
        // PostgreSQL's size is its own to report (pg_database_size).
        store_file: match &location {
            StoreLocation::DataDir(dir) => Some(dir.join(musketeer_server::store::DB_FILE)),
            StoreLocation::Postgres(_) => None,
        },
        ..ServeOptions::default()
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}: stop what listens there or pick another --listen address \
                 (port 0: any free port)",
                args.listen
            )
        })?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    let StoreLocation::Postgres(store_url) = location else {
        let state =
            AppState::load(Store::open_at(&location)?, options).context("loading the store")?;
        tracing::info!(%addr, scheme, "serving");
        // Tests and scripts read this line to find the port when listening on port 0.
        println!("musketeer-server listening on {scheme}://{addr}");
        match tls {
            Some(tls) => musketeer_server::run_tls(listener, tls, state, shutdown_signal()).await,
            None => musketeer_server::run(listener, state, shutdown_signal()).await,
        }
        .context("serving")?;
        tracing::info!("stopped");
        return Ok(());
    };
    // The address known only now if --listen gave port 0.
    let advertise_url = args
        .advertise_url
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let node = Node::start(ClusterOptions {
        store_url,
        advertise_url,
        serve: options,
    })
    .await
    .context("joining the servers on the PostgreSQL store")?;
    let role = node.role().as_str();
    tracing::info!(%addr, scheme, role, "serving");
    // The same line as a lone server's (scripts read the address from its end); /healthz
    // says the role.
    println!("musketeer-server listening on {scheme}://{addr}");
    match cluster::run(listener, tls, node, shutdown_signal())
        .await
        .context("serving")?
    {
        Stopped::Superseded => anyhow::bail!(
            "another musketeer-server became the active one on this PostgreSQL store (this \
             one's connection holding the lock was lost); this one stopped without committing \
             anything more: start it again to join as a standby"
        ),
        _ => {
            tracing::info!("stopped");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
