//! The CLI as a client of a running `serve`: `events tail --api URL [--follow]`.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

/// The bearer token: the first line of `file`, else $LEVIATHAN_TOKEN.
pub fn token(file: Option<&Path>) -> Result<String> {
    let token = match file {
        Some(f) => leviathan_domain::repofs::read_secret_file(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        None => std::env::var("LEVIATHAN_TOKEN")
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    if token.is_empty() {
        bail!("--api needs a token: set LEVIATHAN_TOKEN or pass --token-file");
    }
    Ok(token)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// GETs `url` and decodes the JSON reply; a non-200 reply is an error with the
/// server's message.
fn get_json(agent: &ureq::Agent, url: &str, token: &str) -> Result<serde_json::Value> {
    let mut response = agent
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let text = response.body_mut().read_to_string()?;
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if status != 200 {
        bail!(
            "GET {url}: {status}: {}",
            value["error"]["message"].as_str().unwrap_or(&text)
        );
    }
    Ok(value)
}

/// Prints events from the server as NDJSON: the last `last` (or all after `after`),
/// then, with `follow`, new ones from the SSE stream, reconnecting with
/// `Last-Event-ID` when the connection drops.
pub fn tail(api: &str, token: &str, last: u64, after: Option<u64>, follow: bool) -> Result<()> {
    let base = api.trim_end_matches('/');
    let agent = agent();
    let mut seen = match after {
        Some(a) => a,
        None => {
            let head = get_json(&agent, &format!("{base}/api/v1/events?limit=1"), token)?;
            head["last_seq"].as_u64().unwrap_or(0).saturating_sub(last)
        }
    };
    let stdout = std::io::stdout();
    loop {
        let page = get_json(
            &agent,
            &format!("{base}/api/v1/events?after={seen}&limit=1000"),
            token,
        )?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let mut out = stdout.lock();
        for e in &events {
            writeln!(out, "{e}")?;
        }
        out.flush()?;
        seen = page["next_after"].as_u64().unwrap_or(seen);
        if !page["more"].as_bool().unwrap_or(false) {
            break;
        }
    }
    if !follow {
        return Ok(());
    }
    loop {
        match stream(&agent, base, token, &mut seen) {
            Ok(()) => {}
            Err(e) if e.downcast_ref::<Refused>().is_some() => return Err(e),
            Err(e) => eprintln!("events stream: {}; reconnecting", crate::error_text(&e)),
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The server refused the token: retrying cannot help.
#[derive(Debug, thiserror::Error)]
#[error("GET {url}: {status}: the token was refused")]
struct Refused {
    url: String,
    status: u16,
}

/// Follows the SSE stream after `seen` until it ends, advancing `seen`.
fn stream(agent: &ureq::Agent, base: &str, token: &str, seen: &mut u64) -> Result<()> {
    let url = format!("{base}/api/v1/events/stream");
    let response = agent
        .get(&url)
        .header("Authorization", format!("Bearer {token}"))
        .header("Last-Event-ID", seen.to_string())
        .call()
        .with_context(|| format!("GET {url}"))?;
    match response.status().as_u16() {
        200 => {}
        status @ (401 | 403) => return Err(Refused { url, status }.into()),
        status => bail!("GET {url}: {status}"),
    }
    let reader = BufReader::new(response.into_body().into_reader());
    let stdout = std::io::stdout();
    for line in reader.lines() {
        let line = line?;
        if let Some(id) = line.strip_prefix("id:") {
            if let Ok(id) = id.trim().parse() {
                *seen = id;
            }
        } else if let Some(data) = line.strip_prefix("data:") {
            let mut out = stdout.lock();
            writeln!(out, "{}", data.trim_start())?;
            out.flush()?;
        }
    }
    Ok(())
}
