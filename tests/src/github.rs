//! A local HTTP server that behaves like GitHub for the parts the host uses: the REST
//! endpoints for pull requests, labels and comments (with `Link` pagination, the
//! rate-limit headers, 401 without the token, a 422 for a duplicate PR), GraphQL's
//! `enablePullRequestAutoMerge`, and git's smart HTTP through the real
//! `git http-backend` (pushes need the token as Basic auth, as on GitHub). Faults can
//! be scripted per request: a secondary rate limit (403 with `retry-after`), an
//! exhausted primary budget, a server error, or a PR created whose reply never comes.
//! Every API request is recorded, so tests can assert the exact requests made.

use crate::git;
use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One API request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, e.g. `/api/v3/repos/acme/widgets/pulls?state=open`.
    pub path: String,
    pub body: Value,
    pub authorization: Option<String>,
    /// Every header line as received (names lower-case, in order, repeats kept).
    pub headers: Vec<(String, String)>,
    pub at: Instant,
}

impl Recorded {
    /// How many times header `name` (lower-case) was sent, and its values.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `METHOD path`, for comparing request sequences.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A scripted reply to the next request matching `method` and a path containing
/// `path`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path: String,
    pub kind: FaultKind,
}

/// What a scripted fault does.
#[derive(Debug, Clone, Copy)]
pub enum FaultKind {
    /// 403 with `retry-after` (a secondary rate limit).
    SecondaryLimit { retry_after: u64 },
    /// A 5xx reply.
    ServerError(u16),
    /// The request is carried out (a PR is created) but the reply never comes.
    ActThenHang,
}

/// GitHub's secondary limits as the fake enforces them, when asked to: past any of
/// them a request gets a 403 with `retry-after`, as on GitHub. Windows are sliding
/// and count the content-creating requests (every method but GET and HEAD) the fake
/// accepted.
#[derive(Debug, Clone)]
pub struct SecondaryRules {
    pub per_minute: usize,
    pub per_hour: usize,
    pub minute: Duration,
    pub hour: Duration,
    /// Requests in flight at once.
    pub concurrent: usize,
    /// The `retry-after` it answers with, in seconds.
    pub retry_after: u64,
}

impl Default for SecondaryRules {
    /// GitHub's documented limits.
    fn default() -> Self {
        SecondaryRules {
            per_minute: 80,
            per_hour: 500,
            minute: Duration::from_secs(60),
            hour: Duration::from_secs(3600),
            concurrent: 100,
            retry_after: 60,
        }
    }
}

/// A GitHub App the fake knows: its JWTs are checked against the public key, its
/// installation's tokens expire after `token_ttl`.
#[derive(Debug, Clone)]
pub struct FakeApp {
    pub app_id: u64,
    pub installation_id: u64,
    pub slug: String,
    pub bot_user_id: u64,
    /// The App key's public half (DER `RSAPublicKey`).
    pub public_der: Vec<u8>,
    pub token_ttl: Duration,
}

/// A pull request held by the fake.
#[derive(Debug, Clone)]
pub struct FakePull {
    pub repo: String,
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub state: String,
    pub merged: bool,
    pub auto_merge: bool,
    pub comments: Vec<String>,
}

struct State {
    token: String,
    git_root: PathBuf,
    base_url: String,
    pulls: Vec<FakePull>,
    requests: Vec<Recorded>,
    faults: VecDeque<Fault>,
    remaining: u64,
    reset_epoch: u64,
    page_size: usize,
    secondary: Option<SecondaryRules>,
    /// When accepted content-creating requests arrived (within the longest window).
    content_times: VecDeque<Instant>,
    in_flight: usize,
    limit_responses: u64,
    app: Option<FakeApp>,
    /// Installation tokens issued and when they stop working.
    installation_tokens: Vec<(String, Instant)>,
}

