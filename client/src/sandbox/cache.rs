//! The compiled-code cache: native code for a module, keyed by the module's sha256 and the
//! engine fingerprint, in a private directory.
//!
//! Loading compiled code is `unsafe` in wasmtime: a forged artifact is arbitrary native code.
//! So an artifact is only ever loaded if it carries an HMAC made with this cache's own secret
//! (created 0600 on first use), which proves this client wrote it; anything else is recompiled.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 32;
const SECRET_FILE: &str = "cache.secret";

/// Errors of the cache itself (a bad artifact is not an error: it is recompiled).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The directory could not be created or used.
    #[error("compiled-code cache at {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The directory is readable or writable by other users, so artifacts could be planted.
    #[error(
        "compiled-code cache {0} is accessible to other users; run `chmod 700` on it or remove it"
    )]
    NotPrivate(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An on-disk cache of compiled components.
#[derive(Debug)]
pub struct CodeCache {
    dir: PathBuf,
    secret: Vec<u8>,
    fingerprint: String,
}

impl CodeCache {
    /// Opens (creating with mode 0700) the cache at `dir` for `engine`.
    pub fn open(dir: &Path, fingerprint: String) -> Result<Self, CacheError> {
        create_private_dir(dir)?;
        let secret = load_or_create_secret(&dir.join(SECRET_FILE))?;
        Ok(Self {
            dir: dir.to_owned(),
            secret,
            fingerprint,
        })
    }

    fn artifact_path(&self, module_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{module_sha256}-{}.cwasm", self.fingerprint))
    }

    /// The cached component for this module, if this client compiled it before.
    pub fn load(&self, engine: &Engine, module_sha256: &str) -> Option<Component> {
        let path = self.artifact_path(module_sha256);
        let mut bytes = Vec::new();
        File::open(&path).ok()?.read_to_end(&mut bytes).ok()?;
        if bytes.len() < TAG_LEN {
            return None;
        }
        let (artifact, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut mac = self.mac();
        mac.update(module_sha256.as_bytes());
        mac.update(artifact);
        if mac.verify_slice(tag).is_err() {
            tracing::warn!(path = %path.display(), "ignoring compiled artifact with a bad tag");
            return None;
        }
        // SAFETY: the HMAC proves this client serialized these bytes from a component it
        // compiled itself for this engine fingerprint, and the directory is private.
        unsafe { Component::deserialize(engine, artifact) }.ok()
    }

    /// Stores a freshly compiled component (atomically: temp file, fsync, rename).
    pub fn store(&self, module_sha256: &str, component: &Component) -> Result<(), CacheError> {
        let Ok(artifact) = component.serialize() else {
            return Ok(()); // nothing to cache; compiling again next time is correct, only slower
        };
        let mut mac = self.mac();
        mac.update(module_sha256.as_bytes());
        mac.update(&artifact);
        let tag = mac.finalize().into_bytes();
        let path = self.artifact_path(module_sha256);
        let tmp = self.dir.join(format!(
            ".{module_sha256}.{}.{:?}.tmp",
            std::process::id(),
            std::thread::current().id()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = private_file(&tmp)?;
            file.write_all(&artifact)?;
            file.write_all(&tag)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            CacheError::Io {
                path: path.clone(),
                source: e,
            }
        })
    }

    fn mac(&self) -> HmacSha256 {
        // An HMAC key of any length is valid, so this cannot fail.
        HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key length")
    }
}

fn create_private_dir(dir: &Path) -> Result<(), CacheError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let meta = fs::metadata(dir).map_err(io(dir))?;
        // std has no geteuid: a file we just created tells our uid.
        let probe_owner = {
            let probe = dir.join(".owner-probe");
            let file = private_file(&probe).map_err(io(&probe))?;
            let uid = file.metadata().map_err(io(&probe))?.uid();
            let _ = fs::remove_file(&probe);
            uid
        };
        if meta.uid() != probe_owner || meta.permissions().mode() & 0o077 != 0 {
            return Err(CacheError::NotPrivate(dir.to_owned()));
        }
    }
    #[cfg(not(unix))]
    fs::create_dir_all(dir).map_err(io(dir))?;
    Ok(())
}

fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, CacheError> {
    if let Ok(secret) = fs::read(path)
        && secret.len() == 32
    {
        return Ok(secret);
    }
    let mut secret = vec![0u8; 32];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut secret).map_err(|e| {
        CacheError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    // Unique per attempt, not just per process: two sandboxes of one process (threads) that
    // open the cache at once must not share (and remove) each other's temporary file.
    let nonce: String = secret[..8].iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension(format!("{}.{nonce}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = private_file(&tmp)?;
        file.write_all(&secret)?;
        file.sync_all()?;
        // A hard link never replaces an existing file: when two clients start at once, the
        // first secret wins and both read it back below.
        match fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    };
    let written = write();
    let _ = fs::remove_file(&tmp);
    written.map_err(io(path))?;
    let secret = fs::read(path).map_err(io(path))?;
    if secret.len() != 32 {
        return Err(CacheError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("cache secret has the wrong length; delete it"),
        });
    }
    Ok(secret)
}
