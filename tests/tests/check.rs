//! `leviathan-host check` on the deployment (issue #14): a good render of the k3s
//! overlay with every component passes every check, and breaking one invariant at a
//! time fails exactly the check that holds it.

use leviathan_cli::check::render::Render;
use leviathan_cli::check::{check_renders, manifests};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `kubectl kustomize` of the k3s overlay with every optional component, rendered
/// from a throwaway kustomization under target/ (kustomize takes relative paths).
fn good_render() -> Render {
    let root = leviathan_tests::root();
    let dir = root.join(format!("target/check-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let up = "../../ops/k8s";
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {up}/overlays/k3s\ncomponents:\n  - {up}/components/monitoring\n  - {up}/components/external-secret\n"
        ),
    )
    .expect("kustomization");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl is required for the deployment tests (cargo xtask test checks for it)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    Render::parse(Path::new("k3s+components.yaml"), &text).expect("a render parses")
}

fn failing(render: &Render) -> BTreeSet<&'static str> {
    check_renders(std::slice::from_ref(render))
        .into_iter()
        .filter(|o| !o.ok())
        .map(|o| o.id)
        .collect()
}

fn object<'a>(r: &'a mut Render, kind: &str) -> &'a mut Value {
    r.objects
        .iter_mut()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("the good render has a {kind}"))
}

fn pod(r: &mut Render) -> &mut Value {
    &mut object(r, "StatefulSet")["spec"]["template"]["spec"]
}

fn container(r: &mut Render) -> &mut Value {
    &mut pod(r)["containers"][0]
}

fn set_arg(r: &mut Render, flag: &str, value: &str) {
    let args = container(r)["args"].as_array_mut().expect("args");
    let prefix = format!("{flag}=");
    let arg = args
        .iter_mut()
        .find(|a| a.as_str().is_some_and(|s| s.starts_with(&prefix)))
        .unwrap_or_else(|| panic!("the good render passes {flag}"));
    *arg = json!(format!("{flag}={value}"));
}

fn mount<'a>(r: &'a mut Render, path: &str) -> &'a mut Value {
    container(r)["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .iter_mut()
        .find(|m| m["mountPath"] == path)
        .unwrap_or_else(|| panic!("the good render mounts {path}"))
}

type Mutation = (&'static str, fn(&mut Render));

/// One break per check: the id it must fail, and the break.
const MUTATIONS: &[Mutation] = &[
    ("namespace-restricted", |r| {
        object(r, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] =
            json!("baseline")
    }),
    ("objects-in-namespace", |r| {
        object(r, "ServiceMonitor")["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("namespace");
    }),
    ("one-statefulset", |r| {
        r.objects
            .push(json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "leviathan"}, "spec": {}}))
    }),
    ("one-replica", |r| {
        object(r, "StatefulSet")["spec"]["replicas"] = json!(2)
    }),
    ("non-root", |r| {
        pod(r)["securityContext"]["runAsNonRoot"] = json!(false)
    }),
    ("numeric-user", |r| {
        pod(r)["securityContext"]["runAsUser"] = json!(0)
    }),
    ("seccomp", |r| {
        pod(r)["securityContext"]["seccompProfile"]["type"] = json!("Unconfined")
    }),
    ("no-privilege-escalation", |r| {
        container(r)["securityContext"]["allowPrivilegeEscalation"] = json!(true)
    }),
    ("capabilities-dropped", |r| {
        container(r)["securityContext"]["capabilities"]["drop"] = json!(["NET_RAW"])
    }),
    ("read-only-root", |r| {
        container(r)["securityContext"]["readOnlyRootFilesystem"] = json!(false)
    }),
    ("writable-tmp-and-home", |r| {
        mount(r, "/tmp")["readOnly"] = json!(true)
    }),
    ("no-service-account-token", |r| {
        pod(r)["automountServiceAccountToken"] = json!(true)
    }),
    ("image-pinned", |r| {
        container(r)["image"] = json!("leviathan-host:latest")
    }),
    ("pull-policy", |r| {
        container(r)["imagePullPolicy"] = json!("Always")
    }),
    ("resources", |r| {
        container(r)["resources"]
            .as_object_mut()
            .expect("resources")
            .remove("limits");
    }),
    ("one-rwo-claim", |r| {
        object(r, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] =
            json!(["ReadWriteMany"])
    }),
    ("data-on-claim", |r| set_arg(r, "--data-dir", "/tmp/events")),
    ("references-resolve", |r| {
        container(r)["env"]
            .as_array_mut()
            .expect("env")
            .push(json!({"name": "X",
            "valueFrom": {"configMapKeyRef": {"name": "nowhere", "key": "x"}}}))
    }),
    ("one-secret", |r| {
        object(r, "StatefulSet")["metadata"]["annotations"]["leviathan.dev/external-secret.other-secrets"] =
            json!("token");
        container(r)["env"]
            .as_array_mut()
            .expect("env")
            .push(json!({"name": "X",
            "valueFrom": {"secretKeyRef": {"name": "other-secrets", "key": "token"}}}))
    }),
    ("no-subpath", |r| {
        mount(r, "/etc/leviathan/config")["subPath"] = json!("targets.yaml")
    }),
    ("secret-keys", |r| {
        set_arg(r, "--tokens-file", "/etc/leviathan/secrets/api-tokens.yaml")
    }),
    ("config-loads", |r| {
        object(r, "ConfigMap")["data"]["targets.yaml"] = json!("targets:\n  - id: 7\n")
    }),
    ("selectors-match", |r| {
        object(r, "Service")["spec"]["selector"] = json!({"app": "something-else"})
    }),
    ("ports-named", |r| {
        object(r, "Service")["spec"]["ports"][0]["targetPort"] = json!("web")
    }),
    ("probes", |r| {
        container(r)["livenessProbe"]["httpGet"]["path"] = json!("/readyz")
    }),
    ("shutdown-grace", |r| {
        pod(r)["terminationGracePeriodSeconds"] = json!(5)
    }),
    ("network-policy", |r| {
        object(r, "NetworkPolicy")["spec"]["egress"]
            .as_array_mut()
            .expect("egress")
            .push(json!({"ports": [{"port": 80, "protocol": "TCP"}]}))
    }),
    ("metrics-not-exposed", |r| {
        let paths = &mut object(r, "Ingress")["spec"]["rules"][0]["http"]["paths"];
        let last = paths.as_array().map_or(0, Vec::len) - 1;
        paths[last]["pathType"] = json!("Prefix");
    }),
    ("retain-storage", |r| {
        object(r, "StorageClass")["reclaimPolicy"] = json!("Delete")
    }),
    ("custom-kinds-in-components", |r| {
        object(r, "PrometheusRule")["metadata"]["labels"]
            .as_object_mut()
            .expect("labels")
            .remove("leviathan.dev/component");
    }),
];