/// The running fake; stops when dropped.
pub struct FakeGitHub {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The REST API URL to configure: `<url>/api/v3`.
    pub api_url: String,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl FakeGitHub {
    /// Starts the fake on a free port; repositories live under `git_root` as
    /// `owner/name.git` and are created with [`FakeGitHub::create_repo`].
    pub fn start(git_root: &Path, token: &str) -> FakeGitHub {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let url = format!("http://{addr}");
        let state = Arc::new(Mutex::new(State {
            token: token.into(),
            git_root: git_root.to_path_buf(),
            base_url: url.clone(),
            pulls: Vec::new(),
            requests: Vec::new(),
            faults: VecDeque::new(),
            remaining: 5000,
            reset_epoch: epoch() + 3600,
            page_size: 100,
            secondary: None,
            content_times: VecDeque::new(),
            in_flight: 0,
            limit_responses: 0,
            app: None,
            installation_tokens: Vec::new(),
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeGitHub {
            api_url: format!("{url}/api/v3"),
            url,
            state,
            runtime: Some(runtime),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    /// Creates `owner/name.git` whose `main` holds `files`.
    pub fn create_repo(&self, repo: &str, files: &[(&str, &str)]) -> PathBuf {
        let root = self.state().git_root.clone();
        let seed = root.join(format!("{repo}-seed"));
        for (path, text) in files {
            let file = seed.join(path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(file, text).expect("write");
        }
        git(&seed, &["init", "--quiet", "-b", "main"]);
        git(&seed, &["add", "."]);
        git(&seed, &["commit", "--quiet", "-m", "seed"]);
        let bare = root.join(format!("{repo}.git"));
        git(
            &root,
            &[
                "clone",
                "--quiet",
                "--bare",
                &seed.to_string_lossy(),
                &bare.to_string_lossy(),
            ],
        );
        bare
    }

    /// Adds a PR as if someone had opened it (its head branch is created from main).
    pub fn add_pull(&self, repo: &str, head: &str, labels: &[&str]) -> u64 {
        let bare = self.state().git_root.join(format!("{repo}.git"));
        git(&bare, &["branch", head, "main"]);
        let mut s = self.state();
        let number = s.next_number(repo);
        s.pulls.push(FakePull {
            repo: repo.into(),
            number,
            head: head.into(),
            base: "main".into(),
            title: format!("{head} by someone"),
            body: String::new(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
            state: "open".into(),
            merged: false,
            auto_merge: false,
            comments: Vec::new(),
        });
        number
    }

    /// Merges PR `number` into its base as GitHub's merge button would (a merge commit),
    /// and deletes the head branch.
    pub fn merge(&self, repo: &str, number: u64) {
        let (bare, head, base) = {
            let s = self.state();
            let p = s
                .pulls
                .iter()
                .find(|p| p.repo == repo && p.number == number)
                .expect("the PR exists");
            (
                s.git_root.join(format!("{repo}.git")),
                p.head.clone(),
                p.base.clone(),
            )
        };
        let work = bare.with_extension("merge");
        let _ = std::fs::remove_dir_all(&work);
        git(
            bare.parent().expect("parent"),
            &[
                "clone",
                "--quiet",
                "-b",
                &base,
                &bare.to_string_lossy(),
                &work.to_string_lossy(),
            ],
        );
        git(
            &work,
            &[
                "merge",
                "--no-ff",
                "--quiet",
                "-m",
                &format!("Merge pull request #{number}"),
                &format!("origin/{head}"),
            ],
        );
        git(&work, &["push", "--quiet", "origin", &base]);
        git(&bare, &["branch", "-D", &head]);
        let _ = std::fs::remove_dir_all(&work);
        let mut s = self.state();
        if let Some(p) = s
            .pulls
            .iter_mut()
            .find(|p| p.repo == repo && p.number == number)
        {
            p.state = "closed".into();
            p.merged = true;
        }
    }

    /// Every PR the fake holds.
    pub fn pulls(&self) -> Vec<FakePull> {
        self.state().pulls.clone()
    }

    /// The API requests so far (git's are not recorded).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Scripts a fault for the next matching request.
    pub fn fault(&self, fault: Fault) {
        self.state().faults.push_back(fault);
    }

    /// Sets the primary budget (`x-ratelimit-remaining`), resetting in an hour.
    pub fn set_remaining(&self, remaining: u64) {
        let mut s = self.state();
        s.remaining = remaining;
        s.reset_epoch = epoch() + 3600;
    }

    /// Serves GitHub App `app` from now on: its JWT buys installation tokens, which
    /// work like the fixed token (API and git) until they expire.
    pub fn enable_app(&self, app: FakeApp) {
        self.state().app = Some(app);
    }

    /// The installation tokens issued so far.
    pub fn installation_tokens(&self) -> Vec<String> {
        self.state()
            .installation_tokens
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Enforces GitHub's secondary limits from now on.
    pub fn enforce_secondary(&self, rules: SecondaryRules) {
        self.state().secondary = Some(rules);
    }

    /// How many requests were refused for a rate limit (primary or secondary).
    pub fn limit_responses(&self) -> u64 {
        self.state().limit_responses
    }

    /// Lists at most `size` PRs per page, whatever `per_page` asks.
    pub fn set_page_size(&self, size: usize) {
        self.state().page_size = size.max(1);
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_millis(200));
        }
    }
}

impl State {
    fn pull_mut(&mut self, repo: &str, number: &str) -> Option<&mut FakePull> {
        self.pulls
            .iter_mut()
            .find(|p| p.repo == repo && number.parse() == Ok(p.number))
    }
}

fn json_reply(status: u16, body: &Value, s: &State) -> Response {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", s.remaining.to_string())
        .header("x-ratelimit-reset", s.reset_epoch.to_string())
        .header(
            "x-ratelimit-used",
            (5000u64.saturating_sub(s.remaining)).to_string(),
        )
        .header("x-ratelimit-resource", "core");
    if status == 401 {
        r = r.header("www-authenticate", "Bearer");
    }
    r.body(Body::from(body.to_string())).expect("response")
}

fn pull_json(p: &FakePull, base_url: &str) -> Value {
    let owner = p.repo.split('/').next().unwrap_or_default();
    json!({
        "number": p.number,
        "node_id": node_id(p),
        "html_url": format!("{base_url}/{}/pull/{}", p.repo, p.number),
        "state": p.state,
        "title": p.title,
        "body": p.body,
        "head": {"ref": p.head, "label": format!("{owner}:{}", p.head)},
        "base": {"ref": p.base},
        "labels": p.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(),
        "merged": p.merged,
        "merged_at": if p.merged { json!("2026-11-30T00:00:00Z") } else { Value::Null },
    })
}

fn query_map(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.replace("%3A", ":").replace("%2F", "/"))
        })
        .collect()
}

/// A PR's GraphQL node id: unique across repositories, as GitHub's are.
fn node_id(p: &FakePull) -> String {
    format!("PR_node_{}_{}", p.repo.replace('/', "_"), p.number)
}

/// GitHub's answer past a secondary limit: 403 with `retry-after`.
fn secondary_limit_reply(retry_after: u64, s: &State) -> Response {
    let mut r = json_reply(
        403,
        &json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
        s,
    );
    r.headers_mut().insert(
        "retry-after",
        retry_after.to_string().parse().expect("value"),
    );
    r
}

/// A request counted in flight until dropped.
struct InFlight(Arc<Mutex<State>>);

impl InFlight {
    fn enter(state: &Arc<Mutex<State>>) -> InFlight {
        state.lock().expect("fake state").in_flight += 1;
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }
}

/// The App endpoints: `POST /app/installations/{id}/access_tokens` and `GET /app`
/// with the App's JWT (RS256 over its key, `iss` the App id, at most ten minutes,
/// not expired), and the bot's `GET /users/<slug>[bot]`.
fn app_api(s: &mut State, method: &Method, path: &str, authorization: Option<&str>) -> Response {
    let Some(app) = s.app.clone() else {
        return json_reply(404, &json!({"message": "Not Found"}), s);
    };
    if let Some(login) = path.strip_prefix("/api/v3/users/") {
        let login = login.replace("%5B", "[").replace("%5D", "]");
        if login != format!("{}[bot]", app.slug) {
            return json_reply(404, &json!({"message": "Not Found"}), s);
        }
        return json_reply(
            200,
            &json!({"login": login, "id": app.bot_user_id, "type": "Bot"}),
            s,
        );
    }
    let jwt = authorization.and_then(|a| a.strip_prefix("Bearer "));
    if let Err(message) = jwt.map_or(Err("no JWT".to_string()), |j| check_jwt(&app, j)) {
        return json_reply(
            401,
            &json!({"message": format!("A JSON web token could not be decoded: {message}")}),
            s,
        );
    }
    let mint = format!(
        "/api/v3/app/installations/{}/access_tokens",
        app.installation_id
    );
    if *method == Method::POST && path == mint {
        let token = format!("ghs_fake{:04}", s.installation_tokens.len() + 1);
        s.installation_tokens
            .push((token.clone(), Instant::now() + app.token_ttl));
        let expires = epoch() + app.token_ttl.as_secs();
        return json_reply(
            201,
            &json!({"token": token, "expires_at": leviathan_domain::clock::rfc3339(expires * 1000)}),
            s,
        );
    }
    if *method == Method::GET && path == "/api/v3/app" {
        return json_reply(
            200,
            &json!({"id": app.app_id, "slug": app.slug, "name": app.slug}),
            s,
        );
    }
    json_reply(404, &json!({"message": "Not Found"}), s)
}

/// `GET /installation/repositories`: every repository the fake holds (the App is
/// installed on all of them), paged by the fake's page size with `Link`.
fn installation_repositories(s: &State, query: &str) -> Response {
    let mut names: Vec<String> = Vec::new();
    for owner in std::fs::read_dir(&s.git_root)
        .into_iter()
        .flatten()
        .flatten()
    {
        for repo in std::fs::read_dir(owner.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let file = repo.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".git") {
                names.push(format!("{}/{name}", owner.file_name().to_string_lossy()));
            }
        }
    }
    names.sort();
    let all: Vec<Value> = names
        .iter()
        .map(|n| json!({"full_name": n, "default_branch": "main", "archived": false}))
        .collect();
    let total = all.len();
    let (chunk, link) = paged(
        all,
        query,
        s.page_size,
        &format!("{}/api/v3/installation/repositories", s.base_url),
    );
    let mut r = json_reply(
        200,
        &json!({"total_count": total, "repositories": chunk}),
        s,
    );
    if let Some(link) = link {
        r.headers_mut()
            .insert("link", link.parse().expect("link header"));
    }
    r
}

/// One page of `items` as the request's `page` and `per_page` (default 30, at most
/// 100 and the fake's page size) ask, and the `Link` header GitHub sends with it
/// (`next`, `last`, `first`, `prev` to `url` with the request's other parameters)
/// when there is more than one page.
fn paged(
    items: Vec<Value>,
    query: &str,
    page_size: usize,
    url: &str,
) -> (Vec<Value>, Option<String>) {
    let q = query_map(query);
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let per_page: usize = get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .min(100)
        .min(page_size);
    let page: usize = get("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    if pages <= 1 {
        return (chunk, None);
    }
    let others: Vec<(String, String)> = q.into_iter().filter(|(k, _)| k != "page").collect();
    let link_to = |n: usize| {
        let mut query: Vec<String> = others.iter().map(|(k, v)| format!("{k}={v}")).collect();
        query.push(format!("page={n}"));
        format!("<{url}?{}>", query.join("&"))
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("{}; rel=\"next\"", link_to(page + 1)));
        links.push(format!("{}; rel=\"last\"", link_to(pages)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", link_to(1)));
        links.push(format!("{}; rel=\"prev\"", link_to(page - 1)));
    }
    (chunk, Some(links.join(", ")))
}

/// Checks an App JWT as GitHub does; the reason when it fails.
fn check_jwt(app: &FakeApp, jwt: &str) -> Result<(), String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err("not three parts".into());
    };
    let decode = |part: &str| b64.decode(part).map_err(|_| "bad base64url".to_string());
    let header: Value = serde_json::from_slice(&decode(header)?).map_err(|e| e.to_string())?;
    if header["alg"] != "RS256" {
        return Err(format!("alg {}", header["alg"]));
    }
    let public = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        &app.public_der,
    );
    public
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &decode(signature)?,
        )
        .map_err(|_| "bad signature".to_string())?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let iss_ok = claims["iss"].as_str() == Some(app.app_id.to_string().as_str())
        || claims["iss"] == app.app_id;
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    let now = epoch();
    if !iss_ok {
        return Err("wrong iss".into());
    }
    if exp <= now || iat > now + 60 || exp.saturating_sub(iat) > 600 {
        return Err(format!(
            "'Expiration time' claim ('exp') is invalid (iat {iat}, exp {exp}, now {now})"
        ));
    }
    Ok(())
}

