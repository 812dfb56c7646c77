//! A running `leviathan-host serve` for the tests: started on 127.0.0.1 with a real
//! tokens file, driven by a real HTTP client, killed when dropped.

use crate::host_binary;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The operator token of the tokens file [`Server::start`] writes (name `ops`).
pub const OPERATOR: &str = "operator-token-0123456789";
/// The viewer token (name `dash`).
pub const VIEWER: &str = "viewer-token-0123456789";

/// Writes a tokens file of `(name, role, token)` entries.
pub fn write_tokens(file: &Path, entries: &[(&str, &str, &str)]) {
    let mut text = String::from("tokens:\n");
    for (name, role, token) in entries {
        text.push_str(&format!(
            "  - {{name: {name}, role: {role}, token: {token}}}\n"
        ));
    }
    std::fs::write(file, text).unwrap();
}

/// A running `serve` process; killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub agent: ureq::Agent,
    stderr: PathBuf,
}

impl Server {
    /// Starts `serve` on a free port with `<dir>/data` and `<dir>/tokens.yaml` (an
    /// operator and a viewer unless the file exists), `extra` arguments and `envs`.
    pub fn start(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        let tokens = dir.join("tokens.yaml");
        if !tokens.exists() {
            write_tokens(
                &tokens,
                &[("ops", "operator", OPERATOR), ("dash", "viewer", VIEWER)],
            );
        }
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, Ordering::Relaxed);
        let stderr = dir.join(format!("serve-{n}.log"));
        let mut child = Command::new(host_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--tokens-file")
            .arg(&tokens)
            .args(if extra.contains(&"--plugin-dir") {
                Vec::new()
            } else {
                vec![
                    "--plugin-dir".into(),
                    dir.join("plugins").display().to_string(),
                ]
            })
            .args(extra)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Server {
            child,
            base,
            agent,
            stderr,
        }
    }

    /// One request; the status and the JSON body (a string when not JSON).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut response = match method {
            "GET" => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(body.unwrap_or(""))
            }
        }
        .expect("the request completes");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// A `GET`.
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        self.request("GET", path, token, None)
    }

    /// A `POST` of a JSON body.
    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        self.request("POST", path, token, Some(body))
    }

    /// Sends `signal` (e.g. `HUP`) to the server.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then the exit status (within 20 s).
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits up to 15 s for `text` in the server's log; panics with `what` if it never
    /// comes.
    pub fn wait_for_log(&self, text: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
