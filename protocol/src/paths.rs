//! URL paths of the HTTP API. Paths with `{name}` segments are axum route patterns; the functions
//! next to them build concrete paths.

/// Every API path starts with this prefix.
pub const API_PREFIX: &str = "/api/v1";
/// `GET`: project name, trusted keys, rotation statements, minimum client version. Public.
pub const PROJECT: &str = "/api/v1/project";
/// `POST` (admin token): apply a key rotation statement signed by a trusted key, while serving.
pub const PROJECT_ROTATIONS: &str = "/api/v1/project/rotations";
/// `POST`: register a volunteer host, answered with its host token.
pub const HOSTS_REGISTER: &str = "/api/v1/hosts/register";
/// `GET`: every known host with its platform and counters (dashboard).
pub const HOSTS: &str = "/api/v1/hosts";
/// `POST` (host token): long-poll for assignments.
pub const WORK_FETCH: &str = "/api/v1/work/fetch";
/// `POST` (host token): report results, learn which in-flight results are cancelled.
pub const WORK_REPORT: &str = "/api/v1/work/report";
/// `GET`: a module's bytes by sha256 (content-addressed, immutable).
pub const MODULE: &str = "/api/v1/modules/{sha256}";
/// `GET`: published app versions; `POST` (publisher token): publish a signed app version.
pub const APPS: &str = "/api/v1/apps";
/// `GET`: the caller's batches (all batches for admin); `POST` (researcher token): submit one.
pub const BATCHES: &str = "/api/v1/batches";
/// `GET`: one batch's status, `?wait_ms=N[&after=TAG]` to long-poll for its end or progress;
/// `DELETE`: delete a finished (or cancelled) batch and its units.
pub const BATCH: &str = "/api/v1/batches/{id}";
/// `GET`: one batch's results, `?format=jsonl` (default) or `?format=csv`, streamed.
pub const BATCH_RESULTS: &str = "/api/v1/batches/{id}/results";
/// `POST`: cancel a batch.
pub const BATCH_CANCEL: &str = "/api/v1/batches/{id}/cancel";
/// `GET`: server-wide counters (dashboard).
pub const STATS: &str = "/api/v1/stats";
/// `GET` (admin token): every user token, without secrets; `POST` (admin token): create one.
pub const TOKENS: &str = "/api/v1/tokens";
/// `DELETE` (admin token): revoke a user token by id.
pub const TOKEN: &str = "/api/v1/tokens/{id}";

/// `GET`: one host with its recent replicas (dashboard).
pub const HOST: &str = "/api/v1/hosts/{id}";
/// `POST` (admin token): ban a host, with a reason.
pub const HOST_BAN: &str = "/api/v1/hosts/{id}/ban";
/// `POST` (admin token): lift a host's ban or quarantine.
pub const HOST_UNBAN: &str = "/api/v1/hosts/{id}/unban";
/// `GET`: one unit with its replicas (owner or admin).
pub const UNIT: &str = "/api/v1/units/{id}";
/// `GET`: a batch's units, `?state=failed&limit=100` (owner or admin).
pub const BATCH_UNITS: &str = "/api/v1/batches/{id}/units";
/// `GET`: failed replicas of the caller's batches, `?batch=&state=&after=&limit=` (owner or
/// admin).
pub const FAILURES: &str = "/api/v1/failures";
/// `GET`: units by app and state, hosts' rates and the unit states over the last hour.
pub const SERVER_STATUS: &str = "/api/v1/status";
/// `GET`: the OpenAPI document of this API.
pub const OPENAPI: &str = "/api/v1/openapi.json";
/// `GET`: Prometheus metrics (outside the API prefix, where scrapers look).
pub const METRICS: &str = "/metrics";

