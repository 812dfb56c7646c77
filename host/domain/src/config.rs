//! The host configuration (issue #4): the targets the scheduler serves, each with its
//! repository, forge, token source, policy, labels and merge setting. The original
//! Leviathan's single-target `dev.yaml` (`target_id`, `target_repo_url`,
//! `target_branch` beside the guardrails) is accepted as a one-target configuration
//! whose policy is the file itself.

use crate::policy::Policy;
use crate::yaml::{self, Fields, InputError};
use std::path::{Path, PathBuf};

/// The public GitHub REST API.
pub const GITHUB_API: &str = "https://api.github.com";

/// Where pull requests are opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forge {
    /// The embedded default: branches in a local repository, PR records in the event log.
    Local,
    /// GitHub (or GitHub Enterprise at `api_url`).
    GitHub { api_url: String, token: TokenSource },
}

/// Where a forge token is read from; never inline in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Env(String),
    File(PathBuf),
    /// A GitHub App installation: the host mints its tokens.
    App(GitHubApp),
}

/// A GitHub App installation the host acts as (`github_app:` of a target): the
/// App's id and private key sign a JWT, which buys short-lived installation tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubApp {
    pub app_id: u64,
    /// The App's private key (PEM, PKCS#1 or PKCS#8), e.g. a mounted Secret.
    pub private_key_file: PathBuf,
    pub installation_id: u64,
}

const GITHUB_APP_KEYS: &[&str] = &["app_id", "private_key_file", "installation_id"];

impl GitHubApp {
    /// `github_app:` of a target.
    fn read(f: &Fields, base: &Path) -> Result<Option<GitHubApp>, InputError> {
        let Some(g) = f.opt_nested("github_app")? else {
            return Ok(None);
        };
        only_known(&g, GITHUB_APP_KEYS)?;
        let id = |key: &str| -> Result<u64, InputError> {
            match g.opt_u64(key)? {
                Some(n) if n > 0 => Ok(n),
                Some(_) => Err(g.error(key, "must be a positive number")),
                None => Err(g.error(key, "is required")),
            }
        };
        Ok(Some(GitHubApp {
            app_id: id("app_id")?,
            private_key_file: base.join(g.string("private_key_file")?),
            installation_id: id("installation_id")?,
        }))
    }
}

/// One target repository.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    /// A local path or `file://` URL (local forge), or `owner/name` (GitHub).
    pub repository: String,
    pub base_branch: String,
    pub forge: Forge,
    pub policy: Policy,
    pub labels: Vec<String>,
    pub auto_merge: bool,
    /// Found by a `discover:` entry: its policy is the repository's own
    /// `.leviathan/policy.yaml`, read after each fetch (`policy` is a placeholder).
    pub policy_in_repo: bool,
}

/// Targets found in a GitHub App installation's repositories (`discover:`), opt-in:
/// only repositories matching one of `repositories` (`owner/name` patterns where
/// `*` matches within a name) and not configured as targets already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub api_url: String,
    pub app: GitHubApp,
    pub repositories: Vec<String>,
    pub labels: Vec<String>,
    /// Auto-merge for a discovered repository whose own policy also asks for it.
    pub auto_merge: bool,
}

/// Whether `full_name` (`owner/name`) matches `pattern`: `*` stands for any run of
/// characters other than `/`; matching ignores ASCII case, as GitHub's names do.
pub fn repository_matches(pattern: &str, full_name: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len())
                .take_while(|i| *i == 0 || s[i - 1] != b'/')
                .any(|i| glob(rest, &s[i..])),
            Some((c, rest)) => s
                .split_first()
                .is_some_and(|(d, tail)| c.eq_ignore_ascii_case(d) && glob(rest, tail)),
        }
    }
    glob(pattern.as_bytes(), full_name.as_bytes())
}

impl Discovery {
    /// The target for repository `full_name` (branch `base_branch`) of this
    /// installation, when the allow-list takes it: its id is `owner-name`, made to
    /// fit the id rules.
    pub fn target(&self, full_name: &str, base_branch: &str) -> Option<Target> {
        if !self
            .repositories
            .iter()
            .any(|p| repository_matches(p, full_name))
        {
            return None;
        }
        let id: String = full_name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(64)
            .collect();
        valid_id(&id).then(|| Target {
            id,
            repository: full_name.to_string(),
            base_branch: base_branch.to_string(),
            forge: Forge::GitHub {
                api_url: self.api_url.clone(),
                token: TokenSource::App(self.app.clone()),
            },
            policy: Policy::default_policy(),
            labels: self.labels.clone(),
            auto_merge: self.auto_merge,
            policy_in_repo: true,
        })
    }
}

