//! The one cap on answers that last (break-it, session 8: `/api/v1/events/stream` and
//! `/api/v1/live/services` were outside the 256-stream cap that `/api/v1/stream` had, so 520
//! held streams with a read token took every connection permit of `listen` and readers were
//! answered 503).
//!
//! Every long-lived answer (the status page's server-sent events, the event stream, the
//! service list pushed to `upkeep top`, a log follow) calls [`hold`] before it starts: its
//! connection trades its connection permit for one of the listener's `max_streams` stream
//! permits (see `serve::Lease::to_stream`), so streams, however many are held open, never
//! keep a plain request out; past the cap the stream alone is refused with a 503 and its
//! connection closed. Not here: the caps themselves (`admission.rs`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use upkeep_core::api::ErrorBody;

use crate::serve::Lease;

/// How long a refused stream is told to wait before it tries again.
const RETRY_AFTER_SECS: u32 = 30;

/// Takes a stream permit for this request's connection: None once taken, else the 503 to
/// answer (a router served outside `serve`, as in unit tests, has no lease and no cap).
pub(crate) fn hold(lease: Option<axum::Extension<Lease>>) -> Option<Response> {
    match lease {
        Some(l) if !l.0.to_stream() => Some(refused()),
        _ => None,
    }
}

/// The answer past the streams' cap, in the API's JSON.
fn refused() -> Response {
    let mut res = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(ErrorBody {
            error: "too many live streams are open on this listener".into(),
            hint: Some(format!(
                "try again in {RETRY_AFTER_SECS} s; plain requests are still answered"
            )),
        }),
    )
        .into_response();
    let h = res.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}
