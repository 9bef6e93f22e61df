//! The running client: one process serving every project attached to its data directory on
//! one set of slots ([`SlotPool`]), answering local control for all of them, and attaching or
//! detaching projects while it runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use musketeer_protocol::{HostDetail, HostId, HostPlatform};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::events::Events;
use super::files::DataDir;
use super::gate::Gate;
use super::pool::SlotPool;
use super::project_run::{ProjectRun, run_project};
use super::projects::{AttachedProject, ClientDir, project_slug};
use super::spool::Spool;
use super::stop::StopSignal;
use super::{JoinConfig, JoinError};
use crate::api_client::ApiClient;
use crate::sandbox::Sandbox;

/// What `status` and `projects` show of one project.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ProjectStatus {
    /// The project's server.
    pub server: String,
    /// The project's name, once read from its server.
    pub project: Option<String>,
    /// This host's id there, once registered.
    pub host_id: Option<HostId>,
    /// Its resource share.
    pub resource_share: u32,
    /// What its work loop is doing ("running", "contacting the server", "stopped: ...").
    pub state: String,
    /// Units running now.
    pub running: Vec<super::status::RunningView>,
    /// Fetched units waiting for a slot.
    pub buffered: usize,
    /// Finished results waiting for the server's acknowledgement.
    pub spooled: usize,
    /// CPU-seconds its tasks used since the client started.
    pub cpu_seconds: f64,
    /// CPU-seconds it is owed under the shares (negative: it used more than its share).
    pub debt_seconds: f64,
    /// This host's standing at the server (credit = fuel of its validated results).
    pub host: Option<super::control::HostSummaryView>,
    /// Why the standing could not be read.
    pub host_error: Option<String>,
}

/// What a project's work loop has told the client about itself.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    /// The project's name.
    pub(super) name: Option<String>,
    /// The host's id and a client with its token.
    pub(super) host: Option<(HostId, ApiClient)>,
    /// What it is doing.
    pub(super) state: String,
}

/// Shared between a project's work loop and the client.
pub(super) type SharedProgress = Arc<Mutex<Progress>>;

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One attached project in this run.
struct Attached {
    server: String,
    share: u32,
    data: DataDir,
    gate: Gate,
    progress: SharedProgress,
    detach: watch::Sender<bool>,
    /// The work loop; taken once it has ended.
    task: Option<JoinHandle<()>>,
    /// How the work loop ended, set before [`Client::ended`] is told.
    outcome: Arc<Mutex<Option<Result<(), JoinError>>>>,
}

/// The client.
pub struct Client {
    dir: ClientDir,
    base: JoinConfig,
    pool: SlotPool,
    sandbox: Arc<Sandbox>,
    platform: HostPlatform,
    events: Events,
    stop: StopSignal,
    attached: Mutex<BTreeMap<String, Attached>>,
    /// Told when a project's work loop ends.
    ended: Notify,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What the client's setup needs.
pub struct ClientSetup {
    pub dir: ClientDir,
    pub base: JoinConfig,
    pub sandbox: Arc<Sandbox>,
    pub platform: HostPlatform,
    pub events: Events,
    pub stop: StopSignal,
}

impl Client {
    pub fn new(setup: ClientSetup) -> Arc<Self> {
        Arc::new(Self {
            pool: SlotPool::new(setup.base.slots),
            dir: setup.dir,
            base: setup.base,
            sandbox: setup.sandbox,
            platform: setup.platform,
            events: setup.events,
            stop: setup.stop,
            attached: Mutex::new(BTreeMap::new()),
            ended: Notify::new(),
        })
    }

    /// The gate every project's work passes.
    pub fn gate(&self) -> &Gate {
        &self.base.gate
    }

    /// Task slots.
    pub fn slots(&self) -> usize {
        self.base.slots
    }

