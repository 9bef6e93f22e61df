//! `musketeer tokens list|revoke`: an admin manages user tokens on a running server.

use anyhow::Context;
use musketeer_protocol::{TokenId, TokenInfo};

use crate::cli::TokensCommand;

pub fn tokens(command: TokensCommand) -> anyhow::Result<()> {
    let runtime = super::connection::runtime()?;
    runtime.block_on(async {
        match command {
            TokensCommand::List { server, json } => {
                let api = super::connection::client(&server)?;
                let list = api
                    .tokens()
                    .await
                    .context("cannot list tokens (an admin token is needed)")?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                } else {
                    println!(
                        "{:>5}  {:<10} {:<10} {:<10} {:<10} {:<20} apps",
                        "id", "role", "state", "created", "expires", "label"
                    );
                    for token in &list.tokens {
                        println!("{}", row(token));
                    }
                }
                Ok(())
            }
            TokensCommand::Revoke { server, id } => {
                let api = super::connection::client(&server)?;
                api.revoke_token(TokenId(id)).await.with_context(|| {
                    format!(
                        "cannot revoke token {id} (an admin token is needed; \
                         `musketeer tokens list` shows the ids)"
                    )
                })?;
                println!("revoked token {id}: it is refused from its next request on");
                Ok(())
            }
        }
    })
}

/// One line of `tokens list`.
fn row(token: &TokenInfo) -> String {
    let role = serde_json::to_value(token.role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let state = if token.revoked { "revoked" } else { "active" };
    let label: String = token
        .label
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(20)
        .collect();
    let apps = token
        .apps
        .as_ref()
        .map_or_else(|| "all".to_owned(), |apps| apps.join(","));
    format!(
        "{:>5}  {:<10} {:<10} {:<10} {:<10} {:<20} {}",
        token.id.0,
        role,
        state,
        utc_date(token.created_ms),
        token
            .expires_ms
            .map_or_else(|| "never".to_owned(), utc_date),
        label,
        apps
    )
}

/// `YYYY-MM-DD` (UTC) of a Unix time in milliseconds.
fn utc_date(unix_ms: u64) -> String {
    // Howard Hinnant's days-to-civil: the Gregorian date of a day count since 1970-01-01.
    let days = (unix_ms / 86_400_000) as i64 + 719_468;
    let era = days / 146_097;
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400_000), "2000-02-29");
        assert_eq!(utc_date(1_462_060_800_000), "2016-05-01");
        assert_eq!(utc_date(1_767_225_599_999), "2025-12-31");
    }
}
