//! The invariants of a rendered deployment (ops/k8s): each a function from a render
//! to its problems, each problem naming the object and field.

use super::Problem;
use super::render::{COMPONENT_LABEL, EXTERNAL_SECRET, Render, describe, under};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// A check of a render.
pub type ManifestCheck = fn(&Render) -> Vec<Problem>;

/// Every manifest check: stable id, what it holds, the check.
pub const CHECKS: &[(&str, &str, ManifestCheck)] = &[
    (
        "namespace-restricted",
        "the namespace enforces the restricted Pod Security Standard",
        namespace_restricted,
    ),
    (
        "objects-in-namespace",
        "every namespaced object is in a namespace the render creates",
        objects_in_namespace,
    ),
    (
        "one-statefulset",
        "one StatefulSet runs the host; no Deployment, Job or CronJob",
        one_statefulset,
    ),
    (
        "one-replica",
        "the StatefulSet has exactly one replica (sled takes one writer)",
        one_replica,
    ),
    (
        "non-root",
        "the pod runs as non-root and no container overrides it",
        non_root,
    ),
    (
        "numeric-user",
        "numeric, non-zero runAsUser, runAsGroup and fsGroup",
        numeric_user,
    ),
    (
        "seccomp",
        "the pod's seccomp profile is RuntimeDefault",
        seccomp,
    ),
    (
        "no-privilege-escalation",
        "no container is privileged or may escalate",
        no_privilege_escalation,
    ),
    (
        "capabilities-dropped",
        "every container drops ALL capabilities and adds none",
        capabilities_dropped,
    ),
    (
        "read-only-root",
        "every container's root filesystem is read-only",
        read_only_root,
    ),
    (
        "writable-tmp-and-home",
        "/tmp and $HOME are writable volumes under a read-only root",
        writable_tmp_and_home,
    ),
    (
        "no-service-account-token",
        "the pod does not mount a service account token",
        no_service_account_token,
    ),
    (
        "image-pinned",
        "every image has a version tag or digest, never latest",
        image_pinned,
    ),
    (
        "pull-policy",
        "on k3s and kind the image is never pulled (IfNotPresent or Never)",
        pull_policy,
    ),
    (
        "resources",
        "every container has CPU and memory requests and a memory limit",
        resources,
    ),
    (
        "one-rwo-claim",
        "one ReadWriteOnce claim template with a storage request",
        one_rwo_claim,
    ),
    (
        "data-on-claim",
        "the event store and the work directory are on the claim",
        data_on_claim,
    ),
    (
        "references-resolve",
        "every Secret and ConfigMap the pod names exists or is declared external",
        references_resolve,
    ),
    (
        "one-secret",
        "one Secret name for every secret the pod reads",
        one_secret,
    ),
    (
        "no-subpath",
        "no mount uses subPath (a Secret update would not reach the pod)",
        no_subpath,
    ),
    (
        "secret-keys",
        "the tokens file and every token_file are keys of the mounted Secret",
        secret_keys,
    ),
    (
        "config-loads",
        "the configuration in the ConfigMap loads, with its policies",
        config_loads,
    ),
    (
        "selectors-match",
        "StatefulSet and Service selectors match the pod's labels",
        selectors_match,
    ),
    (
        "ports-named",
        "Service, Ingress and NetworkPolicy ports name declared ports",
        ports_named,
    ),
    (
        "probes",
        "startup and readiness on /readyz, liveness on /healthz, on declared ports",
        probes,
    ),
    (
        "shutdown-grace",
        "terminationGracePeriodSeconds exceeds serve's shutdown grace",
        shutdown_grace,
    ),
    (
        "network-policy",
        "a NetworkPolicy limits the pod: ingress to the API port, egress DNS and 443",
        network_policy,
    ),
    (
        "metrics-not-exposed",
        "no Ingress path reaches /metrics",
        metrics_not_exposed,
    ),
    (
        "retain-storage",
        "on k3s the claim's StorageClass keeps the volume (Retain)",
        retain_storage,
    ),
    (
        "custom-kinds-in-components",
        "custom resources come only from optional components",
        custom_kinds_in_components,
    ),
];

