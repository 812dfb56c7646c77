//! Reads of the projection (`/graph`, `/targets`, `/tasks`, `/autonomy`) and the
//! operator actions that append to the log (pause, resume, circuit-breaker reset).

use super::auth::Principal;
use super::{ApiError, AppState};
use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use leviathan_events::projection::{
    AttemptView, Breaker, PrState, PrView, TargetView, TaskStatus, TaskView,
};
use leviathan_events::{EventDraft, Provenance};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A task in summary: counts, its last attempt and its open PRs; the full history
/// is at `/tasks/{target}/{task}`.
#[derive(Serialize)]
struct TaskSummary<'a> {
    status: TaskStatus,
    last_skip: &'a Option<String>,
    attempts: u64,
    last_attempt: Option<&'a AttemptView>,
    prs: u64,
    open_prs: Vec<&'a PrView>,
}

impl<'a> From<&'a TaskView> for TaskSummary<'a> {
    fn from(t: &'a TaskView) -> TaskSummary<'a> {
        TaskSummary {
            status: t.status,
            last_skip: &t.last_skip,
            attempts: t.attempts_total,
            last_attempt: t.attempts.last(),
            prs: t.prs_total,
            open_prs: t.prs.iter().filter(|p| p.state == PrState::Open).collect(),
        }
    }
}

/// A JSON reply serialised straight from borrowed data.
fn json_bytes(value: &impl Serialize) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// The whole graph in summary.
#[derive(Serialize)]
struct GraphSummary<'a> {
    last_seq: u64,
    paused: bool,
    last_tick_ms: Option<u64>,
    targets: Vec<TargetSummary<'a>>,
}

/// A target's counters, optionally with its tasks in summary.
#[derive(Serialize)]
struct TargetSummary<'a> {
    id: &'a str,
    paused: bool,
    open_prs: u32,
    consecutive_failures: u32,
    circuit_breaker: &'a Breaker,
    attempts_succeeded: u64,
    attempts_failed: u64,
    last_event_seq: u64,
    /// When a pass last served the target (ms since the epoch; not an event).
    last_served_ms: Option<u64>,
    task_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<BTreeMap<&'a str, TaskSummary<'a>>>,
}

fn summarise<'a>(id: &'a str, t: &'a TargetView, with_tasks: bool) -> TargetSummary<'a> {
    TargetSummary {
        id,
        paused: t.paused,
        open_prs: t.open_prs,
        consecutive_failures: t.consecutive_failures,
        circuit_breaker: &t.circuit_breaker,
        attempts_succeeded: t.attempts_succeeded,
        attempts_failed: t.attempts_failed,
        last_event_seq: t.last_event_seq,
        last_served_ms: t.last_served_ms,
        task_count: t.tasks.len(),
        tasks: with_tasks.then(|| {
            t.tasks
                .iter()
                .map(|(k, v)| (k.as_str(), TaskSummary::from(v)))
                .collect()
        }),
    }
}

/// `GET /api/v1/graph`: every target with its tasks in summary.
pub async fn graph(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    state.log.with_projection(|p| {
        json_bytes(&GraphSummary {
            last_seq: p.last_seq,
            paused: p.paused,
            last_tick_ms: p.last_tick_ms,
            targets: p
                .targets
                .iter()
                .map(|(id, t)| summarise(id, t, true))
                .collect(),
        })
    })?
}

/// One GitHub identity's budgets as the API shows them (never the token).
fn identity_json(u: &leviathan_forge::github::clients::Usage) -> Value {
    json!({
        "identity": u.identity,
        "api_url": u.api_url,
        "targets": u.targets,
        "rate_limit": {
            "remaining": u.budget.remaining,
            "limit": u.budget.limit,
            "reset_epoch": u.budget.reset_epoch,
        },
        "content_requests": u.content_requests,
        "secondary": u.secondary,
    })
}

/// Adds its identity's budgets to a GitHub target's summary.
fn with_identity(mut summary: Value, usage: &[leviathan_forge::github::clients::Usage]) -> Value {
    let id = summary["id"].as_str().unwrap_or_default().to_string();
    if let Some(u) = usage.iter().find(|u| u.targets.contains(&id)) {
        summary["github"] = identity_json(u);
    }
    summary
}

/// `GET /api/v1/targets`: the targets' counters, each GitHub target with its
/// identity's budgets, and every identity (`github_identities`).
pub async fn targets(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let usage = state.github_usage();
    let discovered: Vec<String> = state
        .discovered_targets()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let value = state.log.with_projection(|p| {
        let targets: Vec<Value> = p
            .targets
            .iter()
            .map(|(id, t)| with_identity(json!(summarise(id, t, false)), &usage))
            .collect();
        json!({
            "targets": targets,
            "github_identities": usage.iter().map(identity_json).collect::<Vec<_>>(),
            "discovered": discovered,
        })
    })?;
    Ok(Json(value))
}

/// `GET /api/v1/targets/{id}`: one target with its tasks in summary (and, for a
/// GitHub target, its identity's budgets).
pub async fn target(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let usage = state.github_usage();
    state
        .log
        .with_projection(|p| {
            p.targets
                .get(&id)
                .map(|t| with_identity(json!(summarise(&id, t, true)), &usage))
        })?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no target `{id}` in the event log")))
}

