//! Task manifests: what a signature vouches for.
//!
//! # Canonical byte form (`musketeer-manifest-v1`)
//!
//! A signature covers [`Manifest::canonical_bytes`], never the JSON, so formatting, key order or
//! whitespace in a manifest file cannot change what was signed. Integers are `u64` big-endian
//! (8 bytes); a string is its UTF-8 length as such an integer followed by its bytes. Fields, in
//! this order:
//!
//! | # | field                   | encoding                                   |
//! |---|-------------------------|--------------------------------------------|
//! | 1 | `"musketeer-manifest-v1"` | string (domain separation)               |
//! | 2 | `app`                   | string                                     |
//! | 3 | `version`               | string, semver text (`1.2.0`)              |
//! | 4 | `module_sha256`         | string, 64 lowercase hex digits            |
//! | 5 | `module_size`           | u64                                        |
//! | 6 | `http_allow`            | u64 count, then each entry as a string     |
//! | 7 | `limits.fuel`           | u64                                        |
//! | 8 | `limits.memory_bytes`   | u64                                        |
//! | 9 | `limits.wall_time_ms`   | u64                                        |
//! | 10| `limits.output_bytes`   | u64                                        |
//!
//! Adding or changing a field requires a new domain string (`-v2`).
//!
//! # With an input format (`musketeer-manifest-v2`)
//!
//! A manifest with the optional [`InputFormat`] is signed over the same fields after the domain
//! string `"musketeer-manifest-v2"`, followed by field 11, `input.description`, and field 12,
//! `input.example`: each a u64 `0` when absent, or `1` then the string. A manifest without it
//! keeps the v1 form byte for byte, so every signature made before the field existed still
//! verifies.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::canonical::{Encoder, signature_from_text, signature_to_text};
use crate::error::ManifestError;
use crate::key::{KeyId, SecretKey};
use crate::limits::Limits;

/// Domain-separation string of the manifest canonical form.
pub const MANIFEST_DOMAIN: &str = "musketeer-manifest-v1";
/// Domain-separation string of the canonical form of a manifest with an [`InputFormat`].
pub const MANIFEST_DOMAIN_V2: &str = "musketeer-manifest-v2";

/// The hex sha256 of `bytes` (64 lowercase digits).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a task module is and what it may use: signed by the app's author.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// App name: 1-64 characters of `a-z`, `0-9`, `-`, starting with a letter or digit.
    pub app: String,
    /// App version; a host refuses a version lower than one it already ran.
    pub version: semver::Version,
    /// sha256 of the module, 64 lowercase hex digits.
    pub module_sha256: String,
    /// Size of the module in bytes.
    pub module_size: u64,
    /// URL prefixes the module may fetch through the host's HTTP import (absolute http/https
    /// URLs with a host and no user info, query or fragment).
    pub http_allow: Vec<String>,
    /// Resource limits per run.
    pub limits: Limits,
    /// What input the task expects, for researchers (`musketeer apps list`); optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputFormat>,
}

/// The input a task expects, as its author describes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InputFormat {
    /// A short description, e.g. "a stock id and a month: {stock_id, year, month}".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// An example input, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

impl InputFormat {
    /// Longest description, in characters.
    pub const MAX_DESCRIPTION_CHARS: usize = 1_000;
    /// Longest example, in bytes.
    pub const MAX_EXAMPLE_BYTES: usize = 4_096;

    fn validate(&self) -> Result<(), ManifestError> {
        let refuse = |reason: String| Err(ManifestError::InvalidInputFormat(reason));
        if self.description.is_none() && self.example.is_none() {
            return refuse("give a description, an example or both".into());
        }
        if let Some(description) = &self.description {
            if description.trim().is_empty()
                || description.chars().count() > Self::MAX_DESCRIPTION_CHARS
            {
                return refuse(format!(
                    "the description must have 1 to {} characters",
                    Self::MAX_DESCRIPTION_CHARS
                ));
            }
            if description.chars().any(|c| c.is_control() && c != '\n') {
                return refuse("the description must not contain control characters".into());
            }
        }
        if let Some(example) = &self.example {
            if example.len() > Self::MAX_EXAMPLE_BYTES {
                return refuse(format!(
                    "the example is longer than {} bytes",
                    Self::MAX_EXAMPLE_BYTES
                ));
            }
            if let Err(error) = serde_json::from_str::<serde_json::Value>(example) {
                return refuse(format!("the example is not JSON: {error}"));
            }
        }
        Ok(())
    }
}

impl Manifest {
    /// Largest accepted module size (512 MiB).
    pub const MAX_MODULE_BYTES: u64 = 512 * 1024 * 1024;