fn problem(
    object: impl Into<String>,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Problem {
    Problem {
        object: object.into(),
        field: field.into(),
        message: message.into(),
    }
}

/// The StatefulSet, or the one problem that there is not exactly one.
fn statefulset(r: &Render) -> Result<&Value, Vec<Problem>> {
    r.statefulset().ok_or_else(|| {
        vec![problem(
            "StatefulSet",
            "",
            "the render has no single StatefulSet",
        )]
    })
}

/// The StatefulSet's name, for messages.
fn sts_name(r: &Render) -> String {
    r.statefulset().map_or("StatefulSet".into(), describe)
}

fn namespace_restricted(r: &Render) -> Vec<Problem> {
    let namespaces: Vec<_> = r.of_kind("Namespace").collect();
    if namespaces.is_empty() {
        return vec![problem("Namespace", "", "the render creates no Namespace")];
    }
    namespaces
        .into_iter()
        .filter(|ns| ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] != "restricted")
        .map(|ns| {
            problem(
                describe(ns),
                "metadata.labels.pod-security.kubernetes.io/enforce",
                "must be `restricted`",
            )
        })
        .collect()
}

/// Kinds that belong to no namespace.
const CLUSTER_KINDS: &[&str] = &[
    "Namespace",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterSecretStore",
    "CustomResourceDefinition",
    "PersistentVolume",
    "IngressClass",
    "PriorityClass",
];

fn objects_in_namespace(r: &Render) -> Vec<Problem> {
    let created: BTreeSet<&str> = r
        .of_kind("Namespace")
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    r.objects
        .iter()
        .filter(|o| {
            !o["kind"]
                .as_str()
                .is_some_and(|k| CLUSTER_KINDS.contains(&k))
        })
        .filter_map(|o| match o["metadata"]["namespace"].as_str() {
            Some(ns) if created.contains(ns) => None,
            Some(ns) => Some(problem(
                describe(o),
                "metadata.namespace",
                format!("`{ns}` is not a namespace the render creates"),
            )),
            None => Some(problem(
                describe(o),
                "metadata.namespace",
                "missing: it would land in whatever namespace kubectl defaults to",
            )),
        })
        .collect()
}

fn one_statefulset(r: &Render) -> Vec<Problem> {
    let mut out = Vec::new();
    let count = r.of_kind("StatefulSet").count();
    if count != 1 {
        out.push(problem(
            "StatefulSet",
            "",
            format!("{count} StatefulSets; exactly one runs the host"),
        ));
    }
    for kind in [
        "Deployment",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
        "Pod",
    ] {
        for o in r.of_kind(kind) {
            out.push(problem(
                describe(o),
                "kind",
                "the host runs as one StatefulSet; no other workload",
            ));
        }
    }
    out
}

fn one_replica(r: &Render) -> Vec<Problem> {
    let sts = match statefulset(r) {
        Ok(s) => s,
        Err(p) => return p,
    };
    match sts["spec"]["replicas"].as_i64() {
        Some(1) => Vec::new(),
        other => vec![problem(
            describe(sts),
            "spec.replicas",
            format!(
                "must be 1, is {}",
                other.map_or("unset".into(), |n| n.to_string())
            ),
        )],
    }
}

fn pod_context(r: &Render) -> Result<&Value, Vec<Problem>> {
    let pod = r.pod().ok_or_else(|| {
        vec![problem(
            sts_name(r),
            "spec.template.spec",
            "no pod template",
        )]
    })?;
    Ok(&pod["securityContext"])
}

fn non_root(r: &Render) -> Vec<Problem> {
    let ctx = match pod_context(r) {
        Ok(c) => c,
        Err(p) => return p,
    };
    let mut out = Vec::new();
    if ctx["runAsNonRoot"] != true {
        out.push(problem(
            sts_name(r),
            "spec.template.spec.securityContext.runAsNonRoot",
            "must be true",
        ));
    }
    for (path, c) in r.containers() {
        if c["securityContext"]["runAsNonRoot"] == false {
            out.push(problem(
                sts_name(r),
                format!("{path}.securityContext.runAsNonRoot"),
                "must not be false",
            ));
        }
    }
    out
}

fn positive_id(v: &Value) -> bool {
    v.as_u64().is_some_and(|n| n > 0)
}

fn numeric_user(r: &Render) -> Vec<Problem> {
    let ctx = match pod_context(r) {
        Ok(c) => c,
        Err(p) => return p,
    };
    let mut out = Vec::new();
    for field in ["runAsUser", "runAsGroup", "fsGroup"] {
        if !positive_id(&ctx[field]) {
            out.push(problem(
                sts_name(r),
                format!("spec.template.spec.securityContext.{field}"),
                "must be a number above 0",
            ));
        }
    }
    for (path, c) in r.containers() {
        for field in ["runAsUser", "runAsGroup"] {
            let v = &c["securityContext"][field];
            if !v.is_null() && !positive_id(v) {
                out.push(problem(
                    sts_name(r),
                    format!("{path}.securityContext.{field}"),
                    "must be a number above 0",
                ));
            }
        }
    }
    out
}

