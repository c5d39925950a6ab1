//! The JSON API at `/api/v1`: served over the daemon's Unix socket (the CLI) and, when
//! configured, over TCP (`daemon.listen` with bearer tokens, `daemon.public_listen` public
//! routes only, `daemon.metrics_listen` `/metrics` only).
//!
//! Web does not own any state: every handler asks a [`Control`], which the daemon implements
//! by reading state and the store and by sending commands to supervisors. So this crate depends
//! on nothing but `upkeep-core`, and a test can serve the router over any `Control`.
//!
//! Layout: `api.rs` (routes, the three routers and handlers), `auth.rs` (who asks: uid on the
//! socket, bearer token over TCP; scopes), `error.rs` ([`ApiError`], the one error answer),
//! `incidents.rs` (what people write to incidents: open, update, resolve, priority,
//! post-mortem), `feeds.rs` (announcements, the iCalendar and Atom feeds), `metrics.rs` (`/metrics` in the
//! Prometheus text format), `serve.rs` (one way to serve a
//! router on any listener, with connection caps and timeouts), `admission.rs` (who holds a
//! listener's connections: the cap per client address, and idle connections shed for new
//! ones), `arrival.rs` (each request's deadline, head and body, and when its connection is
//! busy), `windows.rs` (maintenance
//! window routes), `notify.rs` (the outbox: list, retry, test), `signals.rs` (a signal or a
//! reload to a running service), `site/` (the public status page, its live stream, badges
//! and `banner.js`), `live.rs` (the service list pushed as it changes, for `upkeep top`), `streams.rs` (the
//! one cap on answers that last), `subscribers.rs` (subscribe,
//! confirm and unsubscribe links, rate-limited per client; the list for token holders),
//! `per_client.rs` (the rate limit per client address the subscriptions and forms share),
//! `forms.rs` (the status page's subscribe and feedback forms, without JavaScript; the
//! feedback list for token holders), `admin/` (the admin pages at `/admin` on `listen`, behind
//! a login, and the socket's `/api/v1/users`), `forwarded.rs` (the client behind a trusted
//! reverse proxy), `tls.rs` (HTTPS on the TCP listeners, renewable while they run).

mod admin;
mod admission;
mod api;
mod arrival;
mod auth;
mod error;
mod feeds;
mod forms;
mod forwarded;
mod incidents;
mod live;
mod metrics;
mod notify;
pub mod openapi;
mod per_client;
mod serve;
mod signals;
pub mod site;
mod streams;
mod subscribers;
mod tls;
mod windows;

pub use admin::{Accounts, LeadTimeRule, Opened, Session};
pub use api::{
    Action, Control, LogStream, Target, metrics_router, public_router, socket_router, tcp_router,
};
pub use auth::{Grant, Tokens};
pub use error::{ApiError, clip};
pub use forms::Feedbacks;
pub use forwarded::trust_proxies;
pub use metrics::{MetricsData, ProcessStats};
pub use serve::{Limits, PER_ADDRESS, Peer, PeerOf, serve, serve_with};
pub use site::{PageModel, Site};
pub use subscribers::{LinkError, Linked, Subscriptions};
pub use tls::Tls;
