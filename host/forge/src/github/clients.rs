//! GitHub clients shared across targets and passes: one per identity (an API URL
//! and a token, or a GitHub App installation), so the rate-limit budget a response
//! reports is the one the next target sees, and the identity's secondary budget
//! ([`super::identity`]) is shared by every target that uses it. Tokens are read
//! from their source on every pass (a rotated token gets a new client) and kept only
//! as a SHA-256; an App installation's tokens are minted here and renewed before
//! they expire, under one identity however often they change.

use super::app::{AppError, AppKey, BotIdentity, InstallationToken};
use super::identity::{IdentityBudget, Need, SecondaryLimits, SecondaryUsage};
use super::ratelimit::RetryPolicy;
use super::{GitHub, GitHubError};
use leviathan_domain::config::{GitHubApp, Target, TokenSource};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a target's token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token_env `{0}` is not set or empty")]
    Env(String),
    #[error("token_file {}: {message}", path.display())]
    File {
        path: std::path::PathBuf,
        message: String,
    },
    #[error(transparent)]
    App(#[from] AppError),
    #[error("GitHub App {app_id} installation {installation_id}: {source}")]
    Install {
        app_id: u64,
        installation_id: u64,
        source: GitHubError,
    },
}

/// Reads a token from its source, trimmed. An App installation has no token to
/// read: [`GitHubClients::installation`] mints one.
pub fn read_token(source: &TokenSource) -> Result<String, TokenError> {
    let (token, empty) = match source {
        TokenSource::Env(name) => (
            std::env::var(name).unwrap_or_default(),
            TokenError::Env(name.clone()),
        ),
        TokenSource::File(path) => (
            leviathan_domain::repofs::read_secret_file(path).map_err(|e| TokenError::File {
                path: path.clone(),
                message: e.to_string(),
            })?,
            TokenError::File {
                path: path.clone(),
                message: "empty".into(),
            },
        ),
        TokenSource::App(app) => {
            return Err(TokenError::App(AppError::Sign {
                app_id: app.app_id,
                message: "an App installation's token is minted, not read".into(),
            }));
        }
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(empty);
    }
    Ok(token)
}

/// A client's key: the API URL and the identity (the token's SHA-256 in hex, or
/// `app:<id>/installation:<id>`).
type ClientKey = (String, String);

/// One identity's client and who uses it.
struct Entry {
    client: Arc<GitHub>,
    /// The SHA-256 of the token the client sends (an App's changes hourly).
    token_hash: [u8; 32],
    /// How the configuration names the identity (`env:NAME`, `file:PATH`,
    /// `app:ID/installation:ID`), first name first; never the token.
    names: Vec<String>,
    /// The targets served through it.
    targets: std::collections::BTreeSet<String>,
}

/// An App installation's current token and bot identity.
struct Installed {
    token: InstallationToken,
    bot: Option<BotIdentity>,
}

/// The clients, created on first use: one per identity, each with the identity's
/// budget.
pub struct GitHubClients {
    runtime: Mutex<Option<Arc<tokio::runtime::Runtime>>>,
    clients: Mutex<HashMap<ClientKey, Entry>>,
    installations: Mutex<HashMap<(String, u64, u64), Installed>>,
    policy: RetryPolicy,
    limits: SecondaryLimits,
    /// The file the identities' recent content-creating requests are kept in
    /// between processes, and what it held when first read.
    memory: Mutex<Option<(std::path::PathBuf, Identities)>>,
    /// Targets discovered in App installations, by id, under their repositories'
    /// own policies as the latest pass read them (for the console and the API).
    discovered: Mutex<std::collections::BTreeMap<String, Target>>,
}

/// What the memory file keeps of one identity.
#[derive(serde::Serialize, serde::Deserialize, Default, Clone, Debug, PartialEq)]
struct Remembered {
    /// Recent content-creating requests (ms since the epoch).
    slots: Vec<u64>,
    /// Targets waiting for budget, first served first.
    #[serde(default)]
    queue: Vec<Waiting>,
}

/// A target in an identity's queue, with what it asked for (one flat object:
/// `target`, `content`, `total`).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Waiting {
    target: String,
    #[serde(flatten)]
    need: Need,
}

impl Remembered {
    /// What `budget` holds now.
    fn of(budget: &IdentityBudget) -> Remembered {
        Remembered {
            slots: budget.recent_slots_ms(),
            queue: budget
                .queue()
                .into_iter()
                .map(|(target, need)| Waiting { target, need })
                .collect(),
        }
    }

    /// Gives `budget` what an earlier process left.
    fn restore_into(&self, budget: &IdentityBudget) {
        budget.restore(&self.slots);
        let queue: Vec<(String, Need)> = self
            .queue
            .iter()
            .map(|w| (w.target.clone(), w.need))
            .collect();
        budget.restore_queue(&queue);
    }

    fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.queue.is_empty()
    }
}

/// `<api url> <identity>` → what the memory file keeps of it.
type Identities = HashMap<String, Remembered>;

/// The format of the identities' memory file (version 2; version 1 kept only each
/// identity's slots, and is still read).
#[derive(serde::Serialize, Default)]
struct Memory {
    version: u32,
    identities: Identities,
}

