//! Typed errors of this crate.
//!
//! Every message is complete on its own (it names the offending value and, where useful, what to
//! do), so a CLI can print `error.to_string()` as its one-line reason.

use std::path::PathBuf;

use crate::key::KeyId;

/// Errors reading, parsing or writing keys and key files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file-system operation on a key file or its directory failed.
    #[error("{action} {}: {error}", path.display())]
    Io {
        /// What was being done, e.g. "could not read".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        error: std::io::Error,
    },
    /// Key generation would overwrite an existing file.
    #[error(
        "{} already exists; refusing to overwrite it (move it away or choose another directory)",
        path.display()
    )]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A secret key file is readable or writable by group or others.
    #[error(
        "secret key file {} is accessible by group or others (mode {mode:04o}); \
         run `chmod 600 {}` and try again",
        path.display(),
        path.display()
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file is larger than any valid key file could be.
    #[error("{} is too large to be a key file ({size} bytes, at most {max})", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes (or a lower bound of it).
        size: u64,
        /// The largest accepted size.
        max: u64,
    },
    /// A key file's contents could not be parsed.
    #[error("{} is not a valid key file: {error}", path.display())]
    InvalidKeyFile {
        /// The file.
        path: PathBuf,
        /// Why its contents were refused.
        error: Box<KeyError>,
    },
    /// Key text does not have the expected `<tag> <base64>` form.
    #[error("expected `{expected} <base64>`, found {found}")]
    WrongFormat {
        /// The tag that was expected.
        expected: &'static str,
        /// A short description of what was found instead.
        found: String,
    },
    /// The base64 part of a key text does not decode.
    #[error("key is not valid base64: {0}")]
    BadBase64(base64::DecodeError),
    /// The decoded key has the wrong number of bytes.
    #[error("key has {actual} bytes, expected {expected}")]
    WrongLength {
        /// Bytes an ed25519 key has.
        expected: usize,
        /// Bytes found.
        actual: usize,
    },
    /// The bytes are not a usable ed25519 public key (not a curve point, or a weak key).
    #[error("not a usable ed25519 public key (invalid or small-order point)")]
    InvalidPublicKey,
    /// A key id is not of the form `ed25519:` followed by 16 lowercase hex digits.
    #[error("invalid key id {0:?}: expected `ed25519:` followed by 16 lowercase hex digits")]
    InvalidKeyId(String),
}

/// Errors building, validating or parsing manifests.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The app name is not 1-64 characters of `a-z`, `0-9`, `-` starting with a letter or digit.
    #[error(
        "invalid app name {0:?}: use 1-64 characters of a-z, 0-9 and '-', \
         starting with a letter or digit"
    )]
    InvalidApp(String),
    /// `module_sha256` is not 64 lowercase hex digits.
    #[error("invalid module_sha256 {0:?}: expected 64 lowercase hex digits")]
    InvalidModuleHash(String),
    /// `module_size` is zero or larger than the maximum module size.
    #[error("invalid module_size {size}: must be between 1 and {max} bytes")]
    InvalidModuleSize {
        /// The size given.
        size: u64,
        /// The largest accepted module size.
        max: u64,
    },
    /// An `http_allow` entry is not an acceptable URL prefix.
    #[error("invalid http_allow entry {entry:?}: {reason}")]
    InvalidHttpAllow {
        /// The entry as written.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// The optional input format is empty, too long, or its example is not JSON.
    #[error("invalid input format: {0}")]
    InvalidInputFormat(String),
    /// A limit is zero or above its maximum.
    #[error("invalid limit {name} = {value}: must be between 1 and {max}")]
    InvalidLimit {
        /// The limit's field name, e.g. `memory_bytes`.
        name: &'static str,
        /// The value given.
        value: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// The manifest file is larger than any sensible manifest.
    #[error("manifest file is too large ({size} bytes, at most {max})")]
    TooLarge {
        /// Size of the text given.
        size: usize,
        /// The largest accepted size.
        max: usize,
    },
    /// The manifest file could not be opened or read (or is not UTF-8 text).
    #[error("cannot read manifest file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The manifest file is not valid JSON of the expected shape (or has unknown fields).
    #[error("manifest file is not valid: {0}")]
    Json(serde_json::Error),
    /// The signature is not base64 of 64 bytes.
    #[error("manifest signature is malformed: expected base64 of 64 bytes")]
    MalformedSignature,
}

/// Reasons a signed manifest or module is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The manifest names a signing key that is not trusted.
    #[error("manifest is signed by key {0}, which is not trusted")]
    UntrustedKey(KeyId),
    /// The signature does not match the manifest (the manifest or signature was altered).
    #[error(
        "manifest signature does not verify with key {key_id}: the manifest or its signature was altered"
    )]
    BadSignature {
        /// The (trusted) key the signature was checked against.
        key_id: KeyId,
    },
    /// The signature is not base64 of 64 bytes.
    #[error("manifest signature is malformed: expected base64 of 64 bytes")]
    MalformedSignature,
    /// The manifest is correctly signed but its contents are invalid.
    #[error("signed manifest is invalid: {0}")]
    InvalidManifest(ManifestError),
    /// The module's size differs from the size in the manifest.
    #[error("module size mismatch: manifest says {expected} bytes, module has {actual}")]
    ModuleSizeMismatch {
        /// Size named by the manifest.
        expected: u64,
        /// Size of the module given.
        actual: u64,
    },
    /// The module's sha256 differs from the hash in the manifest.
    #[error("module hash mismatch: manifest says sha256 {expected}, module has {actual}")]
    ModuleHashMismatch {
        /// Hash named by the manifest.
        expected: String,
        /// Hash of the module given.
        actual: String,
    },
}

/// Reasons a key rotation statement is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// The statement is signed by a key that is not trusted.
    #[error("rotation statement is signed by key {0}, which is not trusted")]
    UntrustedSigner(KeyId),
    /// The signature does not match the statement (it was altered or forged).
    #[error("rotation statement signature does not verify with key {key_id}")]
    BadSignature {
        /// The (trusted) key the signature was checked against.
        key_id: KeyId,
    },
    /// The signature is not base64 of 64 bytes.
    #[error("rotation statement signature is malformed: expected base64 of 64 bytes")]
    MalformedSignature,
    /// The statement rotates a key to itself.
    #[error("rotation statement rotates key {0} to itself")]
    SameKey(KeyId),
}
