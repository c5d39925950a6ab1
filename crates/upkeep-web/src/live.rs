//! `GET /api/v1/live/services[?every=2s]` (read): the service list of `/api/v1/services`
//! (state, pid, restarts, CPU, memory...), one JSON array a line, pushed by the daemon: at
//! once, again as soon as events are committed, and every `every` in between, since CPU and
//! memory change without an event. The one connection behind `upkeep top`, so a live view
//! neither polls the API nor reads `/proc` itself (the daemon knows which pids are whose).
//!
//! Events that arrive while a list is being made are folded into the next one: a burst of
//! events costs one list, not one each. The stream ends when the daemon shuts down.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api::{AppState, Control};

/// The shortest and longest `every` a client may ask: lists cost a /proc read of every group.
const EVERY_MIN: Duration = Duration::from_millis(500);
const EVERY_MAX: Duration = Duration::from_secs(60);
const EVERY_DEFAULT: Duration = Duration::from_secs(2);

pub(crate) fn read_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live_services))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LiveQuery {
    every: Option<String>,
}

/// `every` as asked, within [`EVERY_MIN`]..=[`EVERY_MAX`], or why not.
fn every_of(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else {
        return Ok(EVERY_DEFAULT);
    };
    upkeep_core::duration::parse(raw)
        .filter(|d| (EVERY_MIN..=EVERY_MAX).contains(d))
        .ok_or_else(|| ApiError::BadRequest {
            message: format!("`every={raw}` is not a duration from 500ms to 60s"),
            hint: Some("e.g. every=2s".into()),
        })
}

struct Live {
    control: Arc<dyn Control>,
    events: broadcast::Receiver<Arc<[upkeep_core::Committed]>>,
    cancel: CancellationToken,
    every: Duration,
    first: bool,
}

impl Live {
    /// Waits for the next reason to send a list: an event, `every` passing, or none (the
    /// daemon shuts down).
    async fn due(&mut self) -> bool {
        if std::mem::take(&mut self.first) {
            return true;
        }
        tokio::select! {
            _ = self.cancel.cancelled() => return false,
            _ = tokio::time::sleep(self.every) => {}
            r = self.events.recv() => {
                if matches!(r, Err(broadcast::error::RecvError::Closed)) {
                    return false;
                }
            }
        }
        // Whatever else came meanwhile is in the list about to be made.
        loop {
            match self.events.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => continue,
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Closed) => return false,
            }
        }
    }

    async fn next_line(mut self) -> Option<(std::io::Result<Bytes>, Self)> {
        if !self.due().await {
            return None;
        }
        let list = match self.control.services().await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = ?e, "live service list failed");
                return None;
            }
        };
        let mut line = serde_json::to_vec(&list).ok()?;
        line.push(b'\n');
        Some((Ok(Bytes::from(line)), self))
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/live/services",
    tag = "read",
    params(LiveQuery),
    responses((status = 200, description = "The service list, one JSON array a line, pushed at once, on every event and every `every`", body = Vec<upkeep_core::api::ServiceInfo>, content_type = "application/x-ndjson"), crate::openapi::Failure)
)]
async fn live_services(
    State(s): State<AppState>,
    query: Result<Query<LiveQuery>, QueryRejection>,
    lease: Option<axum::Extension<crate::serve::Lease>>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let every = every_of(q.every.as_deref())?;
    // It lasts: one of the listener's streams, under their cap.
    if let Some(refused) = crate::streams::hold(lease) {
        return Ok(refused);
    }
    // Subscribed before the first list is made: no event falls between the two.
    let live = Live {
        events: s.control.follow_events(),
        control: s.control,
        cancel: s.cancel,
        every,
        first: true,
    };
    let body = Body::from_stream(futures_util::stream::unfold(live, Live::next_line));
    Ok(([(header::CONTENT_TYPE, crate::api::NDJSON)], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_a_duration_within_bounds() {
        assert_eq!(every_of(None).unwrap(), EVERY_DEFAULT);
        assert_eq!(every_of(Some("1s")).unwrap(), Duration::from_secs(1));
        assert_eq!(every_of(Some("500ms")).unwrap(), EVERY_MIN);
        assert_eq!(every_of(Some("1m")).unwrap(), EVERY_MAX);
        for bad in ["0", "10ms", "2m", "soon", ""] {
            assert!(every_of(Some(bad)).is_err(), "{bad}");
        }
    }
}
