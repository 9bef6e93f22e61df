//! The compiled-code cache: used when this client wrote the artifact, ignored otherwise.

use musketeer_client::sandbox::{Sandbox, SandboxConfig};

use crate::support::{sign, test_limits};

fn cached_sandbox(
    dir: &std::path::Path,
) -> Result<Sandbox, musketeer_client::sandbox::SandboxError> {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.to_owned()),
        ..SandboxConfig::default()
    })
}

#[tokio::test]
async fn second_prepare_comes_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");
    let signed = sign(musketeer_task_artifacts::NOOP, &[], test_limits());
    let first = cached_sandbox(&cache).unwrap();
    let task = first
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .unwrap();
    assert!(!task.from_cache);
    // A new sandbox (as after a restart) finds the artifact.
    let second = cached_sandbox(&cache).unwrap();
    let task = second
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .unwrap();
    assert!(task.from_cache);
    let out = crate::support::run_once(&second, &signed, b"cached")
        .await
        .unwrap();
    assert_eq!(out.output, b"cached");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

#[test]
fn artifacts_this_client_did_not_write_are_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");
    let signed = sign(musketeer_task_artifacts::NOOP, &[], test_limits());
    let sandbox = cached_sandbox(&cache).unwrap();
    sandbox
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .unwrap();
    let artifact = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("an artifact was written");
    // Flip one byte of the compiled code: the tag no longer matches, so it is recompiled.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let task = sandbox
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .unwrap();
    assert!(
        !task.from_cache,
        "a modified artifact must not be deserialized"
    );

    // An artifact written by another client (another secret) is not loaded either.
    let other_dir = tempfile::tempdir().unwrap();
    let other_cache = other_dir.path().join("compiled");
    cached_sandbox(&other_cache)
        .unwrap()
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .unwrap();
    let name = artifact.file_name().unwrap();
    std::fs::copy(other_cache.join(name), &artifact).unwrap();
    let task = sandbox
        .prepare(&signed.trust, &signed.manifest, &signed.module)
        .unwrap();
    assert!(
        !task.from_cache,
        "a foreign artifact must not be deserialized"
    );
}

#[cfg(unix)]
#[test]
fn a_cache_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("compiled");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let error = cached_sandbox(&cache).err().expect("refused");
    assert!(error.to_string().contains("chmod 700"), "{error}");
}
