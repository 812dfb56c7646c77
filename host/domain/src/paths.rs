//! Repository-relative paths and the component-wise rules that decide what a task may
//! touch. `docs/` never matches `docs2/`; `..`, absolute paths and `.git` are refused.

use std::fmt;

/// Why a path string is not an acceptable repository-relative path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` is empty")]
    Empty(String),
    #[error("`{0}` is absolute; paths must be relative to the repository root")]
    Absolute(String),
    #[error("`{0}` contains `..`")]
    ParentComponent(String),
    #[error("`{0}` is inside `.git`, which is never writable")]
    GitDir(String),
    #[error("`{0}` contains a backslash or a control character")]
    BadCharacter(String),
    #[error(
        "`{0}` is a glob pattern; allowed paths are directories or files, with at most a trailing `/**` or `/*` (read as the directory)"
    )]
    Glob(String),
}

/// A normalised repository-relative path: `/`-separated components, none of them
/// empty, `.`, `..` or `.git`. `is_dir` records a trailing `/` in the original text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath {
    components: Vec<String>,
    is_dir: bool,
}

impl RepoPath {
    /// Parses a literal repository path (a file the host or an executor reads or
    /// writes): every character is part of a name, `*` included.
    pub fn parse(text: &str) -> Result<RepoPath, PathError> {
        let raw = text.trim();
        if raw.starts_with('~') {
            return Err(PathError::Absolute(text.into()));
        }
        RepoPath::from_body(text, raw, false)
    }

    /// Parses a path as written in a backlog's `allowed_paths` or a policy's
    /// `allowed_path_prefixes`. A trailing `/**` or `/*` is read as the directory
    /// (`docs/**` is `docs/`), for host and executor alike; any other glob character
    /// (`*`, `?`, `[`, `]`, `{`, `}`) is refused rather than taken literally.
    pub fn parse_allowed(text: &str) -> Result<RepoPath, PathError> {
        let raw = text.trim();
        if raw.starts_with('~') {
            return Err(PathError::Absolute(text.into()));
        }
        let mut body = raw;
        let mut is_dir = false;
        for suffix in ["/**", "/*"] {
            if let Some(stripped) = body.strip_suffix(suffix) {
                body = stripped;
                is_dir = true;
                break;
            }
        }
        if body.contains(['*', '?', '[', ']', '{', '}']) {
            return Err(PathError::Glob(text.into()));
        }
        RepoPath::from_body(text, body, is_dir)
    }

    fn from_body(text: &str, body: &str, mut is_dir: bool) -> Result<RepoPath, PathError> {
        if body.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(PathError::BadCharacter(text.into()));
        }
        if body.starts_with('/') || has_drive_letter(body) {
            return Err(PathError::Absolute(text.into()));
        }
        if body.ends_with('/') {
            is_dir = true;
        }
        let mut components = Vec::new();
        for c in body.split('/') {
            match c {
                "" | "." => continue,
                ".." => return Err(PathError::ParentComponent(text.into())),
                c if c.eq_ignore_ascii_case(".git") => return Err(PathError::GitDir(text.into())),
                c => components.push(c.to_string()),
            }
        }
        if components.is_empty() {
            return Err(PathError::Empty(text.into()));
        }
        Ok(RepoPath { components, is_dir })
    }

    /// The path's components.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// True when written with a trailing `/` (or a glob suffix).
    pub fn is_dir(&self) -> bool {
        self.is_dir
    }

    /// True when this path names a directory: written with a trailing `/`, or a last
    /// component without an extension (the executors' rule too).
    pub fn looks_like_dir(&self) -> bool {
        self.is_dir
            || self
                .components
                .last()
                .is_some_and(|last| !last.contains('.'))
    }

    /// True when `other` is this path or lies below it, compared component by
    /// component.
    pub fn covers(&self, other: &RepoPath) -> bool {
        other.components.len() >= self.components.len()
            && self
                .components
                .iter()
                .zip(&other.components)
                .all(|(a, b)| a == b)
    }

    /// The parent directory, or `None` at the top level.
    pub fn parent(&self) -> Option<RepoPath> {
        if self.components.len() <= 1 {
            return None;
        }
        Some(RepoPath {
            components: self.components[..self.components.len() - 1].to_vec(),
            is_dir: true,
        })
    }

    /// The path as a `/`-separated string without a trailing slash.
    pub fn as_string(&self) -> String {
        self.components.join("/")
    }

    /// The path below `base` on the host filesystem.
    pub fn under(&self, base: &std::path::Path) -> std::path::PathBuf {
        let mut p = base.to_path_buf();
        for c in &self.components {
            p.push(c);
        }
        p
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())?;
        if self.is_dir {
            f.write_str("/")?;
        }
        Ok(())
    }
}