impl State {
    /// Whether `token` may act: the fixed token, or an installation token not yet
    /// expired.
    fn accepts(&self, token: Option<&str>) -> bool {
        let Some(token) = token else {
            return false;
        };
        token == self.token
            || self
                .installation_tokens
                .iter()
                .any(|(t, until)| t == token && Instant::now() < *until)
    }

    /// Whether the secondary limits refuse this request now (the `retry-after` to
    /// answer with); an accepted content-creating request is counted.
    fn secondary_refusal(&mut self, method: &Method) -> Option<u64> {
        let rules = self.secondary.clone()?;
        if self.in_flight >= rules.concurrent {
            return Some(rules.retry_after);
        }
        if matches!(*method, Method::GET | Method::HEAD) {
            return None;
        }
        let now = Instant::now();
        let longest = rules.hour.max(rules.minute);
        while self
            .content_times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= longest)
        {
            self.content_times.pop_front();
        }
        let within = |w: Duration| {
            self.content_times
                .iter()
                .filter(|t| now.duration_since(**t) < w)
                .count()
        };
        if within(rules.minute) >= rules.per_minute || within(rules.hour) >= rules.per_hour {
            return Some(rules.retry_after);
        }
        self.content_times.push_back(now);
        None
    }

    /// The next PR number of `repo`: numbers count per repository, as on GitHub.
    fn next_number(&self, repo: &str) -> u64 {
        self.pulls.iter().filter(|p| p.repo == repo).count() as u64 + 1
    }
}