    /// Works for every attached project until shutdown, or until every project's work has
    /// failed for good (the first failure is returned). With all projects detached it waits.
    pub async fn run(self: &Arc<Self>) -> Result<(), JoinError> {
        for project in self.dir.projects()? {
            self.start(project);
        }
        let mut first_error = None;
        loop {
            let ended = self.ended.notified();
            // Ended loops stay listed (their state says why) without their task.
            let finished: Vec<(String, Result<(), JoinError>)> = lock(&self.attached)
                .values_mut()
                .filter_map(|a| {
                    let outcome = lock(&a.outcome).take()?;
                    a.task = None;
                    Some((a.server.clone(), outcome))
                })
                .collect();
            for (server, outcome) in finished {
                if let Err(error) = outcome {
                    self.stopped(&server, &error.to_string());
                    first_error.get_or_insert(error);
                }
            }
            let (any_running, any_listed) = {
                let attached = lock(&self.attached);
                (
                    attached.values().any(|a| a.task.is_some()),
                    !attached.is_empty(),
                )
            };
            // With every project detached the client waits for the next `join` to attach one.
            if !any_running && (any_listed || self.stop.is_requested()) {
                return match first_error {
                    Some(error) => Err(error),
                    None => Ok(()),
                };
            }
            if self.stop.is_requested() {
                ended.await;
            } else {
                tokio::select! {
                    () = ended => {}
                    () = self.stop.requested() => {}
                }
            }
        }
    }

    fn stopped(&self, server: &str, why: &str) {
        if let Some(project) = lock(&self.attached).get(&project_slug(server)) {
            lock(&project.progress).state = format!("stopped: {why}");
        }
        self.events.emit(
            "project-stopped",
            serde_json::json!({"server": server, "error": why}),
            format!("stopped working for {server}: {why}"),
        );
    }

    /// Starts the work loop of `project`.
    fn start(self: &Arc<Self>, project: AttachedProject) {
        let slug = project_slug(&project.entry.server);
        let (detach, detached) = watch::channel(false);
        let stop = self.stop.clone();
        let detached = StopSignal::new(async move {
            let mut detached = detached;
            tokio::select! {
                () = stop.requested() => {}
                _ = detached.wait_for(|&d| d) => {}
            }
        });
        let gate = self.base.gate.for_project();
        let progress = SharedProgress::default();
        lock(&progress).state = "contacting the server".to_owned();
        self.pool.attach(&slug, project.entry.resource_share);
        let run = ProjectRun {
            config: self.project_config(&project, gate.clone()),
            data: project.data.clone(),
            sandbox: self.sandbox.clone(),
            platform: self.platform.clone(),
            events: self.events.clone(),
            pool: self.pool.clone(),
            slug: slug.clone(),
            stop: detached,
            progress: progress.clone(),
        };
        let client = Arc::clone(self);
        let outcome = Arc::new(Mutex::new(None));
        let ended = Arc::clone(&outcome);
        let task = tokio::spawn(async move {
            let result = run_project(run).await;
            // Recorded before the client is told, so it finds it when it looks.
            *lock(&ended) = Some(result);
            client.ended.notify_one();
        });
        lock(&self.attached).insert(
            slug,
            Attached {
                server: project.entry.server,
                share: project.entry.resource_share,
                data: project.data,
                gate,
                progress,
                detach,
                task: Some(task),
                outcome,
            },
        );
    }

    /// The settings of one project's work: the client's, with the project's server and folder;
    /// keys and invite code given to `join` belong to the project it named.
    fn project_config(&self, project: &AttachedProject, gate: Gate) -> JoinConfig {
        let named = project_slug(&self.base.server) == project_slug(&project.entry.server);
        JoinConfig {
            server: project.entry.server.clone(),
            data_dir: project.data.root().to_path_buf(),
            trust_keys: if named {
                self.base.trust_keys.clone()
            } else {
                Vec::new()
            },
            invite_code: self.base.invite_code.clone().filter(|_| named),
            ca_cert: project.data.ca_cert().ok().flatten(),
            resource_share: Some(project.entry.resource_share),
            gate,
            ..self.base.clone()
        }
    }

    /// `musketeer join URL` while this client runs: starts the project its folder holds (the
    /// joining command read its keys and registered), or applies its new share.
    pub fn attach(self: &Arc<Self>, server: &str) -> Result<String, String> {
        let project = match self.dir.find(server) {
            Ok(Some(project)) => project,
            Ok(None) => {
                return Err(format!(
                    "{server} is not attached; run `musketeer join {server}`"
                ));
            }
            Err(error) => return Err(error.to_string()),
        };
        let slug = project_slug(server);
        let share = project.entry.resource_share;
        {
            let mut attached = lock(&self.attached);
            if let Some(running) = attached.get_mut(&slug)
                && running.task.is_some()
                && lock(&running.outcome).is_none()
            {
                running.share = share;
                self.pool.attach(&slug, share);
                return Ok(format!(
                    "{server} was already attached; its resource share is now {share}"
                ));
            }
        }
        self.start(project);
        Ok(format!(
            "attached {server} (resource share {share}) to the running client"
        ))
    }

