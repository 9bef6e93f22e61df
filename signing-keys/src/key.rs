//! ed25519 keys, their ids and their one-line text forms.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::KeyError;

const PUBLIC_TAG: &str = "musketeer-ed25519-public";
const SECRET_TAG: &str = "musketeer-ed25519-secret";
const KEY_ID_PREFIX: &str = "ed25519:";
const KEY_ID_HEX_LEN: usize = 16;

/// Identifies a public key: `ed25519:` followed by the first 16 hex digits of the sha256 of the
/// key's 32 bytes (the start of its [fingerprint](PublicKey::fingerprint)).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// The id as text, e.g. `ed25519:0123456789abcdef`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<KeyId, KeyError> {
        let valid = text.strip_prefix(KEY_ID_PREFIX).is_some_and(|hex| {
            hex.len() == KEY_ID_HEX_LEN
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(KeyId(text.to_owned()))
        } else {
            Err(KeyError::InvalidKeyId(text.to_owned()))
        }
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KeyId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An ed25519 public key that signs task manifests or rotation statements.
///
/// Its text form is one line, `musketeer-ed25519-public <base64 of 32 bytes>`; serde uses it too.
/// Small-order ("weak") keys are refused on construction.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Builds a key from its 32 bytes, refusing invalid and small-order points.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(KeyError::InvalidPublicKey);
        }
        Ok(PublicKey(key))
    }

    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        let digest = Sha256::digest(self.0.as_bytes());
        KeyId(format!(
            "{KEY_ID_PREFIX}{}",
            &hex::encode(digest)[..KEY_ID_HEX_LEN]
        ))
    }

    /// A fingerprint for people to compare: the sha256 of the key's bytes in 16 groups of 4 hex
    /// digits (the key id is its first 4 groups).
    pub fn fingerprint(&self) -> String {
        let hex = hex::encode(Sha256::digest(self.0.as_bytes()));
        let groups: Vec<&str> = (0..hex.len()).step_by(4).map(|i| &hex[i..i + 4]).collect();
        groups.join(" ")
    }

    /// The one-line text form, `musketeer-ed25519-public <base64>`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_TAG} {}", base64_encode(self.0.as_bytes()))
    }

    /// Parses the text form (surrounding whitespace, such as a final newline, is ignored).
    pub fn from_text(text: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_bytes(&parse_text(text, PUBLIC_TAG)?)
    }

    /// Checks `signature` over `message` (strict verification: no malleable signatures).
    pub(crate) fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        self.0.verify_strict(message, signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey").field(&self.to_text()).finish()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_text(text)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        PublicKey::from_text(&text).map_err(serde::de::Error::custom)
    }
}

/// An ed25519 secret (signing) key. Its `Debug` output shows only the key id, and its memory is
/// zeroed on drop.
///
/// Its text form is one line, `musketeer-ed25519-secret <base64 of the 32-byte seed>`.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// Generates a new key from the operating system's random number generator.
    pub fn generate() -> SecretKey {
        SecretKey(SigningKey::generate(&mut rand_core::OsRng))
    }

    /// Builds a key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> SecretKey {
        SecretKey(SigningKey::from_bytes(seed))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        // A key derived from a secret scalar is never small-order.
        PublicKey(self.0.verifying_key())
    }

    /// The one-line text form, `musketeer-ed25519-secret <base64>`.
    pub fn to_text(&self) -> String {
        format!("{SECRET_TAG} {}", base64_encode(self.0.as_bytes()))
    }

    /// Parses the text form (surrounding whitespace, such as a final newline, is ignored).
    pub fn from_text(text: &str) -> Result<SecretKey, KeyError> {
        Ok(SecretKey::from_seed(&parse_text(text, SECRET_TAG)?))
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.0.sign(message)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.public_key().key_id())
            .finish_non_exhaustive()
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Parses `<tag> <base64 of 32 bytes>`.
fn parse_text(text: &str, tag: &'static str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    let wrong_format = |found: String| KeyError::WrongFormat {
        expected: tag,
        found,
    };
    let Some((found_tag, encoded)) = text.split_once(' ') else {
        return Err(wrong_format(describe(text)));
    };
    if found_tag != tag {
        return Err(wrong_format(describe(found_tag)));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(KeyError::BadBase64)?;
    let actual = bytes.len();
    bytes.try_into().map_err(|_| KeyError::WrongLength {
        expected: 32,
        actual,
    })
}

