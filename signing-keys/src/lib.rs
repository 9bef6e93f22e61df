//! Keys, signed manifests, trust store and key rotation for musketeer task modules.
//!
//! A volunteer's host runs a task module only if its [`Manifest`] (app, version, module hash and
//! size, HTTP allowlist, limits) is signed by a key in the host's [`TrustStore`] and the module
//! matches the manifest. Keys are ed25519; a [`KeyId`] is derived from the public key. New keys
//! become trusted only through a [`RotationStatement`] signed by an already trusted key.
//!
//! ```
//! use musketeer_signing_keys::{Limits, Manifest, SecretKey, SignedManifest, TrustStore};
//!
//! // Author side: describe the module and sign the manifest.
//! let key = SecretKey::generate();
//! let module = b"\0asm...".to_vec();
//! let manifest = Manifest::for_module(
//!     "stock-day",
//!     "1.2.0".parse()?,
//!     &module,
//!     vec!["https://www.twse.com.tw/".to_owned()],
//!     Limits::default(),
//! )?;
//! let manifest_file = manifest.sign(&key).to_json();
//!
//! // Host side: trust the author's public key, then check the manifest and module.
//! let mut trust = TrustStore::new();
//! trust.add(key.public_key());
//! let signed = SignedManifest::from_json(&manifest_file)?;
//! let verified = trust.verify(&signed, &module)?;
//! assert_eq!(verified.limits, Limits::default());
//!
//! // Any change to the module is refused.
//! assert!(trust.verify(&signed, b"\0asm..!").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod canonical;
pub mod error;
pub mod key;
pub mod key_file;
pub mod limits;
pub mod manifest;
pub mod manifest_file;
pub mod rotation;
pub mod trust;

pub use error::{KeyError, ManifestError, RotationError, VerifyError};
pub use key::{KeyId, PublicKey, SecretKey};
pub use key_file::{
    PUBLIC_KEY_FILE, SECRET_KEY_FILE, generate_key_files, read_public_key, read_secret_key,
};
pub use limits::Limits;
pub use manifest::{
    InputFormat, MANIFEST_DOMAIN, MANIFEST_DOMAIN_V2, Manifest, SignedManifest, sha256_hex,
};
pub use manifest_file::{read_manifest_file, read_manifest_text};
pub use rotation::{ROTATION_DOMAIN, RotationStatement};
pub use trust::TrustStore;