fn seccomp(r: &Render) -> Vec<Problem> {
    let ctx = match pod_context(r) {
        Ok(c) => c,
        Err(p) => return p,
    };
    let mut out = Vec::new();
    if ctx["seccompProfile"]["type"] != "RuntimeDefault" {
        out.push(problem(
            sts_name(r),
            "spec.template.spec.securityContext.seccompProfile.type",
            "must be RuntimeDefault",
        ));
    }
    for (path, c) in r.containers() {
        let t = &c["securityContext"]["seccompProfile"]["type"];
        if !t.is_null() && t != "RuntimeDefault" && t != "Localhost" {
            out.push(problem(
                sts_name(r),
                format!("{path}.securityContext.seccompProfile.type"),
                "must not be Unconfined",
            ));
        }
    }
    out
}

/// A check over each container's security context.
fn each_container(
    r: &Render,
    check: impl Fn(&Value) -> Option<(&'static str, &'static str)>,
) -> Vec<Problem> {
    let containers = r.containers();
    if containers.is_empty() {
        return vec![problem(
            sts_name(r),
            "spec.template.spec.containers",
            "no containers",
        )];
    }
    containers
        .into_iter()
        .filter_map(|(path, c)| {
            check(c)
                .map(|(field, message)| problem(sts_name(r), format!("{path}.{field}"), message))
        })
        .collect()
}

fn no_privilege_escalation(r: &Render) -> Vec<Problem> {
    each_container(r, |c| {
        let s = &c["securityContext"];
        if s["privileged"] == true {
            Some(("securityContext.privileged", "must not be true"))
        } else if s["allowPrivilegeEscalation"] != false {
            Some(("securityContext.allowPrivilegeEscalation", "must be false"))
        } else {
            None
        }
    })
}

fn capabilities_dropped(r: &Render) -> Vec<Problem> {
    each_container(r, |c| {
        let caps = &c["securityContext"]["capabilities"];
        let drops_all = caps["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        if !drops_all {
            Some(("securityContext.capabilities.drop", "must contain ALL"))
        } else if caps["add"].as_array().is_some_and(|a| !a.is_empty()) {
            Some(("securityContext.capabilities.add", "must be empty"))
        } else {
            None
        }
    })
}

fn read_only_root(r: &Render) -> Vec<Problem> {
    each_container(r, |c| {
        (c["securityContext"]["readOnlyRootFilesystem"] != true)
            .then_some(("securityContext.readOnlyRootFilesystem", "must be true"))
    })
}

fn writable_tmp_and_home(r: &Render) -> Vec<Problem> {
    let Some(c) = r.host_container() else {
        return vec![problem(
            sts_name(r),
            "spec.template.spec.containers",
            "no host container",
        )];
    };
    let env = |name: &str| {
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
    };
    let mut out = Vec::new();
    let mut wanted = vec![("/tmp".to_string(), "volumeMounts (/tmp)")];
    match env("HOME") {
        Some(home) => wanted.push((home.to_string(), "env.HOME")),
        None => out.push(problem(
            sts_name(r),
            "env.HOME",
            "HOME must be set to a writable volume",
        )),
    }
    if let Some(tmp) = env("TMPDIR") {
        wanted.push((tmp.to_string(), "env.TMPDIR"));
    }
    for (dir, field) in wanted {
        let writable = r.mount_of(&dir).is_some_and(|m| {
            m["readOnly"] != true
                && m["name"].as_str().is_some_and(|n| {
                    r.volume(n).is_some_and(|v| v.get("emptyDir").is_some())
                        || claim_names(r).contains(n)
                })
        });
        if !writable {
            out.push(problem(
                sts_name(r),
                field,
                format!("`{dir}` is not on a writable emptyDir or the claim"),
            ));
        }
    }
    out
}

fn no_service_account_token(r: &Render) -> Vec<Problem> {
    match r.pod() {
        Some(pod) if pod["automountServiceAccountToken"] == false => Vec::new(),
        _ => vec![problem(
            sts_name(r),
            "spec.template.spec.automountServiceAccountToken",
            "must be false",
        )],
    }
}

/// The tag of an image reference (`None` without one), and whether it has a digest.
fn image_tag(image: &str) -> (Option<&str>, bool) {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    (last.split_once(':').map(|(_, t)| t), digest)
}

fn image_pinned(r: &Render) -> Vec<Problem> {
    each_container(r, |c| {
        let image = c["image"].as_str().unwrap_or("");
        match image_tag(image) {
            _ if image.is_empty() => Some(("image", "missing")),
            (Some("latest"), _) => Some(("image", "must not be `latest`")),
            (None, false) => Some(("image", "needs a version tag or a digest")),
            _ => None,
        }
    })
}

