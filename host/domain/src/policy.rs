//! The policy: guardrails and allowed path prefixes, in the original Leviathan
//! `ops/autonomy/dev.yaml` format. Omitted fields take their value from the shipped
//! default `policies/dev.yaml`; unknown fields are kept.

use crate::paths::RepoPath;
use crate::yaml::{self, Fields, InputError};
use serde_norway::{Mapping, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shipped default policy, embedded at build time.
pub const DEFAULT_POLICY_YAML: &str = include_str!("../../../policies/dev.yaml");
const DEFAULT_POLICY_NAME: &str = "policies/dev.yaml (built in)";

/// The largest linear memory any executor can get (the sandbox's pool is sized for
/// it); policies lower it per run.
pub const MAX_MEMORY_BYTES: u64 = 512 * 1024 * 1024;

/// Sandbox limits for one executor run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorLimits {
    pub fuel: u64,
    pub memory_bytes: u64,
    pub max_files_written: u64,
    pub max_bytes_written: u64,
}

/// Bounds on what is staged for one run (the repository snapshot and the writable
/// copies): a target's files are not trusted to be of a sane size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagingLimits {
    /// A larger file is left out of the read-only snapshot; under an allowed path it
    /// fails the attempt (the executor could not be shown it).
    pub max_file_bytes: u64,
    /// The most bytes one run stages in all.
    pub max_total_bytes: u64,
}

/// What the policy says about plugins (`plugins:`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginPolicy {
    /// Refuse plugins without a valid signature by one of `trusted_keys`.
    pub require_signatures: bool,
    /// Ed25519 public keys (32 bytes) whose signatures are trusted.
    pub trusted_keys: Vec<[u8; 32]>,
    /// Scope → plugin name: which plugin handles a scope several claim.
    pub routes: std::collections::BTreeMap<String, String>,
    /// The most any plugin reads besides its task's allowed paths (`read_paths`);
    /// `None`: what each plugin's manifest asks for.
    pub read_paths: Option<Vec<RepoPath>>,
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from.
    pub source: PathBuf,
    pub autonomy_enabled: bool,
    pub allowed_path_prefixes: Vec<RepoPath>,
    pub max_open_prs: u64,
    pub max_attempts_per_task: u64,
    pub circuit_breaker_failures: u64,
    /// How long an open circuit breaker stays open before it closes by itself;
    /// `None`: only an operator reset closes it.
    pub circuit_breaker_cooldown: Option<Duration>,
    pub attempt_timeout: Duration,
    pub auto_merge: bool,
    pub limits: ExecutorLimits,
    pub staging: StagingLimits,
    pub plugins: PluginPolicy,
    /// Fields this version does not interpret, kept as written.
    pub extra: Mapping,
}

const KNOWN: &[&str] = &[
    "autonomy_enabled",
    "allowed_path_prefixes",
    "max_open_prs",
    "max_attempts_per_task",
    "circuit_breaker_failures",
    "circuit_breaker_cooldown_seconds",
    "attempt_timeout_seconds",
    "auto_merge",
    "executor_limits",
    "plugins",
];

/// Every field optional: one layer (the file, or the defaults).
#[derive(Default)]
struct Layer {
    autonomy_enabled: Option<bool>,
    allowed_path_prefixes: Option<Vec<RepoPath>>,
    max_open_prs: Option<u64>,
    max_attempts_per_task: Option<u64>,
    circuit_breaker_failures: Option<u64>,
    circuit_breaker_cooldown_seconds: Option<u64>,
    attempt_timeout_seconds: Option<u64>,
    auto_merge: Option<bool>,
    fuel: Option<u64>,
    memory_mib: Option<u64>,
    max_files_written: Option<u64>,
    max_bytes_written: Option<u64>,
    max_staged_file_bytes: Option<u64>,
    max_staged_bytes: Option<u64>,
    plugins: Option<PluginPolicy>,
    extra: Mapping,
}