/// `GET` (admin token): a consistent copy of the store, taken while serving (a redb file).
pub const ADMIN_BACKUP: &str = "/api/v1/admin/backup";
/// `GET`: liveness probe, 200 while the process answers HTTP. Public, outside the API prefix.
pub const HEALTHZ: &str = "/healthz";
/// `GET`: readiness probe, 200 when the store accepts writes and the server is not shutting
/// down, else 503 with the reason. Public, outside the API prefix.
pub const READYZ: &str = "/readyz";

/// Every path above, for checks that documentation and routes agree.
pub const ALL: &[&str] = &[
    PROJECT,
    PROJECT_ROTATIONS,
    HOSTS_REGISTER,
    HOSTS,
    HOST,
    HOST_BAN,
    HOST_UNBAN,
    WORK_FETCH,
    WORK_REPORT,
    MODULE,
    APPS,
    BATCHES,
    BATCH,
    BATCH_RESULTS,
    BATCH_CANCEL,
    BATCH_UNITS,
    UNIT,
    STATS,
    FAILURES,
    SERVER_STATUS,
    TOKENS,
    TOKEN,
    OPENAPI,
    METRICS,
    HEALTHZ,
    READYZ,
    ADMIN_BACKUP,
];

/// The download path of the module with this sha256 (lowercase hex).
pub fn module(sha256: &str) -> String {
    format!("{API_PREFIX}/modules/{sha256}")
}

/// The status (and delete) path of a batch.
pub fn batch(id: crate::BatchId) -> String {
    format!("{API_PREFIX}/batches/{id}")
}

/// The long-poll status path of a batch: answered when the batch is finished or cancelled,
/// when its progress tag differs from `after` (if given), or after `wait_ms`.
pub fn batch_wait(id: crate::BatchId, wait_ms: u64, after: Option<&str>) -> String {
    let mut path = format!("{API_PREFIX}/batches/{id}?wait_ms={wait_ms}");
    if let Some(tag) = after {
        // Tags are URL-safe (letters, digits, '-'); anything else is escaped so the query stays
        // one parameter.
        path.push_str("&after=");
        for byte in tag.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' {
                path.push(char::from(byte));
            } else {
                path.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    path
}

/// The page of a batch's results finished after `cursor` (see [`crate::ResultsPage`]), waiting
/// up to `wait_ms` for one.
pub fn batch_results_page(id: crate::BatchId, cursor: &str, wait_ms: u64) -> String {
    // Cursors are letters, digits and '-' (the server's and `start`); others are escaped so the
    // query stays one parameter.
    let mut path = format!("{API_PREFIX}/batches/{id}/results?wait_ms={wait_ms}&after=");
    for byte in cursor.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

/// The results path of a batch in the given format.
pub fn batch_results(id: crate::BatchId, format: crate::ResultsFormat) -> String {
    format!(
        "{API_PREFIX}/batches/{id}/results?format={}",
        format.as_str()
    )
}

/// The ban path of a host.
pub fn host_ban(id: crate::HostId) -> String {
    format!("{API_PREFIX}/hosts/{id}/ban")
}

/// The unban path of a host.
pub fn host_unban(id: crate::HostId) -> String {
    format!("{API_PREFIX}/hosts/{id}/unban")
}

/// The cancel path of a batch.
pub fn batch_cancel(id: crate::BatchId) -> String {
    format!("{API_PREFIX}/batches/{id}/cancel")
}

/// The revoke path of a token.
pub fn token(id: crate::TokenId) -> String {
    format!("{API_PREFIX}/tokens/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_wait_paths_keep_the_tag_one_parameter() {
        let id = crate::BatchId(7);
        assert_eq!(batch_wait(id, 0, None), "/api/v1/batches/7?wait_ms=0");
        assert_eq!(
            batch_wait(id, 2000, Some("running-1-0-0-0-0-0")),
            "/api/v1/batches/7?wait_ms=2000&after=running-1-0-0-0-0-0"
        );
        assert_eq!(
            batch_wait(id, 1, Some("a&b=c d")),
            "/api/v1/batches/7?wait_ms=1&after=a%26b%3Dc%20d"
        );
    }
}
