//! Policy at the WASI call: which repository directory each open directory handle of
//! a run stands for, and whether a create, write, rename or removal there is one the
//! task's allowed paths permit. The change-set check after the run stays the second
//! line of defence; this one makes a forbidden write fail at the call that attempts it.

use leviathan_domain::paths::RepoPath;
use std::collections::HashMap;
use std::fmt;

/// Where the writable copies of a run's allowed paths are mounted in the guest.
pub const OUT_GUEST: &str = "/out";

/// What a guest tried to do to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a file for writing (create, truncate or write).
    Write,
    CreateDirectory,
    RemoveDirectory,
    Unlink,
    /// The source of a rename.
    RenameFrom,
    /// The destination of a rename.
    RenameTo,
    SetTimes,
    Symlink,
    HardLink,
}

impl Action {
    /// The action in words, as a log line says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Write => "write",
            Action::CreateDirectory => "create directory",
            Action::RemoveDirectory => "remove directory",
            Action::Unlink => "delete",
            Action::RenameFrom => "rename",
            Action::RenameTo => "rename onto",
            Action::SetTimes => "set times of",
            Action::Symlink => "create a symbolic link at",
            Action::HardLink => "create a hard link at",
        }
    }

    /// A directory-shaped action may touch a directory that only leads to an allowed
    /// path (creating `docs/` for an allowed `docs/api/`); everything else needs the
    /// path itself allowed.
    fn on_ancestors(self) -> bool {
        matches!(
            self,
            Action::CreateDirectory | Action::RemoveDirectory | Action::SetTimes
        )
    }
}

/// The rule a denied call broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The path is outside the task's allowed paths.
    AllowedPaths,
    /// The path is in the read-only snapshot (`/repo`).
    ReadOnly,
    /// Links are never created in the sandbox.
    NoLinks,
    /// The path is not an acceptable repository path (`.git`, leaves its directory).
    BadPath,
}

impl Rule {
    /// The rule's short name, as recorded in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::AllowedPaths => "allowed_paths",
            Rule::ReadOnly => "read_only",
            Rule::NoLinks => "no_links",
            Rule::BadPath => "repository_path",
        }
    }
}

/// One call the guard refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub action: Action,
    /// The repository-relative path (or the guest's text when it names none).
    pub path: String,
    pub rule: Rule,
}

impl Denial {
    /// The denial as recorded in events: `{"action", "path", "rule"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "action": self.action.as_str(),
            "path": self.path,
            "rule": self.rule.as_str(),
        })
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.rule {
            Rule::AllowedPaths => "outside the task's allowed paths",
            Rule::ReadOnly => "the repository snapshot is read-only",
            Rule::NoLinks => "links cannot be created in the sandbox",
            Rule::BadPath => "not a writable repository path",
        };
        write!(
            f,
            "refused to {} `{}`: {why} (rule {})",
            self.action.as_str(),
            self.path,
            self.rule.as_str()
        )
    }
}

/// What an open directory handle stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// A directory of the writable tree: its components from the repository root.
    Writable(Vec<String>),
    /// Inside a read-only mount.
    ReadOnly,
}

/// The guard of one run: the allowed paths, the place of every open directory handle,
/// and what it refused.
#[derive(Debug)]
pub struct WriteGuard {
    allowed: Vec<RepoPath>,
    /// Preopened directories by guest path.
    mounts: HashMap<String, Place>,
    /// Open directory handles by resource id.
    handles: HashMap<u32, Place>,
    denials: Vec<Denial>,
}

