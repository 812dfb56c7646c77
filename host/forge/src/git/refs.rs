//! A clone's view of its remote's branches, as the remote lists them (`git ls-remote
//! --heads`) and as the clone's remote-tracking refs hold them (`git for-each-ref`).
//! When the two agree, a pruning fetch would change nothing, and the host skips it:
//! most passes find a target as they left it, and a fetch that brings nothing still
//! costs a connectivity check (a further git process) on top of the listing.

pub(super) mod files;

/// Branch names (without `refs/heads/` or `refs/remotes/origin/`) with their commits,
/// sorted by name.
pub(super) type Branches = Vec<(String, String)>;

/// Where the remote's branches are listed.
pub(super) const HEADS: &str = "refs/heads/";
/// Where the clone keeps its copy of them.
pub(super) const TRACKING: &str = "refs/remotes/origin/";

/// The arguments that list the clone's remote-tracking refs in the form [`parse`] reads.
pub(super) const FOR_EACH_REF: &[&str] = &[
    "for-each-ref",
    "--format=%(objectname)%09%(refname)",
    TRACKING,
];

/// The branches under `prefix` in `<commit>\t<refname>` lines (what `ls-remote` prints,
/// and [`FOR_EACH_REF`]); other lines are left out, and so is the tracking refs' `HEAD`
/// (a pointer to the remote's default branch, not a branch).
pub(super) fn parse(out: &str, prefix: &str) -> Branches {
    let mut branches: Branches = out
        .lines()
        .filter_map(|line| {
            let (commit, name) = line.split_once('\t')?;
            let name = name.trim().strip_prefix(prefix)?;
            (name != "HEAD" || prefix != TRACKING)
                .then(|| (name.to_string(), commit.trim().to_string()))
        })
        .collect();
    branches.sort();
    branches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_and_the_tracking_refs_read_alike() {
        let listed = "bbb\trefs/heads/main\naaa\trefs/heads/agent/t-1\nccc\trefs/tags/v1\n";
        let tracked = "aaa\trefs/remotes/origin/agent/t-1\nddd\trefs/remotes/origin/HEAD\nbbb\trefs/remotes/origin/main\n";
        let expected = vec![
            ("agent/t-1".to_string(), "aaa".to_string()),
            ("main".to_string(), "bbb".to_string()),
        ];
        assert_eq!(parse(listed, HEADS), expected);
        assert_eq!(parse(tracked, TRACKING), expected);
    }

    #[test]
    fn a_branch_the_remote_calls_head_is_a_branch_there() {
        // Never equal to the tracking refs, which leave `HEAD` out: the host fetches.
        assert_eq!(parse("aaa\trefs/heads/HEAD\n", HEADS).len(), 1);
        assert!(parse("aaa\trefs/remotes/origin/HEAD\n", TRACKING).is_empty());
    }

    #[test]
    fn a_changed_commit_or_a_missing_branch_is_a_difference() {
        let tracked = parse("aaa\trefs/remotes/origin/main\n", TRACKING);
        assert_ne!(parse("bbb\trefs/heads/main\n", HEADS), tracked);
        assert_ne!(parse("", HEADS), tracked);
        assert_ne!(
            parse("aaa\trefs/heads/main\naaa\trefs/heads/agent/x\n", HEADS),
            tracked
        );
    }
}