const DISCOVERY_KEYS: &[&str] = &[
    "github_api_url",
    "github_app",
    "repositories",
    "labels",
    "auto_merge",
];

fn read_discovery(f: &Fields, base: &Path) -> Result<Discovery, InputError> {
    only_known(f, DISCOVERY_KEYS)?;
    let api_url = f
        .opt_string("github_api_url")?
        .unwrap_or_else(|| GITHUB_API.into());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(f.error("github_api_url", "must be an http(s) URL"));
    }
    let app = GitHubApp::read(f, base)?.ok_or_else(|| {
        f.error(
            "github_app",
            "is required: discovery lists an App installation's repositories",
        )
    })?;
    let repositories = f.string_list("repositories")?;
    if repositories.is_empty() {
        return Err(f.error(
            "repositories",
            "list the `owner/name` patterns to serve (e.g. `acme/docs-*`); nothing is discovered without one",
        ));
    }
    for p in &repositories {
        let parts: Vec<&str> = p.split('/').collect();
        if parts.len() != 2 || parts.iter().any(|x| x.is_empty()) {
            return Err(f.error(
                "repositories",
                format!("`{p}` is not an `owner/name` pattern"),
            ));
        }
    }
    Ok(Discovery {
        api_url: api_url.trim_end_matches('/').into(),
        app,
        repositories,
        labels: f.string_list("labels")?,
        auto_merge: f.opt_bool("auto_merge")?.unwrap_or(false),
    })
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    /// Seconds between scheduler passes in `serve`.
    pub interval_seconds: u64,
    /// A cron schedule (UTC) for `serve`'s passes, instead of the interval.
    pub schedule: Option<crate::cron::Cron>,
    /// How many targets a pass serves at once (`workers`, default
    /// [`DEFAULT_WORKERS`]).
    pub workers: usize,
    /// How many `serve` processes split the targets between them (`shards`,
    /// default 1); each owns the targets [`crate::shards::owns`] gives it.
    pub shards: u32,
    /// How the host paces each GitHub identity (`github_limits`).
    pub github_limits: GitHubLimits,
    /// The longest a clone, fetch or push of a target may take before the host stops
    /// it (`git_timeout_seconds`, default [`DEFAULT_GIT_TIMEOUT_SECONDS`]).
    pub git_timeout_seconds: u64,
    /// The most MiB a target's clone may hold in git's packs, and the most its
    /// checkout's files may (`max_clone_mib`, default [`DEFAULT_MAX_CLONE_MIB`]).
    pub max_clone_mib: u64,
    pub targets: Vec<Target>,
    /// App installations whose repositories become targets (`discover:`).
    pub discover: Vec<Discovery>,
}

/// GitHub's secondary limits as the host plans for them, per identity (a token or
/// an App installation): `github_limits:` in the configuration, GitHub's documented
/// values by default. Lower them to leave room for others using the same identity
/// (people, other tools) or for a GitHub Enterprise Server configured tighter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubLimits {
    /// Content-creating requests per minute (GitHub: 80).
    pub content_per_minute: u32,
    /// Content-creating requests per hour (GitHub: 500).
    pub content_per_hour: u32,
    /// The least time between two content-creating requests, in ms (GitHub's best
    /// practice: 1000).
    pub content_spacing_ms: u64,
    /// Requests in flight at once (GitHub: 100).
    pub concurrent_requests: u32,
}

impl Default for GitHubLimits {
    fn default() -> Self {
        GitHubLimits {
            content_per_minute: 80,
            content_per_hour: 500,
            content_spacing_ms: 1000,
            concurrent_requests: 100,
        }
    }
}

const GITHUB_LIMIT_KEYS: &[&str] = &[
    "content_per_minute",
    "content_per_hour",
    "content_spacing_ms",
    "concurrent_requests",
];