fn has_drive_letter(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// True when some prefix in `prefixes` covers `path`.
pub fn covered_by_any(prefixes: &[RepoPath], path: &RepoPath) -> bool {
    prefixes.iter().any(|p| p.covers(path))
}

/// Drops every path that another path in the list already covers, keeping order.
pub fn outermost(paths: &[RepoPath]) -> Vec<RepoPath> {
    let mut kept: Vec<RepoPath> = Vec::new();
    let mut sorted = paths.to_vec();
    sorted.sort_by_key(|p| p.components.len());
    for p in sorted {
        if !kept.iter().any(|k| k.covers(&p)) {
            kept.push(p);
        }
    }
    kept
}

/// The part of `paths` that `prefixes` cover: each path a prefix covers, and each
/// prefix that lies below a path (a path `src/` under a prefix list `[src/lib/]` is
/// narrowed to `src/lib/`). Outermost first, without repeats.
pub fn narrow(paths: &[RepoPath], prefixes: &[RepoPath]) -> Vec<RepoPath> {
    let mut kept = Vec::new();
    for path in paths {
        for prefix in prefixes {
            if prefix.covers(path) {
                kept.push(path.clone());
            } else if path.covers(prefix) {
                kept.push(prefix.clone());
            }
        }
    }
    outermost(&kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_keeps_what_both_cover() {
        let a = |s: &str| RepoPath::parse_allowed(s).unwrap();
        assert_eq!(
            narrow(
                &[a("src/"), a("README.md"), a("ops/")],
                &[a("src/lib/"), a("README.md")]
            ),
            vec![a("README.md"), a("src/lib/")]
        );
        assert!(narrow(&[a("src/")], &[]).is_empty());
    }

    fn p(s: &str) -> RepoPath {
        RepoPath::parse(s).unwrap()
    }

    #[test]
    fn component_wise_prefixes() {
        assert!(p("docs/").covers(&p("docs/a.md")));
        assert!(p("docs").covers(&p("docs/sub/a.md")));
        assert!(!p("docs/").covers(&p("docs2/a.md")));
        assert!(!p("docs/").covers(&p("docsa.md")));
        assert!(p("docs/a.md").covers(&p("docs/a.md")));
        assert!(!p("docs/a.md").covers(&p("docs/a.md.bak")));
        assert!(!p("docs/sub/").covers(&p("docs/")));
    }

    #[test]
    fn globs_and_dots_normalise() {
        let allowed = |s: &str| RepoPath::parse_allowed(s);
        assert_eq!(allowed("docs/**").unwrap(), p("docs/"));
        assert_eq!(allowed("docs/*").unwrap(), p("docs/"));
        assert_eq!(allowed("docs/**").unwrap().to_string(), "docs/");
        assert_eq!(p("./docs//api/"), p("docs/api/"));
        assert!(allowed("docs/**").unwrap().is_dir());
        for glob in [
            "docs/*.md",
            "docs/**/x",
            "a?b",
            "docs/[ab]",
            "**",
            "x/{a,b}",
        ] {
            assert!(
                matches!(allowed(glob), Err(PathError::Glob(_))),
                "{glob}: {:?}",
                allowed(glob)
            );
        }
        // A literal path keeps every character: a file may be named `**`.
        assert_eq!(p("docs/**").components(), ["docs", "**"]);
        assert!(matches!(
            allowed("../x/**"),
            Err(PathError::ParentComponent(_))
        ));
    }

    #[test]
    fn hostile_paths_are_refused() {
        assert!(matches!(
            RepoPath::parse("../x"),
            Err(PathError::ParentComponent(_))
        ));
        assert!(matches!(
            RepoPath::parse("docs/../../x"),
            Err(PathError::ParentComponent(_))
        ));
        assert!(matches!(
            RepoPath::parse("/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            RepoPath::parse("C:/x"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            RepoPath::parse(".git/config"),
            Err(PathError::GitDir(_))
        ));
        assert!(matches!(
            RepoPath::parse("sub/.GIT/hooks"),
            Err(PathError::GitDir(_))
        ));
        assert!(matches!(
            RepoPath::parse("docs\\x"),
            Err(PathError::BadCharacter(_))
        ));
        assert!(matches!(
            RepoPath::parse("a\nb"),
            Err(PathError::BadCharacter(_))
        ));
        assert!(matches!(RepoPath::parse("./"), Err(PathError::Empty(_))));
        assert!(matches!(RepoPath::parse(""), Err(PathError::Empty(_))));
    }

    #[test]
    fn outermost_drops_nested() {
        let kept = outermost(&[p("docs/api/"), p("docs/"), p("tests/a.py")]);
        assert_eq!(kept, vec![p("docs/"), p("tests/a.py")]);
    }

    #[test]
    fn dir_heuristic() {
        assert!(p("docs").looks_like_dir());
        assert!(p("docs/v1.2/").looks_like_dir());
        assert!(!p("docs/a.md").looks_like_dir());
    }
}
