//! `musketeer keys generate`.

use std::path::Path;

use anyhow::Context;

pub fn generate(out: &Path) -> anyhow::Result<()> {
    let (secret_path, public_path) = musketeer_signing_keys::generate_key_files(out)
        .with_context(|| format!("cannot create a key pair in {}", out.display()))?;
    let public = musketeer_signing_keys::read_public_key(&public_path)?;
    println!(
        "private key: {} (keep it offline; never share it)",
        secret_path.display()
    );
    println!("public key:  {}", public_path.display());
    println!("key id:      {}", public.key_id());
    println!("fingerprint: {}", public.fingerprint());
    Ok(())
}
