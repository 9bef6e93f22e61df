use anyhow::Context as _;
use musketeer_protocol::{Role, TokenId};
use musketeer_server::domain::tokens::{self, TokenRecord};
use musketeer_server::state::AppState;
use musketeer_server::store::{ProjectConfig, Store, Write, encode};
use musketeer_signing_keys::{TrustStore, read_public_key};

use crate::cli::InitArgs;

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let mut trust = TrustStore::new();
    for path in &args.trust_keys {
        let key = read_public_key(path)
            .with_context(|| format!("reading trusted key {}", path.display()))?;
        trust.add(key);
    }
    let project = ProjectConfig {
        name: args.project_name,
        trust,
        rotations: Vec::new(),
        min_client_version: args.min_client_version,
        created_ms: AppState::now_ms(),
    };
    let location = args.store.location()?;
    let store = Store::create_at(&location, &project).context("creating the store")?;
    let token = tokens::generate(tokens::USER_PREFIX);
    let record = TokenRecord {
        id: TokenId(1),
        hash: hex::encode(tokens::hash(&token)),
        role: Role::Admin,
        apps: None,
        expires_ms: None,
        label: Some("created by init".into()),
        created_ms: AppState::now_ms(),
        revoked: false,
    };
    store
        .write_now(vec![Write::Token(record.id.0, encode(&record))])
        .context("storing the admin token")?;
    println!("Created project {:?} in {location}", project.name);
    for key in project.trust.keys() {
        println!(
            "Trusted key {} (fingerprint {})",
            key.key_id(),
            key.fingerprint()
        );
    }
    println!("Admin token (id 1; shown only once, keep it secret):\n{token}");
    Ok(())
}
