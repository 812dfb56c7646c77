//! Request limits: at most `max_requests` API requests in flight and `max_streams`
//! event streams open at once (a request past either is answered `503` with
//! `Retry-After` at once rather than queued), and a time limit on producing a
//! response. The probes (`/healthz`, `/readyz`) are exempt, so they answer while the
//! API is saturated.

use super::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The request limits of a server.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Most API requests being handled at once.
    pub max_requests: usize,
    /// Most event streams (SSE) open at once.
    pub max_streams: usize,
    /// Longest time to produce a response (a stream's body is not counted).
    pub request_timeout: Duration,
}

/// The permits behind [`RequestLimits`].
pub struct Gate {
    limits: RequestLimits,
    requests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
}

impl Gate {
    /// A gate enforcing `limits`.
    pub fn new(limits: RequestLimits) -> Gate {
        Gate {
            limits,
            requests: Arc::new(Semaphore::new(limits.max_requests)),
            streams: Arc::new(Semaphore::new(limits.max_streams)),
        }
    }

    /// A stream's permit, held for as long as the stream is open.
    pub fn stream(
        &self,
        metrics: &super::metrics::Metrics,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            metrics.shed();
            ApiError::busy(format!(
                "{} event streams are open, the most this server allows; try again later",
                self.limits.max_streams
            ))
        })
    }
}

fn busy(state: &AppState, error: ApiError) -> Response {
    state.metrics.shed();
    error.into_response()
}

/// Admits a request under the gate's limits (the probes always).
pub async fn limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/readyz") {
        return next.run(req).await;
    }
    let gate = &state.gate;
    let Ok(permit) = gate.requests.clone().try_acquire_owned() else {
        let error = ApiError::busy(format!(
            "{} requests are in flight, the most this server allows; try again shortly",
            gate.limits.max_requests
        ));
        return busy(&state, error);
    };
    let timeout = gate.limits.request_timeout;
    let response = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => busy(
            &state,
            ApiError::busy(format!(
                "the request took longer than {} s",
                timeout.as_secs_f64()
            )),
        ),
    };
    drop(permit);
    response
}
