//! The set of keys a host or server trusts, and the trust decisions made with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canonical::signature_from_text;
use crate::error::{RotationError, VerifyError};
use crate::key::{KeyId, PublicKey};
use crate::manifest::{Manifest, SignedManifest, sha256_hex};
use crate::rotation::RotationStatement;

/// Trusted public keys by key id. Serializes as a list of public keys (ids are recomputed on
/// load, so a stored id can never point at a different key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<PublicKey>", into = "Vec<PublicKey>")]
pub struct TrustStore {
    keys: BTreeMap<KeyId, PublicKey>,
}

impl TrustStore {
    /// An empty store.
    pub fn new() -> TrustStore {
        TrustStore::default()
    }

    /// Trusts `key`.
    pub fn add(&mut self, key: PublicKey) {
        self.keys.insert(key.key_id(), key);
    }

    /// Stops trusting the key `id`; returns it if it was trusted.
    pub fn remove(&mut self, id: &KeyId) -> Option<PublicKey> {
        self.keys.remove(id)
    }

    /// Whether the key `id` is trusted.
    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys.contains_key(id)
    }

    /// The trusted key `id`.
    pub fn get(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys.get(id)
    }

    /// The trusted keys, ordered by key id.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        self.keys.values()
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks that the manifest is signed by a trusted key, that the signature is valid over its
    /// canonical bytes, and that the signed contents are valid.
    pub fn verify_manifest(&self, signed: &SignedManifest) -> Result<(), VerifyError> {
        let key = self
            .get(&signed.key_id)
            .ok_or_else(|| VerifyError::UntrustedKey(signed.key_id.clone()))?;
        let signature =
            signature_from_text(&signed.signature).ok_or(VerifyError::MalformedSignature)?;
        if !key.verify(&signed.manifest.canonical_bytes(), &signature) {
            return Err(VerifyError::BadSignature {
                key_id: signed.key_id.clone(),
            });
        }
        signed
            .manifest
            .validate()
            .map_err(VerifyError::InvalidManifest)
    }

    /// [`verify_manifest`](TrustStore::verify_manifest), then checks that `module` has the
    /// manifest's size (cheap, first) and sha256. Returns the manifest the module may run under.
    pub fn verify<'a>(
        &self,
        signed: &'a SignedManifest,
        module: &[u8],
    ) -> Result<&'a Manifest, VerifyError> {
        self.verify_manifest(signed)?;
        let manifest = &signed.manifest;
        let actual = module.len() as u64;
        if actual != manifest.module_size {
            return Err(VerifyError::ModuleSizeMismatch {
                expected: manifest.module_size,
                actual,
            });
        }
        let actual = sha256_hex(module);
        if actual != manifest.module_sha256 {
            return Err(VerifyError::ModuleHashMismatch {
                expected: manifest.module_sha256.clone(),
                actual,
            });
        }
        Ok(manifest)
    }

    /// Applies a rotation: if the statement is validly signed by a trusted key, trusts its new
    /// key and, with `retire_old`, stops trusting the old one.
    ///
    /// Idempotent: a statement whose effect is already in place is accepted without change, even
    /// when its retired signer can no longer be checked (nothing is changed on its word).
    pub fn apply_rotation(&mut self, statement: &RotationStatement) -> Result<(), RotationError> {
        let new_id = statement.new_key.key_id();
        if new_id == statement.old_key_id {
            return Err(RotationError::SameKey(new_id));
        }
        let Some(old_key) = self.get(&statement.old_key_id) else {
            if statement.retire_old && self.get(&new_id) == Some(&statement.new_key) {
                return Ok(());
            }
            return Err(RotationError::UntrustedSigner(statement.old_key_id.clone()));
        };
        statement.verify_signature(old_key)?;
        self.keys.insert(new_id, statement.new_key.clone());
        if statement.retire_old {
            self.keys.remove(&statement.old_key_id);
        }
        Ok(())
    }

    /// Replays a published list of statements (in any order): applies, at most once each, every
    /// statement whose signer is or becomes trusted, and skips the others (history of retired
    /// keys, or chains this store never trusted). All or nothing: a statement from a trusted
    /// signer that fails to verify leaves the store unchanged and is returned as the error.
    pub fn apply_rotations(
        &mut self,
        statements: &[RotationStatement],
    ) -> Result<(), RotationError> {
        let mut next = self.clone();
        let mut applied = vec![false; statements.len()];
        loop {
            let mut progressed = false;
            for (statement, done) in statements.iter().zip(applied.iter_mut()) {
                if *done || !next.contains(&statement.old_key_id) {
                    continue;
                }
                next.apply_rotation(statement)?;
                *done = true;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        *self = next;
        Ok(())
    }
}

impl From<Vec<PublicKey>> for TrustStore {
    fn from(keys: Vec<PublicKey>) -> TrustStore {
        keys.into_iter().collect()
    }
}

impl From<TrustStore> for Vec<PublicKey> {
    fn from(store: TrustStore) -> Vec<PublicKey> {
        store.keys.into_values().collect()
    }
}

impl FromIterator<PublicKey> for TrustStore {
    fn from_iter<I: IntoIterator<Item = PublicKey>>(keys: I) -> TrustStore {
        let mut store = TrustStore::new();
        for key in keys {
            store.add(key);
        }
        store
    }
}
