//! Key rotation statements: how a new key becomes trusted.
//!
//! A new key is trusted only through a statement signed by a key that is already trusted (BOINC's
//! rule), applied with [`crate::TrustStore::apply_rotation`]. The signature covers
//! [`RotationStatement::canonical_bytes`]: with the encoding of the [manifest
//! form](crate::manifest), the strings `"musketeer-rotation-v1"` and `old_key_id`, the new key's
//! 32 bytes (length-prefixed), then `retire_old` as a u64 (0 or 1).

use serde::{Deserialize, Serialize};

use crate::canonical::{Encoder, signature_from_text, signature_to_text};
use crate::error::RotationError;
use crate::key::{KeyId, PublicKey, SecretKey};

/// Domain-separation string of the rotation canonical form.
pub const ROTATION_DOMAIN: &str = "musketeer-rotation-v1";

/// "Key `old_key_id` vouches for `new_key`", optionally retiring the old key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotationStatement {
    /// Id of the signing (old) key.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub old_key_id: KeyId,
    /// The key to trust from now on.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub new_key: PublicKey,
    /// Whether the old key stops being trusted once the statement is applied.
    pub retire_old: bool,
    /// base64 of the 64-byte ed25519 signature by the old key over the canonical bytes.
    pub signature: String,
}

impl RotationStatement {
    /// Has `old` vouch for `new_key`.
    pub fn sign(old: &SecretKey, new_key: &PublicKey, retire_old: bool) -> RotationStatement {
        let mut statement = RotationStatement {
            old_key_id: old.public_key().key_id(),
            new_key: new_key.clone(),
            retire_old,
            signature: String::new(),
        };
        statement.signature = signature_to_text(&old.sign(&statement.canonical_bytes()));
        statement
    }

    /// The bytes the signature covers (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        Encoder::new(ROTATION_DOMAIN)
            .str(self.old_key_id.as_str())
            .bytes(&self.new_key.to_bytes())
            .u64(u64::from(self.retire_old))
            .finish()
    }

    /// Checks the signature against `old_key`, the trusted key named by `old_key_id`.
    pub(crate) fn verify_signature(&self, old_key: &PublicKey) -> Result<(), RotationError> {
        let signature =
            signature_from_text(&self.signature).ok_or(RotationError::MalformedSignature)?;
        if old_key.key_id() == self.old_key_id
            && old_key.verify(&self.canonical_bytes(), &signature)
        {
            Ok(())
        } else {
            Err(RotationError::BadSignature {
                key_id: self.old_key_id.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_snapshot() {
        let old = SecretKey::from_seed(&[1; 32]);
        let new = SecretKey::from_seed(&[2; 32]).public_key();
        let statement = RotationStatement::sign(&old, &new, true);
        let id = old.public_key().key_id();
        let len = |n: u8| [0, 0, 0, 0, 0, 0, 0, n];
        let expected: Vec<u8> = [
            &len(21)[..],
            b"musketeer-rotation-v1",
            &len(24),
            id.as_str().as_bytes(),
            &len(32),
            &new.to_bytes(),
            &len(1),
        ]
        .concat();
        assert_eq!(statement.canonical_bytes(), expected);
        statement.verify_signature(&old.public_key()).unwrap();
    }

    #[test]
    fn json_round_trip_refuses_unknown_fields() {
        let statement = RotationStatement::sign(
            &SecretKey::generate(),
            &SecretKey::generate().public_key(),
            false,
        );
        let json = serde_json::to_string(&statement).unwrap();
        assert_eq!(
            serde_json::from_str::<RotationStatement>(&json).unwrap(),
            statement
        );
        let extra = json.replacen('{', "{\"extra\":1,", 1);
        assert!(serde_json::from_str::<RotationStatement>(&extra).is_err());
    }
}