impl WriteGuard {
    /// A guard for a run allowed to write `allowed`, with read-only mounts at
    /// `read_only` and the writable tree mounted at `read_write` (guest paths under
    /// [`OUT_GUEST`]).
    pub fn new<'a>(
        allowed: Vec<RepoPath>,
        read_only: impl IntoIterator<Item = &'a str>,
        read_write: impl IntoIterator<Item = &'a str>,
    ) -> WriteGuard {
        let mut mounts = HashMap::new();
        for guest in read_only {
            mounts.insert(guest.to_string(), Place::ReadOnly);
        }
        for guest in read_write {
            let place = match guest.strip_prefix(OUT_GUEST) {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => Place::Writable(
                    rest.split('/')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect(),
                ),
                // A writable mount outside the tree the guard knows: nothing in it
                // may change (fail closed).
                _ => Place::ReadOnly,
            };
            mounts.insert(guest.to_string(), place);
        }
        WriteGuard {
            allowed,
            mounts,
            handles: HashMap::new(),
            denials: Vec::new(),
        }
    }

    /// Records that handle `rep` is the preopened directory mounted at `guest`.
    pub fn opened_mount(&mut self, rep: u32, guest: &str) {
        let place = self.mounts.get(guest).cloned().unwrap_or(Place::ReadOnly);
        self.handles.insert(rep, place);
    }

    /// Records that directory handle `rep` was opened at `path` below handle `parent`.
    pub fn opened_dir(&mut self, rep: u32, parent: u32, path: &str) {
        let place = match self.handles.get(&parent) {
            Some(Place::Writable(base)) => match resolve(base, path) {
                Some(components) => Place::Writable(components),
                None => Place::ReadOnly,
            },
            _ => Place::ReadOnly,
        };
        self.handles.insert(rep, place);
    }

    /// Forgets handle `rep` (closed; its id may be reused).
    pub fn closed(&mut self, rep: u32) {
        self.handles.remove(&rep);
    }

    /// Checks `action` on `path` relative to directory handle `dir`; a refusal is
    /// recorded and returned.
    pub fn check(&mut self, dir: u32, path: &str, action: Action) -> Result<(), Denial> {
        let verdict = match self.handles.get(&dir) {
            None | Some(Place::ReadOnly) => Err(Denial {
                action,
                path: path.to_string(),
                rule: Rule::ReadOnly,
            }),
            Some(Place::Writable(base)) => judge(&self.allowed, base, path, action),
        };
        if let Err(denial) = &verdict {
            self.denials.push(denial.clone());
        }
        verdict
    }

    /// Records a call refused whatever its path (links).
    pub fn refuse(&mut self, dir: u32, path: &str, action: Action, rule: Rule) -> Denial {
        let shown = match self.handles.get(&dir) {
            Some(Place::Writable(base)) => resolve(base, path)
                .map(|c| c.join("/"))
                .unwrap_or_else(|| path.to_string()),
            _ => path.to_string(),
        };
        let denial = Denial {
            action,
            path: shown,
            rule,
        };
        self.denials.push(denial.clone());
        denial
    }

    /// Every refused call, in order.
    pub fn into_denials(self) -> Vec<Denial> {
        self.denials
    }
}

/// Whether `action` on `path` below the writable directory `base` is allowed.
fn judge(allowed: &[RepoPath], base: &[String], path: &str, action: Action) -> Result<(), Denial> {
    let refuse = |shown: String, rule| {
        Err(Denial {
            action,
            path: shown,
            rule,
        })
    };
    let Some(components) = resolve(base, path) else {
        return refuse(path.to_string(), Rule::BadPath);
    };
    let joined = components.join("/");
    if components.is_empty() {
        // The root of the writable tree itself: only directory-shaped actions lead
        // anywhere, and they cannot change a file.
        return if action.on_ancestors() {
            Ok(())
        } else {
            refuse(joined, Rule::AllowedPaths)
        };
    }
    let target = match RepoPath::parse(&joined) {
        Ok(target) => target,
        Err(_) => return refuse(joined, Rule::BadPath),
    };
    let covered = allowed.iter().any(|a| a.covers(&target));
    let leads_to_allowed = action.on_ancestors() && allowed.iter().any(|a| target.covers(a));
    if covered || leads_to_allowed {
        Ok(())
    } else {
        refuse(joined, Rule::AllowedPaths)
    }
}

