//! GitHub clients shared across targets and passes: one per identity (API URL and
//! token), so the rate-limit budget a response reports is the one the next target
//! sees, and the identity's secondary budget ([`super::identity`]) is shared by
//! every target that uses it. Tokens
//! are read from their source on every pass (a rotated token gets a new client) and
//! kept only as a SHA-256 in the cache key.

use super::identity::{IdentityBudget, SecondaryLimits, SecondaryUsage};
use super::ratelimit::RetryPolicy;
use super::{GitHub, GitHubError};
use leviathan_domain::config::TokenSource;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a target's token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token_env `{0}` is not set or empty")]
    Env(String),
    #[error("token_file {}: {message}", path.display())]
    File {
        path: std::path::PathBuf,
        message: String,
    },
}

/// Reads a token from its source, trimmed.
pub fn read_token(source: &TokenSource) -> Result<String, TokenError> {
    let token = match source {
        TokenSource::Env(name) => std::env::var(name).unwrap_or_default(),
        TokenSource::File(path) => {
            leviathan_domain::repofs::read_secret_file(path).map_err(|e| TokenError::File {
                path: path.clone(),
                message: e.to_string(),
            })?
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(match source {
            TokenSource::Env(name) => TokenError::Env(name.clone()),
            TokenSource::File(path) => TokenError::File {
                path: path.clone(),
                message: "empty".into(),
            },
        });
    }
    Ok(token)
}

/// A client's key: the API URL and the SHA-256 of its token.
type ClientKey = (String, [u8; 32]);

/// One identity's client and who uses it.
struct Entry {
    client: Arc<GitHub>,
    /// How the configuration names the identity (`env:NAME`, `file:PATH`), first
    /// name first; never the token.
    names: Vec<String>,
    /// The targets served through it.
    targets: std::collections::BTreeSet<String>,
}

/// The clients, created on first use: one per identity (API URL and token), each
/// with the identity's budget.
pub struct GitHubClients {
    runtime: Mutex<Option<Arc<tokio::runtime::Runtime>>>,
    clients: Mutex<HashMap<ClientKey, Entry>>,
    policy: RetryPolicy,
    limits: SecondaryLimits,
}

impl Default for GitHubClients {
    fn default() -> Self {
        GitHubClients::new(RetryPolicy::default(), SecondaryLimits::default())
    }
}

/// How the configuration names a token's identity: where the token comes from.
pub fn identity_name(source: &TokenSource) -> String {
    match source {
        TokenSource::Env(name) => format!("env:{name}"),
        TokenSource::File(path) => format!("file:{}", path.display()),
    }
}

impl GitHubClients {
    /// An empty cache whose clients follow `policy` and pace each identity by
    /// `limits`.
    pub fn new(policy: RetryPolicy, limits: SecondaryLimits) -> GitHubClients {
        GitHubClients {
            runtime: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
            policy,
            limits,
        }
    }

    /// Clients for `config`: its `github_limits`.
    pub fn for_config(config: &leviathan_domain::config::Config) -> GitHubClients {
        GitHubClients::new(
            RetryPolicy::default(),
            SecondaryLimits::from_config(&config.github_limits),
        )
    }

    /// Ends a pass on every identity (see [`IdentityBudget::end_pass`]).
    pub fn end_pass(&self) {
        if let Ok(clients) = self.clients.lock() {
            for e in clients.values() {
                e.client.identity().end_pass();
            }
        }
    }

    fn runtime(&self, api_url: &str) -> Result<Arc<tokio::runtime::Runtime>, GitHubError> {
        let mut slot = self.runtime.lock().map_err(|_| GitHubError::Setup {
            api_url: api_url.into(),
            message: "client cache poisoned".into(),
        })?;
        if let Some(rt) = slot.as_ref() {
            return Ok(rt.clone());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("github")
            .build()
            .map_err(|e| GitHubError::Setup {
                api_url: api_url.into(),
                message: e.to_string(),
            })?;
        let rt = Arc::new(rt);
        *slot = Some(rt.clone());
        Ok(rt)
    }

    /// The client for `api_url` with `token`, not tied to a target.
    pub fn client(&self, api_url: &str, token: &str) -> Result<Arc<GitHub>, GitHubError> {
        self.client_for(None, "token", api_url, token)
    }

    /// The client for `api_url` with `token`, used by `target` (named in the usage
    /// report) under the identity name `name`.
    pub fn client_for(
        &self,
        target: Option<&str>,
        name: &str,
        api_url: &str,
        token: &str,
    ) -> Result<Arc<GitHub>, GitHubError> {
        let key: ClientKey = (api_url.to_string(), Sha256::digest(token.as_bytes()).into());
        let mut clients = self.clients.lock().map_err(|_| GitHubError::Setup {
            api_url: api_url.into(),
            message: "client cache poisoned".into(),
        })?;
        if !clients.contains_key(&key) {
            let limits = self.limits.clone();
            let client = Arc::new(GitHub::connect(
                api_url,
                token,
                self.runtime(api_url)?,
                self.policy.clone(),
                Arc::new(IdentityBudget::new(limits)),
            )?);
            clients.insert(
                key.clone(),
                Entry {
                    client,
                    names: Vec::new(),
                    targets: Default::default(),
                },
            );
        }
        let entry = clients.get_mut(&key).ok_or_else(|| GitHubError::Setup {
            api_url: api_url.into(),
            message: "client cache lost an entry".into(),
        })?;
        if !entry.names.iter().any(|n| n == name) {
            entry.names.push(name.to_string());
        }
        if let Some(target) = target {
            entry.targets.insert(target.to_string());
        }
        Ok(entry.client.clone())
    }
}

/// What one GitHub identity has left, as the host last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// How the configuration names the identity (its token sources, joined with
    /// ` + ` when several hold the same token).
    pub identity: String,
    pub api_url: String,
    /// The targets served through it.
    pub targets: Vec<String>,
    pub budget: super::ratelimit::Budget,
    /// Requests sent that may create content (GitHub's secondary limits count these).
    pub content_requests: u64,
    /// The secondary budget's windows, reservations and queue.
    pub secondary: SecondaryUsage,
}

impl GitHubClients {
    /// Every identity's budgets and content requests (one entry per API URL and
    /// token; the token itself is never part of it).
    pub fn usage(&self) -> Vec<Usage> {
        let Ok(clients) = self.clients.lock() else {
            return Vec::new();
        };
        let now = std::time::Instant::now();
        let mut out: Vec<Usage> = clients
            .values()
            .map(|e| Usage {
                identity: e.names.join(" + "),
                api_url: e.client.api_url().to_string(),
                targets: e.targets.iter().cloned().collect(),
                budget: e.client.budget(),
                content_requests: e.client.content_requests(),
                secondary: e.client.identity().usage(now),
            })
            .collect();
        out.sort_by(|a, b| (&a.api_url, &a.identity).cmp(&(&b.api_url, &b.identity)));
        out
    }
}

/// One API's identities taken together: the budget of the one with the fewest
/// requests left, and the content requests of all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiUsage {
    pub lowest: Option<super::ratelimit::Budget>,
    pub content_requests: u64,
}

