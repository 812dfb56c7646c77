//! The operator console against the real `serve` with a local-forge target whose
//! backlog carries script payloads: escaping and security headers on every view,
//! sessions, CSRF and origin checks (over HTTP), then the whole flow in a real
//! headless Chromium driven over WebDriver.

use leviathan_tests::serve::{OPERATOR, Server, VIEWER};
use leviathan_tests::{Seed, bare_repo, registry, root};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// The payloads the backlog carries; none may ever reach the page as markup.
const PAYLOADS: [&str; 4] = [
    "<script>window.__xss=1</script>",
    "<img src=x onerror=\"window.__xss=2\">",
    "\"><svg onload=\"window.__xss=3\">",
    "javascript:window.__xss=4",
];

fn hostile_backlog() -> String {
    format!(
        "tasks:
  - id: xss-docs
    title: {title}
    description: {description}
    scope: docs
    ready: true
    allowed_paths: [docs/]
    acceptance_criteria:
      - {criterion}
  - id: later
    title: Waits for the guide
    scope: docs
    ready: true
    dependencies: [xss-docs]
    allowed_paths: [docs/]
  - id: parked
    title: Not ready yet
    scope: docs
    ready: false
    allowed_paths: [docs/]
",
        title = serde_json::to_string(&format!("{} guide", PAYLOADS[0])).unwrap(),
        description =
            serde_json::to_string(&format!("{} and {}", PAYLOADS[1], PAYLOADS[3])).unwrap(),
        criterion = serde_json::to_string(PAYLOADS[2]).unwrap(),
    )
}

/// A local-forge target `evil` with the hostile backlog, served with passes every
/// `interval` seconds.
fn world(dir: &Path, interval: u64) -> Server {
    let backlog = hostile_backlog();
    bare_repo(
        dir,
        "evil",
        &[
            Seed::Text(".leviathan/backlog.yaml", &backlog),
            Seed::Text("docs/index.md", "# Index\n"),
        ],
    );
    let config = dir.join("leviathan.yaml");
    std::fs::write(
        &config,
        format!("interval_seconds: {interval}\ntargets:\n  - id: evil\n    repository: evil.git\n"),
    )
    .unwrap();
    let cache = root().join("target/test-cache").display().to_string();
    let registry = registry().display().to_string();
    let config = config.display().to_string();
    Server::start(
        dir,
        &["--config", &config, "--plugin-dir", &registry],
        &[("LEVIATHAN_CACHE_DIR", &cache)],
    )
}

