//! The client's data directory with several projects in it:
//!
//! ```text
//! DIR/preferences.toml, DIR/control.sock        the client's (one for all projects)
//! DIR/projects/<server>/project.json            the project's URL and resource share
//! DIR/projects/<server>/{host.json, trust.json, versions.json, spool/, modules/, compiled/}
//! ```
//!
//! `<server>` is the URL's host and port (see [`project_slug`]), so each project has its own
//! pinned keys, host identity and spool. A data directory of an older client (one project's
//! files directly in `DIR`, or the old default `~/.local/share/musketeer/<server>`) is moved
//! into this layout in place the first time it is opened (see [`ClientDir::open`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::{DataDir, FileError, HostCredentials, read_json, write_json};
use super::shares::DEFAULT_SHARE;

/// The folder of the projects in the client's data directory.
const PROJECTS: &str = "projects";
/// A project's own settings in its folder.
const PROJECT_FILE: &str = "project.json";
/// Files of the client itself, which stay in the data directory when an old one is moved.
const CLIENT_FILES: [&str; 3] = ["preferences.toml", "control.sock", PROJECTS];
/// Files only a project's folder has: their presence in `DIR` marks an older client's layout.
const PROJECT_MARKERS: [&str; 3] = ["host.json", "trust.json", "versions.json"];

/// A project attached to this client (`project.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectEntry {
    /// The project's server URL, as given to `musketeer join`.
    pub server: String,
    /// Its resource share (BOINC's default is 100).
    pub resource_share: u32,
}

/// An attached project and its folder.
#[derive(Debug, Clone)]
pub struct AttachedProject {
    /// Its settings.
    pub entry: ProjectEntry,
    /// Its folder (credentials, keys, spool, modules).
    pub data: DataDir,
}

/// The client's data directory.
#[derive(Debug, Clone)]
pub struct ClientDir {
    root: PathBuf,
}

