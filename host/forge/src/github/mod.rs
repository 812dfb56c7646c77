//! The GitHub forge's API client: octocrab for the HTTP, authentication and base URL
//! (REST, and GraphQL for auto-merge), with the host's own rate-limit policy around
//! every request ([`ratelimit`]). Blocking: each call runs on a small runtime the
//! client owns, so the (synchronous) scheduler can use it from any thread that is
//! not itself inside an async runtime.

pub mod app;
pub mod clients;
pub mod identity;
pub mod ratelimit;
pub mod transport;
pub mod urls;

use http::{HeaderMap, Method};
use identity::{IdentityBudget, Need, Refused, Reservation};
use leviathan_domain::clock::now_secs as now_epoch;
use ratelimit::{Budget, RetryPolicy, Verdict, classify};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
pub use urls::RepoRef;

/// Why a GitHub call failed. The token never appears in one.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub {method} {path}: HTTP {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("GitHub {method} {path}: rate limited for another {}s", wait.as_secs())]
    RateLimited {
        method: String,
        path: String,
        wait: Duration,
    },
    #[error("GitHub {method} {path}: {message}")]
    Transport {
        method: String,
        path: String,
        message: String,
    },
    #[error("GitHub {method} {path}: unexpected response: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },
    #[error("GitHub client for {api_url}: {message}")]
    Setup { api_url: String, message: String },
}

/// A pull request, as much of it as the host reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub number: u64,
    pub url: Option<String>,
    pub node_id: Option<String>,
    pub head_ref: String,
    pub labels: Vec<String>,
    /// `open` or `closed`.
    pub state: String,
    pub merged: bool,
}

#[derive(Deserialize)]
struct RawPull {
    number: u64,
    html_url: Option<String>,
    node_id: Option<String>,
    head: RawHead,
    #[serde(default)]
    labels: Vec<RawLabel>,
    #[serde(default)]
    state: String,
    merged_at: Option<String>,
    #[serde(default)]
    merged: Option<bool>,
}

#[derive(Deserialize)]
struct RawHead {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Deserialize)]
struct RawLabel {
    name: String,
}

impl From<RawPull> for Pull {
    fn from(r: RawPull) -> Pull {
        Pull {
            number: r.number,
            url: r.html_url,
            node_id: r.node_id,
            head_ref: r.head.reference,
            labels: r.labels.into_iter().map(|l| l.name).collect(),
            state: r.state,
            merged: r.merged.unwrap_or(false) || r.merged_at.is_some(),
        }
    }
}

/// A PR as opened: new, or found already open for the same branch (a 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub pull: Pull,
    pub existed: bool,
}

/// One response, read whole.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

/// A client for one API URL and token.
pub struct GitHub {
    api_url: String,
    rest: octocrab::Octocrab,
    graphql: octocrab::Octocrab,
    runtime: std::sync::Arc<tokio::runtime::Runtime>,
    policy: RetryPolicy,
    /// The identity's secondary budget: pacing, fair admission, concurrency.
    identity: Arc<IdentityBudget>,
}

fn github_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let Some(v) = parsed else {
        return body.chars().take(200).collect();
    };
    let mut message = v["message"].as_str().unwrap_or("").to_string();
    if let Some(errors) = v["errors"].as_array() {
        for e in errors {
            if let Some(m) = e["message"].as_str() {
                message.push_str(": ");
                message.push_str(m);
            }
        }
    }
    message
}

impl GitHub {
    /// A client for `api_url` authenticating with `token`, running on `runtime`,
    /// paced by `identity`.
    pub fn connect(
        api_url: &str,
        token: &str,
        runtime: std::sync::Arc<tokio::runtime::Runtime>,
        policy: RetryPolicy,
        identity: Arc<IdentityBudget>,
    ) -> Result<GitHub, GitHubError> {
        let setup = |message: String| GitHubError::Setup {
            api_url: api_url.into(),
            message,
        };
        let headers = transport::headers(token).map_err(setup)?;
        let build = |base: &str| -> Result<octocrab::Octocrab, GitHubError> {
            // The connection pool is spawned on the current runtime.
            let _entered = runtime.enter();
            transport::client(base, headers.clone()).map_err(setup)
        };
        let api_url = api_url.trim_end_matches('/').to_string();
        Ok(GitHub {
            rest: build(&api_url)?,
            graphql: build(&urls::graphql_base(&api_url))?,
            api_url,
            runtime,
            policy,
            identity,
        })
    }

    /// The identity's secondary budget.
    pub fn identity(&self) -> &Arc<IdentityBudget> {
        &self.identity
    }

