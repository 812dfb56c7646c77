//! The deployment material's invariants that need no cluster (issue #14): the
//! image's Dockerfile, the alert rules and their runbooks, the monitoring
//! component kept equal to the rules file. Rendering and schema validation of the
//! Kustomize overlays run in `cargo xtask test` (xtask/src/ops.rs).

use leviathan_tests::root;
use serde_norway::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Dockerfile's instructions, continuation lines joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
            }
        }
    }
    out
}

#[test]
fn the_image_runs_as_a_numeric_user_from_pinned_bases_with_git() {
    let all = instructions(&read("ops/Dockerfile"));
    let froms: Vec<&String> = all.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    for from in &froms {
        let image = from.split_whitespace().nth(1).unwrap_or_default();
        let (named, digest) = image.split_once("@sha256:").unwrap_or((image, ""));
        assert!(
            named.contains(':') && !named.ends_with(":latest"),
            "{from}: pinned by tag"
        );
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{from}: pinned by digest"
        );
    }
    // The runtime stage: everything after the last FROM.
    let last = all.iter().rposition(|i| i.starts_with("FROM ")).unwrap();
    let runtime = &all[last..];
    assert!(
        runtime[0].contains("debian:bookworm-slim@"),
        "{}",
        runtime[0]
    );
    let installs: String = runtime
        .iter()
        .filter(|i| i.starts_with("RUN ") && i.contains("apt-get install"))
        .cloned()
        .collect();
    for package in ["git", "ca-certificates", "tini"] {
        assert!(
            installs
                .split_whitespace()
                .any(|w| w == package || w.starts_with(&format!("{package}="))),
            "{package} installed in the runtime stage: {installs}"
        );
    }
    let user = runtime
        .iter()
        .rfind(|i| i.starts_with("USER "))
        .expect("a USER in the runtime stage");
    let spec = user.trim_start_matches("USER ").trim();
    let (uid, gid) = spec.split_once(':').unwrap_or((spec, "0"));
    let uid: u32 = uid.parse().expect("a numeric user");
    let gid: u32 = gid.parse().expect("a numeric group");
    assert!(uid != 0 && gid != 0, "{user}: not root");
    assert!(
        runtime
            .iter()
            .any(|i| i == r#"ENTRYPOINT ["tini", "--", "leviathan-host"]"#),
        "tini is PID 1"
    );
}

fn yaml(path: &str) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_alert_is_labelled_annotated_and_has_a_runbook() {
    let rules = yaml("ops/alerts/leviathan.rules.yaml");
    let tests = read("ops/alerts/leviathan.tests.yaml");
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            alerts += 1;
            assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
            for key in ["summary", "description", "runbook_url"] {
                assert!(
                    rule["annotations"][key].is_string(),
                    "{name}: annotation {key}"
                );
            }
            let url = rule["annotations"]["runbook_url"].as_str().unwrap();
            let path = url
                .split_once("/blob/main/")
                .map(|(_, p)| p)
                .unwrap_or_else(|| panic!("{name}: {url} points into the repository"));
            assert!(
                path.starts_with("docs/runbooks/") && root().join(path).is_file(),
                "{name}: runbook {path} exists"
            );
            assert!(
                tests.matches(&format!("alertname: {name}\n")).count() >= 2,
                "{name}: a firing and a not-firing case"
            );
        }
    }
    assert!(alerts >= 4, "{alerts} alerts");
}

#[test]
fn the_monitoring_component_carries_the_same_rules() {
    let rules = yaml("ops/alerts/leviathan.rules.yaml");
    let component = yaml("ops/k8s/components/monitoring/prometheusrule.yaml");
    assert_eq!(component["kind"].as_str(), Some("PrometheusRule"));
    assert_eq!(component["spec"]["groups"], rules["groups"]);
}

/// The `--flag` names in `text` (up to `=` or whitespace).
fn flags(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '"' || c == '\\'))
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect()
}

#[test]
fn the_deployments_pass_only_flags_serve_has() {
    let help = std::process::Command::new(leviathan_tests::host_binary())
        .args(["serve", "--help"])
        .output()
        .expect("leviathan-host runs");
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let statefulset = read("ops/k8s/base/statefulset.yaml");
    let unit = read("ops/systemd/leviathan-host.service");
    let cmd = instructions(&read("ops/Dockerfile"))
        .into_iter()
        .rfind(|i| i.starts_with("CMD "))
        .expect("a CMD");
    let exec_start = unit
        .split("ExecStart=")
        .nth(1)
        .and_then(|rest| rest.split("\nExecReload").next())
        .expect("an ExecStart");
    for (file, used) in [
        ("statefulset.yaml", flags(&statefulset)),
        ("leviathan-host.service", flags(exec_start)),
        ("Dockerfile CMD", flags(&cmd)),
    ] {
        assert!(!used.is_empty(), "{file}: flags found");
        for flag in used {
            assert!(
                help.contains(&format!("{flag} "))
                    || help.contains(&format!("{flag}\n"))
                    || help.contains(&format!("{flag} <")),
                "{file}: `{flag}` is not a flag of `leviathan-host serve`"
            );
        }
    }
}

#[test]
fn the_systemd_unit_is_hardened() {
    let unit = read("ops/systemd/leviathan-host.service");
    for line in [
        "ProtectSystem=strict",
        "StateDirectory=leviathan",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(line), "{line}");
    }
    assert!(
        unit.contains("User=leviathan") || unit.contains("DynamicUser=yes"),
        "a fixed or dynamic user, never root"
    );
}
