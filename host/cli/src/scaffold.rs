//! `plugins new`: a new executor crate from the template in `plugins/template/`
//! (embedded in the binary, so it works from any directory).

use anyhow::{Context, Result, bail};
use std::path::{Component, Path, PathBuf};

/// The template files: (path in the new crate, text with `{{…}}` placeholders).
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../plugins/template/Cargo.toml.tmpl"),
    ),
    (
        "plugin.toml",
        include_str!("../../../plugins/template/plugin.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../plugins/template/src/lib.rs.tmpl"),
    ),
    (
        ".cargo/config.toml",
        include_str!("../../../plugins/template/cargo/config.toml.tmpl"),
    ),
];

/// `to` relative to the directory `from` (both made absolute first).
fn relative(from: &Path, to: &Path) -> Result<PathBuf> {
    let abs = |p: &Path| -> Result<PathBuf> {
        let cwd = std::env::current_dir().context("current directory")?;
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        };
        // Lexical normalisation: the new crate's directory does not exist yet.
        let mut out = PathBuf::new();
        for c in joined.components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        Ok(out)
    };
    let (from, to) = (abs(from)?, abs(to)?);
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in from.components().skip(common) {
        rel.push("..");
    }
    for c in to.components().skip(common) {
        rel.push(c);
    }
    Ok(rel)
}

/// Creates the crate `name` handling `scope` in `dir`, depending on the SDK at `sdk`.
pub fn create(name: &str, scope: &str, dir: &Path, sdk: &Path) -> Result<()> {
    super::plugins::check_name(name)?;
    if scope.is_empty()
        || !scope
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        bail!("--scope `{scope}`: use a-z, 0-9, `-` and `_`");
    }
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "the guest SDK is not at {} (run from the leviathan-host checkout or pass --sdk PATH)",
            sdk.display()
        );
    }
    if dir.exists() {
        bail!("{} already exists; nothing was created", dir.display());
    }
    let sdk_path = relative(dir, sdk)?;
    let sdk_path = sdk_path.to_string_lossy().replace('\\', "/");
    let staging = tempfile::Builder::new()
        .prefix(".new-plugin-")
        .tempdir_in(
            dir.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .context("cannot create a staging directory next to the new crate")?;
    for (file, text) in TEMPLATE {
        let rendered = text
            .replace("{{name}}", name)
            .replace("{{crate_name}}", &name.replace('-', "_"))
            .replace("{{scope}}", scope)
            .replace("{{sdk_path}}", &sdk_path);
        let path = staging.path().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, rendered)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_directories() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a/sdk")).unwrap(),
            PathBuf::from("../../sdk")
        );
        assert_eq!(
            relative(Path::new("/a/plugins/x"), Path::new("/a/plugins/sdk")).unwrap(),
            PathBuf::from("../sdk")
        );
    }
}