impl GitHubLimits {
    /// `github_limits:` of a configuration; absent fields keep GitHub's values.
    fn read(f: &Fields) -> Result<GitHubLimits, InputError> {
        let Some(g) = f.opt_nested("github_limits")? else {
            return Ok(GitHubLimits::default());
        };
        only_known(&g, GITHUB_LIMIT_KEYS)?;
        let d = GitHubLimits::default();
        Ok(GitHubLimits {
            content_per_minute: bounded(
                &g,
                "content_per_minute",
                d.content_per_minute.into(),
                10_000,
            )? as u32,
            content_per_hour: bounded(&g, "content_per_hour", d.content_per_hour.into(), 100_000)?
                as u32,
            content_spacing_ms: match g.opt_u64("content_spacing_ms")? {
                None => d.content_spacing_ms,
                Some(ms) if ms <= 60_000 => ms,
                Some(_) => return Err(g.error("content_spacing_ms", "must be 0 to 60000")),
            },
            concurrent_requests: bounded(
                &g,
                "concurrent_requests",
                d.concurrent_requests.into(),
                100,
            )? as u32,
        })
    }
}

/// Targets served at once when the configuration does not say: enough that one
/// slow remote never holds the rest, few enough for a small node.
pub const DEFAULT_WORKERS: usize = 4;
/// The most workers a configuration may ask for (the sandbox engine pools 16
/// instances; see `leviathan_sandbox::engine::MAX_CONCURRENT_INSTANCES`).
pub const MAX_WORKERS: usize = 16;
/// How long a clone, fetch or push may take when the configuration does not say:
/// long enough for a first clone of a large repository, short enough that a remote
/// that stopped answering frees its worker within a pass or two.
pub const DEFAULT_GIT_TIMEOUT_SECONDS: u64 = 600;
/// The longest `git_timeout_seconds` a configuration may ask for (a day).
pub const MAX_GIT_TIMEOUT_SECONDS: u64 = 86_400;
/// The most MiB a clone's packs, or its checkout, may hold when the configuration
/// does not say: a hostile or runaway repository must not fill the host's disk, and
/// most repositories are far below it.
pub const DEFAULT_MAX_CLONE_MIB: u64 = 4096;
/// The largest `max_clone_mib` a configuration may ask for (1 TiB).
pub const MAX_MAX_CLONE_MIB: u64 = 1 << 20;
/// The most shards a configuration may ask for.
pub const MAX_SHARDS: u32 = 1024;

/// The work directory's name for the clone a local-forge target's merges and closes
/// use, beside the passes' own clone `<id>`.
pub fn merge_clone_name(id: &str) -> String {
    format!("{id}-forge")
}

/// True when one of `a` and `b` is a local target whose merge clone has the other's
/// id as its name.
pub fn shares_a_clone(a: &Target, b: &Target) -> bool {
    let merges_into = |local: &Target, other: &Target| {
        local.forge == Forge::Local && merge_clone_name(&local.id) == other.id
    };
    merges_into(a, b) || merges_into(b, a)
}

/// Where the host keeps its clones of the targets: `work_dir` when given, else
/// `<data-dir>-work` beside the event store.
pub fn work_dir_for(data_dir: &Path, work_dir: Option<PathBuf>) -> PathBuf {
    work_dir.unwrap_or_else(|| {
        let mut name = data_dir.as_os_str().to_owned();
        name.push("-work");
        PathBuf::from(name)
    })
}

