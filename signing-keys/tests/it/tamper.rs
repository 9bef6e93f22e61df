use base64::Engine as _;
use musketeer_signing_keys::{
    KeyId, Limits, SecretKey, SignedManifest, TrustStore, VerifyError, sha256_hex,
};

use crate::fixtures::{MODULE, signed};

fn assert_bad_signature(trust: &TrustStore, signed: &SignedManifest, what: &str) {
    match trust.verify(signed, MODULE) {
        Err(VerifyError::BadSignature { key_id }) => assert_eq!(key_id, signed.key_id, "{what}"),
        other => panic!("{what}: expected BadSignature, got {other:?}"),
    }
}

#[test]
fn any_changed_manifest_field_breaks_the_signature() {
    type Edit = fn(&mut SignedManifest);
    let (_, original, trust) = signed();
    let edits: Vec<(&str, Edit)> = vec![
        ("app", |s| s.manifest.app.push('x')),
        ("version", |s| s.manifest.version.patch += 1),
        ("version pre", |s| {
            s.manifest.version.pre = semver::Prerelease::new("rc1").unwrap()
        }),
        ("http_allow added", |s| {
            s.manifest.http_allow.push("https://evil.example/".into())
        }),
        ("http_allow removed", |s| {
            s.manifest.http_allow.pop();
        }),
        ("http_allow edited", |s| {
            s.manifest.http_allow[0] = "https://www.twse.com.tw.evil/".into()
        }),
        ("http_allow reordered", |s| s.manifest.http_allow.reverse()),
        ("fuel", |s| s.manifest.limits.fuel += 1),
        ("memory", |s| s.manifest.limits.memory_bytes *= 2),
        ("wall time", |s| s.manifest.limits.wall_time_ms += 1),
        ("output", |s| s.manifest.limits.output_bytes -= 1),
    ];
    for (what, edit) in edits {
        let mut tampered = original.clone();
        edit(&mut tampered);
        assert_ne!(tampered, original, "{what}");
        assert_bad_signature(&trust, &tampered, what);
    }
    // A manifest re-pointed at another module breaks the signature before any hash comparison.
    let other_module = b"another module";
    let mut tampered = original.clone();
    tampered.manifest.module_sha256 = sha256_hex(other_module);
    tampered.manifest.module_size = other_module.len() as u64;
    assert!(matches!(
        trust.verify(&tampered, other_module),
        Err(VerifyError::BadSignature { .. })
    ));
    let mut tampered = original.clone();
    tampered.manifest.module_size += 1;
    assert_bad_signature(&trust, &tampered, "module_size");
}

#[test]
fn every_flipped_signature_bit_is_refused() {
    let (_, original, trust) = signed();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&original.signature)
        .unwrap();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let mut tampered = original.clone();
        tampered.signature = base64::engine::general_purpose::STANDARD.encode(flipped);
        assert!(
            matches!(
                trust.verify(&tampered, MODULE),
                Err(VerifyError::BadSignature { .. })
            ),
            "bit {bit}"
        );
    }
}

#[test]
fn malformed_signatures_are_refused() {
    let (_, original, trust) = signed();
    for bad in ["", "AAAA", "not base64 at all", &original.signature[..40]] {
        let mut tampered = original.clone();
        tampered.signature = bad.to_owned();
        assert!(
            matches!(
                trust.verify(&tampered, MODULE),
                Err(VerifyError::MalformedSignature)
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn every_flipped_byte_of_the_manifest_file_is_refused() {
    // Flip each byte of the JSON file: it must either fail to parse or fail verification.
    let (_, original, trust) = signed();
    let json = original.to_json().into_bytes();
    for i in 0..json.len() {
        let mut flipped = json.clone();
        flipped[i] ^= 0x01;
        let Ok(text) = String::from_utf8(flipped) else {
            continue;
        };
        if let Ok(parsed) = SignedManifest::from_json(&text) {
            // Some flips are insignificant (e.g. whitespace becoming other whitespace).
            if parsed == original {
                continue;
            }
            assert!(trust.verify(&parsed, MODULE).is_err(), "byte {i}: {text}");
        }
    }
}

#[test]
fn flipped_module_byte_is_a_hash_mismatch() {
    let (_, signed, trust) = signed();
    for i in [0, MODULE.len() / 2, MODULE.len() - 1] {
        let mut module = MODULE.to_vec();
        module[i] ^= 0x80;
        match trust.verify(&signed, &module) {
            Err(VerifyError::ModuleHashMismatch { expected, actual }) => {
                assert_eq!(expected, sha256_hex(MODULE));
                assert_eq!(actual, sha256_hex(&module));
            }
            other => panic!("byte {i}: expected ModuleHashMismatch, got {other:?}"),
        }
    }
}

#[test]
fn size_is_checked_before_hash() {
    let (_, signed, trust) = signed();
    let mut longer = MODULE.to_vec();
    longer.push(0);
    assert!(matches!(
        trust.verify(&signed, &longer),
        Err(VerifyError::ModuleSizeMismatch { expected, actual })
            if expected == MODULE.len() as u64 && actual == MODULE.len() as u64 + 1
    ));
    assert!(matches!(
        trust.verify(&signed, &MODULE[1..]),
        Err(VerifyError::ModuleSizeMismatch { .. })
    ));
    assert!(matches!(
        trust.verify(&signed, b""),
        Err(VerifyError::ModuleSizeMismatch { .. })
    ));
}

#[test]
fn untrusted_keys_are_refused() {
    let (key, signed, _) = signed();
    let empty = TrustStore::new();
    assert!(matches!(
        empty.verify(&signed, MODULE),
        Err(VerifyError::UntrustedKey(id)) if id == key.public_key().key_id()
    ));
    let stranger = SecretKey::generate();
    let other = TrustStore::from_iter([stranger.public_key()]);
    assert!(matches!(
        other.verify(&signed, MODULE),
        Err(VerifyError::UntrustedKey(_))
    ));

    // Claiming a trusted key's id does not help a stranger's signature.
    let mut forged = signed.manifest.sign(&stranger);
    forged.key_id = key.public_key().key_id();
    let trust = TrustStore::from_iter([key.public_key()]);
    assert!(matches!(
        trust.verify(&forged, MODULE),
        Err(VerifyError::BadSignature { .. })
    ));

    let mut unknown = signed.clone();
    unknown.key_id = "ed25519:0000000000000000".parse::<KeyId>().unwrap();
    assert!(matches!(
        trust.verify(&unknown, MODULE),
        Err(VerifyError::UntrustedKey(_))
    ));
}

#[test]
fn signed_invalid_manifest_is_refused() {
    let (key, signed, trust) = signed();
    let mut manifest = signed.manifest.clone();
    manifest.limits = Limits {
        fuel: 0,
        ..Limits::default()
    };
    let resigned = manifest.sign(&key);
    assert!(matches!(
        trust.verify(&resigned, MODULE),
        Err(VerifyError::InvalidManifest(_))
    ));
}

#[test]
fn error_messages_name_the_problem() {
    let (_, signed, trust) = signed();
    let err = trust.verify(&signed, b"x").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "module size mismatch: manifest says {} bytes, module has 1",
            MODULE.len()
        )
    );
    let err = TrustStore::new().verify(&signed, MODULE).unwrap_err();
    assert!(err.to_string().contains(signed.key_id.as_str()), "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
}
