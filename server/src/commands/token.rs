use anyhow::{Context as _, bail};
use musketeer_protocol::{Role, TokenId};
use musketeer_server::domain::tokens::{self, TokenRecord};
use musketeer_server::state::AppState;
use musketeer_server::store::{Store, Write, encode};

use crate::cli::{RoleArg, TokenCommand};

pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let store = Store::open(&args.data_dir)?;
            let loaded = store.load()?;
            let id = TokenId(loaded.tokens.iter().map(|t| t.id.0).max().unwrap_or(0) + 1);
            let expires_ms = args
                .expires
                .as_deref()
                .map(parse_duration_ms)
                .transpose()?
                .map(|d| AppState::now_ms() + d);
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
            let store = Store::open(&args.data_dir)?;
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

/// `30d`, `12h`, `90m`, `45s` as milliseconds.
fn parse_duration_ms(text: &str) -> anyhow::Result<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .with_context(|| format!("--expires {text:?}: expected e.g. 30d, 12h, 90m"))?;
    let scale = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1000,
        _ => bail!("--expires {text:?}: unit must be d, h, m or s"),
    };
    Ok(number.saturating_mul(scale))
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("2h").unwrap(), 7_200_000);
        assert_eq!(parse_duration_ms("30d").unwrap(), 30 * 86_400_000);
        for bad in ["", "h", "5", "5y", "-1d"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }
}