    /// Reserves what one pass of `target` needs from the identity, fairly
    /// among the targets that share it (see [`identity`]).
    pub fn reserve(&self, target: &str, need: Need) -> Result<Reservation, Refused> {
        let budget = self.budget();
        // A count from before the window reset says nothing about now. (The
        // policy's reserve gates starting a target's pass, see `low_budget`.)
        let primary_left = match (budget.remaining, budget.reset_epoch) {
            (Some(left), Some(reset)) if reset > now_epoch() => Some(left),
            _ => None,
        };
        self.identity
            .reserve(target, need, primary_left, std::time::Instant::now())
    }

    /// The API this client talks to.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// How many requests that may create content its identity has sent
    /// (every REST method but GET and HEAD, and GraphQL, which carries the mutations:
    /// what GitHub's secondary limits count).
    pub fn content_requests(&self) -> u64 {
        self.identity.content_requests()
    }

    /// The primary budget as last reported.
    pub fn budget(&self) -> Budget {
        self.identity.primary()
    }

    /// The requests left and the time until the budget resets, when fewer than the
    /// policy's `reserve` are left: the scheduler then leaves the target for a later
    /// pass.
    pub fn low_budget(&self) -> Option<(u64, Duration)> {
        let budget = self.budget();
        let wait = budget.low(self.policy.reserve, now_epoch())?;
        Some((budget.remaining.unwrap_or(0), wait))
    }