/// The memory file as read: either version.
#[derive(serde::Deserialize)]
struct StoredMemory {
    identities: HashMap<String, StoredIdentity>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredIdentity {
    /// Version 1: the slots alone.
    Slots(Vec<u64>),
    Remembered(Remembered),
}

/// Reads a memory file's bytes (either version).
fn parse_memory(bytes: &[u8]) -> serde_json::Result<Identities> {
    let stored: StoredMemory = serde_json::from_slice(bytes)?;
    Ok(stored
        .identities
        .into_iter()
        .map(|(key, identity)| {
            let remembered = match identity {
                StoredIdentity::Slots(slots) => Remembered {
                    slots,
                    queue: Vec::new(),
                },
                StoredIdentity::Remembered(r) => r,
            };
            (key, remembered)
        })
        .collect())
}

/// The largest memory file read (500 slots of a few hundred identities).
const MAX_MEMORY: u64 = 8 << 20;

fn memory_key(key: &ClientKey) -> String {
    format!("{} {}", key.0, key.1)
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
        TokenSource::App(app) => app_identity(app),
    }
}

/// An App installation's identity name (and key).
fn app_identity(app: &GitHubApp) -> String {
    format!("app:{}/installation:{}", app.app_id, app.installation_id)
}

/// A token to act with, and who the commits are by.
pub struct Credentials {
    pub token: String,
    /// The App's bot user, when acting as an App.
    pub author: Option<BotIdentity>,
}

impl GitHubClients {
    /// An empty cache whose clients follow `policy` and pace each identity by
    /// `limits`.
    pub fn new(policy: RetryPolicy, limits: SecondaryLimits) -> GitHubClients {
        GitHubClients {
            runtime: Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
            installations: Mutex::new(HashMap::new()),
            policy,
            limits,
            memory: Mutex::new(None),
            discovered: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// Notes a discovered target as a pass serves it (under its repository's policy).
    pub fn note_discovered(&self, target: &Target) {
        self.discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target.id.clone(), target.clone());
    }

    /// Forgets the discovered targets a pass no longer found (any not in `ids`).
    pub fn keep_discovered(&self, ids: &[&str]) {
        self.discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| ids.contains(&id.as_str()));
    }