    /// Describes `module`: computes its sha256 and size, then validates the result.
    pub fn for_module(
        app: &str,
        version: semver::Version,
        module: &[u8],
        http_allow: Vec<String>,
        limits: Limits,
    ) -> Result<Manifest, ManifestError> {
        let manifest = Manifest {
            app: app.to_owned(),
            version,
            module_sha256: sha256_hex(module),
            module_size: module.len() as u64,
            http_allow,
            limits,
            input: None,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks every field (see the field docs and [`Limits::validate`]).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if !valid_app_name(&self.app) {
            return Err(ManifestError::InvalidApp(self.app.clone()));
        }
        let hash_ok = self.module_sha256.len() == 64
            && self
                .module_sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hash_ok {
            return Err(ManifestError::InvalidModuleHash(self.module_sha256.clone()));
        }
        if self.module_size == 0 || self.module_size > Manifest::MAX_MODULE_BYTES {
            return Err(ManifestError::InvalidModuleSize {
                size: self.module_size,
                max: Manifest::MAX_MODULE_BYTES,
            });
        }
        for entry in &self.http_allow {
            validate_http_allow(entry)?;
        }
        if let Some(input) = &self.input {
            input.validate()?;
        }
        self.limits.validate()
    }

    /// The bytes a signature covers; the format is documented in this module's docs.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let domain = match self.input {
            None => MANIFEST_DOMAIN,
            Some(_) => MANIFEST_DOMAIN_V2,
        };
        let mut encoder = Encoder::new(domain);
        encoder
            .str(&self.app)
            .str(&self.version.to_string())
            .str(&self.module_sha256)
            .u64(self.module_size)
            .u64(self.http_allow.len() as u64);
        for entry in &self.http_allow {
            encoder.str(entry);
        }
        encoder
            .u64(self.limits.fuel)
            .u64(self.limits.memory_bytes)
            .u64(self.limits.wall_time_ms)
            .u64(self.limits.output_bytes);
        if let Some(input) = &self.input {
            for field in [&input.description, &input.example] {
                match field {
                    None => encoder.u64(0),
                    Some(text) => encoder.u64(1).str(text),
                };
            }
        }
        encoder.finish()
    }

    /// Signs the manifest with `key`.
    pub fn sign(&self, key: &SecretKey) -> SignedManifest {
        SignedManifest {
            manifest: self.clone(),
            key_id: key.public_key().key_id(),
            signature: signature_to_text(&key.sign(&self.canonical_bytes())),
        }
    }
}

/// A manifest with its signature: the manifest file format (see [`SignedManifest::to_json`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    /// The signed manifest.
    pub manifest: Manifest,
    /// Id of the key that made the signature.
    pub key_id: KeyId,
    /// base64 of the 64-byte ed25519 signature over [`Manifest::canonical_bytes`].
    pub signature: String,
}

impl SignedManifest {
    /// Largest accepted manifest file (1 MiB).
    pub const MAX_JSON_BYTES: usize = 1024 * 1024;

    /// The manifest file text: pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing plain structs with string keys into a String cannot fail.
        serde_json::to_string_pretty(self).expect("a signed manifest always serializes to JSON")
    }

    /// Parses a manifest file, refusing unknown fields, invalid values and a malformed
    /// signature. This does not check the signature itself: see [`crate::TrustStore::verify`].
    pub fn from_json(text: &str) -> Result<SignedManifest, ManifestError> {
        if text.len() > SignedManifest::MAX_JSON_BYTES {
            return Err(ManifestError::TooLarge {
                size: text.len(),
                max: SignedManifest::MAX_JSON_BYTES,
            });
        }
        let signed: SignedManifest = serde_json::from_str(text).map_err(ManifestError::Json)?;
        signed.manifest.validate()?;
        if signature_from_text(&signed.signature).is_none() {
            return Err(ManifestError::MalformedSignature);
        }
        Ok(signed)
    }
}

