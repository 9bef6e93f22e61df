//! `musketeer keys generate` and `musketeer keys rotate`.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;

pub fn generate(out: &Path, json: bool) -> anyhow::Result<()> {
    let (secret_path, public_path) = musketeer_signing_keys::generate_key_files(out)
        .with_context(|| format!("cannot create a key pair in {}", out.display()))?;
    let public = musketeer_signing_keys::read_public_key(&public_path)?;
    if json {
        let report = serde_json::json!({
            "secret_key_file": secret_path,
            "public_key_file": public_path,
            "key_id": public.key_id().to_string(),
            "fingerprint": public.fingerprint(),
        });
        println!("{report}");
        return Ok(());
    }
    println!(
        "private key: {} (keep it offline; never share it)",
        secret_path.display()
    );
    println!("public key:  {}", public_path.display());
    println!("key id:      {}", public.key_id());
    println!("fingerprint: {}", public.fingerprint());
    Ok(())
}

pub fn rotate(
    old: &Path,
    new: &Path,
    retire_old: bool,
    out: &Path,
    json: bool,
) -> anyhow::Result<()> {
    let old_key = read_secret_key(old, "--old")
        .with_context(|| format!("cannot read the current private key {}", old.display()))?;
    let new_key = musketeer_signing_keys::read_public_key(new).with_context(|| {
        format!(
            "cannot read the new public key {} (create one with `musketeer keys generate --out DIR`)",
            new.display()
        )
    })?;
    if new_key.key_id() == old_key.public_key().key_id() {
        anyhow::bail!("the new key is the current key; generate a new pair first");
    }
    let statement = musketeer_signing_keys::RotationStatement::sign(&old_key, &new_key, retire_old);
    let text = serde_json::to_string_pretty(&statement)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| {
            format!(
                "cannot create {} (an existing statement is never overwritten)",
                out.display()
            )
        })?;
    writeln!(file, "{text}").with_context(|| format!("cannot write {}", out.display()))?;
    if json {
        let report = serde_json::json!({
            "statement_file": out,
            "old_key_id": old_key.public_key().key_id().to_string(),
            "new_key_id": new_key.key_id().to_string(),
            "retires_old": retire_old,
        });
        println!("{report}");
        return Ok(());
    }
    println!("rotation statement: {}", out.display());
    println!(
        "{} vouches for {}{}",
        old_key.public_key().key_id(),
        new_key.key_id(),
        if retire_old {
            " and retires itself"
        } else {
            "; both stay trusted"
        }
    );
    println!(
        "publish it with: musketeer-server rotate-key --statement {}",
        out.display()
    );
    Ok(())
}

/// Reads a secret key file given as `flag`; a public key file there is named as such (it would
/// otherwise be refused for its permissions, with advice to chmod it).
pub fn read_secret_key(
    path: &Path,
    flag: &str,
) -> anyhow::Result<musketeer_signing_keys::SecretKey> {
    if musketeer_signing_keys::read_public_key(path).is_ok() {
        anyhow::bail!(
            "{flag} {} is a public key; sign with the secret key file from `musketeer keys \
             generate` (musketeer.key next to it)",
            path.display()
        );
    }
    Ok(musketeer_signing_keys::read_secret_key(path)?)
}