/// Reads the `plugins:` section.
fn read_plugins(file: &Path, map: &Mapping) -> Result<PluginPolicy, InputError> {
    let f = Fields {
        file,
        context: "plugins: ".into(),
        map,
    };
    let known = ["require_signatures", "trusted_keys", "routes", "read_paths"];
    for key in map.keys() {
        if !key.as_str().is_some_and(|k| known.contains(&k)) {
            return Err(f.error(
                &yaml::scalar_text(key).unwrap_or_default(),
                format!("unknown field; expected one of {}", known.join(", ")),
            ));
        }
    }
    let mut trusted_keys = Vec::new();
    for (i, key) in f.string_list("trusted_keys")?.iter().enumerate() {
        let hex_key = key.trim().strip_prefix("ed25519:").unwrap_or(key.trim());
        let bytes = hex::decode(hex_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                f.error(
                    "trusted_keys",
                    format!(
                        "item {}: expected an ed25519 public key as 64 hex digits",
                        i + 1
                    ),
                )
            })?;
        trusted_keys.push(bytes);
    }
    let mut routes = std::collections::BTreeMap::new();
    if let Some(m) = f.opt_mapping("routes")? {
        for (scope, plugin) in m {
            let (Some(scope), Some(plugin)) = (scope.as_str(), plugin.as_str()) else {
                return Err(f.error("routes", "expected `scope: plugin-name` pairs of strings"));
            };
            routes.insert(scope.to_string(), plugin.to_string());
        }
    }
    let read_paths = match f.get("read_paths") {
        None => None,
        Some(_) => Some(
            f.string_list("read_paths")?
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    RepoPath::parse_allowed(p)
                        .map_err(|e| f.error("read_paths", format!("item {}: {e}", i + 1)))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(PluginPolicy {
        require_signatures: f.opt_bool("require_signatures")?.unwrap_or(false),
        trusted_keys,
        routes,
        read_paths,
    })
}

fn read_layer(file: &Path, value: &Value) -> Result<Layer, InputError> {
    let map = match value {
        Value::Mapping(m) => m,
        Value::Null => &Mapping::new(),
        other => {
            return Err(InputError::Invalid {
                file: file.into(),
                context: String::new(),
                message: format!(
                    "a policy must be a mapping, found {}",
                    yaml::describe(other)
                ),
            });
        }
    };
    let f = Fields {
        file,
        context: String::new(),
        map,
    };
    let prefixes = match f.get("allowed_path_prefixes") {
        None => None,
        Some(_) => {
            let raw = f.string_list("allowed_path_prefixes")?;
            let mut parsed = Vec::with_capacity(raw.len());
            for (i, p) in raw.iter().enumerate() {
                parsed.push(RepoPath::parse_allowed(p).map_err(|e| {
                    f.error("allowed_path_prefixes", format!("item {}: {e}", i + 1))
                })?);
            }
            Some(parsed)
        }
    };
    let mut layer = Layer {
        autonomy_enabled: f.opt_bool("autonomy_enabled")?,
        allowed_path_prefixes: prefixes,
        max_open_prs: f.opt_u64("max_open_prs")?,
        max_attempts_per_task: f.opt_u64("max_attempts_per_task")?,
        circuit_breaker_failures: f.opt_u64("circuit_breaker_failures")?,
        circuit_breaker_cooldown_seconds: f.opt_u64("circuit_breaker_cooldown_seconds")?,
        attempt_timeout_seconds: f.opt_u64("attempt_timeout_seconds")?,
        auto_merge: f.opt_bool("auto_merge")?,
        ..Layer::default()
    };
    if let Some(lf) = f.opt_nested("executor_limits")? {
        layer.fuel = lf.opt_u64("fuel")?;
        layer.memory_mib = lf.opt_u64("memory_mib")?;
        layer.max_files_written = lf.opt_u64("max_files_written")?;
        layer.max_bytes_written = lf.opt_u64("max_bytes_written")?;
        layer.max_staged_file_bytes = lf.opt_u64("max_staged_file_bytes")?;
        layer.max_staged_bytes = lf.opt_u64("max_staged_bytes")?;
        for key in lf.map.keys() {
            let known = [
                "fuel",
                "memory_mib",
                "max_files_written",
                "max_bytes_written",
                "max_staged_file_bytes",
                "max_staged_bytes",
            ];
            if !key.as_str().is_some_and(|k| known.contains(&k)) {
                return Err(lf.error(
                    &yaml::scalar_text(key).unwrap_or_default(),
                    format!("unknown limit; expected one of {}", known.join(", ")),
                ));
            }
        }
    }
    if let Some(plugins) = f.opt_mapping("plugins")? {
        layer.plugins = Some(read_plugins(file, plugins)?);
    }
    if let Some(t) = layer.attempt_timeout_seconds
        && t == 0
    {
        return Err(f.error("attempt_timeout_seconds", "must be at least 1"));
    }
    if layer.fuel == Some(0) {
        return Err(f.error("executor_limits.fuel", "must be at least 1"));
    }
    if layer.memory_mib == Some(0) {
        return Err(f.error("executor_limits.memory_mib", "must be at least 1"));
    }
    let max_mib = MAX_MEMORY_BYTES >> 20;
    if layer.memory_mib.is_some_and(|m| m > max_mib) {
        return Err(f.error(
            "executor_limits.memory_mib",
            format!("must be at most {max_mib} (the sandbox's largest memory)"),
        ));
    }
    for (k, v) in map {
        if !k.as_str().is_some_and(|k| KNOWN.contains(&k)) {
            layer.extra.insert(k.clone(), v.clone());
        }
    }
    Ok(layer)
}

/// Where a target repository keeps its own policy (discovered repositories).
pub const REPO_POLICY_PATH: &str = ".leviathan/policy.yaml";

impl Policy {
    /// Unknown fields that look like a misspelt known one, each with the field it is
    /// likely meant as (`max_open_pr` → `max_open_prs`): kept as written, they would
    /// otherwise have no effect.
    pub fn misspelt_fields(&self) -> Vec<(String, &'static str)> {
        self.extra
            .keys()
            .filter_map(Value::as_str)
            .filter_map(|k| yaml::near_miss(k, KNOWN).map(|meant| (k.to_string(), meant)))
            .collect()
    }
    /// The built-in default policy.
    pub fn default_policy() -> Policy {
        let file = Path::new(DEFAULT_POLICY_NAME);
        // The default ships inside the binary and is covered by a unit test.
        Policy::from_text(file, DEFAULT_POLICY_YAML).expect("built-in policy is valid")
    }

    /// Loads a policy file; omitted fields come from the built-in default.
    pub fn load(file: &Path) -> Result<Policy, InputError> {
        let value = yaml::load(file)?;
        Policy::from_value(file, &value)
    }

    /// A target repository's own policy, `.leviathan/policy.yaml` (what a discovered
    /// repository must have), read through the repository's capability (no symlinks,
    /// a regular file of bounded size); `None` when it has none.
    pub fn load_from_repo(repo: &Path) -> Result<Option<Policy>, InputError> {
        use crate::paths::RepoPath;
        use crate::repofs::{Limit, RepoDir};
        const LIMIT: Limit = Limit::new(256 << 10, "policy size limit");
        let file = repo.join(REPO_POLICY_PATH);
        let rel = RepoPath::parse(REPO_POLICY_PATH).map_err(|e| InputError::Invalid {
            file: file.clone(),
            context: String::new(),
            message: e.to_string(),
        })?;
        let dir =
            RepoDir::open(repo, "a target repository").map_err(|source| InputError::Read {
                file: file.clone(),
                source,
            })?;
        let Some(bytes) = dir
            .read(&rel, LIMIT)
            .map_err(|e| InputError::refused(&file, e))?
        else {
            return Ok(None);
        };
        let text = yaml::utf8_text(&file, bytes, "the policy")?;
        Policy::from_text(&file, &text).map(Some)
    }

    /// Parses policy text read from `file`.
    pub fn from_text(file: &Path, text: &str) -> Result<Policy, InputError> {
        let value = yaml::parse(file, text)?;
        Policy::from_value(file, &value)
    }

    fn from_value(file: &Path, value: &Value) -> Result<Policy, InputError> {
        let layer = read_layer(file, value)?;
        let defaults = if file == Path::new(DEFAULT_POLICY_NAME) {
            Layer::default()
        } else {
            let default_file = Path::new(DEFAULT_POLICY_NAME);
            read_layer(
                default_file,
                &yaml::parse(default_file, DEFAULT_POLICY_YAML)?,
            )?
        };
        let missing = |field: &str| InputError::Field {
            file: file.into(),
            context: String::new(),
            field: field.into(),
            message: "is required".into(),
        };
        macro_rules! pick {
            ($f:ident) => {
                layer
                    .$f
                    .or(defaults.$f)
                    .ok_or_else(|| missing(stringify!($f)))?
            };
        }
        let mut extra = defaults.extra;
        extra.extend(layer.extra);
        Ok(Policy {
            source: file.to_path_buf(),
            autonomy_enabled: pick!(autonomy_enabled),
            allowed_path_prefixes: layer
                .allowed_path_prefixes
                .or(defaults.allowed_path_prefixes)
                .ok_or_else(|| missing("allowed_path_prefixes"))?,
            max_open_prs: pick!(max_open_prs),
            max_attempts_per_task: pick!(max_attempts_per_task),
            circuit_breaker_failures: pick!(circuit_breaker_failures),
            circuit_breaker_cooldown: layer
                .circuit_breaker_cooldown_seconds
                .or(defaults.circuit_breaker_cooldown_seconds)
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
            attempt_timeout: Duration::from_secs(pick!(attempt_timeout_seconds)),
            auto_merge: pick!(auto_merge),
            limits: ExecutorLimits {
                fuel: pick!(fuel),
                memory_bytes: pick!(memory_mib).saturating_mul(1024 * 1024),
                max_files_written: pick!(max_files_written),
                max_bytes_written: pick!(max_bytes_written),
            },
            staging: StagingLimits {
                max_file_bytes: pick!(max_staged_file_bytes),
                max_total_bytes: pick!(max_staged_bytes),
            },
            plugins: layer.plugins.or(defaults.plugins).unwrap_or_default(),
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, InputError> {
        Policy::from_text(Path::new("ops/autonomy/dev.yaml"), text)
    }

    #[test]
    fn plugin_settings_parse_and_errors_name_the_field() {
        let key = "ab".repeat(32);
        let p = parse(&format!(
            "plugins:\n  require_signatures: true\n  trusted_keys: [\"ed25519:{key}\"]\n  routes: {{docs: docs-executor}}\n"
        ))
        .unwrap();
        assert!(p.plugins.require_signatures);
        assert_eq!(p.plugins.trusted_keys, vec![[0xab; 32]]);
        assert_eq!(p.plugins.routes["docs"], "docs-executor");
        assert_eq!(
            parse("max_open_prs: 3\n").unwrap().plugins,
            PluginPolicy::default()
        );
        let err = parse("plugins:\n  trusted_keys: [nothex]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("trusted_keys") && err.contains("item 1"),
            "{err}"
        );
        let err = parse("plugins:\n  signatures: yes\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("signatures") && err.contains("unknown field"),
            "{err}"
        );
    }

    #[test]
    fn built_in_default_is_valid() {
        let p = Policy::default_policy();
        assert_eq!(p.max_open_prs, 1);
        assert_eq!(p.attempt_timeout, Duration::from_secs(900));
        assert_eq!(p.allowed_path_prefixes.len(), 3);
    }

    #[test]
    fn omitted_fields_take_defaults_and_unknown_fields_are_kept() {
        let p =
            parse("target_id: radix\nmax_open_prs: 3\nallowed_path_prefixes: [docs/**]\n").unwrap();
        assert_eq!(p.max_open_prs, 3);
        assert_eq!(p.max_attempts_per_task, 2);
        assert_eq!(
            p.allowed_path_prefixes,
            vec![RepoPath::parse("docs/").unwrap()]
        );
        assert_eq!(
            p.extra.get("target_id").and_then(|v| v.as_str()),
            Some("radix")
        );
    }

    #[test]
    fn wrong_type_names_file_and_field() {
        let err = parse("max_open_prs: two\n").unwrap_err().to_string();
        assert!(err.contains("ops/autonomy/dev.yaml"), "{err}");
        assert!(err.contains("`max_open_prs`"), "{err}");
        assert!(err.contains("found a string"), "{err}");
        assert!(
            !err.contains("two"),
            "errors never quote the file's values: {err}"
        );
    }

    #[test]
    fn negative_number_rejected() {
        let err = parse("attempt_timeout_seconds: -5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("attempt_timeout_seconds"), "{err}");
    }

    #[test]
    fn malformed_yaml_is_a_syntax_error() {
        let err = parse("max_open_prs: [1\n").unwrap_err();
        assert!(matches!(err, InputError::Syntax { .. }), "{err}");
        assert!(err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn hostile_prefix_rejected() {
        let err = parse("allowed_path_prefixes: [docs/, ../etc]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("item 2"), "{err}");
    }

    #[test]
    fn unknown_limit_rejected() {
        let err = parse("executor_limits: {fule: 3}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`fule`"), "{err}");
    }

    #[test]
    fn memory_above_the_pool_is_rejected() {
        let err = parse("executor_limits: {memory_mib: 4096}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("memory_mib") && err.contains("at most 512"),
            "{err}"
        );
    }
}
