//! Trust on first contact, then only through rotations: which project keys a host accepts.
//!
//! Pure decisions, no I/O: the caller reads the project info and the pinned file, and stores what
//! [`decide`] returns.

use musketeer_protocol::ProjectInfo;
use musketeer_signing_keys::{PublicKey, RotationStatement, TrustStore};

use super::files::PinnedTrust;

/// What to do with the project's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// First contact: pin these keys (show their fingerprints to the volunteer).
    PinNew(PinnedTrust),
    /// Already pinned; the (possibly rotated) keys to keep.
    Keep {
        /// The keys after applying the project's rotation statements.
        pinned: PinnedTrust,
        /// Whether rotations changed them (store the new set).
        rotated: bool,
    },
}

/// Why the host refuses the project's keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinError {
    /// The project publishes a key that no pinned key vouched for.
    #[error(
        "the project now trusts key {key_id}, which is not pinned here and no rotation statement \
         signed by a pinned key vouches for it; refusing its work (if you trust this change, \
         remove trust.json from the data directory and join again)"
    )]
    UnpinnedKey {
        /// The new key.
        key_id: String,
    },
    /// A key given with `--trust-key` is not among the project's keys.
    #[error(
        "the key you gave with --trust-key ({key_id}) is not one of the project's keys; check the \
         server URL and the key file"
    )]
    ExpectedKeyMissing {
        /// The key the volunteer expected.
        key_id: String,
    },
    /// A key given with `--trust-key` is not the one pinned here (after any signed rotation).
    #[error(
        "the key you gave with --trust-key ({given}) is not the key this data directory pinned \
         for the project ({pinned}); refusing to go on. If the project moved to that key, it \
         should publish a rotation statement signed by the pinned key; if you are sure the pin \
         is wrong, remove trust.json from the data directory (or use a new --data-dir) and join \
         again"
    )]
    TrustKeyNotPinned {
        /// The key the volunteer gave.
        given: String,
        /// The keys pinned here, comma-separated.
        pinned: String,
    },
    /// The project publishes no key at all.
    #[error("the project publishes no signing key; nothing it sends could be verified")]
    NoKeys,
    /// A key or rotation statement in the project info does not parse or verify.
    #[error("the project's key information is invalid: {0}")]
    Invalid(String),
}

