//! `/api/v1/events`: paged reads, appends from clients, and the Server-Sent Events
//! stream (resumable with `Last-Event-ID`).

use super::auth::Principal;
use super::{ApiError, AppState};
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use leviathan_events::{Event, EventDraft, EventLog, Origin, Page, Paged, Provenance, catalog};
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::watch;

/// Default and largest page of `GET /events`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Most bytes of stored events one page holds (past its first event): a page of
/// large events ends early with `more: true`.
pub const MAX_PAGE_BYTES: usize = 4 << 20;
/// Largest batch one `POST /events` may carry.
pub const MAX_BATCH: usize = 1000;
/// Events read from the store per step of a stream, and their most bytes.
const STREAM_PAGE: Page = Page {
    count: 256,
    bytes: 1 << 20,
};

/// The query of `GET /events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    target: Option<String>,
    task: Option<String>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    let Query(q) = q.map_err(|e| {
        let text = e.body_text();
        // serde_urlencoded names the field first: "<field>: <problem>".
        let detail = text.rsplit("query string: ").next().unwrap_or(&text);
        match detail.split_once(": ") {
            Some((field, message)) if !field.contains(' ') => {
                ApiError::bad_field(field, message.to_string())
            }
            _ => ApiError::bad_request(detail.to_string()),
        }
    })?;
    Ok(q)
}

/// `GET /api/v1/events?after=&limit=&target=&task=`
pub async fn list(
    State(state): State<Arc<AppState>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_field(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    let log = &state.log;
    let page = Page {
        count: limit,
        bytes: MAX_PAGE_BYTES,
    };
    let Paged { events, more } = match (&q.target, &q.task) {
        (Some(target), Some(task)) => log.by_task_page(target, task, q.after, page)?,
        (Some(target), None) => log.by_target_page(target, q.after, page)?,
        (None, Some(_)) => {
            return Err(ApiError::bad_field("task", "needs `target` as well"));
        }
        (None, None) => log.after_page(q.after, page)?,
    };
    let next_after = events.last().map(|e| e.seq).unwrap_or(q.after);
    Ok(Json(serde_json::json!({
        "events": events,
        "next_after": next_after,
        "more": more,
        "last_seq": log.last_seq(),
    })))
}

/// The fields a client may send in an event.
const CLIENT_FIELDS: [&str; 5] = ["type", "target", "task", "attempt", "payload"];

/// Parses one event or an array of them; errors name the field (`[2].type`).
pub fn parse_drafts(body: &[u8]) -> Result<Vec<EventDraft>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let (items, single) = match value {
        serde_json::Value::Array(items) => (items, false),
        object @ serde_json::Value::Object(_) => (vec![object], true),
        _ => {
            return Err(ApiError::bad_request(
                "expected an event object or an array of event objects",
            ));
        }
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} events, not {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = |field: &str| {
                if single {
                    field.to_string()
                } else {
                    format!("[{i}].{field}")
                }
            };
            let serde_json::Value::Object(mut object) = item else {
                return Err(ApiError::bad_field(format!("[{i}]"), "expected an object"));
            };
            if let Some(unknown) = object.keys().find(|k| !CLIENT_FIELDS.contains(&k.as_str())) {
                let message = match unknown.as_str() {
                    "actor" | "origin" => {
                        "set by the server from the caller's token, never from the body"
                    }
                    _ => "unknown field (expected type, target, task, attempt, payload)",
                };
                return Err(ApiError::bad_field(at(unknown), message));
            }
            let mut reference = |field: &str| match object.remove(field) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(ApiError::bad_field(at(field), "expected a string")),
            };
            let kind =
                reference("type")?.ok_or_else(|| ApiError::bad_field(at("type"), "is required"))?;
            if kind.is_empty() {
                return Err(ApiError::bad_field(at("type"), "must not be empty"));
            }
            let target = reference("target")?;
            let task = reference("task")?;
            let attempt = reference("attempt")?;
            let kind = catalog::client_kind(&kind);
            catalog::check_writer(Origin::Client, &kind)
                .map_err(|message| ApiError::forbidden_field(at("type"), message))?;
            if let Some(field) =
                catalog::missing_ref(&kind, target.is_some(), task.is_some(), attempt.is_some())
            {
                return Err(ApiError::bad_field(
                    at(field),
                    format!("is required for type `{kind}`"),
                ));
            }
            Ok(EventDraft {
                kind,
                target,
                task,
                attempt,
                payload: object.remove("payload").unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
}

/// `POST /api/v1/events`: one event or an array of the client's own types; replies
/// with each `seq` and `hash` once the batch is durable. The events are stored with
/// `origin: client` and the caller's token name as `actor`.
pub async fn append(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| ApiError::with_status(e.status(), e.body_text()))?;
    let drafts = parse_drafts(&body)?;
    let events = state
        .append(Provenance::client(&caller.name), drafts)
        .await?;
    let stored: Vec<_> = events
        .iter()
        .map(|e| serde_json::json!({"seq": e.seq, "hash": e.hash, "type": e.kind}))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"events": stored})),
    )
        .into_response())
}

/// The query of `GET /events/stream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Start after this sequence; default: the newest event (only new ones follow).
    after: Option<u64>,
    target: Option<String>,
}