/// How many of a task's newest events `GET /tasks/{target}/{task}` includes.
const RECENT_EVENTS: usize = 100;

/// `GET /api/v1/tasks/{target}/{task}`: the attempts and PRs the projection keeps
/// of a task (with the totals), and its latest events.
pub async fn task(
    State(state): State<Arc<AppState>>,
    Path((target, task)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .log
        .with_projection(|p| {
            p.targets
                .get(&target)
                .and_then(|t| t.tasks.get(&task))
                .map(|t| json!(t))
        })?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no task `{task}` of target `{target}` in the event log"
            ))
        })?;
    let recent = state.log.latest_by_task(
        &target,
        &task,
        leviathan_events::Page {
            count: RECENT_EVENTS,
            bytes: super::routes_events::MAX_PAGE_BYTES,
        },
    )?;
    Ok(Json(json!({
        "target": target, "task": task, "state": view, "recent_events": recent,
    })))
}

/// `GET /api/v1/autonomy`: paused or not, and each target's guardrail state.
pub async fn autonomy(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let value = state.log.with_projection(|p| {
        let targets: BTreeMap<_, _> = p
            .targets
            .iter()
            .map(|(id, t)| {
                (
                    id.as_str(),
                    json!({
                        "paused": t.paused,
                        "circuit_breaker": t.circuit_breaker,
                        "consecutive_failures": t.consecutive_failures,
                        "open_prs": t.open_prs,
                    }),
                )
            })
            .collect();
        json!({
            "enabled": state.autonomy_enabled(),
            "paused": p.paused,
            "last_tick_ms": p.last_tick_ms,
            "circuit_breakers_open": p.open_breakers(),
            "targets": targets,
        })
    })?;
    Ok(Json(value))
}

/// The optional body of pause and resume: `{"target"?, "reason"?}`.
fn action_body(body: &[u8]) -> Result<(Option<String>, Option<String>), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, None));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request("expected an object"));
    };
    if let Some(unknown) = object.keys().find(|k| *k != "target" && *k != "reason") {
        return Err(ApiError::bad_field(
            unknown.as_str(),
            "unknown field (expected target, reason)",
        ));
    }
    let text = |field: &str| match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_field(field, "expected a string")),
    };
    Ok((text("target")?, text("reason")?))
}

/// Records a pause (`pause`) or resume of the host or of `target` by `caller`;
/// returns the event's sequence and whether it is paused now.
pub(crate) async fn record_pause(
    state: &AppState,
    caller: &Principal,
    target: Option<String>,
    reason: Option<String>,
    pause: bool,
) -> Result<(u64, bool), ApiError> {
    let kind = if pause {
        "autonomy.paused"
    } else {
        "autonomy.resumed"
    };
    let mut draft = EventDraft::new(kind);
    draft.target = target.clone();
    draft.payload = json!({"by": caller.name, "reason": reason});
    let events = state
        .append(Provenance::operator(&caller.name), vec![draft])
        .await?;
    let paused = state.log.with_projection(|p| match &target {
        Some(t) => p.targets.get(t).map(|t| t.paused).unwrap_or(false),
        None => p.paused,
    })?;
    Ok((events[0].seq, paused))
}

async fn pause_or_resume(
    state: Arc<AppState>,
    caller: Principal,
    body: Result<Bytes, BytesRejection>,
    pause: bool,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|e| ApiError::with_status(e.status(), e.body_text()))?;
    let (target, reason) = action_body(&body)?;
    let (seq, paused) = record_pause(&state, &caller, target.clone(), reason, pause).await?;
    Ok((
        StatusCode::OK,
        Json(json!({"seq": seq, "target": target, "paused": paused})),
    ))
}

/// `POST /api/v1/autonomy/pause`: stop runs host-wide, or for `{"target": …}`.
pub async fn pause(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    pause_or_resume(state, caller, body, true).await
}

/// `POST /api/v1/autonomy/resume`: the reverse of pause.
pub async fn resume(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    pause_or_resume(state, caller, body, false).await
}

/// `POST /api/v1/targets/{id}/circuit-breaker/reset`: close the breaker and clear
/// the failure count.
pub async fn reset_breaker(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let seq = record_breaker_reset(&state, &caller, &id, None).await?;
    Ok(Json(
        json!({"seq": seq, "target": id, "circuit_breaker": {"open": false}}),
    ))
}

/// Records an operator's reset of `id`'s circuit breaker (with the console's
/// `reason`, when given); returns the event's sequence.
pub(crate) async fn record_breaker_reset(
    state: &AppState,
    caller: &Principal,
    id: &str,
    reason: Option<String>,
) -> Result<u64, ApiError> {
    let known = state.log.with_projection(|p| p.targets.contains_key(id))?;
    if !known {
        return Err(ApiError::not_found(format!(
            "no target `{id}` in the event log"
        )));
    }
    let mut draft = EventDraft::new("circuit_breaker.closed");
    draft.target = Some(id.to_string());
    draft.payload = json!({"reason": "reset", "by": caller.name});
    if let Some(note) = reason {
        draft.payload["note"] = json!(note);
    }
    let events = state
        .append(Provenance::operator(&caller.name), vec![draft])
        .await?;
    Ok(events[0].seq)
}
