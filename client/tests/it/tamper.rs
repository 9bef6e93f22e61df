//! Tamper suite: anything not exactly as signed by a trusted key is refused before compilation.

use musketeer_client::sandbox::RunError;
use musketeer_signing_keys::{SecretKey, TrustStore, VerifyError};

use crate::support::{Signed, run_once, sandbox, sign, test_limits};

fn noop() -> Signed {
    sign(musketeer_task_artifacts::NOOP, &[], test_limits())
}

fn refusal(signed: &Signed) -> VerifyError {
    let sandbox = sandbox();
    match sandbox.prepare(&signed.trust, &signed.manifest, &signed.module) {
        Err(RunError::Refused(error)) => error,
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("tampered module was accepted"),
    }
}

#[tokio::test]
async fn untampered_module_runs() {
    let signed = noop();
    let out = run_once(&sandbox(), &signed, b"echo").await.unwrap();
    assert_eq!(out.output, b"echo");
}

#[test]
fn flipped_byte_in_module_is_refused() {
    let mut signed = noop();
    let middle = signed.module.len() / 2;
    signed.module[middle] ^= 0x01;
    assert!(matches!(
        refusal(&signed),
        VerifyError::ModuleHashMismatch { .. }
    ));
}

#[test]
fn module_of_other_size_is_refused() {
    let mut signed = noop();
    signed.module.push(0);
    assert!(matches!(
        refusal(&signed),
        VerifyError::ModuleSizeMismatch { .. }
    ));
    signed.module.truncate(signed.module.len() - 2);
    assert!(matches!(
        refusal(&signed),
        VerifyError::ModuleSizeMismatch { .. }
    ));
}

#[test]
fn flipped_byte_in_signature_is_refused() {
    use base64::Engine as _;
    let mut signed = noop();
    let engine = base64::engine::general_purpose::STANDARD;
    let mut raw = engine.decode(&signed.manifest.signature).unwrap();
    raw[10] ^= 0x80;
    signed.manifest.signature = engine.encode(raw);
    assert!(matches!(refusal(&signed), VerifyError::BadSignature { .. }));
}

#[test]
fn every_manifest_field_is_covered_by_the_signature() {
    type Edit = Box<dyn Fn(&mut Signed)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("app", Box::new(|s| s.manifest.manifest.app.push('x'))),
        (
            "version",
            Box::new(|s| s.manifest.manifest.version.patch += 1),
        ),
        ("fuel", Box::new(|s| s.manifest.manifest.limits.fuel += 1)),
        (
            "memory",
            Box::new(|s| s.manifest.manifest.limits.memory_bytes *= 2),
        ),
        (
            "wall",
            Box::new(|s| s.manifest.manifest.limits.wall_time_ms += 1),
        ),
        (
            "output",
            Box::new(|s| s.manifest.manifest.limits.output_bytes += 1),
        ),
        (
            "allowlist",
            Box::new(|s| {
                s.manifest
                    .manifest
                    .http_allow
                    .push("http://10.0.0.1/".into())
            }),
        ),
    ];
    for (field, edit) in edits {
        let mut signed = noop();
        edit(&mut signed);
        assert!(
            matches!(refusal(&signed), VerifyError::BadSignature { .. }),
            "changing {field} must break the signature"
        );
    }
}

#[test]
fn untrusted_key_is_refused() {
    let mut signed = noop();
    signed.trust = TrustStore::default();
    signed.trust.add(SecretKey::generate().public_key());
    assert!(matches!(refusal(&signed), VerifyError::UntrustedKey(_)));
}

#[test]
fn module_signed_by_another_key_under_a_trusted_id_is_refused() {
    let mut signed = noop();
    let impostor = SecretKey::generate();
    let resigned = signed.manifest.manifest.sign(&impostor);
    // Keep the trusted key id but carry the impostor's signature.
    signed.manifest.signature = resigned.signature;
    assert!(matches!(refusal(&signed), VerifyError::BadSignature { .. }));
}

#[test]
fn unsigned_module_is_refused() {
    let mut signed = noop();
    signed.manifest.signature = String::new();
    assert!(matches!(refusal(&signed), VerifyError::MalformedSignature));
}

#[test]
fn verification_happens_before_compilation() {
    // Garbage that is correctly signed gets as far as the compiler...
    let garbage = b"\0asm this is not a component".to_vec();
    let key = SecretKey::generate();
    let manifest = musketeer_signing_keys::Manifest::for_module(
        "garbage",
        semver::Version::new(1, 0, 0),
        &garbage,
        vec![],
        test_limits(),
    )
    .unwrap()
    .sign(&key);
    let mut trust = TrustStore::default();
    trust.add(key.public_key());
    let sandbox = sandbox();
    assert!(matches!(
        sandbox.prepare(&trust, &manifest, &garbage),
        Err(RunError::InvalidModule(_))
    ));
    // ...while the same garbage, one byte changed, is refused without reaching it.
    let mut tampered = garbage.clone();
    tampered[8] ^= 1;
    assert!(matches!(
        sandbox.prepare(&trust, &manifest, &tampered),
        Err(RunError::Refused(VerifyError::ModuleHashMismatch { .. }))
    ));
}