fn pull_policy(r: &Render) -> Vec<Problem> {
    if !matches!(r.overlay(), Some("k3s" | "kind")) {
        return Vec::new();
    }
    each_container(r, |c| match c["imagePullPolicy"].as_str() {
        Some("IfNotPresent" | "Never") => None,
        _ => Some((
            "imagePullPolicy",
            "must be IfNotPresent or Never (the image is imported, not pulled)",
        )),
    })
}

fn resources(r: &Render) -> Vec<Problem> {
    each_container(r, |c| {
        let res = &c["resources"];
        if res["requests"]["cpu"].is_null() || res["requests"]["memory"].is_null() {
            Some(("resources.requests", "needs cpu and memory"))
        } else if res["limits"]["memory"].is_null() {
            Some(("resources.limits.memory", "needs a memory limit"))
        } else {
            None
        }
    })
}

/// The names of the StatefulSet's claim templates.
fn claim_names(r: &Render) -> BTreeSet<&str> {
    r.statefulset()
        .and_then(|s| s["spec"]["volumeClaimTemplates"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .collect()
}

fn one_rwo_claim(r: &Render) -> Vec<Problem> {
    let sts = match statefulset(r) {
        Ok(s) => s,
        Err(p) => return p,
    };
    let claims = sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if claims.len() != 1 {
        return vec![problem(
            describe(sts),
            "spec.volumeClaimTemplates",
            format!("{} claim templates; exactly one", claims.len()),
        )];
    }
    let spec = &claims[0]["spec"];
    let mut out = Vec::new();
    if spec["accessModes"] != serde_json::json!(["ReadWriteOnce"]) {
        out.push(problem(
            describe(sts),
            "spec.volumeClaimTemplates[0].spec.accessModes",
            "must be [ReadWriteOnce]",
        ));
    }
    if spec["resources"]["requests"]["storage"].is_null() {
        out.push(problem(
            describe(sts),
            "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
            "missing",
        ));
    }
    out
}

fn data_on_claim(r: &Render) -> Vec<Problem> {
    let claims = claim_names(r);
    let mut out = Vec::new();
    let data = r.flag("--data-dir");
    let work = r
        .flag("--work-dir")
        .or_else(|| data.as_ref().map(|d| format!("{d}-work")));
    for (flag, value) in [("--data-dir", data), ("--work-dir", work)] {
        let Some(dir) = value else {
            out.push(problem(sts_name(r), format!("args {flag}"), "missing"));
            continue;
        };
        let on_claim = r
            .mount_of(&dir)
            .and_then(|m| m["name"].as_str())
            .is_some_and(|n| claims.contains(n));
        if !on_claim {
            out.push(problem(
                sts_name(r),
                format!("args {flag}"),
                format!("`{dir}` is not under the claim's mount"),
            ));
        }
    }
    out
}

/// Every Secret and ConfigMap the pod names: (kind, name, field).
fn references(r: &Render) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    let Some(pod) = r.pod() else {
        return out;
    };
    for (i, v) in pod["volumes"].as_array().into_iter().flatten().enumerate() {
        if let Some(n) = v["secret"]["secretName"].as_str() {
            out.push((
                "Secret",
                n.to_string(),
                format!("spec.template.spec.volumes[{i}].secret.secretName"),
            ));
        }
        if let Some(n) = v["configMap"]["name"].as_str() {
            out.push((
                "ConfigMap",
                n.to_string(),
                format!("spec.template.spec.volumes[{i}].configMap.name"),
            ));
        }
        for (j, s) in v["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(n) = s["secret"]["name"].as_str() {
                out.push((
                    "Secret",
                    n.to_string(),
                    format!("spec.template.spec.volumes[{i}].projected.sources[{j}].secret.name"),
                ));
            }
            if let Some(n) = s["configMap"]["name"].as_str() {
                out.push((
                    "ConfigMap",
                    n.to_string(),
                    format!(
                        "spec.template.spec.volumes[{i}].projected.sources[{j}].configMap.name"
                    ),
                ));
            }
        }
    }
    for (path, c) in r.containers() {
        for (i, e) in c["env"].as_array().into_iter().flatten().enumerate() {
            if let Some(n) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                out.push((
                    "Secret",
                    n.to_string(),
                    format!("{path}.env[{i}].valueFrom.secretKeyRef.name"),
                ));
            }
            if let Some(n) = e["valueFrom"]["configMapKeyRef"]["name"].as_str() {
                out.push((
                    "ConfigMap",
                    n.to_string(),
                    format!("{path}.env[{i}].valueFrom.configMapKeyRef.name"),
                ));
            }
        }
        for (i, e) in c["envFrom"].as_array().into_iter().flatten().enumerate() {
            if let Some(n) = e["secretRef"]["name"].as_str() {
                out.push((
                    "Secret",
                    n.to_string(),
                    format!("{path}.envFrom[{i}].secretRef.name"),
                ));
            }
            if let Some(n) = e["configMapRef"]["name"].as_str() {
                out.push((
                    "ConfigMap",
                    n.to_string(),
                    format!("{path}.envFrom[{i}].configMapRef.name"),
                ));
            }
        }
    }
    out
}