impl ClientDir {
    /// Opens (creating) `root`, moving an older client's single project into the layout
    /// above. `joining` is the server being joined now: the project of an old directory that
    /// never registered (so records no server) is taken to be that one.
    pub fn open(root: &Path, joining: Option<&str>) -> Result<Self, FileError> {
        let projects = root.join(PROJECTS);
        std::fs::create_dir_all(&projects).map_err(|source| FileError::Io {
            path: projects.clone(),
            source,
        })?;
        let dir = Self {
            root: root.to_path_buf(),
        };
        dir.upgrade_single_project(joining)?;
        dir.upgrade_old_default_dirs()?;
        Ok(dir)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of `server`'s project (whether attached or not).
    pub fn project_dir(&self, server: &str) -> PathBuf {
        self.root.join(PROJECTS).join(project_slug(server))
    }

    /// The attached projects, by folder name.
    pub fn projects(&self) -> Result<Vec<AttachedProject>, FileError> {
        let folder = self.root.join(PROJECTS);
        let entries = std::fs::read_dir(&folder).map_err(|source| FileError::Io {
            path: folder.clone(),
            source,
        })?;
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        dirs.sort();
        let mut attached = Vec::new();
        for dir in dirs {
            if let Some(entry) = read_json::<ProjectEntry>(&dir.join(PROJECT_FILE))? {
                attached.push(AttachedProject {
                    entry,
                    data: DataDir::open(&dir)?,
                });
            }
        }
        Ok(attached)
    }

    /// The project at `server`, if attached.
    pub fn find(&self, server: &str) -> Result<Option<AttachedProject>, FileError> {
        let dir = self.project_dir(server);
        match read_json::<ProjectEntry>(&dir.join(PROJECT_FILE))? {
            Some(entry) => Ok(Some(AttachedProject {
                entry,
                data: DataDir::open(&dir)?,
            })),
            None => Ok(None),
        }
    }

    /// Attaches `server` (or changes its share when `share` is given); its share is `share`,
    /// else the one it had, else [`DEFAULT_SHARE`].
    pub fn attach(&self, server: &str, share: Option<u32>) -> Result<AttachedProject, FileError> {
        let dir = self.project_dir(server);
        let data = DataDir::open(&dir)?;
        let file = dir.join(PROJECT_FILE);
        let old = read_json::<ProjectEntry>(&file)?;
        let entry = ProjectEntry {
            server: old.as_ref().map_or(server, |old| &old.server).to_owned(),
            resource_share: share
                .or(old.as_ref().map(|old| old.resource_share))
                .unwrap_or(DEFAULT_SHARE)
                .max(1),
        };
        if old.as_ref() != Some(&entry) {
            write_json(&file, &entry, false)?;
        }
        Ok(AttachedProject { entry, data })
    }

    /// Deletes `server`'s folder: its keys, identity, spool and modules.
    pub fn forget(&self, server: &str) -> Result<(), FileError> {
        let dir = self.project_dir(server);
        match std::fs::remove_dir_all(&dir) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(FileError::Io { path: dir, source })
            }
            _ => Ok(()),
        }
    }

    /// An older client kept its one project's files directly in the data directory: move them
    /// into the project's folder.
    fn upgrade_single_project(&self, joining: Option<&str>) -> Result<(), FileError> {
        if !PROJECT_MARKERS.iter().any(|f| self.root.join(f).exists()) {
            return Ok(());
        }
        let recorded = read_json::<HostCredentials>(&self.root.join("host.json"))?;
        let Some(server) = recorded
            .map(|host| host.server)
            .or(joining.map(str::to_owned))
        else {
            // Which project these files are of is unknown until the volunteer joins it again.
            return Ok(());
        };
        let target = self.project_dir(&server);
        create_dir(&target)?;
        let entries = std::fs::read_dir(&self.root).map_err(|source| FileError::Io {
            path: self.root.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if CLIENT_FILES.iter().any(|f| name == *f) {
                continue;
            }
            move_into(&entry.path(), &target.join(&name))?;
        }
        self.write_entry_if_missing(&target, &server)
    }

    /// The old default data directories (`~/.local/share/musketeer/<server>`, one per project)
    /// sit where the new default puts the client's: move each into `projects/`.
    fn upgrade_old_default_dirs(&self) -> Result<(), FileError> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name == PROJECTS || !path.is_dir() {
                continue;
            }
            // Only a folder named after the server its identity records is taken for one.
            let Ok(Some(host)) = read_json::<HostCredentials>(&path.join("host.json")) else {
                continue;
            };
            if project_slug(&host.server) != name {
                continue;
            }
            let target = self.project_dir(&host.server);
            if target.exists() {
                continue;
            }
            move_into(&path, &target)?;
            // The old client's socket would make `status` think a client ran there.
            let _ = std::fs::remove_file(target.join("control.sock"));
            self.write_entry_if_missing(&target, &host.server)?;
        }
        Ok(())
    }

    fn write_entry_if_missing(&self, dir: &Path, server: &str) -> Result<(), FileError> {
        let file = dir.join(PROJECT_FILE);
        if read_json::<ProjectEntry>(&file)?.is_none() {
            let entry = ProjectEntry {
                server: server.to_owned(),
                resource_share: DEFAULT_SHARE,
            };
            write_json(&file, &entry, false)?;
        }
        Ok(())
    }
}

