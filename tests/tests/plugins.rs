//! The plugin registry: verification of hostile or broken entries through the real
//! CLI, signatures, scope conflicts, hot reload in `serve`, and an attempt holding a
//! plugin set while its files are replaced and removed.

use leviathan_domain::policy::PluginPolicy;
use leviathan_sandbox::plugins::set::PluginSet;
use leviathan_sandbox::plugins::watch::{SharedPlugins, watch};
use leviathan_sandbox::{ArtifactCache, Sandbox};
use leviathan_tests::{component, host_binary, root, variant};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn host(args: &[&str]) -> Output {
    Command::new(host_binary())
        .args(args)
        .env("LEVIATHAN_CACHE_DIR", root().join("target/test-cache"))
        .output()
        .expect("leviathan-host runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `plugins install WASM --manifest MANIFEST` into `dir` through the CLI.
fn install_file(dir: &Path, wasm: &Path, manifest: &Path, key: Option<&Path>) {
    let mut args = vec![
        "plugins",
        "install",
        wasm.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--plugin-dir",
        dir.to_str().unwrap(),
    ];
    if let Some(k) = key {
        args.extend(["--sign-key", k.to_str().unwrap()]);
    }
    let out = host(&args);
    assert!(
        out.status.success(),
        "install {}: {}",
        wasm.display(),
        text(&out)
    );
}

/// Installs a built plugin with its shipped manifest template.
fn install(dir: &Path, name: &str, key: Option<&Path>) {
    let (wasm, manifest) = component(name);
    install_file(dir, &wasm, &manifest, key);
}

/// A key file and its public key.
fn keygen(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("signing.key");
    let out = host(&["plugins", "keygen", "--out", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let public = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(public.len(), 64);
    (key, public)
}

fn edit(file: &Path, from: &str, to: &str) {
    let old = std::fs::read_to_string(file).unwrap();
    assert!(old.contains(from), "{} lacks {from:?}", file.display());
    std::fs::write(file, old.replacen(from, to, 1)).unwrap();
}

fn verify(dir: &Path, policy: Option<&Path>) -> (i32, String) {
    let mut args = vec!["plugins", "verify", dir.to_str().unwrap()];
    if let Some(p) = policy {
        args.extend(["--policy", p.to_str().unwrap()]);
    }
    let out = host(&args);
    (out.status.code().unwrap_or(-1), text(&out))
}

/// The line of `verify` output about `entry`.
fn line<'a>(output: &'a str, entry: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.contains(entry))
        .unwrap_or_else(|| panic!("no line about {entry} in:\n{output}"))
}

#[test]
fn signatures_are_checked_and_required_when_the_policy_says_so() {
    let work = tempfile::tempdir().unwrap();
    let reg = work.path().join("registry");
    let (key, public) = keygen(work.path());
    install(&reg, "docs-executor", Some(&key));
    install(&reg, "tests-executor", None);
    install(&reg, "hostile-guest", Some(&key));
    // A signature that does not match its entry.
    let hostile = reg.join("hostile-guest/0.1.0/plugin.toml");
    let manifest = std::fs::read_to_string(&hostile).unwrap();
    let signature = manifest
        .lines()
        .find_map(|l| l.strip_prefix("signature = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let mut forged = signature.clone().into_bytes();
    forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
    edit(&hostile, &signature, std::str::from_utf8(&forged).unwrap());

    let policy = work.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("plugins:\n  require_signatures: true\n  trusted_keys: [\"{public}\"]\n"),
    )
    .unwrap();
    let (code, out) = verify(&reg, Some(&policy));
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "docs-executor").contains("trusted"), "{out}");
    assert!(
        line(&out, "tests-executor").contains("unsigned, and the policy requires signatures"),
        "{out}"
    );
    assert!(
        line(&out, "hostile-guest").contains("bad signature"),
        "{out}"
    );

    // Without the requirement, the unsigned plugin loads; the forged one never does.
    let (code, out) = verify(&reg, None);
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "tests-executor").contains("loaded"), "{out}");
    assert!(
        line(&out, "docs-executor").contains("untrusted"),
        "the default policy trusts no key: {out}"
    );
    assert!(
        line(&out, "hostile-guest").contains("bad signature"),
        "{out}"
    );
    // The registry named as every other command takes it: the same verdict.
    let named = host(&["plugins", "verify", "--plugin-dir", reg.to_str().unwrap()]);
    assert_eq!(
        (named.status.code().unwrap_or(-1), text(&named)),
        (code, out)
    );

    // A key the policy does not trust is refused when signatures are required.
    let other = work.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (_, stranger) = keygen(&other);
    std::fs::write(
        &policy,
        format!("plugins:\n  require_signatures: true\n  trusted_keys: [\"{stranger}\"]\n"),
    )
    .unwrap();
    let (_, out) = verify(&reg, Some(&policy));
    assert!(
        line(&out, "docs-executor").contains("not in the policy's plugins.trusted_keys"),
        "{out}"
    );
}

