//! The environment of the git commands the host runs in a repository it names with
//! `-C`: nothing inherited from the host's own environment may point them at another
//! repository.

use std::process::Command;

/// Variables of the host's own environment that would point git at another
/// repository, index or object store than the one named by `-C` (set, for
/// instance, when the host is started from a git hook or alias): git's own list of
/// repository-local variables, which it clears itself when it runs a command in
/// another repository.
pub const REPOSITORY_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_COMMON_DIR",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_GRAFT_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_SHALLOW_FILE",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
];

/// Clears [`REPOSITORY_ENV`] from `c`'s environment, so that git works in the
/// repository `-C` names and no other.
pub fn only_this_repository(c: &mut Command) -> &mut Command {
    for name in REPOSITORY_ENV {
        c.env_remove(name);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_works_in_the_named_repository_whatever_the_environment_says() {
        let root = tempfile::tempdir().unwrap();
        let (ours, other) = (root.path().join("ours"), root.path().join("other"));
        for repo in [&ours, &other] {
            let ok = Command::new("git")
                .args(["init", "--quiet"])
                .arg(repo)
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let git_dir = |isolate: bool| {
            let mut c = Command::new("git");
            c.env("GIT_DIR", other.join(".git"))
                .env("GIT_WORK_TREE", &other);
            if isolate {
                only_this_repository(&mut c);
            }
            let out = c
                .arg("-C")
                .arg(&ours)
                .args(["rev-parse", "--absolute-git-dir"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        assert!(
            git_dir(false).starts_with(other.to_str().unwrap()),
            "the premise"
        );
        assert!(git_dir(true).starts_with(ours.to_str().unwrap()));
    }
}