/// Polls the API until an event of `kind` is in the log; returns the events.
fn wait_for_event(server: &Server, kind: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, page) = server.get("/api/v1/events?limit=1000", Some(VIEWER));
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.iter().any(|e| e["type"] == kind) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} event: {page}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A browser-like HTTP client that follows no redirects and sends the cookie it is given.
struct Page {
    agent: ureq::Agent,
    base: String,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.body[at + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Page {
    fn new(base: &str) -> Page {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Page {
            agent,
            base: base.to_string(),
        }
    }

    fn reply(response: Result<http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("the request completes");
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        Reply {
            status: response.status().as_u16(),
            headers,
            body: response.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut r = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        Page::reply(r.call())
    }

    /// A form post; `headers` are the fetch metadata a browser would send.
    fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Reply {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        let body: Vec<String> = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect();
        Page::reply(r.send(body.join("&")))
    }

    /// Logs in with `token`; the session cookie (`name=value`).
    fn login(&self, token: &str) -> String {
        let r = self.post(
            "/console/login",
            None,
            &[("Sec-Fetch-Site", "same-origin")],
            &[("token", token), ("next", "/console")],
        );
        assert_eq!(r.status, 303, "{}", r.body);
        let cookie = r
            .header("set-cookie")
            .expect("a session cookie")
            .to_string();
        for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(cookie.starts_with("__Host-leviathan-session="), "{cookie}");
        cookie.split(';').next().unwrap().to_string()
    }
}

const SAME_ORIGIN: (&str, &str) = ("Sec-Fetch-Site", "same-origin");

fn assert_safe(path: &str, r: &Reply) {
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert_eq!(
        r.header("content-security-policy"),
        Some(leviathan_server::console::CSP),
        "{path}"
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    for payload in PAYLOADS.iter().take(3) {
        assert!(
            !r.body.contains(payload),
            "{path} carries {payload} unescaped"
        );
    }
    for raw in ["<script>window", "<img", "<svg", "href=\"javascript:"] {
        assert!(!r.body.contains(raw), "{path} carries {raw}");
    }
    // Inside every tag of the page: no event-handler attribute, no inline style, no
    // script URL (escaped text has no tags, so it cannot add any).
    for tag in r
        .body
        .split('<')
        .skip(1)
        .filter_map(|t| t.split('>').next())
    {
        let lower = tag.to_ascii_lowercase();
        for word in lower.split_whitespace().skip(1) {
            assert!(
                !(word.starts_with("on") && word.contains('=')),
                "{path}: handler in <{tag}>"
            );
            assert!(
                !word.starts_with("style="),
                "{path}: inline style in <{tag}>"
            );
        }
        assert!(
            !lower.contains("javascript:"),
            "{path}: script URL in <{tag}>"
        );
    }
    assert!(
        r.body.matches("<script").count() == 1,
        "{path}: only the console's own script"
    );
}

#[test]
fn console_views_escape_everything_and_refuse_forged_actions() {
    let dir = tempfile::tempdir().unwrap();
    let server = world(dir.path(), 3600);
    let events = wait_for_event(&server, "pr.opened");
    let attempt = events
        .iter()
        .find(|e| e["type"] == "attempt.succeeded")
        .and_then(|e| e["attempt"].as_str())
        .expect("the first pass's attempt")
        .to_string();
    // A pause reason is data too.
    let (status, _) = server.post(
        "/api/v1/autonomy/pause",
        Some(OPERATOR),
        &json!({"target": "evil", "reason": PAYLOADS[1]}).to_string(),
    );
    assert_eq!(status, 200);
    let page = Page::new(&server.base);

    // Unauthenticated: to the login page, and back after it.
    let r = page.get("/console", None);
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/login?next=%2Fconsole"))
    );
    assert_eq!(page.get("/", None).header("location"), Some("/console"));
    assert_eq!(
        page.get("/console/prs", Some("__Host-leviathan-session=0000"))
            .status,
        303
    );
    let r = page.get("/console/login", None);
    assert_eq!(
        r.header("content-security-policy"),
        Some(leviathan_server::console::CSP)
    );
    // A wrong token, and a login from another site, are refused.
    let r = page.post(
        "/console/login",
        None,
        &[SAME_ORIGIN],
        &[("token", "wrong-token-0123456789")],
    );
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    let r = page.post(
        "/console/login",
        None,
        &[("Sec-Fetch-Site", "cross-site")],
        &[("token", OPERATOR)],
    );
    assert_eq!(r.status, 403);
    let operator = page.login(OPERATOR);
    let viewer = page.login(VIEWER);

    let target = "/console/targets/evil";
    let attempt_page = format!("/console/targets/evil/attempts/{attempt}");
    for path in [
        "/console",
        target,
        &attempt_page,
        "/console/prs",
        "/console/prs?state=open&target=evil",
        "/console/events",
        "/console/events?type=attempt.&target=evil",
        "/console/plugins",
        "/console/actions/pause?target=evil",
    ] {
        let r = page.get(path, Some(&operator));
        assert_safe(path, &r);
    }
    // The attempt shows what ran, on what, with what, and how to run it again.
    let r = page.get(&attempt_page, Some(&operator));
    for shown in [
        "sha256:",
        "Base commit",
        "bytes at most, of",
        &format!("leviathan-host replay {attempt}"),
    ] {
        assert!(r.body.contains(shown), "{shown}: {}", r.body);
    }
    assert!(!r.body.contains("not recorded"), "{}", r.body);
    let r = page.get(target, Some(&operator));
    assert!(
        r.body
            .contains("&lt;script&gt;window.__xss=1&lt;/script&gt; guide"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("waits behind") || r.body.contains("dependency"),
        "why it waits: {}",
        r.body
    );
    assert!(
        r.body.contains("autonomy is paused") || r.body.contains("in flight"),
        "{}",
        r.body
    );
    let r = page.get(&attempt_page, Some(&operator));
    assert!(
        r.body.contains("class=\"diff\""),
        "the attempt shows its diff: {}",
        r.body
    );
    assert!(
        r.body.contains("&lt;script&gt;"),
        "the diff holds the payload, escaped"
    );
    let r = page.get(&format!("{attempt_page}/diff"), Some(&operator));
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("diff --git"), "{}", r.body);
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(
        r.header("content-security-policy"),
        Some(leviathan_server::console::CSP)
    );
    let r = page.get(target, Some(&operator));
    for escaped in [
        "&lt;img src=x onerror=&quot;window.__xss=2&quot;&gt;",
        "&quot;&gt;&lt;svg onload=&quot;window.__xss=3&quot;&gt;",
        "javascript:window.__xss=4",
    ] {
        assert!(
            r.body.contains(escaped),
            "{escaped} is shown as text: {}",
            r.body
        );
    }

    // The viewer sees no actions, and the server refuses them anyway.
    let r = page.get("/console", Some(&viewer));
    assert_safe("/console (viewer)", &r);
    assert!(!r.body.contains("/console/actions/"), "{}", r.body);
    let viewer_csrf = r.csrf();
    let resume = [
        ("csrf", viewer_csrf.as_str()),
        ("target", "evil"),
        ("reason", "forged"),
    ];
    assert_eq!(
        page.post(
            "/console/actions/resume",
            Some(&viewer),
            &[SAME_ORIGIN],
            &resume
        )
        .status,
        403
    );
    assert_eq!(
        page.get("/console/actions/resume?target=evil", Some(&viewer))
            .status,
        403
    );
    // The operator's session without the CSRF token, with a stale one, or from elsewhere.
    let csrf = page.get("/console", Some(&operator)).csrf();
    let no_token = [("target", "evil"), ("reason", "forged")];
    let wrong_token = [
        ("csrf", viewer_csrf.as_str()),
        ("target", "evil"),
        ("reason", "forged"),
    ];
    let good = [
        ("csrf", csrf.as_str()),
        ("target", "evil"),
        ("reason", "after review"),
    ];
    for (headers, form) in [
        (&[SAME_ORIGIN][..], &no_token[..]),
        (&[SAME_ORIGIN][..], &wrong_token[..]),
        (&[("Sec-Fetch-Site", "cross-site")][..], &good[..]),
        (&[("Origin", "http://evil.example")][..], &good[..]),
        (&[][..], &good[..]),
    ] {
        let r = page.post("/console/actions/resume", Some(&operator), headers, form);
        assert_eq!(r.status, 403, "{headers:?} {form:?}: {}", r.body);
    }
    assert_eq!(
        page.post("/console/actions/resume", None, &[SAME_ORIGIN], &good)
            .status,
        403
    );
    let (_, autonomy) = server.get("/api/v1/autonomy", Some(VIEWER));
    assert_eq!(
        autonomy["targets"]["evil"]["paused"], true,
        "nothing changed"
    );
    // A reason is required.
    let r = page.post(
        "/console/actions/resume",
        Some(&operator),
        &[SAME_ORIGIN],
        &[("csrf", &csrf), ("target", "evil"), ("reason", " ")],
    );
    assert_eq!(r.status, 400);
    // With everything in place the action happens, recorded with the actor.
    let r = page.post(
        "/console/actions/resume",
        Some(&operator),
        &[SAME_ORIGIN],
        &good,
    );
    assert_eq!(
        (r.status, r.header("location")),
        (303, Some("/console/targets/evil")),
        "{}",
        r.body
    );
    let (_, autonomy) = server.get("/api/v1/autonomy", Some(VIEWER));
    assert_eq!(autonomy["targets"]["evil"]["paused"], false);
    let (_, page_of_events) = server.get("/api/v1/events?target=evil&limit=1000", Some(VIEWER));
    let resumed = page_of_events["events"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["type"] == "autonomy.resumed")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            resumed["actor"].as_str(),
            resumed["payload"]["reason"].as_str()
        ),
        (Some("ops"), Some("after review"))
    );

    // Logout ends the session; a tokens-file reload ends sessions of removed tokens.
    let r = page.post(
        "/console/logout",
        Some(&viewer),
        &[SAME_ORIGIN],
        &[("csrf", &viewer_csrf)],
    );
    assert_eq!(r.status, 303);
    assert_eq!(page.get("/console", Some(&viewer)).status, 303);
    leviathan_tests::serve::write_tokens(
        &dir.path().join("tokens.yaml"),
        &[("dash", "viewer", VIEWER)],
    );
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while page.get("/console", Some(&operator)).status == 200 {
        assert!(
            Instant::now() < deadline,
            "the removed token's session lives on"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(page.get("/console", Some(&operator)).status, 303);
    drop(server);
}

/// The browser's console log (chromedriver's `se/log`), which fantoccini has no
/// call for.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// chromedriver and chromium, when installed (the project's xtask installs them).
fn browser_binaries() -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(n))
                    .find(|p| p.is_file())
            })
        })
    };
    Some((
        find(&["chromedriver"])?,
        find(&["chromium", "chromium-browser"])?,
    ))
}

