//! A rendered set of manifests (`kubectl kustomize` output) and the questions the
//! checks ask of it: its objects, the one pod template, its containers and flags.

use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Largest rendered file read.
const MAX_RENDER: u64 = 8 << 20;

/// The label that names the overlay a render came from.
pub const OVERLAY_LABEL: &str = "leviathan.dev/overlay";
/// The label that marks an object added by an optional component.
pub const COMPONENT_LABEL: &str = "leviathan.dev/component";
/// The annotation prefix that declares a Secret made outside the manifests, with
/// the keys it holds: `leviathan.dev/external-secret.<name>: key1,key2`.
pub const EXTERNAL_SECRET: &str = "leviathan.dev/external-secret.";

/// One rendered file, its objects in order.
pub struct Render {
    pub file: PathBuf,
    pub objects: Vec<Value>,
}

/// Why a render could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{file}: {message}")]
    Unreadable { file: String, message: String },
    #[error("{file}: document {index}: not YAML a manifest can be: {message}")]
    Yaml {
        file: String,
        index: usize,
        message: String,
    },
}

impl Render {
    /// Reads a rendered file (bounded; documents that are empty are skipped).
    pub fn read(file: &Path) -> Result<Render, RenderError> {
        let name = file.display().to_string();
        let unreadable = |message: String| RenderError::Unreadable {
            file: name.clone(),
            message,
        };
        let meta = std::fs::metadata(file).map_err(|e| unreadable(e.kind().to_string()))?;
        if !meta.is_file() {
            return Err(unreadable("not a regular file".into()));
        }
        if meta.len() > MAX_RENDER {
            return Err(unreadable(format!("larger than {MAX_RENDER} bytes")));
        }
        let text = std::fs::read_to_string(file).map_err(|e| unreadable(e.kind().to_string()))?;
        Render::parse(file, &text)
    }

    /// Parses the text of a render.
    pub fn parse(file: &Path, text: &str) -> Result<Render, RenderError> {
        let mut objects = Vec::new();
        for (index, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
            let value = Value::deserialize(doc).map_err(|e| RenderError::Yaml {
                file: file.display().to_string(),
                index: index + 1,
                message: e.location().map_or("malformed".to_string(), |l| {
                    format!("malformed at line {}", l.line())
                }),
            })?;
            if !value.is_null() {
                objects.push(value);
            }
        }
        Ok(Render {
            file: file.to_path_buf(),
            objects,
        })
    }

    /// The objects of `kind`.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    /// The object of `kind` named `name`.
    pub fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    /// The overlay the render came from (its objects' `leviathan.dev/overlay` label).
    pub fn overlay(&self) -> Option<&str> {
        self.objects
            .iter()
            .find_map(|o| o["metadata"]["labels"][OVERLAY_LABEL].as_str())
    }

    /// The host's StatefulSet, when there is exactly one.
    pub fn statefulset(&self) -> Option<&Value> {
        let mut all = self.of_kind("StatefulSet");
        let first = all.next()?;
        all.next().is_none().then_some(first)
    }

    /// The pod spec of the StatefulSet.
    pub fn pod(&self) -> Option<&Value> {
        self.statefulset()
            .map(|s| &s["spec"]["template"]["spec"])
            .filter(|p| p.is_object())
    }

    /// Every container of the pod (init containers too), with its field path.
    pub fn containers(&self) -> Vec<(String, &Value)> {
        let Some(pod) = self.pod() else {
            return Vec::new();
        };
        ["initContainers", "containers"]
            .iter()
            .flat_map(|list| {
                pod[*list]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(move |(i, c)| (format!("spec.template.spec.{list}[{i}]"), c))
            })
            .collect()
    }

    /// The main container: the one running `serve`, else the first.
    pub fn host_container(&self) -> Option<&Value> {
        let pod = self.pod()?;
        let list = pod["containers"].as_array()?;
        list.iter()
            .find(|c| args(c).first().is_some_and(|a| a == "serve"))
            .or_else(|| list.first())
    }

    /// A `serve` flag's value in the host container (`--flag=value` or `--flag value`).
    pub fn flag(&self, name: &str) -> Option<String> {
        let args = args(self.host_container()?);
        let prefix = format!("{name}=");
        args.iter().enumerate().find_map(|(i, a)| {
            if let Some(v) = a.strip_prefix(&prefix) {
                Some(v.to_string())
            } else if a == name {
                args.get(i + 1).cloned()
            } else {
                None
            }
        })
    }

    /// The mount of the host container whose path holds `file` (the longest match).
    pub fn mount_of(&self, file: &str) -> Option<&Value> {
        let container = self.host_container()?;
        container["volumeMounts"]
            .as_array()?
            .iter()
            .filter(|m| m["mountPath"].as_str().is_some_and(|p| under(file, p)))
            .max_by_key(|m| m["mountPath"].as_str().map_or(0, str::len))
    }

    /// The pod volume named `name`.
    pub fn volume(&self, name: &str) -> Option<&Value> {
        self.pod()?["volumes"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == name)
    }
}

/// A container's command arguments.
pub fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// Whether `path` is `dir` or below it.
pub fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
        || dir.is_empty()
}

/// `Kind/name` of an object, for messages.
pub fn describe(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}