/// Where a stream is, and what it waits on.
struct Cursor {
    log: Arc<EventLog>,
    durable: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    after: u64,
    target: Option<String>,
    /// Whether each event is sent under its type (the API) or unnamed (the
    /// console's `onmessage`).
    named: bool,
    buffer: VecDeque<Event>,
    _client: ClientGuard,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// Counts a connected stream client for as long as it lives.
struct ClientGuard(Arc<AppState>);

impl ClientGuard {
    fn new(state: Arc<AppState>) -> ClientGuard {
        state.metrics.sse_clients().inc();
        ClientGuard(state)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.metrics.sse_clients().dec();
    }
}

fn sse_event(event: &Event, named: bool) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_default();
    let sse = SseEvent::default().id(event.seq.to_string()).data(data);
    if named {
        sse.event(event.kind.clone())
    } else {
        sse
    }
}

impl Cursor {
    /// The next event to send, waiting for one to become durable; `None` ends the
    /// stream (shutdown, or a store error, which is sent first as an `error` event).
    async fn next(mut self) -> Option<(SseEvent, Cursor)> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some((sse_event(&event, self.named), self));
            }
            let durable = *self.durable.borrow_and_update();
            if durable > self.after {
                let page = match self.log.after_page(self.after, STREAM_PAGE) {
                    Ok(page) => page.events,
                    Err(e) => {
                        tracing::error!(error = %e, "event stream ended");
                        let event = SseEvent::default().event("error").data(e.to_string());
                        self.after = u64::MAX;
                        return Some((event, self));
                    }
                };
                for event in page.into_iter().take_while(|e| e.seq <= durable) {
                    self.after = event.seq;
                    if self.target.is_none() || self.target == event.target {
                        self.buffer.push_back(event);
                    }
                }
                continue;
            }
            if self.after == u64::MAX {
                return None;
            }
            tokio::select! {
                changed = self.durable.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
            }
        }
    }
}

/// `GET /api/v1/events/stream?after=&target=`: every durable event after the
/// cursor, then new ones as they are appended. `Last-Event-ID` overrides `after`.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    open_stream(state, headers, q, true)
}

/// The stream of [`stream`]; `named` sends each event under its type.
pub(crate) fn open_stream(
    state: Arc<AppState>,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, QueryRejection>,
    named: bool,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let permit = state.gate.stream(&state.metrics)?;
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_field("Last-Event-ID", "must be an event sequence number")
                })?,
        ),
        None => None,
    };
    let after = resume.or(q.after).unwrap_or_else(|| state.log.last_seq());
    let cursor = Cursor {
        log: state.log.clone(),
        durable: state.log.subscribe(),
        shutdown: state.shutdown.clone(),
        after,
        target: q.target,
        named,
        buffer: VecDeque::new(),
        _client: ClientGuard::new(state.clone()),
        _permit: permit,
    };
    let events = futures_util::stream::unfold(cursor, |cursor| async move {
        cursor
            .next()
            .await
            .map(|(e, c)| (Ok::<_, Infallible>(e), c))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> Option<String> {
        parse_drafts(body.as_bytes()).err().and_then(|e| e.field)
    }

    #[test]
    fn client_events_parse_with_namespacing() {
        let drafts =
            parse_drafts(br#"[{"type":"deploy.done","payload":{"a":1}},{"type":"client.x"}]"#)
                .unwrap();
        assert_eq!(drafts[0].kind, "client.deploy.done");
        assert_eq!(drafts[0].payload["a"], 1);
        assert_eq!(drafts[1].kind, "client.x");
    }

    #[test]
    fn host_types_empty_types_and_actors_are_refused() {
        for kind in [
            "scheduler.tick",
            "attempt.started",
            "pr.opened",
            "task.completed",
            "circuit_breaker.closed",
            "autonomy.paused",
        ] {
            let body = format!(
                r#"[{{"type":"client.ok"}},{{"type":"{kind}","target":"t","task":"k","attempt":"a"}}]"#
            );
            let err = parse_drafts(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, axum::http::StatusCode::FORBIDDEN, "{kind}");
            assert_eq!(err.field.as_deref(), Some("[1].type"), "{kind}");
        }
        assert_eq!(field_of(r#"{"type": ""}"#).as_deref(), Some("type"));
        let err = parse_drafts(br#"{"type":"x","actor":"root"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("actor"));
        assert!(err.message.contains("token"), "{}", err.message);
    }

    #[test]
    fn malformed_events_name_the_field() {
        assert_eq!(field_of(r#"{"type": 5}"#).as_deref(), Some("type"));
        assert_eq!(
            field_of(r#"[{"type":"a"},{"typ":"b"}]"#).as_deref(),
            Some("[1].typ")
        );
        assert_eq!(
            field_of(r#"[{"type":"a"},{}]"#).as_deref(),
            Some("[1].type")
        );
        assert_eq!(
            field_of(r#"{"type":"attempt.failed","target":"t","task":"k"}"#).as_deref(),
            Some("type"),
            "a host type is refused before its references are looked at"
        );
        assert_eq!(field_of(r#"[1]"#).as_deref(), Some("[0]"));
        assert!(parse_drafts(b"[]").is_err());
        assert!(parse_drafts(b"{").is_err());
    }
}
