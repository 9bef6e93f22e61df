use musketeer_signing_keys::{
    Limits, Manifest, PublicKey, SecretKey, SignedManifest, TrustStore, sha256_hex,
};
use proptest::prelude::*;

use crate::fixtures::{MODULE, signed};

fn limits() -> impl Strategy<Value = Limits> {
    (
        1..=Limits::MAX_FUEL,
        1..=Limits::MAX_MEMORY_BYTES,
        1..=Limits::MAX_WALL_TIME_MS,
        1..=Limits::MAX_OUTPUT_BYTES,
    )
        .prop_map(|(fuel, memory_bytes, wall_time_ms, output_bytes)| Limits {
            fuel,
            memory_bytes,
            wall_time_ms,
            output_bytes,
        })
}

fn version() -> impl Strategy<Value = semver::Version> {
    (
        0..1000u64,
        0..1000u64,
        0..1000u64,
        prop::option::of("[a-z][a-z0-9]{0,6}"),
    )
        .prop_map(|(major, minor, patch, pre)| {
            let mut version = semver::Version::new(major, minor, patch);
            if let Some(pre) = pre {
                version.pre = semver::Prerelease::new(&pre).unwrap();
            }
            version
        })
}

fn allow_entry() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["http", "https"]),
        prop::sample::select(vec!["www.twse.com.tw", "127.0.0.1", "[::1]", "example.org"]),
        prop::option::of(1..=65535u16),
        "(/[a-zA-Z0-9._~-]{0,12}){0,3}/?",
    )
        .prop_map(|(scheme, host, port, path)| match port {
            Some(port) => format!("{scheme}://{host}:{port}{path}"),
            None => format!("{scheme}://{host}{path}"),
        })
}

fn manifest_parts() -> impl Strategy<Value = (String, semver::Version, Vec<u8>, Vec<String>, Limits)>
{
    (
        "[a-z0-9][a-z0-9-]{0,63}",
        version(),
        prop::collection::vec(any::<u8>(), 1..512),
        prop::collection::vec(allow_entry(), 0..5),
        limits(),
    )
}

proptest! {
    #[test]
    fn sign_json_verify_round_trip(
        (app, version, module, allow, limits) in manifest_parts(),
    ) {
        let key = SecretKey::from_seed(&[9; 32]);
        let manifest =
            Manifest::for_module(&app, version, &module, allow, limits).unwrap();
        let json = manifest.sign(&key).to_json();
        let parsed = SignedManifest::from_json(&json).unwrap();
        prop_assert_eq!(&parsed.manifest, &manifest);
        let trust = TrustStore::from_iter([key.public_key()]);
        prop_assert_eq!(trust.verify(&parsed, &module).unwrap(), &manifest);
        // Another trusted key does not make a foreign signature valid.
        let other = TrustStore::from_iter([SecretKey::from_seed(&[8; 32]).public_key()]);
        prop_assert!(other.verify(&parsed, &module).is_err());
    }

    #[test]
    fn different_manifests_have_different_canonical_bytes(
        (app_a, version_a, module_a, allow_a, limits_a) in manifest_parts(),
        (app_b, version_b, module_b, allow_b, limits_b) in manifest_parts(),
    ) {
        let a = Manifest::for_module(&app_a, version_a, &module_a, allow_a, limits_a).unwrap();
        let b = Manifest::for_module(&app_b, version_b, &module_b, allow_b, limits_b).unwrap();
        prop_assert_eq!(a == b, a.canonical_bytes() == b.canonical_bytes());
    }
}

#[test]
fn verify_returns_the_signed_manifest() {
    let (_, signed, trust) = signed();
    let manifest = trust.verify(&signed, MODULE).unwrap();
    assert_eq!(manifest.module_sha256, sha256_hex(MODULE));
    assert_eq!(manifest.module_size, MODULE.len() as u64);
    assert!(std::ptr::eq(manifest, &signed.manifest));
}

#[test]
fn signature_is_plain_ed25519_over_canonical_bytes() {
    // An independent verifier (ed25519-dalek directly) accepts the signature over exactly the
    // documented canonical bytes, so other implementations can verify manifests.
    use base64::Engine as _;
    let (key, signed, _) = signed();
    let public = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key().to_bytes()).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&signed.signature)
        .unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&bytes).unwrap();
    public
        .verify_strict(&signed.manifest.canonical_bytes(), &signature)
        .unwrap();
    assert!(
        signed
            .manifest
            .canonical_bytes()
            .starts_with(b"\0\0\0\0\0\0\0\x15musketeer-manifest-v1")
    );
}

#[test]
fn trust_store_serializes_as_key_list_and_recomputes_ids() {
    let a = SecretKey::generate().public_key();
    let b = SecretKey::generate().public_key();
    let store = TrustStore::from_iter([a.clone(), b.clone()]);
    let json = serde_json::to_string(&store).unwrap();
    let list: Vec<PublicKey> = serde_json::from_str(&json).unwrap();
    assert_eq!(list.len(), 2);
    let reloaded: TrustStore = serde_json::from_str(&json).unwrap();
    assert_eq!(reloaded, store);
    assert!(reloaded.contains(&a.key_id()) && reloaded.contains(&b.key_id()));
    assert_eq!(reloaded.get(&a.key_id()), Some(&a));
    let ids: Vec<_> = reloaded.keys().map(PublicKey::key_id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert!(serde_json::from_str::<TrustStore>("[\"not a key\"]").is_err());
}
