use anyhow::{Context as _, bail};
use musketeer_protocol::{Role, TokenId};
use musketeer_server::domain::tokens::{self, TokenRecord};
use musketeer_server::state::AppState;
use musketeer_server::store::{Store, Write, encode};

use crate::cli::{RoleArg, TokenCommand};

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let store = Store::open_at(&args.store.location()?)?;
            let loaded = store.load()?;
            let id = TokenId(loaded.tokens.iter().map(|t| t.id.0).max().unwrap_or(0) + 1);
            let expires_ms = args.expires.map(|expires| {
                let ms = u64::try_from(expires.as_millis()).unwrap_or(u64::MAX);
                AppState::now_ms().saturating_add(ms)
            });
            let token = tokens::generate(tokens::USER_PREFIX);
            let record = TokenRecord {
                id,
                hash: hex::encode(tokens::hash(&token)),
                role: match args.role {
                    RoleArg::Researcher => Role::Researcher,
                    RoleArg::Publisher => Role::Publisher,
                    RoleArg::Admin => Role::Admin,
                },
                apps: args.apps,
                expires_ms,
                label: args.label,
                created_ms: AppState::now_ms(),
                revoked: false,
            };
            store
                .write_now(vec![Write::Token(id.0, encode(&record))])
                .context("storing the token")?;
            eprintln!("Token id {id} ({:?}); shown only once:", record.role);
            println!("{token}");
        }
        TokenCommand::Revoke(args) => {
            let store = Store::open_at(&args.store.location()?)?;
            let loaded = store.load()?;
            let Some(mut record) = loaded.tokens.into_iter().find(|t| t.id.0 == args.id) else {
                bail!(
                    "no token with id {}; ids are printed by `token create`",
                    args.id
                );
            };
            record.revoked = true;
            store
                .write_now(vec![Write::Token(args.id, encode(&record))])
                .context("storing the revocation")?;
            println!("Revoked token {}", args.id);
        }
    }
    Ok(())
}