/// A running chromedriver on a free port; killed when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver(binary: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, url }
}

/// Polls `check` on the page until it holds (at most `secs`); how long it took.
async fn until(client: &fantoccini::Client, what: &str, secs: u64, script: &str) -> Duration {
    let started = Instant::now();
    loop {
        let value = client.execute(script, vec![]).await.unwrap();
        if value == Value::Bool(true) {
            return started.elapsed();
        }
        let text = client
            .execute("return document.body.innerText", vec![])
            .await
            .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn screenshot(client: &fantoccini::Client, name: &str) {
    let dir = root().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn login(client: &fantoccini::Client, base: &str, token: &str) {
    use fantoccini::Locator;
    client.goto(&format!("{base}/console")).await.unwrap();
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login")
    );
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    client
        .find(Locator::Css("form.stack button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Text of the page's body.
async fn body_text(client: &fantoccini::Client) -> String {
    client
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_console_in_a_real_browser() {
    let Some((chromedriver, chromium)) = browser_binaries() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium and chromium-driver are required under CI=true (cargo xtask test installs them)"
        );
        eprintln!("SKIPPED: chromium or chromedriver is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = world(dir.path(), 2);
    wait_for_event(&server, "pr.opened");
    let driver = start_driver(&chromedriver);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use fantoccini::Locator;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--force-prefers-reduced-motion"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .expect("a WebDriver session");
        let base = server.base.clone();

        // 1. Login: a wrong token is refused; the cookie is out of the script's reach.
        login(&client, &base, "not-the-right-token-000").await;
        until(&client, "the refused login", 20, "return document.body.innerText.includes('not valid')").await;
        screenshot(&client, "login").await;
        client.find(Locator::Id("token")).await.unwrap().send_keys(OPERATOR).await.unwrap();
        client.find(Locator::Css("form.stack button[type=submit]")).await.unwrap().click().await.unwrap();
        until(&client, "the overview", 20, "return location.pathname === '/console'").await;
        let cookie = client.execute("return document.cookie", vec![]).await.unwrap();
        assert_eq!(cookie, json!(""), "the session cookie is HttpOnly");
        screenshot(&client, "overview").await;

        // 4. The payloads show as text and none runs.
        client.goto(&format!("{base}/console/targets/evil")).await.unwrap();
        let text = body_text(&client).await;
        assert!(text.contains("<script>window.__xss=1</script> guide"), "{text}");
        client.execute("document.querySelectorAll('details').forEach(d => d.open = true)", vec![]).await.unwrap();
        let text = body_text(&client).await;
        for p in PAYLOADS {
            assert!(text.contains(p), "{p} shown as text: {text}");
        }
        screenshot(&client, "target").await;

        // 2. An event caused through the API appears without a reload: merging the PR.
        client.execute("window.__marker = 42", vec![]).await.unwrap();
        let (status, body) = server.post("/api/v1/targets/evil/prs/1/merge", Some(OPERATOR), "");
        assert_eq!(status, 200, "{body}");
        let merged_after = until(
            &client,
            "the merge on the page",
            20,
            "return [...document.querySelectorAll('tbody tr')].some(tr => tr.cells.length > 3 && tr.cells[1].innerText.trim() === 'xss-docs' && tr.cells[3].innerText.includes('completed'))",
        )
        .await;
        // The next pass runs the dependent task, which shows up on its own too.
        until(&client, "the dependent task's attempt", 30,
            "return [...document.querySelectorAll('tbody code')].filter(c => c.innerText === 'later').length >= 2").await;
        assert_eq!(client.execute("return window.__marker", vec![]).await.unwrap(), json!(42), "no reload");
        eprintln!("console: merge through the API on screen after {merged_after:?}");

        // An attempt, with its diff.
        let attempt = client
            .find(Locator::Css("a[href*='/attempts/']"))
            .await
            .unwrap();
        attempt.click().await.unwrap();
        until(&client, "the attempt page", 20, "return !!document.querySelector('pre.diff')").await;
        screenshot(&client, "attempt").await;

        // 3. The operator pauses autonomy through the confirm step, with a reason.
        client.goto(&format!("{base}/console")).await.unwrap();
        client.find(Locator::LinkText("Pause autonomy")).await.unwrap().click().await.unwrap();
        until(&client, "the confirm step", 20, "return !!document.getElementById('reason')").await;
        screenshot(&client, "confirm").await;
        client.find(Locator::Id("reason")).await.unwrap().send_keys("maintenance window").await.unwrap();
        client.find(Locator::Id("confirm")).await.unwrap().click().await.unwrap();
        until(&client, "the paused state", 20,
            "return location.pathname === '/console' && document.body.innerText.includes('paused') && document.body.innerText.includes('maintenance window')").await;
        assert!(body_text(&client).await.contains("by ops"));
        client.goto(&format!("{base}/console/events?type=autonomy.")).await.unwrap();
        let text = body_text(&client).await;
        assert!(text.contains("autonomy.paused") && text.contains("operator · ops"), "{text}");
        // The event tail counts new events instead of moving rows.
        let (status, _) = server.post("/api/v1/autonomy/resume", Some(OPERATOR), r#"{"reason": "done"}"#);
        assert_eq!(status, 200);
        until(&client, "the new-events notice", 20,
            "return !document.getElementById('new-events').hidden").await;
        screenshot(&client, "events").await;
        client.goto(&format!("{base}/console/prs")).await.unwrap();
        screenshot(&client, "prs").await;
        // The pages left behind let go of their streams: a browser holds six
        // connections per server over HTTP/1.1, and kept pages holding theirs made the
        // seventh page wait about a minute for one to time out.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, metrics) = server.get("/metrics", None);
            let clients = metrics
                .as_str()
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("leviathan_sse_clients "))
                .map(|v| v.trim().to_string())
                .unwrap_or_default();
            if clients == "1" {
                break;
            }
            assert!(Instant::now() < deadline, "open event streams after leaving seven pages: {clients}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        client.goto(&format!("{base}/console/plugins")).await.unwrap();
        screenshot(&client, "plugins").await;

        // Keyboard only: the skip link and the navigation are reachable by Tab.
        client.goto(&format!("{base}/console")).await.unwrap();
        let focused = client
            .execute("document.body.focus(); return document.querySelector('a.skip').tabIndex >= 0 && [...document.querySelectorAll('nav a')].every(a => a.tabIndex >= 0)", vec![])
            .await
            .unwrap();
        assert_eq!(focused, json!(true));

        // The viewer sees no action buttons, and a forged post from its session fails.
        client.delete_all_cookies().await.unwrap();
        login(&client, &base, VIEWER).await;
        until(&client, "the viewer's overview", 20, "return location.pathname === '/console'").await;
        assert!(client.find_all(Locator::Css("a.button")).await.unwrap().is_empty());
        client.goto(&format!("{base}/console/targets/evil")).await.unwrap();
        assert!(client.find_all(Locator::Css("a.button")).await.unwrap().is_empty());
        let forged = client
            .execute_async(
                "const done = arguments[0];
                 const csrf = document.querySelector('input[name=csrf]').value;
                 fetch('/console/actions/pause', {method: 'POST', body: new URLSearchParams({csrf, reason: 'forged'})})
                   .then(r => done(r.status), () => done(0));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(forged, json!(403));
        let (_, autonomy) = server.get("/api/v1/autonomy", Some(VIEWER));
        assert_eq!(autonomy["paused"], false, "the forged pause changed nothing");

        // No payload ran anywhere, and the browser reported no policy violation.
        assert_eq!(client.execute("return window.__xss === undefined", vec![]).await.unwrap(), json!(true));
        let log = client.issue_cmd(BrowserLog).await.unwrap();
        let messages: Vec<String> = log
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["message"].as_str().map(String::from))
            .collect();
        for m in &messages {
            let lower = m.to_lowercase();
            assert!(
                !lower.contains("content security policy") && !lower.contains("trusted type") && !lower.contains("uncaught"),
                "browser log: {m}"
            );
        }

        // The stream going down shows the banner.
        client.goto(&format!("{base}/console")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = client.execute("return 1", vec![]).await;
        let stopped = server.stop();
        assert!(stopped.success());
        until(&client, "the live-updates-lost banner", 20,
            "return !document.getElementById('stream-banner').hidden && document.body.innerText.includes('Live updates lost')").await;
        screenshot(&client, "stream-lost").await;
        client.close().await.unwrap();
    });
}