/// Each Secret the render provides or declares, with the keys it holds.
fn secrets(r: &Render) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in r.of_kind("Secret") {
        if let Some(name) = s["metadata"]["name"].as_str() {
            let keys = out.entry(name.to_string()).or_default();
            for field in ["data", "stringData"] {
                if let Some(map) = s[field].as_object() {
                    keys.extend(map.keys().cloned());
                }
            }
        }
    }
    for e in r.of_kind("ExternalSecret") {
        let name = e["spec"]["target"]["name"]
            .as_str()
            .or(e["metadata"]["name"].as_str());
        if let Some(name) = name {
            let keys = out.entry(name.to_string()).or_default();
            for d in e["spec"]["data"].as_array().into_iter().flatten() {
                if let Some(k) = d["secretKey"].as_str() {
                    keys.insert(k.to_string());
                }
            }
        }
    }
    if let Some(annotations) = r
        .statefulset()
        .and_then(|s| s["metadata"]["annotations"].as_object())
    {
        for (key, value) in annotations {
            if let Some(name) = key.strip_prefix(EXTERNAL_SECRET) {
                out.entry(name.to_string()).or_default().extend(
                    value
                        .as_str()
                        .unwrap_or("")
                        .split(',')
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty()),
                );
            }
        }
    }
    out
}

fn references_resolve(r: &Render) -> Vec<Problem> {
    let secrets = secrets(r);
    references(r)
        .into_iter()
        .filter(|(kind, name, _)| match *kind {
            "Secret" => !secrets.contains_key(name),
            _ => r.named("ConfigMap", name).is_none(),
        })
        .map(|(kind, name, field)| {
            problem(
                sts_name(r),
                field,
                format!("{kind} `{name}` is neither in the render nor declared ({EXTERNAL_SECRET}{name})"),
            )
        })
        .collect()
}

fn one_secret(r: &Render) -> Vec<Problem> {
    let names: BTreeSet<String> = references(r)
        .into_iter()
        .filter(|(kind, _, _)| *kind == "Secret")
        .map(|(_, name, _)| name)
        .collect();
    if names.len() > 1 {
        let list: Vec<_> = names.into_iter().collect();
        return vec![problem(
            sts_name(r),
            "spec.template.spec",
            format!(
                "secrets from {} names ({}); use one",
                list.len(),
                list.join(", ")
            ),
        )];
    }
    Vec::new()
}

fn no_subpath(r: &Render) -> Vec<Problem> {
    let mut out = Vec::new();
    for (path, c) in r.containers() {
        for (i, m) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for field in ["subPath", "subPathExpr"] {
                if !m[field].is_null() {
                    out.push(problem(
                        sts_name(r),
                        format!("{path}.volumeMounts[{i}].{field}"),
                        "a subPath mount never sees updates",
                    ));
                }
            }
        }
    }
    out
}

/// The Secret and key a file path inside the pod reads, when it is on a Secret mount.
fn secret_key_of(r: &Render, file: &str) -> Result<(String, String), String> {
    let mount = r
        .mount_of(file)
        .ok_or_else(|| format!("`{file}` is on no mount"))?;
    let volume = mount["name"]
        .as_str()
        .and_then(|n| r.volume(n))
        .ok_or_else(|| format!("`{file}`'s mount has no volume"))?;
    let secret = volume["secret"]["secretName"]
        .as_str()
        .ok_or_else(|| format!("`{file}` is not on a Secret mount"))?;
    let dir = mount["mountPath"].as_str().unwrap_or("");
    let key = file[dir.trim_end_matches('/').len()..].trim_start_matches('/');
    if key.contains('/') || key.is_empty() {
        return Err(format!(
            "`{file}` is not a key directly under the Secret mount `{dir}`"
        ));
    }
    Ok((secret.to_string(), key.to_string()))
}

