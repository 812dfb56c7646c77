//! The console's stylesheet and script, embedded in the binary.

use super::web::{Response, empty, with_body};
use http::StatusCode;
use http::header::{self, HeaderValue};

/// The stylesheet (light and dark, following `prefers-color-scheme`).
pub const CSS: &str = include_str!("../assets/console.css");
/// The one script: live updates from the event stream, without HTML sinks.
pub const JS: &str = include_str!("../assets/console.js");

/// `GET /console/assets/{file}`.
pub fn asset(file: &str) -> Response {
    let (body, kind) = match file {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return empty(StatusCode::NOT_FOUND),
    };
    let mut response = with_body(StatusCode::OK, kind, body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    response
}
