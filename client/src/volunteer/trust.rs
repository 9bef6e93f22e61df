//! The project keys this host trusts while it runs: pinned at first contact, then changed only by
//! rotation statements signed by a pinned key ([`pinning::decide`] makes every decision).
//!
//! Keys are re-read when an assignment arrives signed by a key not trusted here, so a project
//! that rotates its key does not need its volunteers to restart.

use std::sync::{Arc, RwLock};

use musketeer_protocol::ProjectInfo;
use musketeer_signing_keys::{KeyId, TrustStore};

use super::events::Events;
use super::files::DataDir;
use super::pinning::{self, Decision};
use super::{JoinConfig, JoinError};
use crate::api_client::ApiClient;

/// Applies the pinning decision for `project` to the data directory; the keys to trust.
pub fn pin_keys(
    data: &DataDir,
    config: &JoinConfig,
    project: &ProjectInfo,
    events: &Events,
) -> Result<TrustStore, JoinError> {
    match pinning::decide(data.pinned()?, &config.trust_keys, project)? {
        Decision::PinNew(pinned) => {
            for key in pinned.keys.keys() {
                events.emit(
                    "pinned-key",
                    serde_json::json!({"key_id": key.key_id().to_string(), "fingerprint": key.fingerprint()}),
                    format!(
                        "project {:?}: pinned signing key {} (fingerprint {}); only modules signed by it, or by keys it rotates to, will run here",
                        project.name,
                        key.key_id(),
                        key.fingerprint()
                    ),
                );
            }
            data.save_pinned(&pinned)?;
            Ok(pinned.keys)
        }
        Decision::Keep { pinned, rotated } => {
            if rotated {
                events.emit(
                    "keys-rotated",
                    serde_json::json!({"keys": pinned.keys.keys().map(|k| k.key_id().to_string()).collect::<Vec<_>>()}),
                    "accepted a key rotation signed by a pinned key",
                );
                data.save_pinned(&pinned)?;
            }
            Ok(pinned.keys)
        }
    }
}

/// The trusted keys, shared by the slots, refreshed from the project when needed.
pub struct LiveTrust {
    current: RwLock<Arc<TrustStore>>,
    /// One refresh at a time; slots that wait for it then see its result.
    refreshing: tokio::sync::Mutex<()>,
}

impl LiveTrust {
    pub fn new(trust: TrustStore) -> Self {
        Self {
            current: RwLock::new(Arc::new(trust)),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// The keys trusted now.
    pub fn get(&self) -> Arc<TrustStore> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The keys to verify a manifest signed by `key_id` with: if that key is not trusted, first
    /// re-reads the project's keys and applies any rotation a pinned key signed. A failed
    /// refresh is reported and the current keys stay (the module is then refused as untrusted).
    pub async fn for_key(
        &self,
        key_id: &KeyId,
        api: &ApiClient,
        data: &DataDir,
        config: &JoinConfig,
        events: &Events,
    ) -> Arc<TrustStore> {
        if self.get().contains(key_id) {
            return self.get();
        }
        let _one_at_a_time = self.refreshing.lock().await;
        // Another slot may have refreshed while this one waited.
        let trust = self.get();
        if trust.contains(key_id) {
            return trust;
        }
        let refreshed = match api.project().await {
            Ok(project) => pin_keys(data, config, &project, events).map_err(|e| e.to_string()),
            Err(error) => Err(format!("cannot read the project's keys: {error}")),
        };
        match refreshed {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&keys);
                keys
            }
            Err(error) => {
                events.emit(
                    "trust-refresh-failed",
                    serde_json::json!({"key_id": key_id.to_string(), "error": error}),
                    format!(
                        "a module is signed by key {key_id}, which is not trusted here: {error}"
                    ),
                );
                trust
            }
        }
    }
}