const TOP_KEYS: &[&str] = &[
    "interval_seconds",
    "schedule",
    "workers",
    "shards",
    "github_limits",
    "git_timeout_seconds",
    "max_clone_mib",
    "targets",
    "discover",
];
const TARGET_KEYS: &[&str] = &[
    "id",
    "repository",
    "base_branch",
    "forge",
    "github_api_url",
    "token_env",
    "token_file",
    "github_app",
    "policy",
    "labels",
    "auto_merge",
];

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl Config {
    /// Reads a configuration file: a `targets:` list, or an original `dev.yaml`.
    pub fn load(file: &Path) -> Result<Config, InputError> {
        let value = yaml::load(file)?;
        let map = value.as_mapping().ok_or_else(|| InputError::Invalid {
            file: file.into(),
            context: String::new(),
            message: "a configuration must be a mapping with `targets:`".into(),
        })?;
        let f = Fields {
            file,
            context: String::new(),
            map,
        };
        if f.get("targets").is_none() && f.get("target_id").is_some() {
            return Config::from_legacy(file, &f);
        }
        only_known(&f, TOP_KEYS)?;
        let items = match f.get("targets") {
            Some(serde_norway::Value::Sequence(items)) if !items.is_empty() => items,
            Some(_) => return Err(f.error("targets", "must be a non-empty list of targets")),
            None => return Err(f.error("targets", "is required")),
        };
        let base = file.parent().unwrap_or(Path::new("."));
        let mut targets: Vec<Target> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let tf = item_fields(file, "targets", i, item)?;
            let target = read_target(&tf, base)?;
            if targets.iter().any(|t| t.id == target.id) {
                return Err(tf.error("id", format!("`{}` is used by another target", target.id)));
            }
            if let Some(other) = targets.iter().find(|t| shares_a_clone(t, &target)) {
                return Err(tf.error(
                    "id",
                    format!(
                        "`{}` and target `{}` would share a clone in the work directory (a local target's merges use `<id>-forge`); choose another id",
                        target.id, other.id
                    ),
                ));
            }
            targets.push(target);
        }
        let schedule = match f.opt_string("schedule")? {
            None => None,
            Some(_) if f.get("interval_seconds").is_some() => {
                return Err(f.error(
                    "schedule",
                    "give either interval_seconds or schedule, not both",
                ));
            }
            Some(text) => Some(
                crate::cron::Cron::parse(&text).map_err(|e| f.error("schedule", e.to_string()))?,
            ),
        };
        Ok(Config {
            source: file.into(),
            interval_seconds: interval(&f)?,
            schedule,
            workers: bounded(&f, "workers", DEFAULT_WORKERS as u64, MAX_WORKERS as u64)? as usize,
            shards: bounded(&f, "shards", 1, u64::from(MAX_SHARDS))? as u32,
            github_limits: GitHubLimits::read(&f)?,
            git_timeout_seconds: bounded(
                &f,
                "git_timeout_seconds",
                DEFAULT_GIT_TIMEOUT_SECONDS,
                MAX_GIT_TIMEOUT_SECONDS,
            )?,
            max_clone_mib: bounded(
                &f,
                "max_clone_mib",
                DEFAULT_MAX_CLONE_MIB,
                MAX_MAX_CLONE_MIB,
            )?,
            targets,
            discover: read_discoveries(&f, base)?,
        })
    }

    /// The original single-target `dev.yaml`.
    fn from_legacy(file: &Path, f: &Fields) -> Result<Config, InputError> {
        let id = f.string("target_id")?;
        if !valid_id(&id) {
            return Err(f.error(
                "target_id",
                "use 1 to 64 characters of a-z, A-Z, 0-9, `-`, `_`, `.`",
            ));
        }
        let url = f.string("target_repo_url")?;
        let (repository, forge) = match github_repo(&url) {
            Some(repo) => (
                repo,
                Forge::GitHub {
                    api_url: GITHUB_API.into(),
                    token: TokenSource::Env("GITHUB_TOKEN".into()),
                },
            ),
            None => (url, Forge::Local),
        };
        let policy = Policy::load(file)?;
        Ok(Config {
            source: file.into(),
            interval_seconds: interval(f)?,
            schedule: None,
            workers: DEFAULT_WORKERS,
            shards: 1,
            github_limits: GitHubLimits::default(),
            git_timeout_seconds: DEFAULT_GIT_TIMEOUT_SECONDS,
            max_clone_mib: DEFAULT_MAX_CLONE_MIB,
            discover: Vec::new(),
            targets: vec![Target {
                id,
                repository,
                base_branch: f
                    .opt_string("target_branch")?
                    .unwrap_or_else(|| "main".into()),
                forge,
                auto_merge: policy.auto_merge,
                policy,
                labels: vec!["leviathan".into()],
                policy_in_repo: false,
            }],
        })
    }
}

