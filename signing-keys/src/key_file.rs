//! Key files: `musketeer.key` (secret, mode 0600) and `musketeer.pub` (public).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::error::KeyError;
use crate::key::{PublicKey, SecretKey};

/// File name of the secret key written by [`generate_key_files`].
pub const SECRET_KEY_FILE: &str = "musketeer.key";
/// File name of the public key written by [`generate_key_files`].
pub const PUBLIC_KEY_FILE: &str = "musketeer.pub";

/// Key files hold one short line; anything larger is not a key file.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Generates a new key pair into `dir/musketeer.key` and `dir/musketeer.pub`, creating `dir` (mode
/// 0700 on unix) if it is missing. Returns the (secret, public) paths.
///
/// The secret key file is created with mode 0600 from the start (never briefly wider). Refuses with
/// [`KeyError::AlreadyExists`] if either file exists, so an existing key is never overwritten.
pub fn generate_key_files(dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    create_dir(dir)?;
    let secret_path = dir.join(SECRET_KEY_FILE);
    let public_path = dir.join(PUBLIC_KEY_FILE);
    // Checked up front so that a stale public key is not left next to a new secret key; the
    // create-new opens below are what actually guarantees nothing is overwritten.
    for path in [&secret_path, &public_path] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(KeyError::AlreadyExists { path: path.clone() });
        }
    }

    let secret = SecretKey::generate();
    write_new(&secret_path, &secret.to_text(), 0o600)?;
    if let Err(error) = write_new(&public_path, &secret.public_key().to_text(), 0o644) {
        // Do not leave a secret key without its public half; the caller can simply retry.
        let _ = fs::remove_file(&secret_path);
        return Err(error);
    }
    Ok((secret_path, public_path))
}

/// Reads a secret key file. On unix, refuses a file that group or others may access.
pub fn read_secret_key(path: &Path) -> Result<SecretKey, KeyError> {
    let file = File::open(path).map_err(io_error("could not open secret key file", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = file
            .metadata()
            .map_err(io_error("could not inspect secret key file", path))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let text = read_limited(file, path)?;
    SecretKey::from_text(&text).map_err(|error| invalid_file(path, error))
}

/// Reads a public key file.
pub fn read_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let file = File::open(path).map_err(io_error("could not open public key file", path))?;
    let text = read_limited(file, path)?;
    PublicKey::from_text(&text).map_err(|error| invalid_file(path, error))
}

fn create_dir(dir: &Path) -> Result<(), KeyError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(io_error("could not create key directory", dir))
}

/// Writes `line` to a file that must not exist yet, created with `mode` on unix.
fn write_new(path: &Path, line: &str, mode: u32) -> Result<(), KeyError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == io::ErrorKind::AlreadyExists {
            KeyError::AlreadyExists {
                path: path.to_owned(),
            }
        } else {
            io_error("could not create key file", path)(error)
        }
    })?;
    let written = file
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(error) = written {
        let _ = fs::remove_file(path);
        return Err(io_error("could not write key file", path)(error));
    }
    Ok(())
}

fn read_limited(file: File, path: &Path) -> Result<String, KeyError> {
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error("could not read key file", path))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::FileTooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            max: MAX_KEY_FILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|_| {
        invalid_file(
            path,
            KeyError::WrongFormat {
                expected: "a musketeer key",
                found: "non-UTF-8 data".into(),
            },
        )
    })
}

fn invalid_file(path: &Path, error: KeyError) -> KeyError {
    KeyError::InvalidKeyFile {
        path: path.to_owned(),
        error: Box::new(error),
    }
}

fn io_error<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> KeyError + 'p {
    move |error| KeyError::Io {
        action,
        path: path.to_owned(),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_hold_a_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nested/keys");
        let (secret_path, public_path) = generate_key_files(&target).unwrap();
        assert_eq!(secret_path, target.join("musketeer.key"));
        assert_eq!(public_path, target.join("musketeer.pub"));
        let secret = read_secret_key(&secret_path).unwrap();
        let public = read_public_key(&public_path).unwrap();
        assert_eq!(secret.public_key(), public);
        let text = fs::read_to_string(&public_path).unwrap();
        assert_eq!(text, format!("{}\n", public.to_text()));
    }

    #[test]
    fn refuses_to_overwrite_either_file() {
        let dir = tempfile::tempdir().unwrap();
        let (secret_path, public_path) = generate_key_files(dir.path()).unwrap();
        let before = fs::read(&secret_path).unwrap();
        let err = generate_key_files(dir.path()).unwrap_err();
        assert!(
            matches!(&err, KeyError::AlreadyExists { path } if *path == secret_path),
            "{err}"
        );
        assert_eq!(fs::read(&secret_path).unwrap(), before);

        // A lone public key is also kept, and no secret key is written beside it.
        fs::remove_file(&secret_path).unwrap();
        let err = generate_key_files(dir.path()).unwrap_err();
        assert!(
            matches!(&err, KeyError::AlreadyExists { path } if *path == public_path),
            "{err}"
        );
        assert!(!secret_path.exists());
    }

    #[test]
    fn read_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.pub");
        let err = read_public_key(&missing).unwrap_err();
        assert!(matches!(err, KeyError::Io { .. }));
        assert!(err.to_string().contains("absent.pub"), "{err}");

        let garbage = dir.path().join("garbage.pub");
        fs::write(&garbage, "hello\n").unwrap();
        let err = read_public_key(&garbage).unwrap_err();
        assert!(matches!(err, KeyError::InvalidKeyFile { .. }));
        assert!(err.to_string().contains("garbage.pub"), "{err}");

        let big = dir.path().join("big.pub");
        fs::write(&big, vec![b'a'; 10_000]).unwrap();
        assert!(matches!(
            read_public_key(&big),
            Err(KeyError::FileTooLarge { .. })
        ));

        let binary = dir.path().join("binary.pub");
        fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(
            read_public_key(&binary),
            Err(KeyError::InvalidKeyFile { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn secret_key_is_0600_and_wider_modes_are_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let (secret_path, _) = generate_key_files(&keys).unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secret_path), 0o600);
        assert_eq!(mode(&keys), 0o700);

        for wide in [0o644, 0o640, 0o604, 0o660, 0o606] {
            fs::set_permissions(&secret_path, fs::Permissions::from_mode(wide)).unwrap();
            let err = read_secret_key(&secret_path).unwrap_err();
            assert!(
                matches!(err, KeyError::InsecurePermissions { mode, .. } if mode == wide),
                "{wide:o}: {err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        fs::set_permissions(&secret_path, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read_secret_key(&secret_path).is_ok());
    }
}