/// Decides which keys to trust, given what is pinned, what the volunteer passed with
/// `--trust-key`, and what the project publishes.
pub fn decide(
    pinned: Option<PinnedTrust>,
    expected: &[PublicKey],
    project: &ProjectInfo,
) -> Result<Decision, PinError> {
    let offered = project_keys(project)?;
    if offered.is_empty() {
        return Err(PinError::NoKeys);
    }
    let rotations = project
        .rotations
        .iter()
        .map(|value| {
            serde_json::from_value::<RotationStatement>(value.clone())
                .map_err(|e| PinError::Invalid(format!("rotation statement: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match pinned {
        None => {
            let mut keys = TrustStore::new();
            if expected.is_empty() {
                offered.into_iter().for_each(|k| keys.add(k));
            } else {
                for key in expected {
                    if !offered.iter().any(|k| k == key) {
                        return Err(PinError::ExpectedKeyMissing {
                            key_id: key.key_id().to_string(),
                        });
                    }
                    keys.add(key.clone());
                }
            }
            Ok(Decision::PinNew(PinnedTrust {
                project: project.name.clone(),
                keys,
            }))
        }
        Some(mut pinned) => {
            let before = pinned.keys.clone();
            pinned
                .keys
                .apply_rotations(&rotations)
                .map_err(|e| PinError::Invalid(e.to_string()))?;
            if let Some(given) = expected
                .iter()
                .find(|k| !vouches_for_pinned(k, &rotations, &pinned.keys))
            {
                return Err(PinError::TrustKeyNotPinned {
                    given: given.key_id().to_string(),
                    pinned: pinned
                        .keys
                        .keys()
                        .map(|k| k.key_id().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            if let Some(unknown) = offered.iter().find(|k| !pinned.keys.contains(&k.key_id())) {
                return Err(PinError::UnpinnedKey {
                    key_id: unknown.key_id().to_string(),
                });
            }
            let rotated = pinned.keys != before;
            Ok(Decision::Keep { pinned, rotated })
        }
    }
}

/// Whether `given` is pinned, or the project's signed rotations lead from it to a pinned key
/// (a volunteer who keeps passing the key they first trusted after a rotation is not refused).
fn vouches_for_pinned(
    given: &PublicKey,
    rotations: &[RotationStatement],
    pinned: &TrustStore,
) -> bool {
    if pinned.contains(&given.key_id()) {
        return true;
    }
    let mut from_given = TrustStore::new();
    from_given.add(given.clone());
    // Statements were already verified against the pinned keys; one that fails from here
    // simply does not vouch.
    from_given.apply_rotations(rotations).is_ok()
        && from_given.keys().any(|k| pinned.contains(&k.key_id()))
}

fn project_keys(project: &ProjectInfo) -> Result<Vec<PublicKey>, PinError> {
    project
        .trusted_keys
        .iter()
        .map(|k| {
            PublicKey::from_text(&k.public_key)
                .map_err(|e| PinError::Invalid(format!("key {}: {e}", k.key_id)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use musketeer_protocol::{RegistrationPolicy, TrustedKey};
    use musketeer_signing_keys::SecretKey;

    fn project(keys: &[&SecretKey], rotations: &[RotationStatement]) -> ProjectInfo {
        ProjectInfo {
            name: "demo".into(),
            trusted_keys: keys
                .iter()
                .map(|k| TrustedKey {
                    key_id: k.public_key().key_id().to_string(),
                    public_key: k.public_key().to_text(),
                    fingerprint: k.public_key().fingerprint(),
                })
                .collect(),
            rotations: rotations
                .iter()
                .map(|r| serde_json::to_value(r).unwrap())
                .collect(),
            min_client_version: "0.1.0".parse().unwrap(),
            server_version: "0.1.0".into(),
            registration: RegistrationPolicy {
                invite_required: false,
            },
        }
    }

    fn pinned_after_first_contact(key: &SecretKey) -> PinnedTrust {
        match decide(None, &[], &project(&[key], &[])).unwrap() {
            Decision::PinNew(pinned) => pinned,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn first_contact_pins_the_project_keys() {
        let key = SecretKey::from_seed(&[1; 32]);
        let pinned = pinned_after_first_contact(&key);
        assert!(pinned.keys.contains(&key.public_key().key_id()));
        assert_eq!(pinned.project, "demo");
    }

    #[test]
    fn expected_key_must_be_offered() {
        let key = SecretKey::from_seed(&[1; 32]);
        let other = SecretKey::from_seed(&[2; 32]);
        let err = decide(None, &[other.public_key()], &project(&[&key], &[])).unwrap_err();
        assert!(matches!(err, PinError::ExpectedKeyMissing { .. }));
        let ok = decide(None, &[key.public_key()], &project(&[&key, &other], &[])).unwrap();
        let Decision::PinNew(pinned) = ok else {
            panic!()
        };
        // Only the key the volunteer vouched for is pinned.
        assert_eq!(pinned.keys.len(), 1);
    }

    #[test]
    fn a_changed_key_without_rotation_is_refused() {
        let old = SecretKey::from_seed(&[1; 32]);
        let new = SecretKey::from_seed(&[2; 32]);
        let pinned = pinned_after_first_contact(&old);
        let err = decide(Some(pinned), &[], &project(&[&new], &[])).unwrap_err();
        assert!(matches!(err, PinError::UnpinnedKey { .. }), "{err}");
    }

    #[test]
    fn a_trust_key_other_than_the_pinned_one_is_refused() {
        let pinned_key = SecretKey::from_seed(&[1; 32]);
        let other = SecretKey::from_seed(&[2; 32]);
        let pinned = pinned_after_first_contact(&pinned_key);
        let offered = project(&[&pinned_key], &[]);
        let err = decide(Some(pinned.clone()), &[other.public_key()], &offered).unwrap_err();
        assert_eq!(
            err,
            PinError::TrustKeyNotPinned {
                given: other.public_key().key_id().to_string(),
                pinned: pinned_key.public_key().key_id().to_string(),
            }
        );
        // Giving the pinned key again is fine, and so is the key a signed rotation moved to.
        assert!(decide(Some(pinned.clone()), &[pinned_key.public_key()], &offered).is_ok());
        let rotation = RotationStatement::sign(&pinned_key, &other.public_key(), true);
        let rotated = project(&[&other], &[rotation]);
        assert!(decide(Some(pinned.clone()), &[other.public_key()], &rotated).is_ok());
        // After the rotation is stored, the key first trusted still vouches for the new one.
        let Ok(Decision::Keep { pinned: moved, .. }) = decide(Some(pinned), &[], &rotated) else {
            panic!("the rotation is accepted")
        };
        assert!(decide(Some(moved), &[pinned_key.public_key()], &rotated).is_ok());
    }

    #[test]
    fn a_rotation_signed_by_a_pinned_key_is_accepted() {
        let old = SecretKey::from_seed(&[1; 32]);
        let new = SecretKey::from_seed(&[2; 32]);
        let pinned = pinned_after_first_contact(&old);
        let rotation = RotationStatement::sign(&old, &new.public_key(), true);
        let Decision::Keep { pinned, rotated } =
            decide(Some(pinned), &[], &project(&[&new], &[rotation])).unwrap()
        else {
            panic!()
        };
        assert!(rotated);
        assert!(pinned.keys.contains(&new.public_key().key_id()));
        assert!(!pinned.keys.contains(&old.public_key().key_id()));
    }

    #[test]
    fn a_rotation_signed_by_an_unpinned_key_is_refused() {
        let old = SecretKey::from_seed(&[1; 32]);
        let attacker = SecretKey::from_seed(&[3; 32]);
        let new = SecretKey::from_seed(&[2; 32]);
        let pinned = pinned_after_first_contact(&old);
        let rotation = RotationStatement::sign(&attacker, &new.public_key(), false);
        let err = decide(Some(pinned), &[], &project(&[&new], &[rotation])).unwrap_err();
        assert!(matches!(err, PinError::UnpinnedKey { .. }), "{err}");
    }
}
