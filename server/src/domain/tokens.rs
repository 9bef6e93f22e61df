//! Tokens and roles: random secrets stored only as sha256 hashes, looked up by hash and compared
//! in constant time, and the authorization rules of each role.

use std::collections::{BTreeMap, HashMap};

use musketeer_protocol::{HostId, Role, TokenId};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// sha256 of a token.
pub type TokenHash = [u8; 32];

/// A stored user token (researcher, publisher or admin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Its id.
    pub id: TokenId,
    /// sha256 of the secret, hex.
    pub hash: String,
    /// What it may do.
    pub role: Role,
    /// Apps it is limited to; None: all.
    pub apps: Option<Vec<String>>,
    /// It stops working at this time.
    pub expires_ms: Option<u64>,
    /// Operator's note.
    pub label: Option<String>,
    /// When it was created.
    pub created_ms: u64,
    /// Revoked tokens stay stored (their id may own batches) but never authenticate.
    pub revoked: bool,
}

impl TokenRecord {
    /// Whether this token may act on `app`.
    pub fn allows_app(&self, app: &str) -> bool {
        self.role == Role::Admin
            || self
                .apps
                .as_ref()
                .is_none_or(|apps| apps.iter().any(|a| a == app))
    }
}

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A user token.
    User(TokenRecord),
    /// A volunteer host.
    Host(HostId),
}

/// A new random token: a prefix naming its kind, then 32 random bytes in hex.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Prefix of user tokens.
pub const USER_PREFIX: &str = "mku_";
/// Prefix of host tokens.
pub const HOST_PREFIX: &str = "mkh_";

/// sha256 of a token.
pub fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The in-memory table of every token that can authenticate.
#[derive(Debug, Default)]
pub struct TokenTable {
    by_hash: HashMap<TokenHash, Principal>,
    users: BTreeMap<TokenId, TokenRecord>,
}

impl TokenTable {
    /// A user token's record, revoked or not.
    pub fn user(&self, id: TokenId) -> Option<&TokenRecord> {
        self.users.get(&id)
    }

    /// Every user token, revoked ones included, by id.
    pub fn users(&self) -> impl Iterator<Item = &TokenRecord> {
        self.users.values()
    }

    /// The id for the next user token.
    pub fn next_id(&self) -> TokenId {
        TokenId(self.users.keys().next_back().map_or(1, |id| id.0 + 1))
    }

    /// Add or replace a user token (revoked ones no longer authenticate).
    pub fn put_user(&mut self, record: TokenRecord) {
        self.users.insert(record.id, record.clone());
        let Ok(Ok(hash)) = hex::decode(&record.hash).map(TokenHash::try_from) else {
            return;
        };
        if record.revoked {
            self.by_hash.remove(&hash);
        } else {
            self.by_hash.insert(hash, Principal::User(record));
        }
    }

    /// Add a host token.
    pub fn put_host(&mut self, token_hash_hex: &str, host: HostId) {
        if let Ok(Ok(hash)) = hex::decode(token_hash_hex).map(TokenHash::try_from) {
            self.by_hash.insert(hash, Principal::Host(host));
        }
    }

    /// Who holds `token`, if it is known, unrevoked and unexpired.
    pub fn authenticate(&self, token: &str, now_ms: u64) -> Option<Principal> {
        let hash = hash(token);
        let (stored, principal) = self.by_hash.get_key_value(&hash)?;
        // The lookup found an equal hash; compare again in constant time so that no code path
        // depends on how many bytes of a guess match.
        if !bool::from(stored.ct_eq(&hash)) {
            return None;
        }
        if let Principal::User(record) = principal
            && record.expires_ms.is_some_and(|t| t <= now_ms)
        {
            return None;
        }
        Some(principal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(token: &str, role: Role) -> TokenRecord {
        TokenRecord {
            id: TokenId(1),
            hash: hex::encode(hash(token)),
            role,
            apps: Some(vec!["stock-day".into()]),
            expires_ms: Some(1000),
            label: None,
            created_ms: 0,
            revoked: false,
        }
    }

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = generate(USER_PREFIX);
        assert!(a.starts_with(USER_PREFIX) && a.len() == USER_PREFIX.len() + 64);
        assert_ne!(a, generate(USER_PREFIX));
    }

    #[test]
    fn authenticate_checks_hash_expiry_and_revocation() {
        let mut table = TokenTable::default();
        table.put_user(record("secret", Role::Researcher));
        table.put_host(&hex::encode(hash("hostsecret")), HostId(9));
        assert!(matches!(
            table.authenticate("secret", 999),
            Some(Principal::User(_))
        ));
        assert_eq!(table.authenticate("secret", 1000), None, "expired");
        assert_eq!(table.authenticate("secreT", 0), None);
        assert_eq!(
            table.authenticate("hostsecret", 5000),
            Some(Principal::Host(HostId(9)))
        );
        table.put_user(TokenRecord {
            revoked: true,
            ..record("secret", Role::Researcher)
        });
        assert_eq!(table.authenticate("secret", 0), None, "revoked");
    }

    #[test]
    fn app_scope() {
        let researcher = record("x", Role::Researcher);
        assert!(researcher.allows_app("stock-day"));
        assert!(!researcher.allows_app("other"));
        assert!(
            TokenRecord {
                role: Role::Admin,
                ..researcher.clone()
            }
            .allows_app("other")
        );
        assert!(
            TokenRecord {
                apps: None,
                ..researcher
            }
            .allows_app("other")
        );
    }
}