async fn handle(
    AxumState(state): AxumState<Arc<Mutex<State>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if !path.starts_with("/api/") {
        return git_http(state, method, uri, headers, body).await;
    }
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let hang = {
        let mut s = state.lock().expect("fake state");
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        s.requests.push(Recorded {
            method: method.to_string(),
            path: path_and_query.clone(),
            body: body_json.clone(),
            authorization: authorization.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            at: Instant::now(),
        });
        if path.starts_with("/api/v3/app") || path.starts_with("/api/v3/users/") {
            return app_api(&mut s, &method, &path, authorization.as_deref());
        }
        if !s.accepts(
            authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer ")),
        ) {
            return json_reply(
                401,
                &json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
                &s,
            );
        }
        if s.remaining == 0 {
            s.limit_responses += 1;
            return json_reply(403, &json!({"message": "API rate limit exceeded"}), &s);
        }
        if let Some(retry_after) = s.secondary_refusal(&method) {
            s.limit_responses += 1;
            return secondary_limit_reply(retry_after, &s);
        }
        s.remaining -= 1;
        let fault = s
            .faults
            .iter()
            .position(|f| f.method == method.as_str() && path.contains(&f.path))
            .and_then(|i| s.faults.remove(i));
        match fault.map(|f| f.kind) {
            Some(FaultKind::SecondaryLimit { retry_after }) => {
                return secondary_limit_reply(retry_after, &s);
            }
            Some(FaultKind::ServerError(code)) => {
                return json_reply(code, &json!({"message": "Server Error"}), &s);
            }
            Some(FaultKind::ActThenHang) => true,
            None => false,
        }
    };
    // In flight from here to the reply (a hanging reply stays in flight).
    let _in_flight = InFlight::enter(&state);
    let reply = {
        let mut s = state.lock().expect("fake state");
        api(
            &mut s,
            &method,
            &path,
            uri.query().unwrap_or(""),
            &body_json,
        )
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    reply
}

fn api(s: &mut State, method: &Method, path: &str, query: &str, body: &Value) -> Response {
    let not_found = |s: &State| json_reply(404, &json!({"message": "Not Found"}), s);
    if path == "/api/graphql" && method == Method::POST {
        let query_text = body["query"].as_str().unwrap_or_default();
        let id = body["variables"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !query_text.contains("enablePullRequestAutoMerge") {
            return json_reply(200, &json!({"errors": [{"message": "unknown query"}]}), s);
        }
        let Some(p) = s.pulls.iter_mut().find(|p| node_id(p) == id) else {
            return json_reply(
                200,
                &json!({"errors": [{"message": format!("Could not resolve to a node with the global id of '{id}'")}]}),
                s,
            );
        };
        p.auto_merge = true;
        let number = p.number;
        return json_reply(
            200,
            &json!({"data": {"enablePullRequestAutoMerge": {"pullRequest": {"number": number}}}}),
            s,
        );
    }
    if path == "/api/v3/installation/repositories" && method == Method::GET {
        return installation_repositories(s, query);
    }
    let Some(rest) = path.strip_prefix("/api/v3/repos/") else {
        return not_found(s);
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() < 3 {
        return not_found(s);
    }
    let repo = format!("{}/{}", parts[0], parts[1]);
    if !s.git_root.join(format!("{repo}.git")).exists() {
        return not_found(s);
    }
    let base_url = s.base_url.clone();
    match (method.clone(), &parts[2..]) {
        (Method::GET, ["pulls"]) => {
            let q = query_map(query);
            let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
            let state_filter = get("state").unwrap_or_else(|| "open".into());
            let matching: Vec<Value> = s
                .pulls
                .iter()
                .filter(|p| p.repo == repo)
                .filter(|p| state_filter == "all" || p.state == state_filter)
                .filter(|p| get("base").is_none_or(|b| b == p.base))
                .filter(|p| get("head").is_none_or(|h| h == format!("{}:{}", parts[0], p.head)))
                .map(|p| pull_json(p, &base_url))
                .collect();
            let (items, link) = paged(matching, query, s.page_size, &format!("{base_url}{path}"));
            let mut r = json_reply(200, &Value::Array(items), s);
            if let Some(link) = link {
                r.headers_mut().insert("link", link.parse().expect("link"));
            }
            r
        }
        (Method::GET, ["pulls", n]) => match s.pull_mut(&repo, n) {
            Some(p) => {
                let v = pull_json(p, &base_url);
                json_reply(200, &v, s)
            }
            None => not_found(s),
        },
        (Method::POST, ["pulls"]) => {
            let field = |k: &str| body[k].as_str().unwrap_or_default().to_string();
            let (head, base) = (field("head"), field("base"));
            let bare = s.git_root.join(format!("{repo}.git"));
            let exists = Command::new("git")
                .arg("-C")
                .arg(&bare)
                .args([
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{head}"),
                ])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !exists {
                return json_reply(
                    422,
                    &json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}]}),
                    s,
                );
            }
            if s.pulls
                .iter()
                .any(|p| p.repo == repo && p.head == head && p.state == "open")
            {
                return json_reply(
                    422,
                    &json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {}:{head}.", parts[0])}]}),
                    s,
                );
            }
            let number = s.next_number(&repo);
            let pull = FakePull {
                repo: repo.clone(),
                number,
                head,
                base,
                title: field("title"),
                body: field("body"),
                labels: Vec::new(),
                state: "open".into(),
                merged: false,
                auto_merge: false,
                comments: Vec::new(),
            };
            let v = pull_json(&pull, &base_url);
            s.pulls.push(pull);
            json_reply(201, &v, s)
        }
        (Method::POST, ["issues", n, "labels"]) => {
            let labels: Vec<String> = body["labels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let Some(p) = s.pull_mut(&repo, n) else {
                return not_found(s);
            };
            for l in labels {
                if !p.labels.contains(&l) {
                    p.labels.push(l);
                }
            }
            let v: Vec<Value> = p.labels.iter().map(|l| json!({"name": l})).collect();
            json_reply(200, &Value::Array(v), s)
        }
        (Method::POST, ["issues", n, "comments"]) => {
            let text = body["body"].as_str().unwrap_or_default().to_string();
            let Some(p) = s.pull_mut(&repo, n) else {
                return not_found(s);
            };
            p.comments.push(text.clone());
            json_reply(201, &json!({"id": p.comments.len(), "body": text}), s)
        }
        _ => not_found(s),
    }
}

