//! Targets discovered in GitHub App installations (`discover:` in the
//! configuration, issue #17): each pass lists the installation's repositories,
//! keeps those on the allow-list that are not configured already, and serves each
//! under the repository's own `.leviathan/policy.yaml` (read after the fetch, through
//! the repository's capability). A repository without one is skipped with the
//! reason recorded.

use leviathan_domain::config::{Config, Forge, Target, TokenSource, shares_a_clone};
use leviathan_domain::policy::{Policy, REPO_POLICY_PATH};
use leviathan_forge::github::clients::GitHubClients;
use std::path::Path;

/// The targets the configuration's `discover:` entries find this pass. An
/// installation that cannot be listed is logged and contributes none (its
/// repositories wait for a later pass).
pub fn targets(config: &Config, github: &GitHubClients) -> Discovered {
    let mut out: Vec<Target> = Vec::new();
    let mut complete = true;
    for d in &config.discover {
        let source = TokenSource::App(d.app.clone());
        let listed = github
            .credentials(&d.api_url, &source)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                github
                    .client_for(None, &source, &d.api_url, &c.token)
                    .map_err(|e| e.to_string())
            })
            .and_then(|client| {
                client
                    .installation_repositories()
                    .map_err(|e| e.to_string())
            });
        let repositories = match listed {
            Ok(r) => r,
            Err(message) => {
                tracing::warn!(
                    app_id = d.app.app_id,
                    installation_id = d.app.installation_id,
                    %message,
                    "discovery failed; its repositories wait for a later pass"
                );
                complete = false;
                continue;
            }
        };
        for (name, branch) in repositories {
            let Some(found) = d.target(&name, &branch) else {
                continue;
            };
            let known = config.targets.iter().chain(&out).any(|t| {
                t.id == found.id
                    || shares_a_clone(t, &found)
                    || (t.repository.eq_ignore_ascii_case(&name)
                        && matches!(&t.forge, Forge::GitHub { api_url, .. } if *api_url == d.api_url))
            });
            if !known {
                out.push(found);
            }
        }
    }
    github.keep_discovered(&out.iter().map(|t| t.id.as_str()).collect::<Vec<_>>());
    Discovered {
        targets: out,
        complete,
    }
}

/// The targets a pass discovered.
pub struct Discovered {
    pub targets: Vec<Target>,
    /// Every installation answered: no target is missing for want of an answer.
    pub complete: bool,
}

/// `target` under the policy its clone at `dir` holds, or why it cannot run: the
/// skip reason (`no_policy`, `policy_invalid`) and a message. Auto-merge needs both
/// the discovery entry and the repository's policy to ask for it.
pub fn with_repo_policy(target: &Target, dir: &Path) -> Result<Target, (&'static str, String)> {
    match Policy::load_from_repo(dir) {
        Ok(Some(policy)) => Ok(Target {
            auto_merge: target.auto_merge && policy.auto_merge,
            policy,
            ..target.clone()
        }),
        Ok(None) => Err((
            "no_policy",
            format!("a discovered repository needs its own {REPO_POLICY_PATH}"),
        )),
        Err(e) => Err(("policy_invalid", e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discovered() -> Target {
        let d = leviathan_domain::config::Discovery {
            api_url: "https://api.github.com".into(),
            app: leviathan_domain::config::GitHubApp {
                app_id: 1,
                private_key_file: "k.pem".into(),
                installation_id: 2,
            },
            repositories: vec!["acme/*".into()],
            labels: Vec::new(),
            auto_merge: true,
        };
        d.target("acme/site", "main").expect("allowed")
    }

    #[test]
    fn the_repositorys_own_policy_governs_a_discovered_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = discovered();
        assert_eq!(
            with_repo_policy(&t, dir.path()).map(|_| ()).unwrap_err().0,
            "no_policy"
        );
        std::fs::create_dir_all(dir.path().join(".leviathan")).expect("mkdir");
        std::fs::write(
            dir.path().join(REPO_POLICY_PATH),
            "max_open_prs: 4\nallowed_path_prefixes: [docs/]\n",
        )
        .expect("write");
        let governed = with_repo_policy(&t, dir.path()).expect("policy");
        assert_eq!(governed.policy.max_open_prs, 4);
        assert!(
            !governed.auto_merge,
            "the repository did not ask for auto-merge"
        );
        std::fs::write(dir.path().join(REPO_POLICY_PATH), "max_open_prs: [").expect("write");
        let (reason, message) = with_repo_policy(&t, dir.path()).map(|_| ()).unwrap_err();
        assert_eq!(reason, "policy_invalid");
        assert!(message.contains("policy.yaml"), "{message}");
    }

    #[cfg(unix)]
    #[test]
    fn a_policy_symlinked_out_of_the_repository_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("p.yaml"), "max_open_prs: 9\n").expect("write");
        std::fs::create_dir_all(dir.path().join(".leviathan")).expect("mkdir");
        std::os::unix::fs::symlink(
            outside.path().join("p.yaml"),
            dir.path().join(REPO_POLICY_PATH),
        )
        .expect("symlink");
        let (reason, _) = with_repo_policy(&discovered(), dir.path())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(reason, "policy_invalid");
    }
}
