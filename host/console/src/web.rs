//! The console's own small HTTP vocabulary, so it needs no web framework: the
//! request the server hands over, the response it gets back, and the parsing of
//! paths, queries and forms.

use crate::host::PeerAddr;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::de::DeserializeOwned;

/// A response of the console (the server turns its body into its own).
pub type Response = http::Response<Bytes>;

/// A request under `/console` (or `/`), as the server received it.
#[derive(Debug, Clone)]
pub struct ConsoleRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    /// The body, already bounded by the server's body limit.
    pub body: Bytes,
    /// The client's address, when the listener recorded it.
    pub peer: Option<PeerAddr>,
}

impl ConsoleRequest {
    /// The query string read into `T`; `None` when it does not fit.
    pub fn query<T: DeserializeOwned>(&self) -> Option<T> {
        serde_urlencoded::from_str(self.uri.query().unwrap_or("")).ok()
    }

    /// The body read as an HTML form into `T`; `None` when it is not a
    /// `application/x-www-form-urlencoded` body that fits.
    pub fn form<T: DeserializeOwned>(&self) -> Option<T> {
        let urlencoded = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !urlencoded {
            return None;
        }
        serde_urlencoded::from_bytes(&self.body).ok()
    }

    /// The path's segments, percent-decoded; `None` when one is not UTF-8.
    pub fn segments(&self) -> Option<Vec<String>> {
        self.uri
            .path()
            .split('/')
            .skip(1)
            .map(leviathan_domain::percent::decode)
            .collect()
    }
}

/// A response with `status`, `content_type` and `body`.
pub fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response {
    let mut response = http::Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An empty response with `status`.
pub fn empty(status: StatusCode) -> Response {
    let mut response = http::Response::new(Bytes::new());
    *response.status_mut() = status;
    response
}

/// `303 See Other` to `to` (what a form post answers, and a login redirect).
pub fn redirect(to: &str) -> Response {
    let mut response = empty(StatusCode::SEE_OTHER);
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, content_type: Option<&str>, body: &str) -> ConsoleRequest {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        ConsoleRequest {
            method: Method::POST,
            uri: uri.parse().unwrap(),
            headers,
            body: Bytes::from(body.to_string()),
            peer: None,
        }
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Q {
        target: Option<String>,
    }

    #[test]
    fn segments_are_percent_decoded_and_bad_escapes_refused() {
        let r = request("/console/targets/a%20b/attempts/x%2Fy", None, "");
        assert_eq!(
            r.segments().unwrap(),
            ["console", "targets", "a b", "attempts", "x/y"]
        );
        assert!(
            request("/console/targets/%zz", None, "")
                .segments()
                .is_none()
        );
        assert!(
            request("/console/targets/%ff", None, "")
                .segments()
                .is_none()
        );
        assert!(
            request("/console/targets/%4", None, "")
                .segments()
                .is_none()
        );
    }

    #[test]
    fn forms_need_the_form_content_type_and_queries_decode() {
        let ok = request(
            "/x?target=a%26b",
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            "target=c+d",
        );
        assert_eq!(ok.query::<Q>().unwrap().target.as_deref(), Some("a&b"));
        assert_eq!(ok.form::<Q>().unwrap().target.as_deref(), Some("c d"));
        assert!(
            request("/x", Some("application/json"), "target=c")
                .form::<Q>()
                .is_none()
        );
        assert!(request("/x", None, "target=c").form::<Q>().is_none());
    }

    #[test]
    fn a_redirect_is_see_other_with_its_location() {
        let r = redirect("/console/login?next=%2Fconsole");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()[header::LOCATION],
            "/console/login?next=%2Fconsole"
        );
    }
}