/// git's smart HTTP through `git http-backend` (CGI), with GitHub's authentication:
/// Basic `x-access-token:<token>`.
async fn git_http(
    state: Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (root, authorized) = {
        let s = state.lock().expect("fake state");
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut candidates = vec![s.token.clone()];
        candidates.extend(s.installation_tokens.iter().map(|(t, _)| t.clone()));
        let authorized = candidates.iter().any(|token| {
            sent == format!(
                "Basic {}",
                base64(format!("x-access-token:{token}").as_bytes())
            ) && s.accepts(Some(token))
        });
        (s.git_root.clone(), authorized)
    };
    if !authorized {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Basic realm=\"GitHub\"")
            .body(Body::from("Invalid username or token."))
            .expect("response");
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (content_type, encoding, protocol) = (
        header("content-type"),
        header("content-encoding"),
        header("git-protocol"),
    );
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_PROJECT_ROOT", &root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", &path)
            .env("QUERY_STRING", &query)
            .env("REQUEST_METHOD", method.as_str())
            .env("CONTENT_TYPE", &content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("HTTP_CONTENT_ENCODING", &encoding)
            .env("GIT_PROTOCOL", &protocol)
            .env("REMOTE_USER", "x-access-token")
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&body);
        });
        let out = child.wait_with_output()?;
        let _ = writer.join();
        Ok::<_, std::io::Error>(out.stdout)
    })
    .await;
    let raw = match out {
        Ok(Ok(raw)) => raw,
        _ => {
            return Response::builder()
                .status(500)
                .body(Body::from("git http-backend failed"))
                .expect("response");
        }
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, skip)) = split else {
        return Response::builder()
            .status(500)
            .body(Body::from("bad CGI reply"))
            .expect("response");
    };
    let mut builder = Response::builder().status(200);
    for line in String::from_utf8_lossy(&raw[..at]).lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("status") {
            let code: u16 = v
                .trim()
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(200);
            builder = builder.status(code);
        } else {
            builder = builder.header(k.trim(), v.trim());
        }
    }
    builder
        .body(Body::from(raw[at + skip..].to_vec()))
        .expect("response")
}

