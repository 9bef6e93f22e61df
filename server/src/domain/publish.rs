//! The trust decision for publishing an app version: signed by a trusted key, module matching,
//! version higher than the app's current one, app within the publisher's scope.

use musketeer_protocol::{Limits, Role};
use musketeer_signing_keys::{ManifestError, SignedManifest, TrustStore, VerifyError};
use semver::Version;

use super::tokens::TokenRecord;
use super::world::AppVersion;

/// Why a publish is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The manifest document does not parse or has invalid values.
    #[error("invalid signed manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// The signature or the module does not verify.
    #[error("{0}")]
    Verify(#[from] VerifyError),
    /// The version is not higher than the app's current version.
    #[error("{app} {version} is not higher than the current version {current}; bump the version")]
    NotHigher {
        /// The app.
        app: String,
        /// The refused version.
        version: Version,
        /// The current version.
        current: Version,
    },
    /// The publisher token does not cover this app.
    #[error("this token may not publish app {0:?}")]
    AppNotAllowed(String),
    /// The token is not a publisher or admin token.
    #[error("publishing needs a publisher or admin token")]
    NotPublisher,
}

/// Check a publish request's token, signature and module, and build the app version to record.
/// The caller then checks the version against the current one ([`check_version_higher`]).
pub fn check_publish(
    trust: &TrustStore,
    token: &TokenRecord,
    signed_manifest: &serde_json::Value,
    module: &[u8],
    now_ms: u64,
) -> Result<AppVersion, PublishError> {
    if !matches!(token.role, Role::Publisher | Role::Admin) {
        return Err(PublishError::NotPublisher);
    }
    let text = serde_json::to_string(signed_manifest).map_err(ManifestError::Json)?;
    let signed = SignedManifest::from_json(&text)?;
    let manifest = trust.verify(&signed, module)?;
    if !token.allows_app(&manifest.app) {
        return Err(PublishError::AppNotAllowed(manifest.app.clone()));
    }
    let limits = &manifest.limits;
    Ok(AppVersion {
        app: manifest.app.clone(),
        version: manifest.version.clone(),
        key_id: signed.key_id.to_string(),
        module_sha256: manifest.module_sha256.clone(),
        module_size: manifest.module_size,
        http_allow: manifest.http_allow.clone(),
        limits: Limits {
            fuel: limits.fuel,
            memory_bytes: limits.memory_bytes,
            wall_time_ms: limits.wall_time_ms,
            output_bytes: limits.output_bytes,
        },
        signed_manifest: serde_json::value::RawValue::from_string(text)
            .map_err(ManifestError::Json)?,
        published_ms: now_ms,
    })
}

/// A new version must be higher than the app's current one.
pub fn check_version_higher(
    app: &AppVersion,
    current: Option<&Version>,
) -> Result<(), PublishError> {
    match current {
        Some(current) if app.version <= *current => Err(PublishError::NotHigher {
            app: app.app.clone(),
            version: app.version.clone(),
            current: current.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use musketeer_protocol::TokenId;
    use musketeer_signing_keys::{Manifest, SecretKey};

    use super::*;

    fn publisher(apps: Option<Vec<String>>) -> TokenRecord {
        TokenRecord {
            id: TokenId(1),
            hash: String::new(),
            role: Role::Publisher,
            apps,
            expires_ms: None,
            label: None,
            created_ms: 0,
            revoked: false,
        }
    }

    fn signed(key: &SecretKey, version: &str, module: &[u8]) -> serde_json::Value {
        let manifest = Manifest::for_module(
            "demo",
            version.parse().unwrap(),
            module,
            vec![],
            Default::default(),
        )
        .unwrap();
        serde_json::from_str(&manifest.sign(key).to_json()).unwrap()
    }

    fn check(
        trust: &TrustStore,
        current: Option<&str>,
        token: &TokenRecord,
        manifest: &serde_json::Value,
        module: &[u8],
    ) -> Result<AppVersion, PublishError> {
        let current: Option<Version> = current.map(|v| v.parse().unwrap());
        let app = check_publish(trust, token, manifest, module, 7)?;
        check_version_higher(&app, current.as_ref())?;
        Ok(app)
    }

    #[test]
    fn accepts_trusted_matching_higher_version() {
        let key = SecretKey::generate();
        let trust: TrustStore = vec![key.public_key()].into();
        let app = check(
            &trust,
            Some("0.9.0"),
            &publisher(None),
            &signed(&key, "1.0.0", b"mod"),
            b"mod",
        )
        .unwrap();
        assert_eq!(
            (
                app.app.as_str(),
                app.version.to_string().as_str(),
                app.published_ms
            ),
            ("demo", "1.0.0", 7)
        );
        assert_eq!(app.key_id, key.public_key().key_id().to_string());
    }

    #[test]
    fn refusals_name_the_reason() {
        let key = SecretKey::generate();
        let stranger = SecretKey::generate();
        let trust: TrustStore = vec![key.public_key()].into();
        let good = signed(&key, "1.0.0", b"mod");
        let cases: Vec<(Result<AppVersion, PublishError>, &str)> = vec![
            (
                check(
                    &trust,
                    None,
                    &publisher(None),
                    &signed(&stranger, "1.0.0", b"mod"),
                    b"mod",
                ),
                "not trusted",
            ),
            (
                check(&trust, None, &publisher(None), &good, b"other"),
                "mismatch",
            ),
            (
                check(&trust, Some("1.0.0"), &publisher(None), &good, b"mod"),
                "not higher",
            ),
            (
                check(
                    &trust,
                    None,
                    &publisher(Some(vec!["x".into()])),
                    &good,
                    b"mod",
                ),
                "may not publish",
            ),
            (
                check(
                    &trust,
                    None,
                    &publisher(None),
                    &serde_json::json!({"manifest": 1}),
                    b"mod",
                ),
                "invalid signed manifest",
            ),
            (
                check(
                    &trust,
                    None,
                    &TokenRecord {
                        role: Role::Researcher,
                        ..publisher(None)
                    },
                    &good,
                    b"mod",
                ),
                "publisher or admin",
            ),
        ];
        for (result, expect) in cases {
            let err = result.unwrap_err().to_string();
            assert!(err.contains(expect), "{err:?} should contain {expect:?}");
        }
        let mut tampered = good.clone();
        tampered["manifest"]["limits"]["fuel"] = 5.into();
        let err = check(&trust, None, &publisher(None), &tampered, b"mod").unwrap_err();
        assert!(
            matches!(err, PublishError::Verify(VerifyError::BadSignature { .. })),
            "{err}"
        );
    }
}