/// The `discover:` list.
fn read_discoveries(f: &Fields, base: &Path) -> Result<Vec<Discovery>, InputError> {
    let items = match f.get("discover") {
        None => return Ok(Vec::new()),
        Some(serde_norway::Value::Sequence(items)) => items,
        Some(_) => return Err(f.error("discover", "must be a list of App installations")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| read_discovery(&item_fields(f.file, "discover", i, item)?, base))
        .collect()
}

/// Item `i` of the list `name` as fields of its own, its errors prefixed
/// `name[i]: `; anything but a mapping is refused.
fn item_fields<'a>(
    file: &'a Path,
    name: &str,
    i: usize,
    item: &'a serde_norway::Value,
) -> Result<Fields<'a>, InputError> {
    let context = format!("{name}[{i}]: ");
    match item.as_mapping() {
        Some(map) => Ok(Fields { file, context, map }),
        None => Err(InputError::Invalid {
            file: file.into(),
            context,
            message: format!("expected a mapping, found {}", yaml::describe(item)),
        }),
    }
}

/// Refuses a field of `f` that is not one of `keys`, naming it and the known ones.
fn only_known(f: &Fields, keys: &[&str]) -> Result<(), InputError> {
    for key in f.map.keys() {
        let name = yaml::scalar_text(key).unwrap_or_default();
        if !keys.contains(&name.as_str()) {
            return Err(f.error(
                &name,
                format!("unknown field; expected one of {}", keys.join(", ")),
            ));
        }
    }
    Ok(())
}

/// An optional whole number in `1..=max`, `default` when absent.
fn bounded(f: &Fields, key: &str, default: u64, max: u64) -> Result<u64, InputError> {
    match f.opt_u64(key)? {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(f.error(key, format!("must be 1 to {max}"))),
    }
}

fn interval(f: &Fields) -> Result<u64, InputError> {
    match f.opt_u64("interval_seconds")? {
        Some(0) => Err(f.error("interval_seconds", "must be at least 1")),
        Some(s) => Ok(s),
        None => Ok(300),
    }
}

/// `owner/name` from a GitHub HTTPS or SSH URL.
fn github_repo(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://github.com/")
        .or_else(|| url.strip_prefix("git@github.com:"))?;
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    let (owner, name) = rest.split_once('/')?;
    (!owner.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| format!("{owner}/{name}"))
}

