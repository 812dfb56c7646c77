//! Helpers for reading a task's `allowed_paths`.

use crate::ExecError;

/// True when an allowed path names a directory: a trailing `/`, or a last
/// component without an extension.
pub fn is_directory(path: &str) -> bool {
    if path.ends_with('/') {
        return true;
    }
    let last = path.rsplit('/').next().unwrap_or(path);
    !last.contains('.')
}

/// True when `path` names a file with extension `ext` (without the dot).
pub fn has_extension(path: &str, ext: &str) -> bool {
    !path.ends_with('/')
        && path
            .rsplit('/')
            .next()
            .and_then(|last| last.rsplit_once('.'))
            .is_some_and(|(stem, e)| !stem.is_empty() && e.eq_ignore_ascii_case(ext))
}

/// Joins a directory allowed path and a file name.
pub fn join(dir: &str, file: &str) -> String {
    let dir = dir.trim_end_matches('/');
    let mut joined = String::with_capacity(dir.len() + 1 + file.len());
    joined.push_str(dir);
    joined.push('/');
    joined.push_str(file);
    joined
}

/// Rejects empty, absolute and `..`-bearing paths before they reach the filesystem.
pub fn check_relative(rel: &str) -> Result<(), ExecError> {
    if rel.is_empty() || rel.starts_with('/') || rel.contains('\\') {
        return Err(ExecError::InvalidTask(format!(
            "`{rel}` is not a relative repository path"
        )));
    }
    if rel.split('/').any(|c| c == ".." || c == ".") {
        return Err(ExecError::InvalidTask(format!(
            "`{rel}` contains `.` or `..` components"
        )));
    }
    Ok(())
}

/// Picks the single file in `allowed` with extension `ext`, or builds
/// `<first directory>/<file_name>`. Several matching files, or no usable entry, is an
/// invalid task.
pub fn choose_output(allowed: &[String], ext: &str, file_name: &str) -> Result<String, ExecError> {
    let files: Vec<&String> = allowed.iter().filter(|p| has_extension(p, ext)).collect();
    match files.as_slice() {
        [one] => return Ok(one.to_string()),
        [] => {}
        many => {
            let list: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
            return Err(ExecError::InvalidTask(format!(
                "allowed_paths names {} `.{ext}` files ({}); exactly one is needed",
                many.len(),
                list.join(", ")
            )));
        }
    }
    if allowed.is_empty() {
        return Err(ExecError::InvalidTask(
            "allowed_paths is empty: there is nowhere to write".into(),
        ));
    }
    match allowed.iter().find(|p| is_directory(p)) {
        Some(dir) => Ok(join(dir, file_name)),
        None => Err(ExecError::InvalidTask(format!(
            "allowed_paths holds no directory and no `.{ext}` file: {}",
            allowed.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn directory_detection() {
        assert!(is_directory("docs/"));
        assert!(is_directory("docs"));
        assert!(is_directory("docs/runbooks"));
        assert!(!is_directory("docs/README.md"));
    }

    #[test]
    fn extension_detection_needs_a_stem() {
        assert!(has_extension("docs/a.md", "md"));
        assert!(has_extension("A.MD", "md"));
        assert!(!has_extension("docs/.md", "md"));
        assert!(!has_extension("docs.md/", "md"));
        assert!(!has_extension("docs/a.mdx", "md"));
    }

    #[test]
    fn single_file_wins() {
        let out = choose_output(&v(&["docs/", "docs/guide.md"]), "md", "X.md").unwrap();
        assert_eq!(out, "docs/guide.md");
    }

    #[test]
    fn several_files_are_ambiguous() {
        let err = choose_output(&v(&["a.md", "b.md"]), "md", "X.md").unwrap_err();
        assert!(matches!(err, ExecError::InvalidTask(m) if m.contains("a.md, b.md")));
    }

    #[test]
    fn first_directory_is_used() {
        let out = choose_output(&v(&["docs/api/", "docs/"]), "md", "X.md").unwrap();
        assert_eq!(out, "docs/api/X.md");
    }

    #[test]
    fn empty_is_invalid() {
        assert!(matches!(
            choose_output(&[], "md", "X.md"),
            Err(ExecError::InvalidTask(_))
        ));
    }

    #[test]
    fn relative_paths_only() {
        assert!(check_relative("docs/a.md").is_ok());
        assert!(check_relative("/etc/passwd").is_err());
        assert!(check_relative("docs/../x").is_err());
        assert!(check_relative("").is_err());
    }
}