    /// `musketeer detach URL`: stops the project's work (buffered work goes back to its
    /// server, running tasks get the shutdown grace, then are handed back), delivers what its
    /// spool holds, and forgets it. Unreported results keep it attached unless `force`.
    pub async fn detach(self: &Arc<Self>, server: &str, force: bool) -> Result<String, String> {
        let slug = project_slug(server);
        let Some(project) = lock(&self.attached).remove(&slug) else {
            return Err(format!(
                "{server} is not attached to this client; `musketeer projects` lists those that are"
            ));
        };
        lock(&project.progress).state = "detaching".to_owned();
        let _ = project.detach.send(true);
        if let Some(task) = project.task {
            let _ = task.await;
        }
        let spool = Spool::open(project.data.spool_dir()).map_err(|e| e.to_string())?;
        let unreported = spool.len();
        if unreported > 0 && !force {
            // Keep working for it, so the results are delivered when its server answers.
            if let Ok(Some(again)) = self.dir.find(server) {
                self.start(again);
            }
            return Err(format!(
                "{unreported} result(s) could not be reported to {server} (is it up?), so it stays attached and keeps trying; run `musketeer detach {server}` again later, or add --force to discard them"
            ));
        }
        self.pool.detach(&slug);
        drop(spool);
        self.dir.forget(server).map_err(|e| e.to_string())?;
        self.ended.notify_one();
        Ok(if unreported > 0 {
            format!("detached {server}; {unreported} unreported result(s) discarded (--force)")
        } else {
            format!(
                "detached {server}; its work was handed back and its keys, identity and files removed"
            )
        })
    }

    /// Every attached project's status, with this host's credit at each server.
    pub async fn statuses(&self) -> Vec<ProjectStatus> {
        let listed: Vec<(ProjectStatus, Option<ApiClient>)> = lock(&self.attached)
            .iter()
            .map(|(slug, a)| {
                let progress = lock(&a.progress).clone();
                let standing = self.pool.standing(slug);
                let board = a.gate.board();
                (
                    ProjectStatus {
                        server: a.server.clone(),
                        project: progress.name,
                        host_id: progress.host.as_ref().map(|(id, _)| *id),
                        resource_share: a.share,
                        state: progress.state,
                        running: board.running(),
                        buffered: board.buffered(),
                        spooled: board.spooled(),
                        cpu_seconds: standing.as_ref().map_or(0.0, |s| s.total),
                        debt_seconds: standing.as_ref().map_or(0.0, |s| s.debt),
                        host: None,
                        host_error: None,
                    },
                    progress.host.map(|(_, api)| api),
                )
            })
            .collect();
        let mut asked = Vec::new();
        for (mut status, api) in listed {
            asked.push(tokio::spawn(async move {
                match (api, status.host_id) {
                    (Some(api), Some(host_id)) => {
                        (status.host, status.host_error) = credit(&api, host_id).await;
                    }
                    _ => status.host_error = Some("not registered yet".to_owned()),
                }
                status
            }));
        }
        let mut statuses = Vec::new();
        for answer in asked {
            if let Ok(status) = answer.await {
                statuses.push(status);
            }
        }
        statuses
    }
}

/// This host's standing at one server, or why it could not be read.
pub async fn credit(
    api: &ApiClient,
    host_id: HostId,
) -> (Option<super::control::HostSummaryView>, Option<String>) {
    let path = musketeer_protocol::paths::HOST.replace("{id}", &host_id.to_string());
    let view = tokio::time::timeout(CREDIT_TIMEOUT, api.get_json::<HostDetail>(&path));
    match view.await {
        Ok(Ok(detail)) => (
            Some(super::control::HostSummaryView {
                credit: detail.host.credit,
                succeeded: detail.host.succeeded,
                failed: detail.host.failed,
                invalid: detail.host.invalid,
            }),
            None,
        ),
        Ok(Err(failed)) => (None, Some(super::events::cause_chain(&failed))),
        Err(_) => (None, Some("the server did not answer in time".to_owned())),
    }
}

/// How long a server is asked for this host's credit before status answers without it.
const CREDIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
