use musketeer_signing_keys::{Limits, Manifest, SecretKey, SignedManifest, TrustStore};

/// A small stand-in module; verification only looks at its bytes.
pub const MODULE: &[u8] = b"\0asm\x0d\0\x01\0 a task module's bytes";

pub fn manifest() -> Manifest {
    Manifest::for_module(
        "stock-day",
        "1.2.0".parse().unwrap(),
        MODULE,
        vec![
            "https://www.twse.com.tw/".into(),
            "http://127.0.0.1:8080/".into(),
        ],
        Limits::default(),
    )
    .unwrap()
}

/// An author key, a manifest it signed, and a store trusting that key.
pub fn signed() -> (SecretKey, SignedManifest, TrustStore) {
    let key = SecretKey::generate();
    let signed = manifest().sign(&key);
    let trust = TrustStore::from_iter([key.public_key()]);
    (key, signed, trust)
}
