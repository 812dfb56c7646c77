//! The JSON Schemas in `schemas/` (for editors with yaml-language-server) and the
//! host's parsers give the same verdict, accepted or refused, on the same documents:
//! every backlog, policy and configuration shipped or used in this repository, a
//! corpus of the mistakes users make, and generated paths and ids, which is where a
//! schema's regular expressions and the parsers' rules can drift apart.

use leviathan_domain::backlog::Backlog;
use leviathan_domain::config::Config;
use leviathan_domain::paths::RepoPath;
use leviathan_domain::policy::Policy;
use leviathan_tests::root;
use serde_json::{Value, json};
use std::path::Path;

/// Resolves `policy.schema.json` (the targets schema's reference) from `schemas/`.
struct LocalSchemas;

impl jsonschema::Retrieve for LocalSchemas {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.path().as_str().rsplit('/').next().unwrap_or_default();
        let text = std::fs::read_to_string(root().join("schemas").join(name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn validator(name: &str) -> jsonschema::Validator {
    let path = root().join("schemas").join(format!("{name}.schema.json"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("schema is JSON");
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    jsonschema::options()
        .with_base_uri(format!("file:///schemas/{name}.schema.json"))
        .with_retriever(LocalSchemas)
        .build(&schema)
        .expect("the schema compiles")
}

/// YAML text as the JSON an editor validates.
fn as_json(text: &str) -> Value {
    serde_norway::from_str::<Value>(text).expect("YAML the corpus can convert")
}

/// The parser's and the schema's verdicts on every document, with the documents where
/// they differ.
fn disagreements(
    schema: &jsonschema::Validator,
    docs: &[&str],
    parses: impl Fn(&str) -> Result<(), String>,
) -> Vec<String> {
    let mut differ = Vec::new();
    for doc in docs {
        let parsed = parses(doc);
        let valid = schema.is_valid(&as_json(doc));
        if parsed.is_ok() != valid {
            differ.push(format!(
                "---\n{doc}\nparser: {parsed:?}; schema: {}",
                if valid { "accepts" } else { "refuses" }
            ));
        }
    }
    differ
}

fn backlog(text: &str) -> Result<(), String> {
    Backlog::from_text(Path::new(".leviathan/backlog.yaml"), text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn policy(text: &str) -> Result<(), String> {
    Policy::from_text(Path::new("policy.yaml"), text)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Loads `text` as `leviathan.yaml` beside a valid `policy.yaml`.
fn config(text: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.yaml"), "max_open_prs: 2\n").unwrap();
    let file = dir.path().join("leviathan.yaml");
    std::fs::write(&file, text).unwrap();
    Config::load(&file).map(|_| ()).map_err(|e| e.to_string())
}

/// Documents that both must accept or both refuse, and how many each side refuses.
fn check(name: &str, docs: &[&str], parses: impl Fn(&str) -> Result<(), String>) {
    let schema = validator(name);
    let differ = disagreements(&schema, docs, &parses);
    assert!(differ.is_empty(), "{name}: {}", differ.join("\n"));
    let refused = docs.iter().filter(|d| parses(d).is_err()).count();
    assert!(
        refused > 0 && refused < docs.len(),
        "{name}: the corpus holds accepted and refused documents ({refused} of {})",
        docs.len()
    );
}

const BACKLOGS: &[&str] = &[
    "tasks:\n  - id: docs-guide\n    title: Guide\n    scope: docs\n    ready: true\n    allowed_paths: [docs/]\n",
    "tasks:   # the team's backlog\n  - id: a\n    title: A\n    scope: docs\n",
    "tasks: []\n",
    "tasks:\n",
    "tasks:\n  - id: 42\n    title: Numeric id\n    scope: docs\n",
    "tasks:\n  - id: t\n    title: T\n    scope: docs\n    priority: 1\n    estimated_size: small\n    labels: [a, 2, true]\n    acceptance_criteria: [Works, 42]\n    dependencies: [x]\n    owner: team\n    notes: {nested: [1, 2]}\n    description: ~\n    ready: ~\n",
    "tasks:\n  - id: t\n    title: T\n    scope: docs\n    executor: docs-executor@0.1.0\n    status: pending\n",
    // YAML 1.1's booleans, as the original's PyYAML read them.
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: yes\n  - id: b\n    title: B\n    scope: docs\n    ready: OFF\n",
    // Refused:
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: \"true\"\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: y\n",
    "",
    "- id: a\n",
    "tasks: {a: 1}\n",
    "tasks: 3\n",
    "other: 1\n",
    "tasks:\n  - just a string\n",
    "tasks:\n  - title: No id\n    scope: docs\n",
    "tasks:\n  - id: a\n    scope: docs\n",
    "tasks:\n  - id: a\n    title: A\n",
    "tasks:\n  - id: a\n    title: ~\n    scope: docs\n",
    "tasks:\n  - id: a\n    title: 5\n    scope: docs\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: yes please\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    ready: 1\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    allowed_paths: docs/\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    allowed_paths: [[docs/]]\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    labels: [{a: 1}]\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    priority: [high]\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    description: [x]\n",
    "tasks:\n  - id: a\n    title: A\n    scope: docs\n    executor: 3\n",
    "tasks:\n  - id: ../escape\n    title: A\n    scope: docs\n",
    "tasks:\n  - id: -dash\n    title: A\n    scope: docs\n",
    "tasks:\n  - id: -3\n    title: A\n    scope: docs\n",
    "tasks:\n  - id: [a]\n    title: A\n    scope: docs\n",
];

#[test]
fn backlog_schema_and_parser_agree() {
    let mut docs: Vec<String> = BACKLOGS.iter().map(|d| d.to_string()).collect();
    docs.push(leviathan_tests::backlog_with(
        "docs-guide",
        "docs",
        &["docs/"],
        &["It is written"],
    ));
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    check("backlog", &docs, backlog);
}

#[test]
fn task_ids_get_the_same_verdict() {
    let schema = validator("backlog");
    let ids = [
        "a",
        "A1",
        "9",
        "docs-guide",
        "a.b",
        "a_b",
        "x.lock2",
        "v1.2.3",
        &"a".repeat(128),
        &"a".repeat(129),
        "",
        ".a",
        "_a",
        "-a",
        "a..b",
        "a.",
        "a.lock",
        "a b",
        "a/b",
        "ä",
        "a:b",
        "a~b",
        "lock",
        ".lock",
        "a.LOCK",
        "a\tb",
    ];
    let mut differ = Vec::new();
    for id in ids {
        let doc = json!({"tasks": [{"id": id, "title": "T", "scope": "docs"}]});
        let text = serde_json::to_string(&doc).unwrap(); // JSON is YAML
        let parsed = backlog(&text).is_ok();
        if parsed != schema.is_valid(&doc) {
            differ.push(format!("{id:?}: parser {parsed}"));
        }
    }
    assert!(differ.is_empty(), "{differ:?}");
}

const POLICIES: &[&str] = &[
    "",
    "max_open_prs: 3\n",
    "autonomy_enabled: on\nauto_merge: No\nplugins:\n  require_signatures: YES\n",
    "auto_merge: nope\n",
    "allowed_path_prefixes: [docs/, 'tests/**', src/lib/*, ./notes, docs//api/, 42]\nunknown_field: kept\n",
    "executor_limits:\n  fuel: 1\n  memory_mib: 512\n  max_files_written: 0\n",
    "executor_limits: ~\nplugins: ~\nauto_merge: ~\n",
    "plugins:\n  require_signatures: true\n  trusted_keys: ['ed25519:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef']\n  routes: {docs: docs-executor}\n  read_paths: [README.md, src/]\n",
    "plugins:\n  read_paths: []\n",
    // Refused:
    "[1, 2]\n",
    "max_open_prs: -1\n",
    "max_open_prs: many\n",
    "max_open_prs: 1.5\n",
    "autonomy_enabled: yes please\n",
    "attempt_timeout_seconds: 0\n",
    "executor_limits:\n  fuel: 0\n",
    "executor_limits:\n  memory_mib: 513\n",
    "executor_limits:\n  memory_mib: 0\n",
    "executor_limits:\n  cpu: 1\n",
    "executor_limits: 5\n",
    "allowed_path_prefixes: docs/\n",
    "allowed_path_prefixes: [../up]\n",
    "allowed_path_prefixes: [/etc/]\n",
    "allowed_path_prefixes: [.git/]\n",
    "allowed_path_prefixes: ['src/*.rs']\n",
    "allowed_path_prefixes: [{a: 1}]\n",
    "plugins:\n  trusted_keys: [abc]\n",
    "plugins:\n  routes: {docs: 3}\n",
    "plugins:\n  routes: [docs]\n",
    "plugins:\n  colour: blue\n",
    "plugins:\n  read_paths: ['~/secrets']\n",
    "plugins:\n  require_signatures: 1\n",
];

#[test]
fn policy_schema_and_parser_agree() {
    let shipped = [
        std::fs::read_to_string(root().join("policies/dev.yaml")).unwrap(),
        std::fs::read_to_string(root().join("ops/k8s/base/config/policy.yaml")).unwrap(),
    ];
    let docs: Vec<&str> = POLICIES
        .iter()
        .copied()
        .chain(shipped.iter().map(String::as_str))
        .collect();
    check("policy", &docs, policy);
}

#[test]
fn paths_get_the_same_verdict_as_the_path_rules() {
    let schema = validator("policy");
    let mut paths: Vec<String> = [
        "docs/",
        "docs",
        "docs/**",
        "docs/*",
        "a/b/c.md",
        "./docs",
        "docs/./api",
        "docs//api",
        "...",
        "a/.../b",
        ".github/",
        ".gitignore",
        "x.git/",
        " docs/ ",
        "docs/ ",
        "docs/**/",
        "",
        " ",
        ".",
        "./",
        "/",
        "//",
        "/etc",
        "~/x",
        "~",
        "C:/x",
        "c:x",
        "a:b",
        "..",
        "../a",
        "a/..",
        "a/../b",
        "a/..b",
        "..a",
        ".git",
        ".GIT/x",
        "a/.Git",
        "a/.git/b",
        "*",
        "**",
        "/**",
        "./**",
        "a/**/b",
        "a*",
        "a?",
        "a[1]",
        "{a,b}",
        "a/*/b",
        "docs/***",
        "a\\b",
        "a\u{0}b",
        "a\u{1f}b",
        "a\u{7f}b",
        "a\u{85}b",
        "tab\there",
        "é/ü",
        "docs\n",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every pair of the pieces above joined, so rules meet each other.
    let pieces = ["docs", ".", "..", ".git", "*", "**", "", "a b", "x.md"];
    for a in pieces {
        for b in pieces {
            paths.push(format!("{a}/{b}"));
            paths.push(format!("{a}/{b}/"));
        }
    }
    let mut differ = Vec::new();
    for path in &paths {
        let parsed = RepoPath::parse_allowed(path).is_ok();
        for doc in [
            json!({"allowed_path_prefixes": [path]}),
            json!({"plugins": {"read_paths": [path]}}),
        ] {
            if parsed != schema.is_valid(&doc) {
                differ.push(format!("{path:?}: parser {parsed}"));
            }
        }
        // The policy parser reads the same rule (where YAML reads the text back
        // unchanged: it folds a NEL, U+0085, into a line break).
        let doc = json!({"allowed_path_prefixes": [path]});
        let text = serde_json::to_string(&doc).unwrap();
        if serde_norway::from_str::<Value>(&text).ok() == Some(doc) {
            assert_eq!(policy(&text).is_ok(), parsed, "{path:?}");
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
}

const CONFIGS: &[&str] = &[
    "targets:\n  - id: alpha\n    repository: alpha.git\n",
    "interval_seconds: 60\ntargets:\n  - id: a\n    repository: a.git\n    base_branch: develop\n    labels: [leviathan, docs]\n    auto_merge: true\n    policy: policy.yaml\n",
    "schedule: '*/5 * * * *'\ntargets:\n  - id: a\n    repository: a.git\n",
    "targets:\n  - id: a\n    repository: a.git\n    auto_merge: off\n",
    "targets:\n  - id: a\n    repository: a.git\n    auto_merge: 'false '\n",
    "schedule: '@daily'\ninterval_seconds: ~\ntargets:\n  - id: a\n    repository: a.git\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    token_env: GITHUB_TOKEN\n    github_api_url: http://127.0.0.1:9/api\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    token_file: secrets/token\n    token_env: ~\n",
    "targets:\n  - id: a\n    repository: a.git\n    forge: local\n    token_env: ~\n",
    "target_id: legacy\ntarget_repo_url: https://github.com/acme/legacy.git\ntarget_branch: main\nmax_open_prs: 2\n",
    "target_id: legacy\ntarget_repo_url: /srv/git/legacy.git\ninterval_seconds: 30\n",
    "github_limits:\n  content_per_minute: 40\n  content_per_hour: 300\n  content_spacing_ms: 0\n  concurrent_requests: 10\ntargets:\n  - id: a\n    repository: a.git\n",
    "github_limits: ~\ntargets:\n  - id: a\n    repository: a.git\n",
    "targets:\n  - id: a\n    repository: a.git\ndiscover:\n  - github_app:\n      app_id: 1\n      private_key_file: k.pem\n      installation_id: 2\n    repositories: ['acme/docs-*']\n    labels: [leviathan]\n    auto_merge: true\n",
    "targets:\n  - id: a\n    repository: a.git\ndiscover: ~\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    github_app:\n      app_id: 12\n      private_key_file: keys/app.pem\n      installation_id: 34\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    token_env: ~\n    github_app:\n      app_id: 12\n      private_key_file: k.pem\n      installation_id: 34\n",
    "github_limits:\n  content_per_hour: ~\ntargets:\n  - id: a\n    repository: a.git\n",
    "git_timeout_seconds: 120\ntargets:\n  - id: a\n    repository: a.git\n",
    "git_timeout_seconds: ~\ntargets:\n  - id: a\n    repository: a.git\n",
    "max_clone_mib: 512\ntargets:\n  - id: a\n    repository: a.git\n",
    "max_clone_mib: ~\ntargets:\n  - id: a\n    repository: a.git\n",
    // Refused:
    "",
    "targets: []\n",
    "targets: ~\n",
    "interval_seconds: 60\n",
    "targets:\n  - id: a\n    repository: a.git\ncolour: blue\n",
    "targets:\n  - id: a\n    repository: a.git\n    colour: blue\n",
    "targets:\n  - id: a\n    repository: a.git\n    token: ghp_secret\n",
    "targets:\n  - id: a\n",
    "targets:\n  - repository: a.git\n",
    "targets:\n  - id: 'bad id'\n    repository: a.git\n",
    "targets:\n  - id: 5\n    repository: a.git\n",
    "targets:\n  - id: a\n    repository: a.git\n    forge: gitlab\n",
    "targets:\n  - id: a\n    repository: a.git\n    token_env: GITHUB_TOKEN\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    token_env: A\n    token_file: b\n",
    "targets:\n  - id: gh\n    repository: radix\n    forge: github\n    token_env: A\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    token_env: A\n    github_api_url: ftp://x\n",
    "targets:\n  - id: a\n    repository: a.git\n    auto_merge: sometimes\n",
    "github_limits:\n  content_per_hour: 0\ntargets:\n  - id: a\n    repository: a.git\n",
    "github_limits:\n  content_spacing_ms: 60001\ntargets:\n  - id: a\n    repository: a.git\n",
    "github_limits:\n  concurrent_requests: 101\ntargets:\n  - id: a\n    repository: a.git\n",
    "github_limits:\n  per_day: 5\ntargets:\n  - id: a\n    repository: a.git\n",
    "github_limits: 80\ntargets:\n  - id: a\n    repository: a.git\n",
    "targets:\n  - id: a\n    repository: a.git\ndiscover:\n  - github_app:\n      app_id: 1\n      private_key_file: k.pem\n      installation_id: 2\n",
    "targets:\n  - id: a\n    repository: a.git\ndiscover:\n  - github_app:\n      app_id: 1\n      private_key_file: k.pem\n      installation_id: 2\n    repositories: ['*']\n",
    "targets:\n  - id: a\n    repository: a.git\ndiscover:\n  - repositories: ['a/*']\n",
    "targets:\n  - id: a\n    repository: a.git\ndiscover:\n  - github_app:\n      app_id: 1\n      private_key_file: k.pem\n      installation_id: 2\n    repositories: ['a/*']\n    token_env: T\n",
    "targets:\n  - id: a\n    repository: a.git\ndiscover: {}\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    token_env: T\n    github_app:\n      app_id: 12\n      private_key_file: k.pem\n      installation_id: 34\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    github_app:\n      app_id: 12\n      private_key_file: k.pem\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    github_app:\n      app_id: 0\n      private_key_file: k.pem\n      installation_id: 34\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    github_app:\n      app_id: 12\n      private_key_file: k.pem\n      installation_id: 34\n      key: inline\n",
    "targets:\n  - id: gh\n    repository: acme/radix\n    forge: github\n    github_app: 12\n",
    "targets:\n  - id: a\n    repository: a.git\n    github_app:\n      app_id: 12\n      private_key_file: k.pem\n      installation_id: 34\n",
    "interval_seconds: 0\ntargets:\n  - id: a\n    repository: a.git\n",
    "git_timeout_seconds: 0\ntargets:\n  - id: a\n    repository: a.git\n",
    "git_timeout_seconds: 86401\ntargets:\n  - id: a\n    repository: a.git\n",
    "git_timeout_seconds: '60'\ntargets:\n  - id: a\n    repository: a.git\n",
    "max_clone_mib: 0\ntargets:\n  - id: a\n    repository: a.git\n",
    "max_clone_mib: 1048577\ntargets:\n  - id: a\n    repository: a.git\n",
    "max_clone_mib: '512'\ntargets:\n  - id: a\n    repository: a.git\n",
    "schedule: '@daily'\ninterval_seconds: 60\ntargets:\n  - id: a\n    repository: a.git\n",
    "schedule: 'every day'\ntargets:\n  - id: a\n    repository: a.git\n",
    "target_id: legacy\n",
    "target_id: 'bad id'\ntarget_repo_url: x.git\n",
    "target_id: legacy\ntarget_repo_url: x.git\nmax_open_prs: -1\n",
    "target_id: legacy\ntarget_repo_url: x.git\ninterval_seconds: 0\n",
];

#[test]
fn targets_schema_and_parser_agree() {
    let shipped = std::fs::read_to_string(root().join("ops/k8s/base/config/targets.yaml")).unwrap();
    let docs: Vec<&str> = CONFIGS.iter().copied().chain([shipped.as_str()]).collect();
    check("targets", &docs, config);
}

/// What only the parsers (and `backlog validate`) can check, each held here so the
/// schemas' descriptions stay true: the schema accepts, the parser refuses.
#[test]
fn what_the_schemas_leave_to_the_parsers() {
    let backlog_schema = validator("backlog");
    let duplicate =
        "tasks:\n  - {id: a, title: A, scope: docs}\n  - {id: a, title: B, scope: docs}\n";
    assert!(backlog_schema.is_valid(&as_json(duplicate)));
    assert!(
        backlog(duplicate)
            .unwrap_err()
            .contains("duplicate task id")
    );

    let targets_schema = validator("targets");
    for (doc, needle) in [
        (
            "targets:\n  - {id: a, repository: a.git}\n  - {id: a, repository: b.git}\n",
            "used by another target",
        ),
        (
            "targets:\n  - {id: a, repository: a.git, policy: missing.yaml}\n",
            "missing.yaml",
        ),
        (
            "schedule: '61 * * * *'\ntargets:\n  - {id: a, repository: a.git}\n",
            "schedule",
        ),
        (
            "targets:\n  - {id: docs, repository: a.git}\n  - {id: docs-forge, repository: b.git}\n",
            "would share a clone",
        ),
    ] {
        assert!(targets_schema.is_valid(&as_json(doc)), "{doc}");
        let err = config(doc).unwrap_err();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
