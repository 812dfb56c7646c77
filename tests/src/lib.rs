//! Shared set-up for the integration tests: builds the real executor components
//! (and the hostile test guest), installs them into a test registry, and creates
//! real git repositories to run tasks against.

pub mod github;
pub mod openapi;
pub mod serve;

use leviathan_sandbox::exec::{ExecFailure, ExecReport, ExecRequest};
use leviathan_sandbox::{ArtifactCache, Sandbox};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `release` when the tests were built with `--release`, else `dev`.
fn profile() -> &'static str {
    let exe = std::env::current_exe().unwrap_or_default();
    if exe.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "dev"
    }
}

/// Runs git in `dir` with a fixed identity; panics with git's stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_with(
        dir,
        args,
        &[
            ("GIT_AUTHOR_NAME", "t"),
            ("GIT_AUTHOR_EMAIL", "t@t"),
            ("GIT_COMMITTER_NAME", "t"),
            ("GIT_COMMITTER_EMAIL", "t@t"),
        ],
    )
}

/// Runs git in `dir` with extra environment; panics with git's stderr on failure.
fn git_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed with {status}");
}

/// `cargo` for a build from inside a test, without the `CARGO_*` variables cargo set
/// for the test run itself: some build scripts (ring's) rerun when, say,
/// `CARGO_MANIFEST_DIR` changes, which would rebuild half the workspace here and again
/// in the next outer `cargo` command.
pub fn cargo_command() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        let keep = matches!(
            name.as_ref(),
            "CARGO_HOME" | "CARGO_TARGET_DIR" | "CARGO_BUILD_JOBS" | "CARGO_NET_OFFLINE"
        );
        if name.starts_with("CARGO_") && !keep {
            c.env_remove(&key);
        }
    }
    c
}

/// Builds the components and the host binary once per test process; returns the
/// test registry directory.
pub fn registry() -> &'static Path {
    static REGISTRY: OnceLock<PathBuf> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // Exactly what `cargo xtask build` compiles, so neither step rebuilds the
        // other's artifacts with a different feature set.
        let mut wasm = vec!["build", "--quiet", "--release", "--target", "wasm32-wasip2"];
        for package in [
            "docs-executor",
            "tests-executor",
            "changelog-executor",
            "hostile-guest",
            "network-guest",
            "docs-twin",
        ] {
            wasm.extend(["-p", package]);
        }
        run(cargo_command().current_dir(root()).args(&wasm));
        // The selection `cargo test --workspace` resolves features for: a no-op after
        // the test build rather than a second wasmtime compile.
        let native = [
            "build",
            "--quiet",
            "--profile",
            profile(),
            "--workspace",
            "--all-targets",
        ];
        run(cargo_command().current_dir(root()).args(native));
        let dir = root().join("target/test-registry");
        let components = root().join("target/wasm32-wasip2/release");
        for (name, manifest) in [
            ("docs-executor", "plugins/docs-executor/plugin.toml"),
            ("tests-executor", "plugins/tests-executor/plugin.toml"),
            (
                "changelog-executor",
                "plugins/changelog-executor/plugin.toml",
            ),
            ("hostile-guest", "tests/guests/hostile-guest/plugin.toml"),
        ] {
            let wasm = components.join(format!("{}.wasm", name.replace('-', "_")));
            leviathan_domain::registry::install(&dir, &wasm, &root().join(manifest), None, |_| {
                Ok(())
            })
            .unwrap_or_else(|e| panic!("installing {name}: {e}"));
        }
        dir
    })
}

/// The built component and manifest template of a shipped or test plugin.
pub fn component(name: &str) -> (PathBuf, PathBuf) {
    registry();
    let wasm = root()
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    let manifest = match name {
        "hostile-guest" | "docs-twin" => root().join("tests/guests").join(name).join("plugin.toml"),
        other => root().join("plugins").join(other).join("plugin.toml"),
    };
    (wasm, manifest)
}

/// A component with a custom section appended: the same behaviour, another digest.
pub fn variant(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"leviathan-test";
    let payload = tag.as_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "a one-byte LEB128 section size");
    let mut out = bytes.to_vec();
    out.extend([0u8, size as u8, name.len() as u8]);
    out.extend(name);
    out.extend(payload);
    out
}

/// The `leviathan-host` binary of the current profile.
pub fn host_binary() -> PathBuf {
    registry();
    let dir = if profile() == "release" {
        "release"
    } else {
        "debug"
    };
    root().join("target").join(dir).join("leviathan-host")
}

/// One sandbox per test process (as in the daemon), with its own artifact cache.
pub fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        Sandbox::new(ArtifactCache::new(Some(
            root().join("target/test-artifact-cache"),
        )))
        .expect("sandbox starts")
    })
}

