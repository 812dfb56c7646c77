//! The HTTP stack under each octocrab client, assembled by the host so every request
//! follows GitHub's conventions exactly once: `User-Agent: leviathan-host/<version>`
//! (GitHub asks for the application's name), `Accept: application/vnd.github+json`
//! and the token as a sensitive `Authorization` header. `X-GitHub-Api-Version`
//! (`2022-11-28`) is set by octocrab's request builder on every request (from its
//! crate metadata), so the host does not add it a second time; the GitHub tests
//! assert each of these headers arrives once. octocrab's default stack always adds `User-Agent: octocrab` and appends
//! any extra header beside it, so it is not used. TLS is rustls (ring, the
//! platform's roots), HTTP/1, with a connect timeout; the read timeout is the
//! caller's (see `GitHub::send_once`).

use http::header::{ACCEPT, AUTHORIZATION, HeaderName, HeaderValue, USER_AGENT};
use octocrab::service::middleware::base_uri::BaseUriLayer;
use octocrab::service::middleware::extra_headers::ExtraHeadersLayer;
use octocrab::{AuthState, Octocrab, OctocrabBuilder};
use std::sync::Arc;
use std::time::Duration;

/// How long a TCP connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request may wait for its whole reply.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The User-Agent every request carries.
pub fn user_agent() -> String {
    format!("leviathan-host/{}", env!("CARGO_PKG_VERSION"))
}

/// The headers every request carries, each once.
pub fn headers(token: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token holds characters a header cannot carry".to_string())?;
    auth.set_sensitive(true);
    let static_value = |v: &str| HeaderValue::from_str(v).map_err(|e| e.to_string());
    Ok(vec![
        (USER_AGENT, static_value(&user_agent())?),
        (
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        ),
        (AUTHORIZATION, auth),
    ])
}

/// An octocrab client for `base` sending `headers` on every request. Must be called
/// inside a tokio runtime (the connection pool is spawned on it).
pub fn client(base: &str, headers: Vec<(HeaderName, HeaderValue)>) -> Result<Octocrab, String> {
    let uri: http::Uri = base
        .parse()
        .map_err(|e| format!("base URL `{base}`: {e}"))?;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider)
        .map_err(|e| format!("TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let service = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector);
    OctocrabBuilder::new_empty()
        .with_service(service)
        .with_layer(&BaseUriLayer::new(uri))
        .with_layer(&ExtraHeadersLayer::new(Arc::new(headers)))
        .with_auth(AuthState::None)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_convention_header_is_listed_once_and_the_token_is_sensitive() {
        let h = headers("ghp_x").expect("headers");
        let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["user-agent", "accept", "authorization"]);
        assert!(
            h[0].1
                .to_str()
                .expect("ascii")
                .starts_with("leviathan-host/")
        );
        assert!(h[2].1.is_sensitive());
        assert!(headers("bad\ntoken").is_err());
    }
}
