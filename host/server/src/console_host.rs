//! The console mounted on the server: the routes that hand its requests over, its
//! event stream (the API's, behind the console's session), and the server as the
//! console's host, answering its questions and performing its actions.

use crate::{ApiError, AppState, graph, observe, prs, routes_events};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use leviathan_console::{
    ActionRequest, BoxFuture, ConsoleHost, ConsoleRequest, ConsoleState, ExplainWaits, PeerAddr,
    Refusal,
};
use leviathan_domain::tokens::{Principal, Tokens};
use leviathan_events::EventLog;
use leviathan_forge::ForgeContext;
use leviathan_sandbox::plugins::PluginSet;
use std::sync::Arc;

impl ConsoleHost for AppState {
    fn console(&self) -> &ConsoleState {
        &self.console
    }

    fn log(&self) -> &EventLog {
        &self.log
    }

    fn forge(&self) -> Option<&ForgeContext> {
        self.forge.as_deref()
    }

    fn autonomy_enabled(&self) -> bool {
        AppState::autonomy_enabled(self)
    }

    fn explain(&self) -> Option<&ExplainWaits> {
        self.explain.get()
    }

    fn plugins(&self) -> Option<Arc<PluginSet>> {
        self.plugins.current()
    }

    fn plugin_summary(&self, set: &PluginSet) -> serde_json::Value {
        observe::plugin_summary(set)
    }

    fn tokens(&self) -> Arc<Tokens> {
        AppState::tokens(self)
    }

    fn github_usage(&self) -> Vec<leviathan_forge::github::clients::Usage> {
        AppState::github_usage(self)
    }

    fn discovered_targets(&self) -> Vec<leviathan_domain::config::Target> {
        AppState::discovered_targets(self)
    }

    fn act(
        self: Arc<Self>,
        caller: Principal,
        action: ActionRequest,
    ) -> BoxFuture<Result<(), Refusal>> {
        Box::pin(async move {
            let done = match action {
                ActionRequest::Pause {
                    target,
                    paused,
                    reason,
                } => graph::record_pause(&self, &caller, target, Some(reason), paused)
                    .await
                    .map(|_| ()),
                ActionRequest::ResetBreaker { target, reason } => {
                    graph::record_breaker_reset(&self, &caller, &target, Some(reason))
                        .await
                        .map(|_| ())
                }
                ActionRequest::Settle {
                    target,
                    pr,
                    merge,
                    reason,
                } => prs::merge_or_close(self.clone(), caller, target, pr, merge, Some(reason))
                    .await
                    .map(|_| ()),
            };
            done.map_err(|e: ApiError| Refusal {
                status: e.status,
                message: e.message,
            })
        })
    }
}

/// The console's routes: each of its paths handed to it, and its event stream.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    leviathan_console::PATHS
        .iter()
        .fold(Router::new(), |router, path| {
            router.route(path, any(console))
        })
        .route("/console/stream", get(stream))
}

/// Hands a request to the console.
async fn console(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerAddr>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = ConsoleRequest {
        method,
        uri,
        headers,
        body,
        peer: peer.map(|p| p.0),
    };
    leviathan_console::handle(state, request)
        .await
        .map(Body::from)
}

/// `GET /console/stream`: the API's event stream for a logged-in console caller
/// (`Last-Event-ID` resumes it after a drop).
async fn stream(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut response = match leviathan_console::authenticate(&*state, &method, &uri, &headers) {
        Err(refused) => (*refused).map(Body::from),
        Ok(_) => match routes_events::open_stream(state, headers, Query::try_from_uri(&uri), false)
        {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
    };
    leviathan_console::secure(response.headers_mut());
    response
}