/// One scheduler pass in this process (what `tick` does) over `config`'s targets on
/// `log`, with the shared sandbox and registry, clones under `work_dir`, and
/// `github`'s clients (kept across calls, as `serve` keeps them); `target: outcome`
/// per target.
pub fn pass_in_process(
    config: &leviathan_domain::config::Config,
    log: &leviathan_events::EventLog,
    github: &leviathan_forge::github::clients::GitHubClients,
    work_dir: &Path,
) -> Vec<String> {
    let scheduler = leviathan_scheduler::Scheduler {
        config,
        log,
        sandbox: sandbox(),
        registry_dir: registry().to_path_buf(),
        work_dir: work_dir.to_path_buf(),
        plugins: None,
        github,
        shard: leviathan_domain::shards::Shard::ALL,
    };
    scheduler
        .tick()
        .expect("pass")
        .into_iter()
        .map(|r| format!("{}: {}", r.target, r.outcome))
        .collect()
}

/// A real git repository in a temporary directory.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    /// A repository whose first commit holds `backlog` as `.leviathan/backlog.yaml`
    /// and the given extra files.
    pub fn new(backlog: &str, files: &[(&str, &str)]) -> TestRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = TestRepo { dir };
        repo.write(".leviathan/backlog.yaml", backlog);
        for (path, text) in files {
            repo.write(path, text);
        }
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.git(&["add", "-A"]);
        repo.git(&[
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
            "commit",
            "--quiet",
            "-m",
            "init",
        ]);
        repo
    }

    /// The worktree path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating parents).
    pub fn write(&self, path: &str, text: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().expect("has parent")).expect("mkdir");
        std::fs::write(full, text).expect("write");
    }

    /// Reads a file as text.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path))
            .unwrap_or_else(|e| panic!("read {path}: {e}"))
    }

    /// Runs git in the worktree (with fixed dates, so identical content gives
    /// identical commit ids).
    pub fn git(&self, args: &[&str]) -> String {
        git_with(
            self.path(),
            args,
            &[
                ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
                ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
            ],
        )
    }

    /// `git status --porcelain` including untracked files: empty when nothing changed.
    pub fn status(&self) -> String {
        self.git(&["status", "--porcelain", "--untracked-files=all"])
    }

    /// Runs a task through the library with the default policy.
    pub fn exec(&self, task: &str) -> Result<ExecReport, ExecFailure> {
        self.exec_with_policy(task, None)
    }

    /// Runs a task through the library with a policy file.
    pub fn exec_with_policy(
        &self,
        task: &str,
        policy: Option<&Path>,
    ) -> Result<ExecReport, ExecFailure> {
        let request = ExecRequest {
            repo: self.path().to_path_buf(),
            task_id: task.into(),
            policy: policy.map(Path::to_path_buf),
            registry_dir: registry().to_path_buf(),
        };
        leviathan_sandbox::exec::exec(sandbox(), &request)
    }
}

/// A file of a seed repository: text, or a symbolic link to a path.
pub enum Seed<'a> {
    Text(&'a str, &'a str),
    Link(&'a str, &'a Path),
}

/// A bare repository `<name>.git` under `root` whose `main` holds `files` (committed
/// from a seed worktree `<name>-seed`, left in place for further commits).
pub fn bare_repo(root: &Path, name: &str, files: &[Seed]) -> PathBuf {
    let seed = root.join(format!("{name}-seed"));
    std::fs::create_dir_all(&seed).expect("mkdir");
    for file in files {
        let path = match file {
            Seed::Text(p, _) | Seed::Link(p, _) => seed.join(p),
        };
        std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
        match file {
            Seed::Text(_, body) => std::fs::write(&path, body).expect("write"),
            Seed::Link(_, target) => std::os::unix::fs::symlink(target, &path).expect("symlink"),
        }
    }
    git(&seed, &["init", "--quiet", "-b", "main"]);
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "--quiet", "-m", "seed"]);
    let bare = root.join(format!("{name}.git"));
    let (seed_text, bare_text) = (seed.display().to_string(), bare.display().to_string());
    git(
        root,
        &["clone", "--quiet", "--bare", &seed_text, &bare_text],
    );
    bare
}

/// A one-task backlog.
pub fn backlog_with(id: &str, scope: &str, allowed: &[&str], criteria: &[&str]) -> String {
    let list = |items: &[&str]| {
        if items.is_empty() {
            " []".to_string()
        } else {
            items
                .iter()
                .map(|i| format!("\n      - {}", serde_json::to_string(i).expect("json")))
                .collect()
        }
    };
    format!(
        "tasks:\n  - id: {id}\n    title: Task {id}\n    description: A test task.\n    scope: {scope}\n    ready: true\n    allowed_paths:{}\n    acceptance_criteria:{}\n",
        list(allowed),
        list(criteria)
    )
}