#[test]
fn a_good_render_passes_and_each_break_fails_exactly_its_check() {
    let good = good_render();
    assert_eq!(failing(&good), BTreeSet::new(), "the good render must pass");
    assert!(manifests::CHECKS.len() >= 20, "at least 20 manifest checks");
    let covered: BTreeSet<&str> = MUTATIONS.iter().map(|(id, _)| *id).collect();
    let all: BTreeSet<&str> = manifests::CHECKS.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(covered, all, "every check has its break");
    for (id, mutate) in MUTATIONS {
        let mut broken = Render {
            file: PathBuf::from("broken.yaml"),
            objects: good.objects.clone(),
        };
        mutate(&mut broken);
        assert_eq!(
            failing(&broken),
            BTreeSet::from([*id]),
            "breaking `{id}` must fail that check and only it"
        );
    }
}

#[test]
fn the_binary_checks_renders_and_the_registry_with_json_and_exit_codes() {
    let good = good_render();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("k3s.yaml");
    let text: String = good
        .objects
        .iter()
        .map(|o| format!("---\n{}\n", serde_json::to_string(o).expect("JSON")))
        .collect();
    std::fs::write(&file, text).expect("write");
    let registry = leviathan_tests::registry().to_path_buf();
    let run = |rendered: &Path, plugins: &Path| {
        Command::new(leviathan_tests::host_binary())
            .args(["check", "--json", "--rendered"])
            .arg(rendered)
            .arg("--plugin-dir")
            .arg(plugins)
            .output()
            .expect("leviathan-host runs")
    };
    let out = run(dir.path(), &registry);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let results: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(results.len() > 20, "{} checks", results.len());
    assert!(results.iter().all(|r| r["ok"] == true));
    assert!(results.iter().any(|r| r["id"] == "registry-valid"));

    // A hostile render: one bad field fails its check, named by file, object and field.
    let mut broken = good;
    object(&mut broken, "StatefulSet")["spec"]["replicas"] = json!(3);
    let text: String = broken
        .objects
        .iter()
        .map(|o| format!("---\n{}\n", serde_json::to_string(o).expect("JSON")))
        .collect();
    std::fs::write(&file, text).expect("write");
    let empty = tempfile::tempdir().expect("tempdir");
    let out = run(dir.path(), empty.path());
    assert_eq!(out.status.code(), Some(1));
    let failed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["ok"] == false)
        .collect();
    let ids: BTreeSet<&str> = failed.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["one-replica", "registry-valid"]));
    let replica = failed
        .iter()
        .find(|r| r["id"] == "one-replica")
        .expect("one-replica");
    assert_eq!(replica["findings"][0]["field"], "spec.replicas");
    assert_eq!(
        replica["findings"][0]["object"],
        "StatefulSet/leviathan-host"
    );
    assert!(
        replica["findings"][0]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("k3s.yaml"))
    );

    // Not YAML at all: a clear error naming the file, exit 1, nothing quoted.
    std::fs::write(&file, "kind: [unclosed\nsecret-value-xyz: {").expect("write");
    let out = run(dir.path(), &registry);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("k3s.yaml"), "{stderr}");
    assert!(!stderr.contains("secret-value-xyz"), "{stderr}");
}