/// The configuration the render's ConfigMap carries, written out and loaded.
fn rendered_config(
    r: &Render,
) -> Result<Option<leviathan_domain::config::Config>, (String, String)> {
    let Some(config_file) = r.flag("--config") else {
        return Ok(None);
    };
    let mount = r.mount_of(&config_file).ok_or((
        "args --config".to_string(),
        format!("`{config_file}` is on no mount"),
    ))?;
    let map_name = mount["name"]
        .as_str()
        .and_then(|n| r.volume(n))
        .and_then(|v| v["configMap"]["name"].as_str())
        .ok_or((
            "args --config".to_string(),
            format!("`{config_file}` is not on a ConfigMap mount"),
        ))?;
    let map = r.named("ConfigMap", map_name).ok_or((
        "args --config".to_string(),
        format!("ConfigMap `{map_name}` is not in the render"),
    ))?;
    let data = map["data"].as_object().cloned().unwrap_or_default();
    let dir = mount["mountPath"].as_str().unwrap_or("");
    let key = config_file[dir.trim_end_matches('/').len()..].trim_start_matches('/');
    if !data.contains_key(key) {
        return Err((
            format!("ConfigMap/{map_name} data"),
            format!("has no key `{key}` for --config"),
        ));
    }
    let tmp = tempfile::tempdir()
        .map_err(|e| ("--config".to_string(), format!("a scratch directory: {e}")))?;
    for (k, v) in &data {
        if k.contains('/') || k.starts_with('.') {
            continue;
        }
        std::fs::write(tmp.path().join(k), v.as_str().unwrap_or(""))
            .map_err(|e| ("--config".to_string(), format!("a scratch file: {e}")))?;
    }
    leviathan_domain::config::Config::load(&tmp.path().join(key))
        .map(Some)
        .map_err(|e| {
            (
                format!("ConfigMap/{map_name} data.{key}"),
                e.to_string().replace(&tmp.path().display().to_string(), ""),
            )
        })
}

fn config_loads(r: &Render) -> Vec<Problem> {
    match rendered_config(r) {
        Ok(Some(_)) => Vec::new(),
        Ok(None) => vec![problem(
            sts_name(r),
            "args --config",
            "serve runs without a configuration, so no scheduler",
        )],
        Err((object, message)) => vec![problem(object, "", message)],
    }
}