/// The folder name of `server`'s project: its host and port, other characters as `_`
/// (`http://127.0.0.1:8080/` becomes `127.0.0.1_8080`).
pub fn project_slug(server: &str) -> String {
    server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn create_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::create_dir_all(dir).map_err(|source| FileError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

/// Renames `from` to `to`; an empty folder already at `to` (made by an interrupted earlier
/// upgrade) is replaced.
fn move_into(from: &Path, to: &Path) -> Result<(), FileError> {
    if to.is_dir() {
        // Fails, and so keeps `to`, unless it is empty.
        let _ = std::fs::remove_dir(to);
    }
    std::fs::rename(from, to).map_err(|source| FileError::Io {
        path: from.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use musketeer_protocol::HostId;

    fn old_host(dir: &Path, server: &str) {
        let data = DataDir::open(dir).expect("data dir");
        data.save_host(&HostCredentials {
            server: server.to_owned(),
            host_id: HostId(4),
            host_token: "secret".into(),
        })
        .expect("host.json");
        data.save_versions(&Default::default()).expect("versions");
        std::fs::write(dir.join("spool").join("r1.json"), b"{}").expect("spooled");
    }

    #[test]
    fn an_old_single_project_directory_becomes_the_first_project() {
        let dir = tempfile::tempdir().expect("temp dir");
        old_host(dir.path(), "http://127.0.0.1:7000");
        std::fs::write(dir.path().join("preferences.toml"), "cpu_percent = 50\n").expect("prefs");

        let client = ClientDir::open(dir.path(), Some("http://127.0.0.1:9999")).expect("open");
        let projects = client.projects().expect("list");
        assert_eq!(projects.len(), 1);
        let project = &projects[0];
        assert_eq!(project.entry.server, "http://127.0.0.1:7000");
        assert_eq!(project.entry.resource_share, DEFAULT_SHARE);
        assert_eq!(
            project.data.host().expect("read").expect("kept").host_id,
            HostId(4)
        );
        assert!(project.data.spool_dir().join("r1.json").exists());
        // The client's own files stay; the project's left.
        assert!(dir.path().join("preferences.toml").exists());
        assert!(!dir.path().join("host.json").exists() && !dir.path().join("spool").exists());
        // Opening again changes nothing.
        let again = ClientDir::open(dir.path(), None).expect("reopen");
        assert_eq!(again.projects().expect("list").len(), 1);
    }

    #[test]
    fn an_old_directory_that_never_registered_belongs_to_the_server_joined() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("versions.json"), b"{}").expect("versions");
        let client = ClientDir::open(dir.path(), Some("http://127.0.0.1:7001")).expect("open");
        let found = client.find("http://127.0.0.1:7001/").expect("read");
        assert!(found.is_some_and(|p| p.data.root().join("versions.json").exists()));
    }

    #[test]
    fn old_default_directories_move_under_projects() {
        let dir = tempfile::tempdir().expect("temp dir");
        old_host(&dir.path().join("127.0.0.1_7002"), "http://127.0.0.1:7002");
        // A folder that is not named after its server is left alone.
        old_host(&dir.path().join("elsewhere"), "http://127.0.0.1:7003");
        let client = ClientDir::open(dir.path(), None).expect("open");
        let servers: Vec<String> = client
            .projects()
            .expect("list")
            .into_iter()
            .map(|p| p.entry.server)
            .collect();
        assert_eq!(servers, ["http://127.0.0.1:7002"]);
        assert!(dir.path().join("elsewhere").join("host.json").exists());
    }

    #[test]
    fn projects_are_attached_with_shares_and_forgotten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let client = ClientDir::open(dir.path(), None).expect("open");
        client
            .attach("http://127.0.0.1:7004", None)
            .expect("attach");
        client
            .attach("https://b.example:443/", Some(300))
            .expect("attach");
        // Joining again keeps the share unless one is given.
        let kept = client.attach("https://b.example:443", None).expect("again");
        assert_eq!(kept.entry.resource_share, 300);
        assert_eq!(kept.entry.server, "https://b.example:443/");
        let shares: Vec<u32> = client
            .projects()
            .expect("list")
            .iter()
            .map(|p| p.entry.resource_share)
            .collect();
        assert_eq!(shares, [100, 300]);
        client.forget("http://127.0.0.1:7004/").expect("forget");
        assert_eq!(client.projects().expect("list").len(), 1);
        assert!(!client.project_dir("http://127.0.0.1:7004").exists());
    }
}