fn read_target(f: &Fields, base: &Path) -> Result<Target, InputError> {
    if f.get("token").is_some() || f.map.contains_key("token") {
        return Err(f.error(
            "token",
            "tokens are never written in the configuration; use token_env, token_file or github_app",
        ));
    }
    only_known(f, TARGET_KEYS)?;
    let id = f.string("id")?;
    if !valid_id(&id) {
        return Err(f.error(
            "id",
            "use 1 to 64 characters of a-z, A-Z, 0-9, `-`, `_`, `.`",
        ));
    }
    let repository = f.string("repository")?;
    let forge = match f.opt_string("forge")?.as_deref().unwrap_or("local") {
        "local" => {
            if f.get("token_env").is_some()
                || f.get("token_file").is_some()
                || f.get("github_app").is_some()
            {
                return Err(f.error("forge", "a local target takes no token"));
            }
            Forge::Local
        }
        "github" => {
            let parts: Vec<&str> = repository.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                return Err(f.error("repository", "a GitHub target is `owner/name`"));
            }
            let api_url = f
                .opt_string("github_api_url")?
                .unwrap_or_else(|| GITHUB_API.into());
            if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
                return Err(f.error("github_api_url", "must be an http(s) URL"));
            }
            let token = match (
                f.opt_string("token_env")?,
                f.opt_string("token_file")?,
                GitHubApp::read(f, base)?,
            ) {
                (Some(var), None, None) => TokenSource::Env(var),
                (None, Some(path), None) => TokenSource::File(base.join(path)),
                (None, None, Some(app)) => TokenSource::App(app),
                _ => {
                    return Err(f.error(
                        "token_env",
                        "a GitHub target needs exactly one of token_env, token_file or github_app",
                    ));
                }
            };
            Forge::GitHub {
                api_url: api_url.trim_end_matches('/').into(),
                token,
            }
        }
        other => {
            return Err(f.error(
                "forge",
                format!("`{other}` is not a forge (local or github)"),
            ));
        }
    };
    let policy = match f.opt_string("policy")? {
        Some(p) => Policy::load(&base.join(p))?,
        None => Policy::default_policy(),
    };
    let auto_merge = f.opt_bool("auto_merge")?.unwrap_or(false);
    Ok(Target {
        id,
        repository,
        base_branch: f
            .opt_string("base_branch")?
            .unwrap_or_else(|| "main".into()),
        forge,
        policy,
        labels: f.string_list("labels")?,
        auto_merge,
        policy_in_repo: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)]) -> Result<Config, InputError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        Config::load(&dir.path().join(files[0].0))
    }

    #[test]
    fn targets_with_both_forges() {
        let config = load(&[
            (
                "leviathan.yaml",
                "interval_seconds: 60\ntargets:\n  - id: local-one\n    repository: /srv/repos/one\n  - id: gh\n    repository: acme/widgets\n    forge: github\n    github_api_url: http://127.0.0.1:9000/api/v3/\n    token_file: gh.token\n    policy: strict.yaml\n    labels: [leviathan, docs]\n    auto_merge: true\n",
            ),
            ("strict.yaml", "max_open_prs: 3\n"),
        ])
        .unwrap();
        assert_eq!(config.interval_seconds, 60);
        let [one, gh] = &config.targets[..] else {
            panic!()
        };
        assert_eq!(
            (one.forge.clone(), one.base_branch.as_str(), one.auto_merge),
            (Forge::Local, "main", false)
        );
        assert_eq!(one.policy.max_open_prs, 1);
        let Forge::GitHub { api_url, token } = &gh.forge else {
            panic!()
        };
        assert_eq!(api_url, "http://127.0.0.1:9000/api/v3");
        assert!(matches!(token, TokenSource::File(p) if p.ends_with("gh.token")));
        assert_eq!((gh.policy.max_open_prs, gh.auto_merge), (3, true));
        assert_eq!(gh.labels, ["leviathan", "docs"]);
    }

    #[test]
    fn the_original_dev_yaml_is_a_one_target_config() {
        let config = load(&[(
            "dev.yaml",
            "target_id: radix\ntarget_repo_url: https://github.com/acme/radix.git\ntarget_branch: develop\nmax_open_prs: 1\nallowed_path_prefixes: [docs/]\n",
        )])
        .unwrap();
        let t = &config.targets[0];
        assert_eq!(
            (t.id.as_str(), t.repository.as_str(), t.base_branch.as_str()),
            ("radix", "acme/radix", "develop")
        );
        assert!(
            matches!(&t.forge, Forge::GitHub { token: TokenSource::Env(v), .. } if v == "GITHUB_TOKEN")
        );
        assert_eq!(t.policy.allowed_path_prefixes.len(), 1);
        let local =
            load(&[("dev.yaml", "target_id: l\ntarget_repo_url: file:///srv/l\n")]).unwrap();
        assert_eq!(local.targets[0].forge, Forge::Local);
    }

    #[test]
    fn a_github_app_installation_stands_in_for_a_token() {
        let c = load(&[(
            "leviathan.yaml",
            "targets:\n  - id: a\n    repository: acme/a\n    forge: github\n    github_app:\n      app_id: 12\n      private_key_file: keys/app.pem\n      installation_id: 34\n",
        )])
        .unwrap();
        let Forge::GitHub {
            token: TokenSource::App(app),
            ..
        } = &c.targets[0].forge
        else {
            panic!("{:?}", c.targets[0].forge)
        };
        assert_eq!((app.app_id, app.installation_id), (12, 34));
        assert!(app.private_key_file.ends_with("keys/app.pem"));
        let both = load(&[(
            "leviathan.yaml",
            "targets:\n  - id: a\n    repository: acme/a\n    forge: github\n    token_env: T\n    github_app:\n      app_id: 1\n      private_key_file: k\n      installation_id: 1\n",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            both.contains("exactly one of token_env, token_file or github_app"),
            "{both}"
        );
    }

    #[test]
    fn discovery_takes_only_the_allowed_repositories() {
        let c = load(&[(
            "leviathan.yaml",
            "targets:\n  - id: a\n    repository: r\ndiscover:\n  - github_app:\n      app_id: 1\n      private_key_file: k.pem\n      installation_id: 2\n    repositories: ['acme/docs-*', 'Labs/handbook']\n    labels: [leviathan]\n",
        )])
        .unwrap();
        let d = &c.discover[0];
        assert_eq!(d.api_url, GITHUB_API);
        let t = d.target("acme/docs-site", "trunk").expect("allowed");
        assert_eq!(
            (t.id.as_str(), t.base_branch.as_str()),
            ("acme-docs-site", "trunk")
        );
        assert!(t.policy_in_repo && !t.auto_merge);
        assert!(
            d.target("labs/handbook", "main").is_some(),
            "case is ignored"
        );
        for refused in ["acme/site", "acme/docs-a/b", "other/docs-x", "acme/docs"] {
            assert!(d.target(refused, "main").is_none(), "{refused}");
        }
        assert!(repository_matches("acme/*", "acme/x"));
        assert!(!repository_matches("acme/*", "acme/x/y"));
        assert!(repository_matches("*/docs", "anyone/docs"));
    }

    #[test]
    fn github_limits_default_to_githubs_and_can_be_lowered() {
        let plain =
            load(&[("leviathan.yaml", "targets:\n  - id: a\n    repository: r\n")]).unwrap();
        assert_eq!(plain.github_limits, GitHubLimits::default());
        assert_eq!(plain.github_limits.content_per_minute, 80);
        let tight = load(&[(
            "leviathan.yaml",
            "github_limits:\n  content_per_hour: 300\n  content_spacing_ms: 2000\ntargets:\n  - id: a\n    repository: r\n",
        )])
        .unwrap();
        assert_eq!(
            tight.github_limits,
            GitHubLimits {
                content_per_hour: 300,
                content_spacing_ms: 2000,
                ..GitHubLimits::default()
            }
        );
    }

    #[test]
    fn a_target_named_like_a_local_targets_merge_clone_is_refused() {
        for text in [
            "targets:\n  - id: docs\n    repository: a.git\n  - id: docs-forge\n    repository: b.git\n",
            "targets:\n  - id: docs-forge\n    repository: b.git\n  - id: docs\n    repository: a.git\n",
        ] {
            let err = load(&[("leviathan.yaml", text)]).unwrap_err().to_string();
            assert!(
                err.contains("targets[1]") && err.contains("would share a clone"),
                "{err}"
            );
        }
        // A GitHub target has no merge clone.
        load(&[(
            "leviathan.yaml",
            "targets:\n  - id: docs\n    repository: acme/docs\n    forge: github\n    token_env: T\n  - id: docs-forge\n    repository: b.git\n",
        )])
        .unwrap();
    }

    #[test]
    fn the_clone_bound_has_a_default_and_bounds() {
        let plain =
            load(&[("leviathan.yaml", "targets:\n  - id: a\n    repository: r\n")]).unwrap();
        assert_eq!(plain.max_clone_mib, DEFAULT_MAX_CLONE_MIB);
        let set = load(&[(
            "leviathan.yaml",
            "max_clone_mib: 512\ntargets:\n  - id: a\n    repository: r\n",
        )])
        .unwrap();
        assert_eq!(set.max_clone_mib, 512);
        for refused in ["0", "1048577", "'512'", "-1"] {
            let err = load(&[(
                "leviathan.yaml",
                &format!("max_clone_mib: {refused}\ntargets:\n  - id: a\n    repository: r\n"),
            )])
            .unwrap_err()
            .to_string();
            assert!(err.contains("max_clone_mib"), "{refused}: {err}");
        }
    }

    #[test]
    fn the_git_timeout_has_a_default_and_bounds() {
        let plain =
            load(&[("leviathan.yaml", "targets:\n  - id: a\n    repository: r\n")]).unwrap();
        assert_eq!(plain.git_timeout_seconds, DEFAULT_GIT_TIMEOUT_SECONDS);
        let set = load(&[(
            "leviathan.yaml",
            "git_timeout_seconds: 90\ntargets:\n  - id: a\n    repository: r\n",
        )])
        .unwrap();
        assert_eq!(set.git_timeout_seconds, 90);
        let err = load(&[(
            "leviathan.yaml",
            "git_timeout_seconds: 0\ntargets:\n  - id: a\n    repository: r\n",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("git_timeout_seconds") && err.contains("1 to 86400"),
            "{err}"
        );
    }

    #[test]
    fn a_cron_schedule_replaces_the_interval() {
        let c = load(&[(
            "leviathan.yaml",
            "schedule: '*/15 * * * 1-5'\ntargets:\n  - id: a\n    repository: r\n",
        )])
        .unwrap();
        let cron = c.schedule.expect("a schedule");
        assert_eq!(cron.as_str(), "*/15 * * * 1-5");
        // Monday 2026-11-30T17:25:00Z: the next quarter hour is 17:30.
        assert_eq!(cron.next_after(1_796_059_500), Some(1_796_059_800));
    }

    #[test]
    fn errors_name_the_file_target_and_field() {
        let cases = [
            (
                "targets:\n  - id: a\n    repository: x/y\n    forge: github\n    token: abc\n",
                "targets[0]: ",
                "token",
            ),
            (
                "targets:\n  - id: a\n    repository: x\n    forge: github\n    token_env: T\n",
                "targets[0]: ",
                "repository",
            ),
            (
                "targets:\n  - id: a\n    repository: x/y\n    forge: github\n",
                "targets[0]: ",
                "token_env",
            ),
            (
                "targets:\n  - id: a\n    repository: r\n  - id: a\n    repository: s\n",
                "targets[1]: ",
                "id",
            ),
            (
                "targets:\n  - id: a\n    repository: r\n    forge: gitlab\n",
                "targets[0]: ",
                "forge",
            ),
            (
                "targets:\n  - id: a\n    repository: r\n    colour: red\n",
                "targets[0]: ",
                "colour",
            ),
            ("targets: []\n", "", "targets"),
            (
                "schedule: '61 * * * *'\ntargets:\n  - id: a\n    repository: r\n",
                "",
                "`schedule`: cron `61 * * * *`: minute",
            ),
            (
                "interval_seconds: 5\nschedule: '@hourly'\ntargets:\n  - id: a\n    repository: r\n",
                "",
                "`schedule`: give either",
            ),
            (
                "targets:\n  - id: a\n    repository: acme/a\n    forge: github\n    github_app:\n      app_id: 12\n      private_key_file: k\n",
                "targets[0]: github_app: ",
                "installation_id",
            ),
            (
                "targets:\n  - id: a\n    repository: acme/a\n    forge: github\n    github_app:\n      app_id: 0\n      private_key_file: k\n      installation_id: 1\n",
                "targets[0]: github_app: ",
                "app_id",
            ),
            (
                "targets:\n  - id: a\n    repository: acme/a\n    forge: github\n    github_app:\n      app_id: 1\n      installation_id: 1\n",
                "targets[0]: github_app: ",
                "private_key_file",
            ),
            (
                "targets:\n  - id: a\n    repository: acme/a\n    forge: github\n    github_app:\n      app_id: 1\n      private_key_file: k\n      installation_id: 1\n      secret: x\n",
                "targets[0]: github_app: ",
                "secret",
            ),
            (
                "targets:\n  - id: a\n    repository: r\ndiscover:\n  - github_app:\n      app_id: 1\n      private_key_file: k\n      installation_id: 2\n",
                "discover[0]: ",
                "repositories",
            ),
            (
                "targets:\n  - id: a\n    repository: r\ndiscover:\n  - repositories: ['a/*']\n",
                "discover[0]: ",
                "github_app",
            ),
            (
                "targets:\n  - id: a\n    repository: r\ndiscover:\n  - github_app:\n      app_id: 1\n      private_key_file: k\n      installation_id: 2\n    repositories: ['*']\n",
                "discover[0]: ",
                "owner/name",
            ),
            (
                "targets:\n  - id: a\n    repository: r\ndiscover:\n  - github_app:\n      app_id: 1\n      private_key_file: k\n      installation_id: 2\n    repositories: ['a/*']\n    token_env: T\n",
                "discover[0]: ",
                "token_env",
            ),
            (
                "github_limits:\n  content_per_hour: 0\ntargets:\n  - id: a\n    repository: r\n",
                "github_limits: ",
                "content_per_hour",
            ),
            (
                "github_limits:\n  per_day: 9\ntargets:\n  - id: a\n    repository: r\n",
                "github_limits: ",
                "per_day",
            ),
        ];
        for (text, context, field) in cases {
            let err = load(&[("leviathan.yaml", text)]).unwrap_err().to_string();
            assert!(
                err.contains("leviathan.yaml") && err.contains(context) && err.contains(field),
                "{text}: {err}"
            );
        }
    }
}