fn valid_app_name(app: &str) -> bool {
    let bytes = app.as_bytes();
    (1..=64).contains(&bytes.len())
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

fn validate_http_allow(entry: &str) -> Result<(), ManifestError> {
    let refuse = |reason: String| ManifestError::InvalidHttpAllow {
        entry: entry.to_owned(),
        reason,
    };
    // The URL parser silently drops tabs, newlines and surrounding spaces; refuse them so that
    // what a person reads is what is enforced.
    if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse(
            "must not contain whitespace or control characters".into(),
        ));
    }
    let url = Url::parse(entry).map_err(|e| refuse(format!("not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse(format!(
            "scheme must be http or https, not {}",
            url.scheme()
        )));
    }
    // The parser also repairs `https:///host`, `https:host` and backslashes; require the plain
    // spelling so the host a person reads is the host that is allowed.
    let lower = entry.to_ascii_lowercase();
    let authority = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let spelled_plainly = authority.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if url.host().is_none() || !spelled_plainly || entry.contains('\\') {
        return Err(refuse(
            "must be written as http(s)://host[:port][/path] with a host".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not contain a user name or password".into()));
    }
    if url.query().is_some() {
        return Err(refuse("must not contain a query (?...)".into()));
    }
    if url.fragment().is_some() {
        return Err(refuse("must not contain a fragment (#...)".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::for_module(
            "stock-day",
            "1.2.0".parse().unwrap(),
            b"module bytes",
            vec![
                "https://www.twse.com.tw/".into(),
                "http://127.0.0.1:8080/".into(),
            ],
            Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn an_input_format_is_signed_under_its_own_domain() {
        let key = SecretKey::generate();
        let plain = manifest();
        let mut described = plain.clone();
        described.input = Some(InputFormat {
            description: Some("a stock id and a month".into()),
            example: Some(r#"{"stock_id":"2330","year":2016,"month":5}"#.into()),
        });
        described.validate().unwrap();
        let v1 = plain.canonical_bytes();
        let v2 = described.canonical_bytes();
        assert!(v2.starts_with(&[0, 0, 0, 0, 0, 0, 0, 21]));
        assert_eq!(&v2[8..29], MANIFEST_DOMAIN_V2.as_bytes());
        // After the domain, v2 is v1's fields then the input's.
        assert_eq!(&v2[29..v1.len()], &v1[29..]);
        let mut no_example = described.clone();
        no_example.input = Some(InputFormat {
            example: None,
            ..described.input.clone().unwrap()
        });
        assert_ne!(no_example.canonical_bytes(), v2);
        // The field survives the file round trip and changes what is signed.
        let signed = described.sign(&key);
        let read = SignedManifest::from_json(&signed.to_json()).unwrap();
        assert_eq!(read, signed);
        let json = plain.sign(&key).to_json();
        assert!(!json.contains("\"input\""), "{json}");
        for bad in [
            InputFormat {
                description: None,
                example: None,
            },
            InputFormat {
                description: Some(" ".into()),
                example: None,
            },
            InputFormat {
                description: None,
                example: Some("not json".into()),
            },
            InputFormat {
                description: Some("x\u{7}".into()),
                example: None,
            },
        ] {
            let mut m = plain.clone();
            m.input = Some(bad);
            assert!(matches!(
                m.validate(),
                Err(ManifestError::InvalidInputFormat(_))
            ));
        }
    }

    #[test]
    fn for_module_records_hash_and_size() {
        let m = manifest();
        // `printf 'module bytes' | sha256sum`
        assert_eq!(
            m.module_sha256,
            "5c073b6de205a83e4df87dcd07111be224ad4435a8c08ca0ba10e68dcf38fe92"
        );
        assert_eq!(m.module_size, 12);
    }

    #[test]
    fn canonical_bytes_snapshot() {
        let m = Manifest {
            app: "ab".into(),
            version: "1.2.0".parse().unwrap(),
            module_sha256: "0f".repeat(32),
            module_size: 258,
            http_allow: vec!["http://h/".into()],
            limits: Limits {
                fuel: 1,
                memory_bytes: 2,
                wall_time_ms: 3,
                output_bytes: 4,
            },
            input: None,
        };
        let len = |n: u8| [0, 0, 0, 0, 0, 0, 0, n];
        let expected: Vec<u8> = [
            &len(21)[..],
            b"musketeer-manifest-v1",
            &len(2),
            b"ab",
            &len(5),
            b"1.2.0",
            &len(64),
            "0f".repeat(32).as_bytes(),
            &[0, 0, 0, 0, 0, 0, 1, 2],
            &len(1),
            &len(9),
            b"http://h/",
            &len(1),
            &len(2),
            &len(3),
            &len(4),
        ]
        .concat();
        assert_eq!(m.canonical_bytes(), expected);
    }

    #[test]
    fn canonical_bytes_keep_list_boundaries() {
        let mut a = manifest();
        a.http_allow = vec!["http://a/".into(), "http://b/".into()];
        let mut b = a.clone();
        b.http_allow = vec!["http://a/http://b/".into()];
        assert_ne!(a.canonical_bytes(), b.canonical_bytes());
    }

    #[test]
    fn app_names() {
        let mut m = manifest();
        for good in ["a", "0", "stock-day", "a-", &"a".repeat(64)] {
            m.app = good.into();
            m.validate().unwrap();
        }
        for bad in [
            "",
            "-a",
            "A",
            "stock_day",
            "stock day",
            "é",
            &"a".repeat(65),
        ] {
            m.app = bad.into();
            assert!(
                matches!(m.validate(), Err(ManifestError::InvalidApp(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn module_hash_and_size() {
        let mut m = manifest();
        m.module_sha256 = m.module_sha256.to_uppercase();
        assert!(matches!(
            m.validate(),
            Err(ManifestError::InvalidModuleHash(_))
        ));
        m.module_sha256 = "ab".repeat(31);
        assert!(matches!(
            m.validate(),
            Err(ManifestError::InvalidModuleHash(_))
        ));
        let mut m = manifest();
        m.module_size = 0;
        assert!(matches!(
            m.validate(),
            Err(ManifestError::InvalidModuleSize { .. })
        ));
        m.module_size = Manifest::MAX_MODULE_BYTES + 1;
        assert!(matches!(
            m.validate(),
            Err(ManifestError::InvalidModuleSize { .. })
        ));
        assert!(matches!(
            Manifest::for_module(
                "a",
                "1.0.0".parse().unwrap(),
                b"",
                vec![],
                Limits::default()
            ),
            Err(ManifestError::InvalidModuleSize { size: 0, .. })
        ));
    }

    #[test]
    fn http_allow_entries() {
        let mut m = manifest();
        for good in [
            "https://www.twse.com.tw/",
            "https://www.twse.com.tw",
            "http://127.0.0.1:8080/",
            "http://[::1]:9000/api/",
            "HTTPS://Example.COM/path/prefix",
        ] {
            m.http_allow = vec![good.into()];
            m.validate().unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, why) in [
            ("", "absolute URL"),
            ("www.twse.com.tw/", "absolute URL"),
            ("/relative/", "absolute URL"),
            ("ftp://example.com/", "scheme"),
            ("file:///etc/passwd", "scheme"),
            ("data:text/plain,hi", "scheme"),
            ("https://user@example.com/", "user name"),
            ("https://user:pw@example.com/", "user name"),
            ("https://:pw@example.com/", "user name"),
            ("https://example.com/?a=1", "query"),
            ("https://example.com/?", "query"),
            ("https://example.com/#top", "fragment"),
            ("https://exa\tmple.com/", "whitespace"),
            (" https://example.com/", "whitespace"),
            ("https://example.com/\n", "whitespace"),
            ("https:///path", "with a host"),
            ("https:example.com/", "with a host"),
            ("https:\\\\example.com\\", "with a host"),
            ("https://example.com\\@evil.com/", "with a host"),
            ("http://", "absolute URL"),
        ] {
            m.http_allow = vec!["https://ok.example/".into(), bad.into()];
            let err = m.validate().expect_err(bad);
            assert!(
                matches!(&err, ManifestError::InvalidHttpAllow { entry, .. } if entry == bad),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn json_is_pretty_and_round_trips() {
        let signed = manifest().sign(&SecretKey::generate());
        let json = signed.to_json();
        assert!(json.contains("\n  \"manifest\": {"), "{json}");
        assert!(json.contains("\"version\": \"1.2.0\""), "{json}");
        assert_eq!(SignedManifest::from_json(&json).unwrap(), signed);
    }

    #[test]
    fn from_json_refuses_unknown_fields_at_every_level() {
        let signed = manifest().sign(&SecretKey::generate());
        let value: serde_json::Value = serde_json::from_str(&signed.to_json()).unwrap();
        for pointer in ["", "/manifest", "/manifest/limits"] {
            let mut v = value.clone();
            v.pointer_mut(pointer)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("extra".into(), serde_json::json!(true));
            let err = SignedManifest::from_json(&v.to_string()).unwrap_err();
            assert!(matches!(err, ManifestError::Json(_)), "{pointer}: {err}");
            assert!(err.to_string().contains("unknown field `extra`"), "{err}");
        }
    }

    #[test]
    fn from_json_validates_contents() {
        let signed = manifest().sign(&SecretKey::generate());
        let mut bad_app = signed.clone();
        bad_app.manifest.app = "Bad App".into();
        assert!(matches!(
            SignedManifest::from_json(&bad_app.to_json()),
            Err(ManifestError::InvalidApp(_))
        ));
        let mut bad_sig = signed.clone();
        bad_sig.signature = "AAAA".into();
        assert!(matches!(
            SignedManifest::from_json(&bad_sig.to_json()),
            Err(ManifestError::MalformedSignature)
        ));
        let mut bad_key_id = signed.to_json();
        bad_key_id = bad_key_id.replace(signed.key_id.as_str(), "ed25519:nothex");
        assert!(matches!(
            SignedManifest::from_json(&bad_key_id),
            Err(ManifestError::Json(_))
        ));
        let bad_version = signed.to_json().replace("\"1.2.0\"", "\"1.2\"");
        assert!(matches!(
            SignedManifest::from_json(&bad_version),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            SignedManifest::from_json("{"),
            Err(ManifestError::Json(_))
        ));
        let huge = " ".repeat(SignedManifest::MAX_JSON_BYTES + 1);
        assert!(matches!(
            SignedManifest::from_json(&huge),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