fn secret_keys(r: &Render) -> Vec<Problem> {
    let secrets = secrets(r);
    let mut files = Vec::new();
    match r.flag("--tokens-file") {
        Some(f) => files.push(("args --tokens-file".to_string(), f)),
        None => return vec![problem(sts_name(r), "args --tokens-file", "missing")],
    }
    if let Ok(Some(config)) = rendered_config(r) {
        for t in &config.targets {
            if let leviathan_domain::config::Forge::GitHub {
                token: leviathan_domain::config::TokenSource::File(path),
                ..
            } = &t.forge
            {
                files.push((
                    format!("target `{}` token_file", t.id),
                    path.display().to_string(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (field, file) in files {
        match secret_key_of(r, &file) {
            Err(message) => out.push(problem(sts_name(r), field, message)),
            Ok((secret, key)) => {
                let known = secrets.get(&secret);
                if !known.is_some_and(|keys| keys.contains(&key)) {
                    out.push(problem(
                        sts_name(r),
                        field,
                        format!("Secret `{secret}` does not provide the key `{key}`"),
                    ));
                }
            }
        }
    }
    out
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| &labels[k] == v))
}

fn selectors_match(r: &Render) -> Vec<Problem> {
    let sts = match statefulset(r) {
        Ok(s) => s,
        Err(p) => return p,
    };
    let labels = &sts["spec"]["template"]["metadata"]["labels"];
    let mut out = Vec::new();
    if !selects(&sts["spec"]["selector"]["matchLabels"], labels) {
        out.push(problem(
            describe(sts),
            "spec.selector.matchLabels",
            "does not select the pod template's labels",
        ));
    }
    match sts["spec"]["serviceName"].as_str() {
        Some(name) if r.named("Service", name).is_some() => {}
        _ => out.push(problem(
            describe(sts),
            "spec.serviceName",
            "names no Service in the render",
        )),
    }
    for svc in r.of_kind("Service") {
        if !selects(&svc["spec"]["selector"], labels) {
            out.push(problem(
                describe(svc),
                "spec.selector",
                "does not select the host's pods",
            ));
        }
    }
    out
}

/// The host container's declared ports: names and numbers.
fn declared_ports(r: &Render) -> (BTreeSet<String>, BTreeSet<i64>) {
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    if let Some(c) = r.host_container() {
        for p in c["ports"].as_array().into_iter().flatten() {
            if let Some(n) = p["name"].as_str() {
                names.insert(n.to_string());
            }
            if let Some(n) = p["containerPort"].as_i64() {
                numbers.insert(n);
            }
        }
    }
    (names, numbers)
}

/// Whether a port reference (name or number) is one of the declared ports.
fn port_declared(port: &Value, ports: &(BTreeSet<String>, BTreeSet<i64>)) -> bool {
    match port {
        Value::String(name) => ports.0.contains(name),
        Value::Number(n) => n.as_i64().is_some_and(|n| ports.1.contains(&n)),
        _ => false,
    }
}

fn ports_named(r: &Render) -> Vec<Problem> {
    let ports = declared_ports(r);
    let mut out = Vec::new();
    for svc in r.of_kind("Service") {
        for (i, p) in svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if p["name"].is_null() {
                out.push(problem(
                    describe(svc),
                    format!("spec.ports[{i}].name"),
                    "ports are named",
                ));
            }
            let target = if p["targetPort"].is_null() {
                &p["port"]
            } else {
                &p["targetPort"]
            };
            if !port_declared(target, &ports) {
                out.push(problem(
                    describe(svc),
                    format!("spec.ports[{i}].targetPort"),
                    "is not a port the container declares",
                ));
            }
        }
    }
    for ing in r.of_kind("Ingress") {
        for (i, rule) in ing["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, path) in rule["http"]["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let backend = &path["backend"]["service"];
                let field = format!("spec.rules[{i}].http.paths[{j}].backend.service");
                let Some(svc) = backend["name"].as_str().and_then(|n| r.named("Service", n)) else {
                    out.push(problem(
                        describe(ing),
                        format!("{field}.name"),
                        "names no Service in the render",
                    ));
                    continue;
                };
                let port = &backend["port"];
                let found = svc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| {
                        (port["name"].is_string() && p["name"] == port["name"])
                            || (port["number"].is_number() && p["port"] == port["number"])
                    });
                if !found {
                    out.push(problem(
                        describe(ing),
                        format!("{field}.port"),
                        "is not a port of the Service",
                    ));
                }
            }
        }
    }
    for np in r.of_kind("NetworkPolicy") {
        for (i, rule) in np["spec"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, p) in rule["ports"].as_array().into_iter().flatten().enumerate() {
                if !port_declared(&p["port"], &ports) {
                    out.push(problem(
                        describe(np),
                        format!("spec.ingress[{i}].ports[{j}].port"),
                        "is not a port the container declares",
                    ));
                }
            }
        }
    }
    out
}