    async fn send_once(
        &self,
        graphql: bool,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let client = if graphql { &self.graphql } else { &self.rest };
        let response = match *method {
            Method::GET => client._get(path).await,
            Method::POST => client._post(path, body).await,
            _ => return Err(format!("unsupported method {method}")),
        }
        .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = client
            .body_to_string(response)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends a request under the rate-limit policy: waits out secondary and primary
    /// limits and backs off from server errors, within the policy's bounds.
    async fn send(
        &self,
        graphql: bool,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, GitHubError> {
        let mut attempt = 0;
        loop {
            // An exhausted primary budget is waited out before sending, not after.
            if let Some(wait) = self.budget().low(1, now_epoch()) {
                if wait > self.policy.max_wait {
                    return Err(GitHubError::RateLimited {
                        method: method.to_string(),
                        path: path.into(),
                        wait,
                    });
                }
                tracing::warn!(
                    wait_ms = wait.as_millis() as u64,
                    "GitHub budget spent: waiting for the reset"
                );
                tokio::time::sleep(wait).await;
                self.identity.forget_remaining();
            }
            if graphql || !matches!(method, Method::GET | Method::HEAD) {
                // The identity's next slot: spaced, within the minute and hour.
                match self
                    .identity
                    .claim_slot(std::time::Instant::now(), self.policy.max_wait)
                {
                    Ok(at) => tokio::time::sleep_until(at.into()).await,
                    Err(wait) => {
                        return Err(GitHubError::RateLimited {
                            method: method.to_string(),
                            path: path.into(),
                            wait,
                        });
                    }
                }
            }
            let in_flight = self.identity.in_flight().await;
            let sent = tokio::time::timeout(
                transport::READ_TIMEOUT,
                self.send_once(graphql, &method, path, body),
            )
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "no reply within {}s",
                    transport::READ_TIMEOUT.as_secs()
                ))
            });
            drop(in_flight);
            let (status, headers, reply) = match sent {
                Ok(r) => (r.status, r.headers.clone(), Ok(r)),
                // A connection failure is retried like a 502.
                Err(message) => (502, HeaderMap::new(), Err(message)),
            };
            self.identity.update_primary(&headers);
            let verdict = classify(
                &self.policy,
                status,
                &headers,
                attempt,
                now_epoch(),
                ratelimit::jitter(),
            );
            match verdict {
                Verdict::Done => {
                    return reply.map_err(|message| GitHubError::Transport {
                        method: method.to_string(),
                        path: path.into(),
                        message,
                    });
                }
                Verdict::RetryAfter(wait) => {
                    tracing::warn!(%method, path, status, attempt, wait_ms = wait.as_millis() as u64, "GitHub request retried");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Verdict::Exhausted(wait) => {
                    return Err(match reply {
                        Ok(_) if matches!(status, 403 | 429) => GitHubError::RateLimited {
                            method: method.to_string(),
                            path: path.into(),
                            wait,
                        },
                        Ok(r) => GitHubError::Status {
                            method: method.to_string(),
                            path: path.into(),
                            status,
                            message: github_message(&r.body),
                        },
                        Err(message) => GitHubError::Transport {
                            method: method.to_string(),
                            path: path.into(),
                            message,
                        },
                    });
                }
            }
        }
    }

    /// A REST request whose status must be one of `ok`.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Reply, GitHubError> {
        self.call_on(false, method, path, body, ok)
    }

    /// A request to the REST or (`graphql`) the GraphQL client whose status must be
    /// one of `ok`.
    fn call_on(
        &self,
        graphql: bool,
        method: Method,
        path: &str,
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<Reply, GitHubError> {
        let reply = self
            .runtime
            .block_on(self.send(graphql, method.clone(), path, body))?;
        if ok.contains(&reply.status) {
            Ok(reply)
        } else {
            Err(GitHubError::Status {
                method: method.to_string(),
                path: path.into(),
                status: reply.status,
                message: github_message(&reply.body),
            })
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<T, GitHubError> {
        serde_json::from_str(body).map_err(|e| GitHubError::Decode {
            method: method.into(),
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Every open PR into `base`, following the `Link` pagination.
    pub fn open_pulls(&self, repo: &RepoRef, base: &str) -> Result<Vec<Pull>, GitHubError> {
        let path = format!(
            "{}/pulls?state=open&base={}&per_page=100",
            repo.path(),
            query_escape(base)
        );
        let mut pulls = Vec::new();
        self.get_pages(path, |page: Vec<RawPull>| {
            pulls.extend(page.into_iter().map(Pull::from));
        })?;
        Ok(pulls)
    }

    /// Every page of a `GET` from `first`, following `Link: rel="next"` (only
    /// within the API): each page's body decoded as `T` and handed to `take`.
    fn get_pages<T: serde::de::DeserializeOwned>(
        &self,
        first: String,
        mut take: impl FnMut(T),
    ) -> Result<(), GitHubError> {
        let mut path = first;
        loop {
            let reply = self.call(Method::GET, &path, None, &[200])?;
            take(Self::decode("GET", &path, &reply.body)?);
            let next = reply
                .headers
                .get(http::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(urls::next_link);
            match next {
                None => return Ok(()),
                Some(link) => match urls::relative_link(&self.api_url, link) {
                    Some(rel) => path = rel.to_string(),
                    None => {
                        return Err(GitHubError::Decode {
                            method: "GET".into(),
                            path,
                            message: format!("pagination link off the API: {link}"),
                        });
                    }
                },
            }
        }
    }

    /// One PR by number.
    pub fn pull(&self, repo: &RepoRef, number: u64) -> Result<Pull, GitHubError> {
        let path = format!("{}/pulls/{number}", repo.path());
        let reply = self.call(Method::GET, &path, None, &[200])?;
        Ok(Self::decode::<RawPull>("GET", &path, &reply.body)?.into())
    }

    /// The open PR whose head is `branch` of the repository itself.
    pub fn open_pull_for(&self, repo: &RepoRef, branch: &str) -> Result<Option<Pull>, GitHubError> {
        let path = format!(
            "{}/pulls?state=open&head={}:{}&per_page=1",
            repo.path(),
            query_escape(&repo.owner),
            query_escape(branch)
        );
        let reply = self.call(Method::GET, &path, None, &[200])?;
        let page: Vec<RawPull> = Self::decode("GET", &path, &reply.body)?;
        Ok(page.into_iter().next().map(Pull::from))
    }

    /// Opens a PR from `head` into `base`. GitHub's 422 "A pull request already
    /// exists" is a success: the open PR for `head` is looked up and returned.
    pub fn create_pull(
        &self,
        repo: &RepoRef,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<Opened, GitHubError> {
        let path = format!("{}/pulls", repo.path());
        let request = json!({"title": title, "head": head, "base": base, "body": body});
        let reply = self.call(Method::POST, &path, Some(&request), &[201, 422])?;
        if reply.status == 201 {
            let pull = Self::decode::<RawPull>("POST", &path, &reply.body)?.into();
            return Ok(Opened {
                pull,
                existed: false,
            });
        }
        let message = github_message(&reply.body);
        if !message.contains("already exists") {
            return Err(GitHubError::Status {
                method: "POST".into(),
                path,
                status: 422,
                message,
            });
        }
        match self.open_pull_for(repo, head)? {
            Some(pull) => Ok(Opened {
                pull,
                existed: true,
            }),
            None => Err(GitHubError::Status {
                method: "POST".into(),
                path,
                status: 422,
                message: format!("{message} (but no open PR for `{head}` was found)"),
            }),
        }
    }

    /// Adds labels to a PR (its issue).
    pub fn add_labels(
        &self,
        repo: &RepoRef,
        number: u64,
        labels: &[String],
    ) -> Result<(), GitHubError> {
        if labels.is_empty() {
            return Ok(());
        }
        let path = format!("{}/issues/{number}/labels", repo.path());
        self.call(
            Method::POST,
            &path,
            Some(&json!({"labels": labels})),
            &[200],
        )?;
        Ok(())
    }

    /// Comments on a PR (its issue).
    pub fn comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<(), GitHubError> {
        let path = format!("{}/issues/{number}/comments", repo.path());
        self.call(Method::POST, &path, Some(&json!({"body": body})), &[201])?;
        Ok(())
    }

    /// The repositories of the installation this client's token belongs to
    /// (`GET /installation/repositories`, every page): `owner/name` and the default
    /// branch of each that is not archived.
    pub fn installation_repositories(&self) -> Result<Vec<(String, String)>, GitHubError> {
        #[derive(Deserialize)]
        struct Page {
            repositories: Vec<Repo>,
        }
        #[derive(Deserialize)]
        struct Repo {
            full_name: String,
            default_branch: String,
            #[serde(default)]
            archived: bool,
        }
        let mut out = Vec::new();
        self.get_pages(
            "/installation/repositories?per_page=100".to_string(),
            |page: Page| {
                out.extend(
                    page.repositories
                        .into_iter()
                        .filter(|r| !r.archived)
                        .map(|r| (r.full_name, r.default_branch)),
                );
            },
        )?;
        Ok(out)
    }

    /// Mints a token for App installation `installation_id` (this client sends the
    /// App's JWT).
    pub fn mint_installation_token(
        &self,
        installation_id: u64,
    ) -> Result<app::InstallationToken, GitHubError> {
        #[derive(Deserialize)]
        struct Minted {
            token: String,
            expires_at: String,
        }
        let path = format!("/app/installations/{installation_id}/access_tokens");
        let reply = self.call(Method::POST, &path, None, &[201])?;
        let minted: Minted = Self::decode("POST", &path, &reply.body)?;
        let expires_epoch =
            leviathan_domain::clock::parse_rfc3339(&minted.expires_at).ok_or_else(|| {
                GitHubError::Decode {
                    method: "POST".into(),
                    path: path.clone(),
                    message: format!(
                        "expires_at `{}` is not an RFC 3339 UTC time",
                        minted.expires_at
                    ),
                }
            })?;
        Ok(app::InstallationToken {
            token: minted.token,
            expires_epoch,
        })
    }

    /// The App's bot user (this client sends the App's JWT): its slug from
    /// `GET /app`, the bot's user id from `GET /users/<slug>[bot]`.
    pub fn bot_identity(&self) -> Result<app::BotIdentity, GitHubError> {
        #[derive(Deserialize)]
        struct App {
            slug: String,
        }
        #[derive(Deserialize)]
        struct User {
            id: u64,
        }
        let reply = self.call(Method::GET, "/app", None, &[200])?;
        let slug = Self::decode::<App>("GET", "/app", &reply.body)?.slug;
        let path = format!("/users/{}%5Bbot%5D", query_escape(&slug));
        let reply = self.call(Method::GET, &path, None, &[200])?;
        let user: User = Self::decode("GET", &path, &reply.body)?;
        Ok(app::BotIdentity::new(&slug, user.id))
    }

    /// Turns on auto-merge for a PR (GraphQL `enablePullRequestAutoMerge`).
    pub fn enable_auto_merge(&self, node_id: &str) -> Result<(), GitHubError> {
        let query = json!({
            "query": "mutation($id: ID!) { enablePullRequestAutoMerge(input: {pullRequestId: $id}) { pullRequest { number } } }",
            "variables": {"id": node_id},
        });
        let reply = self.call_on(true, Method::POST, "/graphql", Some(&query), &[200])?;
        let v: Value = Self::decode("POST", "/graphql", &reply.body)?;
        match v["errors"].as_array() {
            // GraphQL reports its errors in a 200.
            Some(errors) if !errors.is_empty() => Err(GitHubError::Status {
                method: "POST".into(),
                path: "/graphql".into(),
                status: reply.status,
                message: errors
                    .iter()
                    .filter_map(|e| e["message"].as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
            _ => Ok(()),
        }
    }
}

/// Percent-escapes a query value (`/` kept, as GitHub's branch filters expect).
fn query_escape(s: &str) -> String {
    leviathan_domain::percent::encode(s, b"/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_messages_include_the_validation_errors() {
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:agent/x."}]}"#;
        assert_eq!(
            github_message(body),
            "Validation Failed: A pull request already exists for acme:agent/x."
        );
        assert_eq!(github_message("not json"), "not json");
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("agent/task-1"), "agent/task-1");
        assert_eq!(query_escape("a b&c"), "a%20b%26c");
    }
}
