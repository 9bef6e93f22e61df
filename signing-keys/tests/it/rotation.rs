use musketeer_signing_keys::{RotationError, RotationStatement, SecretKey, TrustStore};

fn store_of(keys: &[&SecretKey]) -> TrustStore {
    keys.iter().map(|key| key.public_key()).collect()
}

fn ids(store: &TrustStore) -> Vec<String> {
    store.keys().map(|key| key.key_id().to_string()).collect()
}

#[test]
fn statement_from_trusted_key_adds_the_new_key() {
    let (a, b) = (SecretKey::generate(), SecretKey::generate());
    let mut store = store_of(&[&a]);
    store
        .apply_rotation(&RotationStatement::sign(&a, &b.public_key(), false))
        .unwrap();
    assert_eq!(store, store_of(&[&a, &b]));
}

#[test]
fn retire_old_removes_the_old_key() {
    let (a, b) = (SecretKey::generate(), SecretKey::generate());
    let mut store = store_of(&[&a]);
    let statement = RotationStatement::sign(&a, &b.public_key(), true);
    store.apply_rotation(&statement).unwrap();
    assert_eq!(store, store_of(&[&b]));
    // Idempotent: applying it again changes nothing, even though A is no longer trusted.
    store.apply_rotation(&statement).unwrap();
    assert_eq!(store, store_of(&[&b]));
}

#[test]
fn applying_twice_without_retiring_is_idempotent() {
    let (a, b) = (SecretKey::generate(), SecretKey::generate());
    let mut store = store_of(&[&a]);
    let statement = RotationStatement::sign(&a, &b.public_key(), false);
    store.apply_rotation(&statement).unwrap();
    store.apply_rotation(&statement).unwrap();
    assert_eq!(store, store_of(&[&a, &b]));
}

#[test]
fn statement_from_untrusted_key_is_refused() {
    let (a, b, mallory) = (
        SecretKey::generate(),
        SecretKey::generate(),
        SecretKey::generate(),
    );
    let mut store = store_of(&[&a]);
    for retire_old in [false, true] {
        let statement = RotationStatement::sign(&mallory, &b.public_key(), retire_old);
        assert!(matches!(
            store.apply_rotation(&statement),
            Err(RotationError::UntrustedSigner(id)) if id == mallory.public_key().key_id()
        ));
    }
    assert_eq!(store, store_of(&[&a]));
}

#[test]
fn tampered_statements_are_refused_and_change_nothing() {
    let (a, b, mallory) = (
        SecretKey::generate(),
        SecretKey::generate(),
        SecretKey::generate(),
    );
    let genuine = RotationStatement::sign(&a, &b.public_key(), false);
    let mut tampered_key = genuine.clone();
    tampered_key.new_key = mallory.public_key();
    let mut tampered_retire = genuine.clone();
    tampered_retire.retire_old = true;
    // Mallory signs a statement but claims it comes from A.
    let mut forged = RotationStatement::sign(&mallory, &mallory.public_key(), false);
    forged.old_key_id = a.public_key().key_id();
    let mut flipped = genuine.clone();
    flipped.signature = flip_first_char(&genuine.signature);
    for (what, statement) in [
        ("new key", tampered_key),
        ("retire flag", tampered_retire),
        ("forged signer", forged),
        ("signature", flipped),
    ] {
        let mut store = store_of(&[&a]);
        let result = store.apply_rotation(&statement);
        assert!(
            matches!(result, Err(RotationError::BadSignature { ref key_id }) if *key_id == a.public_key().key_id()),
            "{what}: {result:?}"
        );
        assert_eq!(store, store_of(&[&a]), "{what}");
    }
    let mut malformed = genuine;
    malformed.signature = "AAAA".into();
    assert!(matches!(
        store_of(&[&a]).apply_rotation(&malformed),
        Err(RotationError::MalformedSignature)
    ));
}

#[test]
fn rotating_a_key_to_itself_is_refused() {
    let a = SecretKey::generate();
    let mut store = store_of(&[&a]);
    let statement = RotationStatement::sign(&a, &a.public_key(), true);
    assert!(matches!(
        store.apply_rotation(&statement),
        Err(RotationError::SameKey(_))
    ));
    assert_eq!(store, store_of(&[&a]));
}

#[test]
fn chain_a_to_b_to_c() {
    let (a, b, c) = (
        SecretKey::generate(),
        SecretKey::generate(),
        SecretKey::generate(),
    );
    let a_to_b = RotationStatement::sign(&a, &b.public_key(), true);
    let b_to_c = RotationStatement::sign(&b, &c.public_key(), true);

    let mut store = store_of(&[&a]);
    // B -> C alone is not acceptable to a store that only trusts A.
    assert!(matches!(
        store.apply_rotation(&b_to_c),
        Err(RotationError::UntrustedSigner(_))
    ));
    store.apply_rotation(&a_to_b).unwrap();
    store.apply_rotation(&b_to_c).unwrap();
    assert_eq!(store, store_of(&[&c]));

    // A retired key cannot vouch for anything any more.
    let late = RotationStatement::sign(&a, &SecretKey::generate().public_key(), false);
    assert!(matches!(
        store.apply_rotation(&late),
        Err(RotationError::UntrustedSigner(_))
    ));
}

#[test]
fn replaying_a_published_list_in_any_order() {
    let (a, b, c) = (
        SecretKey::generate(),
        SecretKey::generate(),
        SecretKey::generate(),
    );
    let mallory = SecretKey::generate();
    let a_to_b = RotationStatement::sign(&a, &b.public_key(), true);
    let b_to_c = RotationStatement::sign(&b, &c.public_key(), true);
    let unrelated = RotationStatement::sign(&mallory, &mallory.public_key(), false);
    let published = [b_to_c.clone(), unrelated, a_to_b.clone()];

    let mut pinned_at_a = store_of(&[&a]);
    pinned_at_a.apply_rotations(&published).unwrap();
    assert_eq!(ids(&pinned_at_a), ids(&store_of(&[&c])));
    // Replaying the same list later is harmless.
    pinned_at_a.apply_rotations(&published).unwrap();
    assert_eq!(pinned_at_a, store_of(&[&c]));

    let mut pinned_at_b = store_of(&[&b]);
    pinned_at_b.apply_rotations(&published).unwrap();
    assert_eq!(pinned_at_b, store_of(&[&c]));

    // A tampered statement from a trusted signer fails the replay and changes nothing.
    let mut bad = b_to_c;
    bad.new_key = mallory.public_key();
    let mut store = store_of(&[&a]);
    assert!(matches!(
        store.apply_rotations(&[a_to_b, bad]),
        Err(RotationError::BadSignature { .. })
    ));
    assert_eq!(store, store_of(&[&a]));
}

#[test]
fn statement_survives_json_transport() {
    let (a, b) = (SecretKey::generate(), SecretKey::generate());
    let statement = RotationStatement::sign(&a, &b.public_key(), true);
    let json = serde_json::to_string_pretty(&statement).unwrap();
    let parsed: RotationStatement = serde_json::from_str(&json).unwrap();
    let mut store = store_of(&[&a]);
    store.apply_rotation(&parsed).unwrap();
    assert_eq!(store, store_of(&[&b]));
}

fn flip_first_char(text: &str) -> String {
    let first = if text.starts_with('A') { 'B' } else { 'A' };
    format!("{first}{}", &text[1..])
}
