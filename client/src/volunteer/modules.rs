//! Modules downloaded by sha256, kept in the data directory, and compiled once per manifest.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use musketeer_signing_keys::{SignedManifest, TrustStore, sha256_hex};

use crate::api_client::{ApiClient, ApiError};
use crate::sandbox::{PreparedTask, RunError, Sandbox};

use super::files::write_atomic;

/// Why a module could not be made ready to run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleError {
    /// The download failed.
    #[error("cannot download module {sha256}: {source}")]
    Download {
        /// The module.
        sha256: String,
        /// The underlying error.
        source: ApiError,
    },
    /// The server sent bytes whose hash is not the one asked for.
    #[error("the server sent module bytes with sha256 {actual}, not the requested {expected}")]
    WrongBytes {
        /// Requested.
        expected: String,
        /// Received.
        actual: String,
    },
    /// Verification or compilation refused the module.
    #[error(transparent)]
    Refused(#[from] RunError),
    /// The module could not be stored.
    #[error("cannot store module: {0}")]
    Disk(String),
}

/// Module files and prepared (verified, compiled) tasks.
pub struct Modules {
    dir: PathBuf,
    sandbox: Arc<Sandbox>,
    /// Prepared tasks by the signed manifest's text; held across compilation so two slots do
    /// not compile the same module twice.
    prepared: tokio::sync::Mutex<HashMap<String, Arc<PreparedTask>>>,
}

impl Modules {
    /// Modules stored in `dir`, run in `sandbox`.
    pub fn new(dir: PathBuf, sandbox: Arc<Sandbox>) -> Self {
        Self {
            dir,
            sandbox,
            prepared: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Verifies `signed` against `trust`, with the module `sha256` (from disk, else downloaded),
    /// and compiles it (or takes it from the cache).
    pub async fn prepare(
        &self,
        api: &ApiClient,
        trust: &TrustStore,
        signed: SignedManifest,
        sha256: &str,
    ) -> Result<Arc<PreparedTask>, ModuleError> {
        let key = signed.to_json();
        let mut prepared = self.prepared.lock().await;
        if let Some(task) = prepared.get(&key) {
            return Ok(task.clone());
        }
        let module = self
            .module_bytes(api, sha256, signed.manifest.module_size)
            .await?;
        let sandbox = self.sandbox.clone();
        let trust = trust.clone();
        let result = tokio::task::spawn_blocking(move || sandbox.prepare(&trust, &signed, &module))
            .await
            .map_err(|e| ModuleError::Disk(format!("compilation thread failed: {e}")))?;
        match result {
            Ok(task) => {
                let task = Arc::new(task);
                prepared.insert(key, task.clone());
                Ok(task)
            }
            Err(error) => {
                // A stored file that fails verification was altered on disk: drop it so the
                // next assignment downloads a fresh copy.
                let _ = std::fs::remove_file(self.path(sha256));
                Err(error.into())
            }
        }
    }

    /// The module's bytes, never reading more than `size` (from the signed manifest; verified
    /// with the hash by `prepare`).
    async fn module_bytes(
        &self,
        api: &ApiClient,
        sha256: &str,
        size: u64,
    ) -> Result<Vec<u8>, ModuleError> {
        let valid_name = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid_name {
            return Err(ModuleError::WrongBytes {
                expected: sha256.to_owned(),
                actual: "(not a sha256)".into(),
            });
        }
        if let Some(bytes) = read_stored(&self.path(sha256), size) {
            // Verified against the signed manifest by `prepare`, not trusted for its name.
            return Ok(bytes);
        }
        let bytes = api
            .module(sha256, size)
            .await
            .map_err(|source| ModuleError::Download {
                sha256: sha256.to_owned(),
                source,
            })?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(ModuleError::WrongBytes {
                expected: sha256.to_owned(),
                actual,
            });
        }
        write_atomic(&self.path(sha256), &bytes, false)
            .map_err(|e| ModuleError::Disk(e.to_string()))?;
        Ok(bytes)
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }
}

/// A stored module of exactly `size` bytes; a file of another size is not read (it cannot be
/// the module) and is downloaded again.
fn read_stored(path: &Path, size: u64) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    if file.metadata().ok()?.len() != size {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).ok()?);
    // `take` holds the read to the size checked, even if the file grows meanwhile.
    file.take(size.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    (bytes.len() as u64 == size).then_some(bytes)
}
