//! One project's work in the running client: read the project and check its keys, take the
//! stored identity (registering again if the server forgot it) and run the work loop on the
//! client's shared slots until the client stops or the project is detached.

use std::sync::Arc;
use std::time::Duration;

use musketeer_protocol::HostPlatform;

use super::backoff::Backoff;
use super::client::{SharedProgress, lock};
use super::events::Events;
use super::files::DataDir;
use super::pool::SlotPool;
use super::stop::StopSignal;
use super::{Attempts, JoinConfig, JoinError, identity, memory, retry, spool, trust, work};
use crate::api_client::ApiClient;
use crate::sandbox::Sandbox;

/// What one project's work needs.
pub(super) struct ProjectRun {
    /// The project's settings (server, folder, the gate with its own status board).
    pub(super) config: JoinConfig,
    pub(super) data: DataDir,
    pub(super) sandbox: Arc<Sandbox>,
    pub(super) platform: HostPlatform,
    pub(super) events: Events,
    /// The client's slots, and this project's name among them.
    pub(super) pool: SlotPool,
    pub(super) slug: String,
    /// Fires when the client stops or the project is detached.
    pub(super) stop: StopSignal,
    pub(super) progress: SharedProgress,
}

/// Works for one project until `run.stop` fires; an error ends only this project's work.
pub(super) async fn run_project(run: ProjectRun) -> Result<(), JoinError> {
    let ProjectRun {
        config,
        data,
        sandbox,
        platform,
        events,
        pool,
        slug,
        stop,
        progress,
    } = run;
    let api = ApiClient::trusting(&config.server, None, config.ca_cert.as_deref())?;
    // The project was joined before (the joining command read it): keep retrying while it is
    // away, as it may be restarting.
    let Some(project) = retry(
        &events,
        &config,
        &stop,
        "read the project",
        Attempts::Forever,
        || api.project(),
    )
    .await?
    else {
        return Ok(());
    };
    let trust = trust::pin_keys(&data, &config, &project, &events)?;
    lock(&progress).name = Some(project.name.clone());

    // Spaces out new identities if the server keeps refusing fresh tokens.
    let mut reregister = Backoff::new(Duration::from_millis(250), config.max_backoff);
    loop {
        let Some(host) = identity(&api, &data, &platform, &events, &config, &stop).await? else {
            return Ok(());
        };
        let host_api = api.with_token(host.host_token.clone());
        {
            let mut progress = lock(&progress);
            progress.host = Some((host.host_id, host_api.clone()));
            progress.state = "running".to_owned();
        }
        events.emit(
            "joined",
            serde_json::json!({
                "host_id": host.host_id,
                "project": project.name,
                "server": api.base_url(),
                "resource_share": config.resource_share,
                "slots": config.slots,
                "backend": sandbox.backend_name(),
                "max_task_memory": config.max_task_memory,
                "data_dir": data.root(),
            }),
            format!(
                "joined {:?} at {} as host {} with {} slot(s) shared by its projects ({} backend{}, resource share {}); data in {}",
                project.name,
                api.base_url(),
                host.host_id,
                config.slots,
                sandbox.backend_name(),
                config
                    .max_task_memory
                    .map(|bytes| format!(", tasks of up to {} MiB", bytes >> 20))
                    .unwrap_or_default(),
                config.resource_share.unwrap_or(super::shares::DEFAULT_SHARE),
                data.root().display()
            ),
        );
        // Work may take a while to come (the server holds each request until it has some): say
        // so now, or a fresh client looks hung.
        events.emit(
            "waiting",
            serde_json::json!({"poll_wait_ms": config.poll_wait.as_millis() as u64, "server": api.base_url()}),
            "waiting for work; each task is shown here as it starts",
        );
        if let Some(max) = config.max_task_memory {
            warn_about_apps_too_big(&host_api, max, &events).await;
        }
        let worker = work::Worker::new(work::WorkerSetup {
            api: host_api,
            data: data.clone(),
            sandbox: sandbox.clone(),
            trust: trust.clone(),
            platform: platform.clone(),
            events: events.clone(),
            config: config.clone(),
            // Dropped with the worker: its slots free whichever way it ends.
            pool: pool.handle(&slug),
        })?;
        match worker.run(stop.requested()).await {
            // The server has forgotten this host (its store was reset, or the host removed):
            // like BOINC, come back as a new host rather than stop volunteering. Unreported
            // results go: they were the old host's, and their ids may mean other work now.
            Err(JoinError::Api(error)) if error.is_unauthorized() && !stop.is_requested() => {
                data.forget_host()?;
                let discarded = spool::Spool::open(data.spool_dir())?.discard_all();
                let delay = reregister.next_delay();
                lock(&progress).state = "registering again".to_owned();
                events.emit(
                    "re-register",
                    serde_json::json!({"old_host_id": host.host_id, "error": error.to_string(), "discarded_results": discarded, "delay_ms": delay.as_millis() as u64}),
                    format!(
                        "the server no longer accepts host {} ({error}); {discarded} unreported result(s) discarded, registering again in {:.1} s",
                        host.host_id,
                        delay.as_secs_f64()
                    ),
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stop.requested() => return Ok(()),
                }
            }
            other => return other,
        }
    }
}

/// Says which of the project's apps need more memory than `max_task_memory` allows (the
/// server sends this host none of their work). Best effort: a server that does not list its
/// apps to hosts leaves the volunteer with the limit shown in the "joined" line.
async fn warn_about_apps_too_big(api: &ApiClient, max_task_memory: u64, events: &Events) {
    // Only a hint: a slow answer must not hold up the work.
    let listing = tokio::time::timeout(
        Duration::from_secs(5),
        api.get_json::<musketeer_protocol::AppList>(musketeer_protocol::paths::APPS),
    );
    let apps = match listing.await {
        Ok(Ok(apps)) => apps,
        Ok(Err(error)) => {
            tracing::debug!("cannot list the project's apps: {error}");
            return;
        }
        Err(_) => {
            tracing::debug!("the project's app list took too long; not checked");
            return;
        }
    };
    let (too_big, any_fits) = memory::apps_too_big(&apps, max_task_memory);
    if too_big.is_empty() {
        return;
    }
    let list = too_big
        .iter()
        .map(|app| {
            format!(
                "{} needs {} MiB",
                app.app,
                app.needs_bytes.div_ceil(1 << 20)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let consequence = if any_fits {
        "their work will not be sent here"
    } else {
        "no app of this project fits, so this host will get no work"
    };
    events.emit(
        "apps-too-big",
        serde_json::json!({
            "max_task_memory": max_task_memory,
            "any_app_fits": any_fits,
            "apps": too_big.iter().map(|app| serde_json::json!({"app": app.app, "memory_bytes": app.needs_bytes})).collect::<Vec<_>>(),
        }),
        format!(
            "warning: tasks here may use at most {} MiB ({list}); {consequence}. Raise --max-task-memory (or lower --slots, which raises the default) if this machine can spare it",
            max_task_memory >> 20
        ),
    );
}