/// `path` (relative, `/`-separated) resolved below the directory `base`, lexically:
/// the staged tree holds no links, so this is the directory the call reaches. `None`
/// for an absolute path or one that leaves `base`.
fn resolve(base: &[String], path: &str) -> Option<Vec<String>> {
    if path.starts_with('/') {
        return None;
    }
    let mut components = base.to_vec();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if components.len() <= base.len() {
                    return None;
                }
                components.pop();
            }
            c => components.push(c.to_string()),
        }
    }
    Some(components)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allowed: &[&str], mounts: &[&str]) -> WriteGuard {
        let allowed = allowed
            .iter()
            .map(|a| RepoPath::parse_allowed(a).unwrap())
            .collect();
        let mut g = WriteGuard::new(allowed, ["/repo"], mounts.iter().copied());
        g.opened_mount(1, "/repo");
        for (i, m) in mounts.iter().enumerate() {
            g.opened_mount(10 + i as u32, m);
        }
        g
    }

    #[test]
    fn a_sibling_of_an_allowed_file_is_refused_and_recorded() {
        let mut g = guard(&["docs/guide.md"], &["/out/docs"]);
        assert!(g.check(10, "guide.md", Action::Write).is_ok());
        let denial = g.check(10, "other.md", Action::Write).unwrap_err();
        assert_eq!(denial.path, "docs/other.md");
        assert_eq!(denial.rule, Rule::AllowedPaths);
        assert!(denial.to_string().contains("docs/other.md"));
        assert!(g.check(10, "sub/../guide.md", Action::Write).is_ok());
        assert!(g.check(10, "./other.md", Action::Unlink).is_err());
        assert_eq!(g.into_denials().len(), 2);
    }

    #[test]
    fn directories_leading_to_an_allowed_path_may_be_made_not_written() {
        let mut g = guard(&["docs/api/"], &["/out"]);
        assert!(g.check(10, "docs", Action::CreateDirectory).is_ok());
        assert!(g.check(10, "docs/api/v1", Action::CreateDirectory).is_ok());
        assert!(g.check(10, "docs/api/v1/x.md", Action::Write).is_ok());
        assert!(g.check(10, "docs/x.md", Action::Write).is_err());
        assert!(g.check(10, "docs", Action::RenameFrom).is_err());
        assert!(g.check(10, "src", Action::CreateDirectory).is_err());
        assert!(g.check(10, ".", Action::Write).is_err());
    }

    #[test]
    fn opened_directories_carry_their_place() {
        let mut g = guard(&["docs/api/"], &["/out/docs/api"]);
        g.opened_dir(20, 10, "v1/deep");
        assert!(g.check(20, "x.md", Action::Write).is_ok());
        g.opened_dir(21, 1, "docs");
        let denial = g.check(21, "x.md", Action::Write).unwrap_err();
        assert_eq!(denial.rule, Rule::ReadOnly);
        g.closed(20);
        assert_eq!(
            g.check(20, "x.md", Action::Write).unwrap_err().rule,
            Rule::ReadOnly
        );
    }

    #[test]
    fn escapes_git_and_absolute_paths_are_refused() {
        let mut g = guard(&["docs/"], &["/out/docs"]);
        assert_eq!(
            g.check(10, "../src/x.rs", Action::Write).unwrap_err().rule,
            Rule::BadPath
        );
        assert_eq!(
            g.check(10, "/out/docs/x.md", Action::Write)
                .unwrap_err()
                .rule,
            Rule::BadPath
        );
        assert_eq!(
            g.check(10, ".git/config", Action::Write).unwrap_err().rule,
            Rule::BadPath
        );
        assert_eq!(
            g.check(99, "x.md", Action::Write).unwrap_err().rule,
            Rule::ReadOnly,
            "an unknown handle changes nothing"
        );
    }
}