#[test]
fn broken_entries_are_rejected_with_the_reason_and_the_rest_load() {
    let work = tempfile::tempdir().unwrap();
    let reg = work.path().join("registry");
    install(&reg, "docs-executor", None);
    install(&reg, "tests-executor", None);
    install(&reg, "hostile-guest", None);
    let (code, out) = verify(&reg, None);
    assert_eq!(code, 0, "{out}");

    // Tampered component: the digest no longer matches.
    let wasm = reg.join("docs-executor/0.1.0/docs-executor.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wasm, bytes).unwrap();
    // A contract of another major version.
    edit(
        &reg.join("tests-executor/0.1.0/plugin.toml"),
        "executor-plugin@0.1.0",
        "executor-plugin@1.0.0",
    );
    // A malformed manifest.
    edit(
        &reg.join("hostile-guest/0.1.0/plugin.toml"),
        "scopes = [",
        "scopes = 7\nx = [",
    );
    let (code, out) = verify(&reg, None);
    assert_eq!(code, 1, "{out}");
    assert!(
        line(&out, "docs-executor").contains("digest mismatch"),
        "{out}"
    );
    assert!(
        line(&out, "tests-executor").contains("different major"),
        "{out}"
    );
    assert!(
        line(&out, "hostile-guest").contains("plugin.toml: invalid TOML at line 4")
            && line(&out, "hostile-guest").contains("field `scopes`"),
        "the error names the file, line and field: {out}"
    );
    assert!(
        !out.contains("scopes = 7"),
        "the offending line is not quoted: {out}"
    );
    assert!(out.contains("3 entries rejected"), "{out}");
}

#[test]
fn two_plugins_for_one_scope_need_a_route_in_the_policy() {
    let work = tempfile::tempdir().unwrap();
    let reg = work.path().join("registry");
    install(&reg, "docs-executor", None);
    install(&reg, "tests-executor", None);
    // A second working plugin claiming `docs`.
    install(&reg, "docs-twin", None);

    let (code, out) = verify(&reg, None);
    assert_eq!(code, 1, "{out}");
    for entry in ["docs-executor", "docs-twin"] {
        assert!(
            line(&out, &format!("rejected {entry}"))
                .contains("scope `docs` is claimed by docs-executor, docs-twin"),
            "{out}"
        );
    }
    assert!(line(&out, "tests-executor").contains("loaded"), "{out}");

    let policy = work.path().join("policy.yaml");
    std::fs::write(&policy, "plugins:\n  routes: {docs: docs-executor}\n").unwrap();
    let (code, out) = verify(&reg, Some(&policy));
    assert_eq!(code, 0, "{out}");
    assert!(line(&out, "docs-executor ").contains("loaded"), "{out}");
    assert!(line(&out, "docs-twin ").contains("loaded"), "{out}");
}

/// An entry that cannot load (its component describes itself as another plugin)
/// claims the scope of a working one: only the broken one is rejected.
#[test]
fn a_broken_entry_never_knocks_out_a_working_one() {
    let work = tempfile::tempdir().unwrap();
    let reg = work.path().join("registry");
    install(&reg, "docs-executor", None);
    let copy = reg.join("docs-copy/0.1.0");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(
        reg.join("docs-executor/0.1.0/docs-executor.wasm"),
        copy.join("docs-copy.wasm"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(reg.join("docs-executor/0.1.0/plugin.toml"))
        .unwrap()
        .replace("name = \"docs-executor\"", "name = \"docs-copy\"");
    std::fs::write(copy.join("plugin.toml"), manifest).unwrap();

    let (code, out) = verify(&reg, None);
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "docs-executor ").contains("loaded"), "{out}");
    assert!(
        line(&out, "rejected docs-copy").contains("describes itself as docs-executor@0.1.0"),
        "{out}"
    );

    // `exec` routes the docs task to the working plugin.
    let repo = leviathan_tests::TestRepo::new(
        &leviathan_tests::backlog_with("docs-1", "docs", &["docs/guide.md"], &["Explains setup"]),
        &[],
    );
    let out = host(&[
        "exec",
        "--repo",
        repo.path().to_str().unwrap(),
        "--task",
        "docs-1",
        "--plugin-dir",
        reg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(repo.path().join("docs/guide.md").is_file());
}

fn install_variant(reg: &Path, work: &Path, tag: &str) -> String {
    let (wasm, manifest) = component("docs-executor");
    let file = work.join(format!("docs-{tag}.wasm"));
    std::fs::write(&file, variant(&std::fs::read(wasm).unwrap(), tag)).unwrap();
    install_file(reg, &file, &manifest, None);
    leviathan_domain::digest::sha256_hex(&std::fs::read(&file).unwrap())
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn an_attempt_holding_a_plugin_set_finishes_on_its_version_while_files_change() {
    let work = tempfile::tempdir().unwrap();
    let reg = work.path().join("registry");
    let first = install_variant(&reg, work.path(), "a");
    let sandbox =
        Arc::new(Sandbox::new(ArtifactCache::new(Some(work.path().join("cache")))).unwrap());
    let policy = PluginPolicy::default();
    let shared = Arc::new(SharedPlugins::new(
        PluginSet::load(&reg, &policy, &sandbox, None).unwrap(),
    ));
    let (tx, rx) = std::sync::mpsc::channel();
    let _watch = watch(
        reg.clone(),
        policy,
        sandbox.clone(),
        shared.clone(),
        Duration::from_millis(100),
        move |reload| {
            let _ = tx.send(reload.set.loaded.len());
        },
    )
    .unwrap();

    // The attempt takes the set in force when it starts.
    let attempt_set = shared.current();
    let plugin = attempt_set.loaded["docs-executor@0.1.0"].clone();
    assert_eq!(plugin.component.digest, format!("sha256:{first}"));

    // Replaced on disk: the next attempt sees the new digest.
    let second = install_variant(&reg, work.path(), "b");
    wait_for("the replacement", || {
        shared
            .current()
            .loaded
            .get("docs-executor@0.1.0")
            .map(|p| p.component.digest.clone())
            == Some(format!("sha256:{second}"))
    });
    // Removed from disk: the set empties.
    std::fs::remove_dir_all(reg.join("docs-executor")).unwrap();
    wait_for("the removal", || shared.current().loaded.is_empty());
    assert!(rx.try_iter().count() >= 2, "each change reloaded");

    // The attempt that started before still runs the version it started with.
    let info = sandbox.describe(&plugin.component).unwrap();
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("docs-executor", "0.1.0")
    );
    assert_eq!(plugin.component.digest, format!("sha256:{first}"));
}

#[test]
fn plugins_new_scaffolds_a_crate_that_tests_builds_and_installs() {
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("hello-executor");
    let out = Command::new(host_binary())
        .args([
            "plugins",
            "new",
            "hello-executor",
            "--scope",
            "hello",
            "--dir",
        ])
        .arg(&crate_dir)
        .arg("--sdk")
        .arg(root().join("plugins/sdk"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let again = Command::new(host_binary())
        .args(["plugins", "new", "hello-executor", "--dir"])
        .arg(&crate_dir)
        .arg("--sdk")
        .arg(root().join("plugins/sdk"))
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(1),
        "never overwrites an existing directory"
    );

    // The new crate builds its component with the small stack the sandbox resets in place.
    let cargo_config = std::fs::read_to_string(crate_dir.join(".cargo/config.toml")).unwrap();
    assert!(
        cargo_config.contains("[target.wasm32-wasip2]")
            && cargo_config.contains("-zstack-size=65536"),
        "{cargo_config}"
    );

    // The same dependency versions as the workspace, without touching the network.
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target = root().join("target/scaffold-test");
    for args in [
        vec!["test", "--offline", "--quiet"],
        vec![
            "build",
            "--offline",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
        ],
    ] {
        let out = leviathan_tests::cargo_command()
            .args(&args)
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo {args:?}: {}", text(&out));
    }
    let wasm = target.join("wasm32-wasip2/release/hello_executor.wasm");
    let reg = work.path().join("registry");
    install_file(&reg, &wasm, &crate_dir.join("plugin.toml"), None);
    let (code, listing) = verify(&reg, None);
    assert_eq!(code, 0, "{listing}");
    assert!(
        line(&listing, "hello-executor").contains("hello"),
        "{listing}"
    );

    // cargo-component, where it is installed, builds the same crate.
    let has_component = leviathan_tests::cargo_command()
        .args(["component", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_component {
        let out = leviathan_tests::cargo_command()
            .args(["component", "build", "--release", "--offline"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo component build: {}",
            text(&out)
        );
    }
}

#[test]
fn a_manifest_can_lower_the_limits_but_never_raise_them() {
    use leviathan_sandbox::exec::{ErrorKind, ExecRequest, exec};
    use leviathan_tests::{TestRepo, backlog_with, sandbox};
    let work = tempfile::tempdir().unwrap();
    let (wasm, template) = component("docs-executor");
    let manifest = work.path().join("plugin.toml");
    let with_limits = |limits: &str| {
        let base = std::fs::read_to_string(&template).unwrap();
        std::fs::write(&manifest, format!("{base}\n[limits]\n{limits}\n")).unwrap();
        let reg = work.path().join(format!("registry-{}", limits.len()));
        install_file(&reg, &wasm, &manifest, None);
        reg
    };
    let run = |registry: PathBuf, policy: Option<PathBuf>| {
        let repo = TestRepo::new(&backlog_with("t", "docs", &["docs/"], &["x"]), &[]);
        let result = exec(
            sandbox(),
            &ExecRequest {
                repo: repo.path().to_path_buf(),
                task_id: "t".into(),
                policy,
                registry_dir: registry,
            },
        );
        (result, repo.status())
    };
    // Asking for less than the policy: the plugin's limit applies.
    let (result, status) = run(with_limits("max_bytes_written = 10"), None);
    let err = result.expect_err("over the plugin's own byte cap");
    assert_eq!(err.kind, ErrorKind::ExecutorFailed, "{err}");
    assert!(
        err.message.contains("at most 10") || err.message.contains("bytes-written"),
        "{err}"
    );
    assert_eq!(status, "", "nothing written");
    // Asking for more than the policy allows changes nothing: the policy's limit holds.
    let policy = work.path().join("policy.yaml");
    std::fs::write(&policy, "executor_limits:\n  max_bytes_written: 10\n").unwrap();
    let generous = with_limits("max_bytes_written = 999999999\nfuel = 99000000000000");
    let (result, status) = run(generous.clone(), Some(policy));
    let err = result.expect_err("the policy's byte cap holds");
    assert!(
        err.message.contains("at most 10") || err.message.contains("bytes-written"),
        "{err}"
    );
    assert_eq!(status, "");
    // And within both, the run succeeds.
    let (result, _) = run(generous, None);
    assert!(result.is_ok(), "{:?}", result.err());
}