/// Names what was found instead of a key, without echoing a possibly secret or huge value.
fn describe(found: &str) -> String {
    match found {
        "" => "an empty text".to_owned(),
        PUBLIC_TAG => "a public key".to_owned(),
        SECRET_TAG => "a secret key".to_owned(),
        _ => "text that is not a musketeer key".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032, section 7.1, test 1.
    const RFC_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    // `printf '<RFC_PUBLIC bytes>' | sha256sum`, computed outside this crate.
    const RFC_PUBLIC_SHA256: &str =
        "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9";

    fn rfc_key() -> SecretKey {
        SecretKey::from_seed(&hex::decode(RFC_SEED).unwrap().try_into().unwrap())
    }

    #[test]
    fn derives_rfc8032_public_key_and_signature() {
        let key = rfc_key();
        assert_eq!(hex::encode(key.public_key().to_bytes()), RFC_PUBLIC);
        assert_eq!(
            hex::encode(key.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn key_id_and_fingerprint_come_from_sha256_of_public_key() {
        let public = rfc_key().public_key();
        assert_eq!(
            public.key_id().as_str(),
            format!("ed25519:{}", &RFC_PUBLIC_SHA256[..16])
        );
        assert_eq!(public.fingerprint().replace(' ', ""), RFC_PUBLIC_SHA256);
        assert_eq!(public.fingerprint().split(' ').count(), 16);
    }

    #[test]
    fn key_id_parses_only_canonical_form() {
        let id = rfc_key().public_key().key_id();
        assert_eq!(id.as_str().parse::<KeyId>().unwrap(), id);
        for bad in [
            "",
            "ed25519:",
            "ed25519:21fe31dfa154a26",
            "ed25519:21fe31dfa154a2616",
            "ed25519:21FE31DFA154A261",
            "ED25519:21fe31dfa154a261",
            "rsa:21fe31dfa154a261",
            " ed25519:21fe31dfa154a261",
            "ed25519:21fe31dfa154a26g",
        ] {
            assert!(
                matches!(bad.parse::<KeyId>(), Err(KeyError::InvalidKeyId(_))),
                "{bad:?}"
            );
        }
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<KeyId>("\"ed25519:xyz\"").is_err());
    }

    #[test]
    fn text_forms_round_trip() {
        let secret = SecretKey::generate();
        let public = secret.public_key();
        let secret_text = secret.to_text();
        assert!(secret_text.starts_with("musketeer-ed25519-secret "));
        assert!(!secret_text.contains('\n'));
        let reparsed = SecretKey::from_text(&format!("{secret_text}\n")).unwrap();
        assert_eq!(reparsed.public_key(), public);

        let public_text = public.to_text();
        assert!(public_text.starts_with("musketeer-ed25519-public "));
        assert_eq!(
            PublicKey::from_text(&format!("  {public_text}\r\n")).unwrap(),
            public
        );
        let json = serde_json::to_string(&public).unwrap();
        assert_eq!(json, format!("\"{public_text}\""));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), public);
    }

    #[test]
    fn text_forms_refuse_wrong_tag_base64_and_length() {
        let secret = rfc_key();
        let err = PublicKey::from_text(&secret.to_text()).unwrap_err();
        assert!(matches!(err, KeyError::WrongFormat { .. }));
        assert!(err.to_string().contains("found a secret key"), "{err}");
        // The secret must not leak into the message.
        assert!(!err.to_string().contains(&secret.to_text()[25..]));
        let err = SecretKey::from_text(&secret.public_key().to_text()).unwrap_err();
        assert!(err.to_string().contains("found a public key"), "{err}");
        assert!(matches!(
            PublicKey::from_text(""),
            Err(KeyError::WrongFormat { .. })
        ));
        assert!(matches!(
            PublicKey::from_text("musketeer-ed25519-public !!!"),
            Err(KeyError::BadBase64(_))
        ));
        let short = format!("musketeer-ed25519-public {}", base64_encode(&[1; 31]));
        assert!(matches!(
            PublicKey::from_text(&short),
            Err(KeyError::WrongLength {
                expected: 32,
                actual: 31
            })
        ));
        let two_spaces = format!("musketeer-ed25519-public  {}", base64_encode(&[1; 32]));
        assert!(PublicKey::from_text(&two_spaces).is_err());
    }

    #[test]
    fn refuses_small_order_public_keys() {
        // The identity point: every signature with R = identity, s = 0 would verify under it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKey::from_bytes(&identity),
            Err(KeyError::InvalidPublicKey)
        ));
        let text = format!("musketeer-ed25519-public {}", base64_encode(&identity));
        assert!(serde_json::from_str::<PublicKey>(&format!("\"{text}\"")).is_err());
    }

    #[test]
    fn debug_does_not_print_secret() {
        let secret = rfc_key();
        let debug = format!("{secret:?}");
        let encoded_seed = &secret.to_text()["musketeer-ed25519-secret ".len()..];
        assert!(!debug.contains(encoded_seed), "{debug}");
        assert!(!debug.contains(RFC_SEED), "{debug}");
        assert!(!debug.to_lowercase().contains("9d61b19d"), "{debug}");
        assert!(
            debug.contains(secret.public_key().key_id().as_str()),
            "{debug}"
        );
    }
}