/// `usage` by API URL.
pub fn by_api(usage: &[Usage]) -> std::collections::BTreeMap<&str, ApiUsage> {
    let mut out: std::collections::BTreeMap<&str, ApiUsage> = std::collections::BTreeMap::new();
    for u in usage {
        let e = out.entry(u.api_url.as_str()).or_default();
        if let Some(r) = u.budget.remaining
            && e.lowest.and_then(|b| b.remaining).is_none_or(|low| r < low)
        {
            e.lowest = Some(u.budget);
        }
        e.content_requests += u.content_requests;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_a_file_or_the_environment_and_must_not_be_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gh.token");
        std::fs::write(&file, "  abc123\n").expect("write");
        assert_eq!(
            read_token(&TokenSource::File(file.clone())).expect("token"),
            "abc123"
        );
        std::fs::write(&file, "\n").expect("write");
        let err = read_token(&TokenSource::File(file)).expect_err("empty");
        assert!(err.to_string().contains("gh.token: empty"), "{err}");
        let err = read_token(&TokenSource::Env("LEVIATHAN_TEST_NO_SUCH_TOKEN".into()))
            .expect_err("unset");
        assert!(
            err.to_string().contains("LEVIATHAN_TEST_NO_SUCH_TOKEN"),
            "{err}"
        );
    }
}
