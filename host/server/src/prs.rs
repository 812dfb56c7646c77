//! The local forge's pull requests through the API, for when `serve` holds the event
//! log (`prs merge|close` on the command line cannot open it then).

use super::auth::Principal;
use super::{ApiError, AppState};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use leviathan_events::Provenance;
use leviathan_forge::pull_requests::{LocalPrError, merge_or_close_local};
use serde_json::{Value, json};
use std::sync::Arc;

/// Merges or closes a local-forge PR as `caller`, with the operator's `reason` in
/// the event (the API's endpoints and the console's action share it).
pub(crate) async fn merge_or_close(
    state: Arc<AppState>,
    caller: Principal,
    target: String,
    pr: String,
    merge: bool,
    reason: Option<String>,
) -> Result<Value, ApiError> {
    let Some(forge) = state.forge.clone() else {
        return Err(ApiError::with_status(
            StatusCode::CONFLICT,
            "serve runs without --config: it knows no targets",
        ));
    };
    let log = state.log.clone();
    let (t, p) = (target.clone(), pr.clone());
    let done = tokio::task::spawn_blocking(move || {
        let by = Provenance::host_for(caller.name);
        merge_or_close_local(
            &forge.config.current(),
            &log,
            &forge.work_dir,
            &t,
            &p,
            merge,
            by,
            reason.as_deref(),
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| match e {
        LocalPrError::NoTarget(_) | LocalPrError::NoPr { .. } => ApiError::not_found(e.to_string()),
        LocalPrError::Git(g) => ApiError::with_status(StatusCode::CONFLICT, g.to_string()),
        LocalPrError::NotLocal(_) => ApiError::with_status(StatusCode::CONFLICT, e.to_string()),
        LocalPrError::NotAgentBranch { .. } => ApiError::forbidden(e.to_string()),
        LocalPrError::Store(s) => ApiError::internal(s),
    })?;
    Ok(json!({
        "target": target, "pr": pr, "task": done.task, "branch": done.branch,
        "state": if merge { "merged" } else { "closed" }, "commit": done.commit,
    }))
}

/// `POST /api/v1/targets/{id}/prs/{pr}/merge`
pub async fn merge(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Principal>,
    Path((target, pr)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    merge_or_close(state, caller, target, pr, true, None)
        .await
        .map(Json)
}

/// `POST /api/v1/targets/{id}/prs/{pr}/close`
pub async fn close(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Principal>,
    Path((target, pr)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    merge_or_close(state, caller, target, pr, false, None)
        .await
        .map(Json)
}
