//! The `musketeer-server` binary's init and token commands.

use std::process::{Command, Output};

pub(crate) fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_musketeer-server"))
}

/// Runs `command`; its output, and its stdout then stderr as one text (for messages).
pub(crate) fn run(command: &mut Command) -> (Output, String) {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

pub(crate) fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Run `init` in a new directory; (dir, data dir, admin token).
pub fn init() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin = init_store(dir.path(), &["--data-dir".as_ref(), data.as_os_str()]);
    (dir, data, admin)
}

/// Run `init` of the store that `store` names (`--data-dir DIR` or `--store URL`), with a key
/// pair made in `dir`/keys; the admin token.
pub fn init_store(dir: &std::path::Path, store: &[&std::ffi::OsStr]) -> String {
    let (_, public) = musketeer_signing_keys::generate_key_files(&dir.join("keys")).unwrap();
    let output = server()
        .args(["init", "--project-name", "Musketeers"])
        .args(store)
        .arg("--trust-key")
        .arg(&public)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("Musketeers") && stdout.contains("fingerprint"),
        "{stdout}"
    );
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("mku_"), "{stdout}");
    token
}

#[test]
fn init_refuses_to_overwrite_and_serve_needs_a_store() {
    let (dir, data, _) = init();
    let again = server()
        .args(["init", "--project-name", "x", "--data-dir"])
        .arg(&data)
        .arg("--trust-key")
        .arg(dir.path().join("keys/musketeer.pub"))
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        text(&again).1.contains("already exists"),
        "{:?}",
        text(&again)
    );
    let serve = server()
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    assert!(!serve.status.success());
    assert!(
        text(&serve).1.contains("musketeer-server init"),
        "{:?}",
        text(&serve)
    );
    let bad_key = server()
        .args(["init", "--project-name", "x", "--data-dir"])
        .arg(dir.path().join("other"))
        .arg("--trust-key")
        .arg(dir.path().join("missing.pub"))
        .output()
        .unwrap();
    assert!(!bad_key.status.success());
    assert!(
        text(&bad_key).1.contains("missing.pub"),
        "{:?}",
        text(&bad_key)
    );
}

#[test]
fn token_create_and_revoke() {
    let (_dir, data, _) = init();
    let created = server()
        .args([
            "token",
            "create",
            "--role",
            "researcher",
            "--apps",
            "a,b",
            "--expires",
            "30d",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&created);
    assert!(created.status.success(), "{stderr}");
    assert!(
        stdout.trim().starts_with("mku_") && stderr.contains("Token id 2"),
        "{stdout}{stderr}"
    );
    let store = musketeer_server::store::Store::open(&data).unwrap();
    let loaded = store.load().unwrap();
    let record = loaded.tokens.iter().find(|t| t.id.0 == 2).unwrap();
    assert_eq!(
        record.apps.as_deref(),
        Some(&["a".to_owned(), "b".to_owned()][..])
    );
    // 30d from now, parsed by the shared duration parser.
    let expires = record.expires_ms.expect("an expiry");
    let from_now = expires.saturating_sub(musketeer_server::state::AppState::now_ms());
    assert!(
        (29 * 86_400_000..=30 * 86_400_000).contains(&from_now),
        "{from_now}"
    );
    drop(store);
    let bad_unit = server()
        .args([
            "token",
            "create",
            "--role",
            "researcher",
            "--expires",
            "5y",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(bad_unit.status.code(), Some(2));
    assert!(
        text(&bad_unit).1.contains("unknown unit \"y\""),
        "{:?}",
        text(&bad_unit)
    );
    let revoked = server()
        .args(["token", "revoke", "2", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{:?}", text(&revoked));
    let unknown = server()
        .args(["token", "revoke", "77", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(text(&unknown).1.contains("no token with id 77"));
    let loaded = musketeer_server::store::Store::open(&data)
        .unwrap()
        .load()
        .unwrap();
    assert!(loaded.tokens.iter().find(|t| t.id.0 == 2).unwrap().revoked);
}

#[test]
fn rotate_key_publishes_the_statement_and_trusts_the_new_key() {
    let (dir, data, _) = init();
    let old =
        musketeer_signing_keys::read_secret_key(&dir.path().join("keys/musketeer.key")).unwrap();
    let new = musketeer_signing_keys::SecretKey::generate();
    let statement = musketeer_signing_keys::RotationStatement::sign(&old, &new.public_key(), true);
    let path = dir.path().join("rotation.json");
    std::fs::write(&path, serde_json::to_string(&statement).unwrap()).unwrap();
    let output = server()
        .args(["rotate-key", "--data-dir"])
        .arg(&data)
        .arg("--statement")
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", text(&output));
    let project = musketeer_server::store::Store::open(&data)
        .unwrap()
        .load()
        .unwrap()
        .project;
    assert!(project.trust.contains(&new.public_key().key_id()));
    assert!(!project.trust.contains(&old.public_key().key_id()));
    assert_eq!(project.rotations, vec![statement]);
    // A statement signed by an untrusted key is refused.
    let stranger = musketeer_signing_keys::SecretKey::generate();
    let forged =
        musketeer_signing_keys::RotationStatement::sign(&stranger, &stranger.public_key(), false);
    std::fs::write(&path, serde_json::to_string(&forged).unwrap()).unwrap();
    let output = server()
        .args(["rotate-key", "--data-dir"])
        .arg(&data)
        .arg("--statement")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(text(&output).1.contains("refused"), "{:?}", text(&output));
}

/// Every command that takes `--data-dir` says so when it names a file, not "no store there".
#[test]
fn a_data_dir_that_is_a_file_is_named_as_such_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = musketeer_signing_keys::generate_key_files(&dir.path().join("keys")).unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let public = public.to_string_lossy().into_owned();
    let commands: [&[&str]; 5] = [
        &["serve"],
        &["init", "--project-name", "x", "--trust-key", &public],
        &["token", "create", "--role", "admin"],
        &["compact"],
        &["migrate"],
    ];
    for args in commands {
        let output = server()
            .args(args)
            .arg("--data-dir")
            .arg(&file)
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is a file, not a directory: --data-dir names the directory"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_missing_statement_and_a_busy_port_say_what_to_do() {
    let (dir, data, _) = init();
    let output = server()
        .args(["rotate-key", "--data-dir"])
        .arg(&data)
        .arg("--statement")
        .arg(dir.path().join("missing.json"))
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot read the rotation statement")
            && stderr.contains("musketeer keys rotate"),
        "{stderr}"
    );
    // Held for the whole command, so the port stays taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = server()
        .args(["serve", "--data-dir"])
        .arg(&data)
        .arg("--listen")
        .arg(taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen on") && stderr.contains("pick another --listen"),
        "{stderr}"
    );
}