/// The repository of target `i` made by [`one_identity`].
pub fn one_identity_repo(i: usize) -> String {
    format!("acme/repo-{i:03}")
}

/// `targets` repositories ([`one_identity_repo`]) on a fake GitHub enforcing `rules`,
/// each holding `backlog` and a `docs/index.md`, and the host's configuration
/// `dir/leviathan.yaml` serving them as targets on one token (4 workers, a policy with
/// `max_open_prs`).
pub fn one_identity(
    dir: &Path,
    token: &str,
    targets: usize,
    backlog: &str,
    max_open_prs: usize,
    rules: SecondaryRules,
) -> (FakeGitHub, leviathan_domain::config::Config) {
    let git_root = dir.join("github");
    std::fs::create_dir_all(git_root.join("acme")).expect("mkdir");
    let fake = FakeGitHub::start(&git_root, token);
    fake.enforce_secondary(rules);
    std::fs::write(dir.join("gh.token"), token).expect("token");
    std::fs::write(
        dir.join("policy.yaml"),
        format!("max_open_prs: {max_open_prs}\n"),
    )
    .expect("policy");
    let mut config = String::from("workers: 4\ntargets:\n");
    for i in 0..targets {
        let repo = one_identity_repo(i);
        fake.create_repo(
            &repo,
            &[
                (".leviathan/backlog.yaml", backlog),
                ("docs/index.md", "# Index\n"),
            ],
        );
        config.push_str(&format!(
            "  - id: t{i:03}\n    repository: {repo}\n    forge: github\n    github_api_url: {}\n    token_file: gh.token\n    policy: policy.yaml\n    labels: [leviathan]\n",
            fake.api_url
        ));
    }
    let file = dir.join("leviathan.yaml");
    std::fs::write(&file, config).expect("config");
    let config = leviathan_domain::config::Config::load(&file).expect("config loads");
    (fake, config)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(
            super::base64(b"x-access-token:abc"),
            "eC1hY2Nlc3MtdG9rZW46YWJj"
        );
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b"a"), "YQ==");
    }
}