    /// The discovered targets the passes served, by id.
    pub fn discovered(&self) -> Vec<Target> {
        self.discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Keeps the identities' windows in `file` between processes: read now (once;
    /// a later call with the same file does nothing), written by
    /// [`GitHubClients::save`]. A missing file is an empty memory; an unreadable one
    /// is logged and ignored (the windows then start empty, as GitHub's 403s are
    /// still honoured).
    pub fn remember_in(&self, file: &std::path::Path) {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        if memory.as_ref().is_some_and(|(f, _)| f == file) {
            return;
        }
        let loaded = match leviathan_domain::repofs::read_operator_file(
            file,
            leviathan_domain::repofs::Limit::new(MAX_MEMORY, "GitHub identities file limit"),
        ) {
            Ok(bytes) => parse_memory(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %file.display(), error = %e, "ignoring an unreadable GitHub identities file");
                HashMap::new()
            }),
            Err(e) => {
                if file.exists() {
                    tracing::warn!(file = %file.display(), error = %e, "ignoring an unreadable GitHub identities file");
                }
                HashMap::new()
            }
        };
        if let Ok(clients) = self.clients.lock() {
            for (key, e) in clients.iter() {
                if let Some(remembered) = loaded.get(&memory_key(key)) {
                    remembered.restore_into(e.client.identity());
                }
            }
        }
        *memory = Some((file.to_path_buf(), loaded));
    }

    /// Writes every identity's recent content-creating requests and queue to the file given
    /// to [`GitHubClients::remember_in`] (atomically: a temporary file renamed).
    pub fn save(&self) -> std::io::Result<()> {
        let Some((file, held_any)) = self
            .memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(f, loaded)| (f.clone(), !loaded.is_empty()))
        else {
            return Ok(());
        };
        let identities: Identities = match self.clients.lock() {
            Ok(clients) => clients
                .iter()
                .map(|(key, e)| (memory_key(key), Remembered::of(e.client.identity())))
                .filter(|(_, remembered)| !remembered.is_empty())
                .collect(),
            Err(_) => return Ok(()),
        };
        // Nothing to keep and nothing kept before (no GitHub target sent content):
        // a pass of local targets writes no file.
        if identities.is_empty() && !held_any {
            return Ok(());
        }
        let text = serde_json::to_vec(&Memory {
            version: 2,
            identities,
        })
        .map_err(std::io::Error::other)?;
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let staged = file.with_extension("tmp");
        std::fs::write(&staged, text)?;
        std::fs::rename(&staged, &file)
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

    /// The token and author to act with for `source` on `api_url`: read from the
    /// environment or a file, or an App installation's (minted when it has less
    /// than five minutes left).
    pub fn credentials(
        &self,
        api_url: &str,
        source: &TokenSource,
    ) -> Result<Credentials, TokenError> {
        match source {
            TokenSource::App(app) => self.installation(api_url, app),
            other => Ok(Credentials {
                token: read_token(other)?,
                author: None,
            }),
        }
    }

    /// An App installation's token (cached until five minutes before it expires)
    /// and its bot identity (looked up once).
    pub fn installation(&self, api_url: &str, app: &GitHubApp) -> Result<Credentials, TokenError> {
        let key = (api_url.to_string(), app.app_id, app.installation_id);
        let now = leviathan_domain::clock::now_secs();
        let mut installations = self.installations.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = installations.get(&key).filter(|i| i.token.fresh(now)) {
            return Ok(Credentials {
                token: i.token.token.clone(),
                author: i.bot.clone(),
            });
        }
        let install = |source: GitHubError| TokenError::Install {
            app_id: app.app_id,
            installation_id: app.installation_id,
            source,
        };
        let jwt = AppKey::load(&app.private_key_file)?.jwt(app.app_id, now)?;
        // The App itself is an identity of its own (GitHub limits its JWT requests
        // separately from its installations').
        let as_app = GitHub::connect(
            api_url,
            &jwt,
            self.runtime(api_url).map_err(install)?,
            self.policy.clone(),
            Arc::new(IdentityBudget::new(self.limits.clone())),
        )
        .map_err(install)?;
        let token = as_app
            .mint_installation_token(app.installation_id)
            .map_err(install)?;
        let bot = match installations.get(&key).and_then(|i| i.bot.clone()) {
            Some(bot) => Some(bot),
            None => match as_app.bot_identity() {
                Ok(bot) => Some(bot),
                Err(e) => {
                    // Commits then carry the host's own name; the PRs are the App's.
                    tracing::warn!(app_id = app.app_id, error = %e, "could not look up the App's bot user");
                    None
                }
            },
        };
        let credentials = Credentials {
            token: token.token.clone(),
            author: bot.clone(),
        };
        installations.insert(key, Installed { token, bot });
        Ok(credentials)
    }

    /// The client for the identity of `source` on `api_url`, sending `token`, used
    /// by `target` (named in the usage report). A new token of the same identity (an
    /// App's renewed one) gets a new client that keeps the identity's budget.
    pub fn client_for(
        &self,
        target: Option<&str>,
        source: &TokenSource,
        api_url: &str,
        token: &str,
    ) -> Result<Arc<GitHub>, GitHubError> {
        let token_hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let identity = match source {
            TokenSource::App(app) => app_identity(app),
            _ => token_hash.iter().map(|b| format!("{b:02x}")).collect(),
        };
        let name = identity_name(source);
        let key: ClientKey = (api_url.to_string(), identity);
        let remembered = memory_key(&key);
        let mut clients = self.clients.lock().map_err(|_| GitHubError::Setup {
            api_url: api_url.into(),
            message: "client cache poisoned".into(),
        })?;
        let connect = |budget| {
            Ok::<_, GitHubError>(Arc::new(GitHub::connect(
                api_url,
                token,
                self.runtime(api_url)?,
                self.policy.clone(),
                budget,
            )?))
        };
        let entry = match clients.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let budget = Arc::new(IdentityBudget::new(self.limits.clone()));
                let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(earlier) = memory
                    .as_ref()
                    .and_then(|(_, loaded)| loaded.get(&remembered))
                {
                    earlier.restore_into(&budget);
                }
                drop(memory);
                v.insert(Entry {
                    client: connect(budget)?,
                    token_hash,
                    names: Vec::new(),
                    targets: Default::default(),
                })
            }
        };
        if entry.token_hash != token_hash {
            entry.client = connect(entry.client.identity().clone())?;
            entry.token_hash = token_hash;
        }
        if !entry.names.contains(&name) {
            entry.names.push(name);
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
    fn the_memory_file_keeps_slots_and_queue_and_reads_version_one() {
        let v1 = br#"{"version":1,"identities":{"https://api x":[5,6]}}"#;
        let read = parse_memory(v1).expect("version 1");
        assert_eq!(read["https://api x"].slots, [5, 6]);
        assert!(read["https://api x"].queue.is_empty());

        let budget = IdentityBudget::new(SecondaryLimits::default());
        let earlier = Remembered {
            slots: Vec::new(),
            queue: vec![
                Waiting {
                    target: "b".into(),
                    need: Need {
                        content: 2,
                        total: 5,
                    },
                },
                Waiting {
                    target: "a".into(),
                    need: Need {
                        content: 1,
                        total: 4,
                    },
                },
            ],
        };
        earlier.restore_into(&budget);
        let now = Remembered::of(&budget);
        assert_eq!(now.queue, earlier.queue);
        let text = serde_json::to_vec(&Memory {
            version: 2,
            identities: [("k".to_string(), now.clone())].into(),
        })
        .expect("json");
        assert_eq!(parse_memory(&text).expect("version 2")["k"], now);
        let written: serde_json::Value = serde_json::from_slice(&text).expect("json");
        assert_eq!(
            written["identities"]["k"]["queue"][0],
            serde_json::json!({"target": "b", "content": 2, "total": 5})
        );
        assert!(parse_memory(br#"{"identities":{"k":"x"}}"#).is_err());
    }

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
