//! The volunteer's data directory: host credentials, pinned keys, app versions already run.
//! Every file is replaced atomically (write, fsync, rename) so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use musketeer_protocol::HostId;
use musketeer_signing_keys::TrustStore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why a data-directory file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Reading, writing or renaming failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file exists but is not what this client wrote.
    #[error("{path} is corrupt ({message}); remove it to start over")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// The host's identity at one server (`host.json`, mode 0600: the token is a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCredentials {
    /// The server it was registered with.
    pub server: String,
    /// The host id the server gave.
    pub host_id: HostId,
    /// The host token.
    pub host_token: String,
}

/// Keys pinned on first contact (`trust.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedTrust {
    /// The project's name when it was pinned.
    pub project: String,
    /// The keys this host accepts signatures of.
    pub keys: TrustStore,
}

/// Highest version of each app this host has run (`versions.json`); lower ones are refused.
pub type AppVersions = BTreeMap<String, semver::Version>;

/// The files of one data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (creating) the directory.
    pub fn open(root: &Path) -> Result<Self, FileError> {
        for dir in [root.to_path_buf(), root.join("modules"), root.join("spool")] {
            std::fs::create_dir_all(&dir).map_err(|source| FileError::Io { path: dir, source })?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where finished results wait for the server's acknowledgement.
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("spool")
    }

    /// Downloaded modules, by sha256.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("modules")
    }

    /// Compiled-code cache.
    pub fn compiled_dir(&self) -> PathBuf {
        self.root.join("compiled")
    }

    /// `host.json`, if registered.
    pub fn host(&self) -> Result<Option<HostCredentials>, FileError> {
        read_json(&self.root.join("host.json"))
    }

    /// Stores `host.json` readable by the owner only.
    pub fn save_host(&self, host: &HostCredentials) -> Result<(), FileError> {
        write_json(&self.root.join("host.json"), host, true)
    }

    /// Deletes `host.json`: the server no longer accepts its token.
    pub fn forget_host(&self) -> Result<(), FileError> {
        let path = self.root.join("host.json");
        match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(FileError::Io { path, source })
            }
            _ => Ok(()),
        }
    }

    /// `trust.json`, if pinned.
    pub fn pinned(&self) -> Result<Option<PinnedTrust>, FileError> {
        read_json(&self.root.join("trust.json"))
    }

    /// Stores `trust.json`.
    pub fn save_pinned(&self, pinned: &PinnedTrust) -> Result<(), FileError> {
        write_json(&self.root.join("trust.json"), pinned, false)
    }

    /// The project's own CA certificate (`ca.pem`), if `join` was given one.
    pub fn ca_cert(&self) -> Result<Option<Vec<u8>>, FileError> {
        let path = self.root.join("ca.pem");
        match std::fs::read(&path) {
            Ok(pem) => Ok(Some(pem)),
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(FileError::Io { path, source }),
        }
    }

    /// Stores `ca.pem`, so the client trusts it for this project whichever `join` starts it.
    pub fn save_ca_cert(&self, pem: &[u8]) -> Result<(), FileError> {
        write_atomic(&self.root.join("ca.pem"), pem, false)
    }

    /// `versions.json` (empty if absent).
    pub fn versions(&self) -> Result<AppVersions, FileError> {
        Ok(read_json(&self.root.join("versions.json"))?.unwrap_or_default())
    }

    /// Stores `versions.json`.
    pub fn save_versions(&self, versions: &AppVersions) -> Result<(), FileError> {
        write_json(&self.root.join("versions.json"), versions, false)
    }
}

/// Largest state file read (`host.json`, `trust.json`, `versions.json`); real ones are a few KiB.
const MAX_STATE_FILE_BYTES: u64 = 16 * 1024 * 1024;

pub(super) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io(source)),
    };
    // Size first: a state file grown huge (or replaced) is not read into memory.
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_STATE_FILE_BYTES {
        return Err(FileError::Corrupt {
            path: path.to_path_buf(),
            message: format!("{size} bytes, larger than any state file ({MAX_STATE_FILE_BYTES})"),
        });
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_STATE_FILE_BYTES),
        &mut bytes,
    )
    .map_err(io)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| FileError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

pub(super) fn write_json<T: Serialize>(
    path: &Path,
    value: &T,
    private: bool,
) -> Result<(), FileError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| FileError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes, private)
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    // The rename itself is durable only once the directory is synced.
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_file_is_private_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert_eq!(data.host().unwrap(), None);
        let host = HostCredentials {
            server: "http://127.0.0.1:1".into(),
            host_id: HostId(7),
            host_token: "secret".into(),
        };
        data.save_host(&host).unwrap();
        assert_eq!(data.host().unwrap(), Some(host));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("host.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("versions.json"), b"{not json").unwrap();
        assert!(matches!(data.versions(), Err(FileError::Corrupt { .. })));
    }

    #[test]
    fn an_oversized_state_file_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let file = std::fs::File::create(dir.path().join("versions.json")).unwrap();
        // Sparse: nothing on disk, and nothing read.
        file.set_len(300 << 20).unwrap();
        match data.versions() {
            Err(FileError::Corrupt { message, .. }) => {
                assert!(message.contains("larger than any state file"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }
}