fn probes(r: &Render) -> Vec<Problem> {
    let Some(c) = r.host_container() else {
        return vec![problem(
            sts_name(r),
            "spec.template.spec.containers",
            "no host container",
        )];
    };
    let ports = declared_ports(r);
    let mut out = Vec::new();
    for (probe, path) in [
        ("startupProbe", "/readyz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ] {
        let get = &c[probe]["httpGet"];
        if get.is_null() {
            out.push(problem(
                sts_name(r),
                format!("containers.{probe}.httpGet"),
                format!("missing (GET {path})"),
            ));
            continue;
        }
        if get["path"] != path {
            out.push(problem(
                sts_name(r),
                format!("containers.{probe}.httpGet.path"),
                format!("must be {path}"),
            ));
        }
        if !port_declared(&get["port"], &ports) {
            out.push(problem(
                sts_name(r),
                format!("containers.{probe}.httpGet.port"),
                "is not a port the container declares",
            ));
        }
    }
    out
}

fn shutdown_grace(r: &Render) -> Vec<Problem> {
    let grace: u64 = r
        .flag("--shutdown-grace-secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    match r
        .pod()
        .and_then(|p| p["terminationGracePeriodSeconds"].as_u64())
    {
        Some(t) if t > grace => Vec::new(),
        other => vec![problem(
            sts_name(r),
            "spec.template.spec.terminationGracePeriodSeconds",
            format!(
                "{} must exceed serve's --shutdown-grace-secs ({grace})",
                other.map_or("unset (30)".into(), |t| t.to_string())
            ),
        )],
    }
}

fn network_policy(r: &Render) -> Vec<Problem> {
    let labels = r
        .statefulset()
        .map(|s| s["spec"]["template"]["metadata"]["labels"].clone())
        .unwrap_or(Value::Null);
    let ports = declared_ports(r);
    let covering: Vec<&Value> = r
        .of_kind("NetworkPolicy")
        .filter(|np| {
            let sel = &np["spec"]["podSelector"]["matchLabels"];
            sel.is_null() || sel.as_object().is_some_and(|m| m.is_empty()) || selects(sel, &labels)
        })
        .collect();
    if covering.is_empty() {
        return vec![problem(
            "NetworkPolicy",
            "spec.podSelector",
            "no NetworkPolicy selects the host's pods",
        )];
    }
    let mut out = Vec::new();
    for np in covering {
        let spec = &np["spec"];
        let types: BTreeSet<&str> = spec["policyTypes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !types.contains("Ingress") || !types.contains("Egress") {
            out.push(problem(
                describe(np),
                "spec.policyTypes",
                "must hold Ingress and Egress",
            ));
        }
        for (i, rule) in spec["ingress"].as_array().into_iter().flatten().enumerate() {
            let rule_ports = rule["ports"].as_array().map_or(&[][..], Vec::as_slice);
            if rule_ports.is_empty()
                || rule_ports
                    .iter()
                    .any(|p| !port_declared(&p["port"], &ports))
            {
                out.push(problem(
                    describe(np),
                    format!("spec.ingress[{i}].ports"),
                    "ingress is allowed to the API port only",
                ));
            }
        }
        for (i, rule) in spec["egress"].as_array().into_iter().flatten().enumerate() {
            let rule_ports = rule["ports"].as_array().map_or(&[][..], Vec::as_slice);
            if rule_ports.is_empty()
                || rule_ports
                    .iter()
                    .any(|p| !matches!(p["port"].as_i64(), Some(53 | 443)))
            {
                out.push(problem(
                    describe(np),
                    format!("spec.egress[{i}].ports"),
                    "egress is allowed to DNS (53) and HTTPS (443) only",
                ));
            }
        }
    }
    out
}

fn metrics_not_exposed(r: &Render) -> Vec<Problem> {
    let mut out = Vec::new();
    for ing in r.of_kind("Ingress") {
        if !ing["spec"]["defaultBackend"].is_null() {
            out.push(problem(
                describe(ing),
                "spec.defaultBackend",
                "a default backend reaches /metrics",
            ));
        }
        for (i, rule) in ing["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for (j, p) in rule["http"]["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let path = p["path"].as_str().unwrap_or("/");
                let reaches = match p["pathType"].as_str() {
                    Some("Exact") => path == "/metrics",
                    // Prefix matches by path element; ImplementationSpecific may match as a
                    // plain prefix, so it is read that way.
                    Some("Prefix") => under("/metrics", path),
                    _ => "/metrics".starts_with(path),
                };
                if reaches {
                    out.push(problem(
                        describe(ing),
                        format!("spec.rules[{i}].http.paths[{j}].path"),
                        format!("`{path}` reaches /metrics"),
                    ));
                }
            }
        }
    }
    out
}

fn retain_storage(r: &Render) -> Vec<Problem> {
    if r.overlay() != Some("k3s") {
        return Vec::new();
    }
    let sts = match statefulset(r) {
        Ok(s) => s,
        Err(p) => return p,
    };
    let field = "spec.volumeClaimTemplates[0].spec.storageClassName";
    let Some(class) = sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"].as_str()
    else {
        return vec![problem(
            describe(sts),
            field,
            "unset: the cluster default deletes the volume with the claim",
        )];
    };
    match r.named("StorageClass", class) {
        Some(sc) if sc["reclaimPolicy"] == "Retain" => Vec::new(),
        Some(sc) => vec![problem(describe(sc), "reclaimPolicy", "must be Retain")],
        None => vec![problem(
            describe(sts),
            field,
            format!("StorageClass `{class}` is not in the render"),
        )],
    }
}

/// API groups a bare cluster serves.
const CORE_GROUPS: &[&str] = &[
    "v1",
    "apps/v1",
    "batch/v1",
    "networking.k8s.io/v1",
    "storage.k8s.io/v1",
    "policy/v1",
    "rbac.authorization.k8s.io/v1",
    "scheduling.k8s.io/v1",
];

fn custom_kinds_in_components(r: &Render) -> Vec<Problem> {
    r.objects
        .iter()
        .filter(|o| {
            !o["apiVersion"]
                .as_str()
                .is_some_and(|v| CORE_GROUPS.contains(&v))
        })
        .filter(|o| o["metadata"]["labels"][COMPONENT_LABEL].is_null())
        .map(|o| {
            problem(
                describe(o),
                "apiVersion",
                format!(
                    "{} needs a CRD; it belongs in an optional component (label {COMPONENT_LABEL})",
                    o["apiVersion"].as_str().unwrap_or("?")
                ),
            )
        })
        .collect()
}
