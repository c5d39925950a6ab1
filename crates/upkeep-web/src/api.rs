//! Routes of the JSON API and their handlers. Handlers parse and check the request, call
//! [`Control`], and shape the answer; they hold no logic of their own.
//!
//! Every route is under `/api/v1` (but `/metrics`) and belongs to one of three routers, by
//! audience: *public* (no token; nothing that reveals a command, a path, the environment or a
//! log), *read* (the GET routes) and *write* (the actions). The routers behind a gate
//! (`auth.rs`) name who asks; actions pass that [`Principal`] to [`Control`]. Listeners serve
//! them as: the control socket all three (the local operator, by uid); `listen` all three
//! (by bearer token); `public_listen` the public one only; `metrics_listen` `/metrics` only.
//!
//! Every answer that is not a success is an [`ApiError`], so a client always gets JSON with a
//! message: a path parameter that does not decode or is not a valid name is a 400 (the
//! [`Name`] extractor), an unknown route a 404 and a wrong method a 405 naming what was asked
//! (issue 14, D18 and D20).

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use upkeep_core::api::{
    ActionResult, AddService, Health, PublicHealth, PublicStatus, ReloadResult, Scope,
    ServiceDetail, ServiceInfo, StoredEvent,
};
use upkeep_core::{Principal, ServiceName};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::auth::{By, Gate, Need, Tokens, UserNames, authorize};

/// A log's bytes as they are read from its file.
pub type LogStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

/// One service or every service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    One(ServiceName),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }
}

/// What the API needs from the daemon.
#[async_trait]
pub trait Control: Send + Sync + 'static {
    async fn health(&self) -> Health;
    /// Each service's name, state and since, from the status snapshot only: the public
    /// status list, cheap enough to answer a flood.
    async fn statuses(&self) -> Vec<PublicStatus>;
    async fn services(&self) -> Result<Vec<ServiceInfo>, ApiError>;
    async fn service(&self, name: &ServiceName) -> Result<ServiceDetail, ApiError>;
    async fn act(
        &self,
        target: Target,
        action: Action,
        by: &Principal,
    ) -> Result<ActionResult, ApiError>;
    async fn reload(&self, by: &Principal) -> Result<ReloadResult, ApiError>;
    /// Sends `req`'s signal to service `name`, or with no request its `reload_signal`.
    async fn signal(
        &self,
        name: &ServiceName,
        req: Option<upkeep_core::api::SignalRequest>,
        by: &Principal,
    ) -> Result<upkeep_core::api::SignalResult, ApiError>;
    /// The availability report of `[from, to)` beside the period of the same length before it.
    async fn report(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<upkeep_core::report::Report, ApiError>;
    /// Injects a fault and measures detection and recovery.
    async fn drill(
        &self,
        req: upkeep_core::api::DrillRequest,
        by: &Principal,
    ) -> Result<upkeep_core::api::DrillResult, ApiError>;
    /// Puts a service in maintenance (or changes its maintenance); `None` ends it.
    async fn maintenance(
        &self,
        name: &ServiceName,
        req: Option<upkeep_core::api::MaintenanceRequest>,
        by: &Principal,
    ) -> Result<ActionResult, ApiError>;
    /// Maintenance as the public sees it: under way, to come, and recently over.
    async fn announcements(&self) -> Result<Vec<upkeep_core::window::Announcement>, ApiError>;
    /// The latest incidents as the public sees them: no reason (it may name internal hosts),
    /// no drills.
    async fn public_incidents(
        &self,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::Incident>, ApiError>;
    /// Incident `id` as its public page shows it (`/incidents/{id}`): the probes' steps
    /// without their reasons, what people wrote, the post-mortem. None for an unknown id, a
    /// drill, or an incident of a service that is not public.
    async fn public_incident(
        &self,
        id: i64,
    ) -> Result<Option<crate::site::model::PageIncident>, ApiError> {
        let _ = id;
        Ok(None)
    }
    /// Maintenance windows not done (all of them with `all`), earliest first.
    async fn windows(&self, all: bool) -> Result<Vec<upkeep_core::window::Window>, ApiError>;
    async fn window(&self, id: i64) -> Result<upkeep_core::window::Window, ApiError>;
    /// Schedules a window (against the lead-time policy, unless forced with a reason).
    async fn add_window(
        &self,
        req: upkeep_core::window::WindowRequest,
        by: &Principal,
    ) -> Result<upkeep_core::window::Window, ApiError>;
    async fn edit_window(
        &self,
        id: i64,
        req: upkeep_core::window::WindowRequest,
        by: &Principal,
    ) -> Result<upkeep_core::window::Window, ApiError>;
    async fn window_action(
        &self,
        id: i64,
        action: upkeep_core::window::WindowAction,
        by: &Principal,
    ) -> Result<upkeep_core::window::Window, ApiError>;
    /// The outbox, newest first: every notice, or those in `state`.
    async fn notices(
        &self,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::OutboxNotice>, ApiError>;
    /// Puts a failed notice back to pending.
    async fn retry_notice(
        &self,
        id: i64,
        by: &Principal,
    ) -> Result<upkeep_core::api::OutboxNotice, ApiError>;
    /// Plans a test notice through one channel; returns its rows.
    async fn test_notice(
        &self,
        req: upkeep_core::api::NotifyTestRequest,
        by: &Principal,
    ) -> Result<Vec<upkeep_core::api::OutboxNotice>, ApiError>;
    /// What `/metrics` shows.
    async fn metrics(&self) -> Result<crate::MetricsData, ApiError>;
    /// Stored events, newest first, of one service or all.
    async fn events(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, ApiError>;
    /// Each job (or the one named) with at most `runs` of its latest runs, newest first.
    async fn jobs(
        &self,
        only: Option<&ServiceName>,
        runs: u32,
    ) -> Result<Vec<upkeep_core::job::JobInfo>, ApiError>;
    /// The most recent incidents, newest first, of one service or all.
    async fn incidents(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::Incident>, ApiError>;
    /// One incident with its timeline.
    async fn incident(&self, id: i64) -> Result<upkeep_core::api::IncidentDetail, ApiError>;
    /// A page of an admin list (`admin/`), newest first: skip `offset` rows, at most `limit`.
    /// Incidents, with their titles.
    async fn incidents_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::Incident>, ApiError>;
    /// Every incident not resolved yet, however old.
    async fn open_incidents(&self) -> Result<Vec<upkeep_core::api::Incident>, ApiError>;
    /// A page of feedback messages.
    async fn feedback_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<upkeep_core::feedback::FeedbackItem>, ApiError>;
    /// A page of the outbox.
    async fn notices_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<upkeep_core::api::OutboxNotice>, ApiError>;
    /// A page of subscribers.
    async fn subscribers_page(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<upkeep_core::subscription::SubscriberInfo>, ApiError>;
    /// A page of what people did: interventions and events that record who caused them.
    async fn actions_page(&self, offset: u32, limit: u32) -> Result<Vec<StoredEvent>, ApiError>;
    /// What a person writes to an incident (`incidents.rs`): opens one, writes an update,
    /// resolves it, sets its priority or its post-mortem. Answers the incident as it is now.
    async fn write_incident(
        &self,
        write: upkeep_core::incident::IncidentWrite,
        by: &Principal,
    ) -> Result<upkeep_core::api::IncidentDetail, ApiError> {
        let _ = (write, by);
        Err(ApiError::NotFound(
            "incidents cannot be written here".into(),
        ))
    }
    /// The latest updates people wrote to incidents (not drills'), newest first, without
    /// their names: for the Atom feed.
    async fn public_incident_updates(
        &self,
        limit: u32,
    ) -> Result<Vec<upkeep_core::incident::PublicUpdate>, ApiError> {
        let _ = limit;
        Ok(Vec::new())
    }
    async fn add(&self, req: AddService, by: &Principal) -> Result<ReloadResult, ApiError>;
    /// The last `lines` lines of a service's stdout (or stderr), as the log is now: a stream,
    /// so that any number of lines costs bounded memory.
    async fn log_tail(
        &self,
        name: &ServiceName,
        stderr: bool,
        lines: usize,
    ) -> Result<LogStream, ApiError>;
    /// Everything written to the log from now on.
    async fn log_follow(
        &self,
        name: &ServiceName,
        stderr: bool,
    ) -> Result<broadcast::Receiver<Bytes>, ApiError>;
    /// Every event committed from now on, in batches: the one stream behind every live view.
    fn follow_events(&self) -> broadcast::Receiver<std::sync::Arc<[upkeep_core::Committed]>>;
    /// Asks the daemon to stop its services and exit.
    fn shutdown(&self, by: &Principal);
    /// Checks `binary` and asks the daemon to re-execute itself from it, keeping every
    /// service running (`upkeep upgrade`); answered before it does.
    async fn upgrade(
        &self,
        req: upkeep_core::api::UpgradeRequest,
        by: &Principal,
    ) -> Result<upkeep_core::api::UpgradeStarted, ApiError> {
        let _ = (req, by);
        Err(ApiError::NotFound(
            "this daemon cannot upgrade itself".into(),
        ))
    }
    /// The daemon's clock: what "now" is for a request (a report's period, a maintenance's
    /// end), and whether it is a test clock (then `POST /api/v1/test/clock` is served).
    fn clock(&self) -> upkeep_core::Clock;
    /// The public status page's rendered bytes (`site/`), kept current by the daemon; None:
    /// no status page on the public routes.
    fn site(&self) -> Option<crate::Site> {
        None
    }
    /// Subscriptions (`[notify.subscribers]`), if the daemon takes them.
    fn subscriptions(&self) -> Option<Arc<dyn crate::Subscriptions>>;
    /// The status page's feedback, if the daemon keeps it.
    fn feedback(&self) -> Option<Arc<dyn crate::Feedbacks>> {
        None
    }
    /// Admin users and their sessions (`/admin`, `upkeep user ...`), if the daemon keeps them.
    fn accounts(&self) -> Option<Arc<dyn crate::Accounts>> {
        None
    }
    /// Moves a test clock forward `by` and answers once what that made due has woken.
    async fn advance_clock(
        &self,
        by: std::time::Duration,
        who: &Principal,
    ) -> Result<upkeep_core::api::TestClockState, ApiError>;
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) control: Arc<dyn Control>,
    /// Ends long-lived responses (log follows) when the daemon shuts down.
    pub(crate) cancel: CancellationToken,
}

/// Only `/metrics`, for a TCP listener that Prometheus scrapes (`daemon.metrics_listen`):
/// nothing there can change anything.
pub fn metrics_router(control: Arc<dyn Control>, cancel: CancellationToken) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(AppState { control, cancel })
}

/// The control socket's router: every route, to the local operator named by uid.
pub fn socket_router(control: Arc<dyn Control>, cancel: CancellationToken) -> Router {
    let gate = Gate::Local(Arc::new(UserNames::default()));
    // Admin users are managed from the host only.
    let users = behind(
        crate::admin::user_routes().into(),
        gate.clone(),
        Scope::Write,
    );
    every_route(gate, control, cancel, users)
}

/// The TCP API's router (`daemon.listen`): public routes to anyone, the rest to bearers of a
/// token with the scope they need.
pub fn tcp_router(
    control: Arc<dyn Control>,
    tokens: Arc<dyn Tokens>,
    cancel: CancellationToken,
) -> Router {
    // The admin pages, behind their own sessions (`admin/`).
    let admin = crate::admin::routes(control.accounts());
    every_route(Gate::Bearer(tokens), control, cancel, admin)
}

/// Public, read and write routes, the last two behind `gate`, the OpenAPI document, and
/// `more` of the listener's own.
fn every_route(
    gate: Gate,
    control: Arc<dyn Control>,
    cancel: CancellationToken,
    more: Router<AppState>,
) -> Router {
    let test_clock = control.clock().is_test();
    finish(
        public_routes(control.as_ref())
            .merge(behind(read_api().into(), gate.clone(), Scope::Read))
            .merge(behind(write_api(test_clock).into(), gate, Scope::Write))
            .merge(crate::openapi::routes())
            .merge(more),
        control,
        cancel,
    )
}

/// The public router alone (`daemon.public_listen`): publishing the status page does not
/// publish the API.
pub fn public_router(control: Arc<dyn Control>, cancel: CancellationToken) -> Router {
    finish(public_routes(control.as_ref()), control, cancel)
}

/// Every API route with its description, without the gates in front of them: what the
/// OpenAPI document is made from (`openapi.rs`). `test_clock`: with the route that moves the
/// daemon's test clock.
pub(crate) fn api_routes(test_clock: bool) -> OpenApiRouter<AppState> {
    public_api()
        .merge(crate::subscribers::public_routes(
            crate::subscribers::limiter(),
        ))
        .merge(read_api())
        .merge(write_api(test_clock))
        .merge(crate::admin::user_routes())
}

/// The public API: that the daemon answers, each service's name, state and since, the
/// announcements and subscriptions.
fn public_api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(statuses))
        .merge(crate::feeds::public_api())
        .merge(crate::site::api())
}

/// What anyone may see: the public API, the feeds, the forms, and the status page when the
/// daemon keeps one.
fn public_routes(control: &dyn Control) -> Router<AppState> {
    // One limit per address for both ways to subscribe: each mails whoever it names.
    let subscriptions = crate::subscribers::limiter();
    let routes: Router<AppState> = public_api()
        .merge(crate::subscribers::public_routes(subscriptions.clone()))
        .into();
    let routes = routes
        .merge(crate::feeds::public_routes())
        .merge(crate::forms::public_routes(
            subscriptions,
            crate::forms::feedback_limiter(),
        ));
    match control.site() {
        Some(site) => routes
            .merge(crate::site::routes(site))
            .merge(crate::site::detail_routes()),
        None => routes,
    }
}

/// The GET routes, for the read scope.
fn read_api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(daemon))
        .routes(routes!(whoami))
        .routes(routes!(services))
        .routes(routes!(service))
        .routes(routes!(logs))
        .routes(routes!(events))
        .routes(routes!(event_stream))
        .routes(routes!(incidents))
        .routes(routes!(jobs))
        .routes(routes!(incident))
        .routes(routes!(report))
        .routes(routes!(metrics))
        .merge(crate::windows::read_routes())
        .merge(crate::notify::read_routes())
        .merge(crate::live::read_routes())
        .merge(crate::subscribers::read_routes())
        .merge(crate::forms::read_routes())
}

/// The actions, for the write scope; with `test_clock`, also the route that moves the
/// daemon's test clock (absent, it is a 404 like any unknown route).
fn write_api(test_clock: bool) -> OpenApiRouter<AppState> {
    let routes = if test_clock {
        OpenApiRouter::new().routes(routes!(advance_clock))
    } else {
        OpenApiRouter::new()
    };
    routes
        .routes(routes!(add))
        .routes(routes!(begin_maintenance, end_maintenance))
        .routes(routes!(act))
        .routes(routes!(reload))
        .routes(routes!(drill))
        .routes(routes!(shutdown))
        .routes(routes!(upgrade))
        .merge(crate::windows::write_routes())
        .merge(crate::notify::write_routes())
        .merge(crate::signals::write_routes())
        .merge(crate::subscribers::write_routes())
        .merge(crate::incidents::write_routes())
}

/// `routes` behind `gate`, needing `scope`. Layers run outside in: the gate first, then the
/// body is read (a client without a token is refused before it sends a byte of it).
fn behind(routes: Router<AppState>, gate: Gate, scope: Scope) -> Router<AppState> {
    routes
        .route_layer(axum::middleware::from_fn(crate::serve::bounded_body))
        .route_layer(axum::middleware::from_fn_with_state(
            Need { gate, scope },
            authorize,
        ))
}

/// JSON answers for unknown routes and wrong methods, and the state.
fn finish(
    routes: Router<AppState>,
    control: Arc<dyn Control>,
    cancel: CancellationToken,
) -> Router {
    routes
        // After the routes: it applies to the routes added so far.
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(AppState { control, cancel })
}

/// Any path no route matches (axum's own answer is a 404 with an empty body).
async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no API route for {method} {}", uri.path()))
}

/// A route's path with a method it does not take (axum's own answer has an empty body).
async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} does not take {method} (its Allow header lists what it takes)",
        uri.path()
    ))
}

fn parse_name(raw: &str) -> Result<ServiceName, ApiError> {
    ServiceName::new(raw).map_err(|e| ApiError::BadRequest {
        message: e.to_string(),
        hint: Some("`upkeep ls` lists the services".into()),
    })
}

/// The path parameters of a request, or a 400 in the API's JSON shape when they do not
/// decode (`%FF`), rather than axum's plain-text rejection.
pub(crate) fn path_params<T>(
    path: Result<Path<T>, PathRejection>,
    what: &str,
    uri: &Uri,
) -> Result<T, ApiError> {
    path.map(|Path(p)| p).map_err(|e| {
        ApiError::bad_request(format!(
            "{what} in {} cannot be read: {}",
            uri.path(),
            e.body_text()
        ))
    })
}

/// The `{name}` of a route as a valid [`ServiceName`], or a 400 with the API's JSON error.
pub(crate) struct Name(pub(crate) ServiceName);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let path = Path::from_request_parts(parts, state).await;
        let raw: String = path_params(path, "the service name", &parts.uri)?;
        parse_name(&raw).map(Name)
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "public",
    responses((status = 200, description = "The daemon answers, and its version", body = PublicHealth))
)]
async fn health() -> Json<PublicHealth> {
    Json(PublicHealth {
        ok: true,
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "public",
    responses((status = 200, description = "Each public service's name, state and since", body = Vec<PublicStatus>))
)]
async fn statuses(State(s): State<AppState>) -> Json<Vec<PublicStatus>> {
    Json(s.control.statuses().await)
}

#[utoipa::path(
    get,
    path = "/api/v1/daemon",
    tag = "read",
    responses((status = 200, description = "The daemon's health: version, uptime, store, services", body = Health), crate::openapi::Failure)
)]
async fn daemon(State(s): State<AppState>) -> Json<Health> {
    Json(s.control.health().await)
}

#[utoipa::path(
    get,
    path = "/api/v1/whoami",
    tag = "read",
    responses((status = 200, description = "Who the caller is, as the daemon records it", body = Principal), crate::openapi::Failure)
)]
async fn whoami(By(by): By) -> Json<Principal> {
    Json(by)
}

#[utoipa::path(
    get,
    path = "/api/v1/services",
    tag = "read",
    responses((status = 200, description = "Every service with its state", body = Vec<ServiceInfo>), crate::openapi::Failure)
)]
async fn services(State(s): State<AppState>) -> Result<Json<Vec<ServiceInfo>>, ApiError> {
    s.control.services().await.map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/services/{name}",
    tag = "read",
    params(("name" = String, Path, description = "A service name")),
    responses((status = 200, description = "One service in detail", body = ServiceDetail), crate::openapi::Failure)
)]
async fn service(
    State(s): State<AppState>,
    Name(name): Name,
) -> Result<Json<ServiceDetail>, ApiError> {
    s.control.service(&name).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/services/{target}/{action}",
    tag = "write",
    params(("target" = String, Path, description = "A service name, or `all`"), ("action" = String, Path, description = "start, stop or restart")),
    responses((status = 200, description = "Starts, stops or restarts a service, or all of them", body = ActionResult), crate::openapi::Failure)
)]
async fn act(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ActionResult>, ApiError> {
    let (target, action) = path_params(path, "the service name or the action", &uri)?;
    let action = match action.as_str() {
        "start" => Action::Start,
        "stop" => Action::Stop,
        "restart" => Action::Restart,
        other => {
            return Err(ApiError::BadRequest {
                message: format!("unknown action `{other}`"),
                hint: Some("use start, stop or restart".into()),
            });
        }
    };
    let target = if target == "all" {
        Target::All
    } else {
        Target::One(parse_name(&target)?)
    };
    s.control.act(target, action, &by).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/reload",
    tag = "write",
    responses((status = 200, description = "Reads the config file again and applies what changed", body = ReloadResult), crate::openapi::Failure)
)]
async fn reload(State(s): State<AppState>, By(by): By) -> Result<Json<ReloadResult>, ApiError> {
    s.control.reload(&by).await.map(Json)
}

/// A JSON body that does not parse: a 400 saying why, in the API's JSON; one over the
/// listener's size cap (a route with no `bounded_body` in front, such as the public
/// subscription), a 413. The reason never quotes the body: serde's messages may quote what it
/// read, so they are cut short.
///
/// The reason is in our words (break-it, session 10: serde's "Failed to deserialize the
/// JSON body into the target type" came first): what is wrong, then serde's own message,
/// which names the field and the problem.
pub(crate) fn bad_json(e: JsonRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge("the request body is larger than this listener takes".into());
    }
    // The inner error alone, without axum's sentence in front.
    let inner = |e: &dyn std::error::Error| {
        let why = e.source().map(|s| s.to_string()).unwrap_or_default();
        crate::error::clip(&why)
    };
    let message = match &e {
        JsonRejection::JsonDataError(d) => {
            format!(
                "a field of the request body is wrong or missing: {}",
                inner(d)
            )
        }
        JsonRejection::JsonSyntaxError(d) => {
            format!("the request body is not valid JSON: {}", inner(d))
        }
        JsonRejection::MissingJsonContentType(_) => {
            "the request body must be JSON, sent with Content-Type: application/json".to_owned()
        }
        _ => crate::error::clip(&e.body_text()),
    };
    ApiError::bad_request(message)
}

#[utoipa::path(
    post,
    path = "/api/v1/services",
    tag = "write",
    request_body = AddService,
    responses((status = 200, description = "Adds a service to the config file and starts it", body = ReloadResult), crate::openapi::Failure)
)]
async fn add(
    State(s): State<AppState>,
    By(by): By,
    body: Result<Json<AddService>, JsonRejection>,
) -> Result<Json<ReloadResult>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    s.control.add(req, &by).await.map(Json)
}

/// `?service=NAME&limit=N` of the event and incident lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    service: Option<String>,
    #[serde(default = "default_list_limit")]
    limit: u32,
}

fn default_list_limit() -> u32 {
    100
}

impl ListQuery {
    /// The service (if any) and the limit, at most 10,000.
    fn parse(
        query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Result<(Option<ServiceName>, u32), ApiError> {
        let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let service = q.service.as_deref().map(parse_name).transpose()?;
        Ok((service, q.limit.min(10_000)))
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "read",
    params(ListQuery),
    responses((status = 200, description = "The latest events, newest first", body = Vec<StoredEvent>), crate::openapi::Failure)
)]
async fn events(
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<StoredEvent>>, ApiError> {
    let (service, limit) = ListQuery::parse(query)?;
    s.control.events(service.as_ref(), limit).await.map(Json)
}

/// Committed events as they come, one JSON object a line (the shape of `/api/v1/events`, `id`
/// being the event's sequence number); a reader that falls behind gets `{"skipped": N}`.
/// Ends when the daemon shuts down.
#[utoipa::path(
    get,
    path = "/api/v1/events/stream",
    tag = "read",
    responses((status = 200, description = "Committed events as they come, one JSON object a line; `{\"skipped\": N}` when the reader fell behind", body = StoredEvent, content_type = "application/x-ndjson"), crate::openapi::Failure)
)]
async fn event_stream(
    State(s): State<AppState>,
    lease: Option<axum::Extension<crate::serve::Lease>>,
) -> Response {
    if let Some(refused) = crate::streams::hold(lease) {
        return refused;
    }
    let rx = s.control.follow_events();
    let stream = futures_util::stream::unfold((rx, s.cancel), |(mut rx, cancel)| async move {
        let item = tokio::select! {
            _ = cancel.cancelled() => return None,
            r = rx.recv() => r,
        };
        let mut text = Vec::new();
        match item {
            Ok(batch) => {
                for c in batch.iter() {
                    let _ = serde_json::to_writer(&mut text, &StoredEvent::from(c));
                    text.push(b'\n');
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                let _ = serde_json::to_writer(&mut text, &serde_json::json!({ "skipped": n }));
                text.push(b'\n');
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(text)), (rx, cancel)))
    });
    ([(header::CONTENT_TYPE, NDJSON)], Body::from_stream(stream)).into_response()
}

/// The media type of the answers that are one JSON value a line (the event stream, the
/// live service list), as the OpenAPI document names it.
pub(crate) const NDJSON: &str = "application/x-ndjson";

/// The media type of a service's log as `logs` sends it: its lines as the service wrote
/// them, with control characters left to the reader (the CLI escapes them).
const LOG_TEXT: &str = "text/plain; charset=utf-8";

/// `?service=NAME` for one job, `limit` runs of each (default 100).
#[utoipa::path(
    get,
    path = "/api/v1/jobs",
    tag = "read",
    params(ListQuery),
    responses((status = 200, description = "Jobs and their latest runs", body = Vec<upkeep_core::job::JobInfo>), crate::openapi::Failure)
)]
async fn jobs(
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<upkeep_core::job::JobInfo>>, ApiError> {
    let (service, limit) = ListQuery::parse(query)?;
    s.control.jobs(service.as_ref(), limit).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "read",
    params(ListQuery),
    responses((status = 200, description = "The latest incidents", body = Vec<upkeep_core::api::Incident>), crate::openapi::Failure)
)]
async fn incidents(
    State(s): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<upkeep_core::api::Incident>>, ApiError> {
    let (service, limit) = ListQuery::parse(query)?;
    s.control.incidents(service.as_ref(), limit).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "read",
    params(("id" = i64, Path, description = "An incident number")),
    responses((status = 200, description = "One incident with its timeline, updates and post-mortem", body = upkeep_core::api::IncidentDetail), crate::openapi::Failure)
)]
async fn incident(
    State(s): State<AppState>,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<upkeep_core::api::IncidentDetail>, ApiError> {
    let id = path_params(path, "the incident number", &uri)?;
    let id: i64 = id.parse().map_err(|_| ApiError::BadRequest {
        message: format!("`{id}` is not an incident number"),
        hint: Some("`upkeep incidents` lists them".into()),
    })?;
    s.control.incident(id).await.map(Json)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// `24h`, `7d`, a date or an RFC 3339 time; default 7d.
    since: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/report",
    tag = "read",
    params(ReportQuery),
    responses((status = 200, description = "Availability, MTTR and interventions of a period beside the one before it", body = upkeep_core::report::Report), crate::openapi::Failure)
)]
async fn report(
    State(s): State<AppState>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<upkeep_core::report::Report>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let now = s.control.clock().now();
    let from = upkeep_core::report::parse_since(q.since.as_deref().unwrap_or("7d"), now)
        .map_err(ApiError::bad_request)?;
    if from >= now {
        return Err(ApiError::bad_request("the period must start in the past"));
    }
    s.control.report(from, now).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/drills",
    tag = "write",
    request_body = upkeep_core::api::DrillRequest,
    responses((status = 200, description = "Injects a fault and measures detection and recovery", body = upkeep_core::api::DrillResult), crate::openapi::Failure)
)]
async fn drill(
    State(s): State<AppState>,
    By(by): By,
    body: Result<Json<upkeep_core::api::DrillRequest>, JsonRejection>,
) -> Result<Json<upkeep_core::api::DrillResult>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    s.control.drill(req, &by).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/services/{name}/maintenance",
    tag = "write",
    params(("name" = String, Path, description = "A service name")),
    request_body = upkeep_core::api::MaintenanceRequest,
    responses((status = 200, description = "Puts a service in maintenance, or changes its maintenance", body = ActionResult), crate::openapi::Failure)
)]
async fn begin_maintenance(
    State(s): State<AppState>,
    By(by): By,
    Name(name): Name,
    body: Result<Json<upkeep_core::api::MaintenanceRequest>, JsonRejection>,
) -> Result<Json<ActionResult>, ApiError> {
    let Json(mut req) = body.map_err(bad_json)?;
    let now = s.control.clock().now();
    if let Some(text) = req.lasting.take() {
        if req.until.is_some() {
            return Err(ApiError::bad_request("give `until` or `for`, not both"));
        }
        let ends = upkeep_core::duration::parse(&text)
            .filter(|d| !d.is_zero())
            .and_then(|d| now.checked_add(d).ok())
            .ok_or_else(|| ApiError::BadRequest {
                message: format!("`for` `{text}` is not a duration longer than 0"),
                hint: Some("try 30m, 2h, 1h30m or 1d".into()),
            })?;
        req.until = Some(ends);
    }
    if req.until.is_some_and(|u| u <= now) {
        return Err(ApiError::bad_request("`until` must be in the future"));
    }
    s.control.maintenance(&name, Some(req), &by).await.map(Json)
}

#[utoipa::path(
    post,
    path = "/api/v1/test/clock",
    tag = "write",
    request_body = upkeep_core::api::TestClockRequest,
    responses((status = 200, description = "Moves the daemon's test clock forward (only with a test clock)", body = upkeep_core::api::TestClockState), crate::openapi::Failure)
)]
async fn advance_clock(
    State(s): State<AppState>,
    By(by): By,
    body: Result<Json<upkeep_core::api::TestClockRequest>, JsonRejection>,
) -> Result<Json<upkeep_core::api::TestClockState>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let d = upkeep_core::duration::parse(&req.advance).ok_or_else(|| ApiError::BadRequest {
        message: format!("`{}` is not a duration", req.advance),
        hint: Some("write it as in the config: 30s, 2h, 7d".into()),
    })?;
    s.control.advance_clock(d, &by).await.map(Json)
}

#[utoipa::path(
    delete,
    path = "/api/v1/services/{name}/maintenance",
    tag = "write",
    params(("name" = String, Path, description = "A service name")),
    responses((status = 200, description = "Ends a service's maintenance", body = ActionResult), crate::openapi::Failure)
)]
async fn end_maintenance(
    State(s): State<AppState>,
    By(by): By,
    Name(name): Name,
) -> Result<Json<ActionResult>, ApiError> {
    s.control.maintenance(&name, None, &by).await.map(Json)
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "read",
    responses((status = 200, description = "Prometheus metrics", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"), crate::openapi::Failure)
)]
async fn metrics(State(s): State<AppState>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let text = crate::metrics::encode(&s.control.metrics().await?);
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], text).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/shutdown",
    tag = "write",
    responses((status = 200, description = "Stops every service, then the daemon", body = serde_json::Value), crate::openapi::Failure)
)]
async fn shutdown(State(s): State<AppState>, By(by): By) -> Json<serde_json::Value> {
    s.control.shutdown(&by);
    Json(serde_json::json!({ "ok": true, "by": by }))
}

#[utoipa::path(
    post,
    path = "/api/v1/upgrade",
    tag = "write",
    request_body = upkeep_core::api::UpgradeRequest,
    responses((status = 200, description = "Replaces the daemon with a new binary; services keep running", body = upkeep_core::api::UpgradeStarted), crate::openapi::Failure)
)]
async fn upgrade(
    State(s): State<AppState>,
    By(by): By,
    body: Result<Json<upkeep_core::api::UpgradeRequest>, JsonRejection>,
) -> Result<Json<upkeep_core::api::UpgradeStarted>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    s.control.upgrade(req, &by).await.map(Json)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    #[serde(default)]
    stderr: bool,
    #[serde(default = "default_lines")]
    n: usize,
    #[serde(default)]
    follow: bool,
}

fn default_lines() -> usize {
    50
}

#[utoipa::path(
    get,
    path = "/api/v1/services/{name}/logs",
    tag = "read",
    params(("name" = String, Path, description = "A service name"), LogQuery),
    responses((status = 200, description = "The last lines of the service's log, then with `follow` its new lines as they come", body = String, content_type = "text/plain; charset=utf-8"), crate::openapi::Failure)
)]
async fn logs(
    State(s): State<AppState>,
    Name(name): Name,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
    lease: Option<axum::Extension<crate::serve::Lease>>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    // A follow lasts: it is one of the listener's streams (checked before it subscribes).
    if q.follow
        && let Some(refused) = crate::streams::hold(lease)
    {
        return Ok(refused);
    }
    let text = |body: Body| ([(header::CONTENT_TYPE, LOG_TEXT)], body).into_response();
    // Subscribe before reading the tail, so no line falls between the two (a line may show
    // twice instead, which is the lesser harm).
    let follow = if q.follow {
        Some(s.control.log_follow(&name, q.stderr).await?)
    } else {
        None
    };
    let first = s.control.log_tail(&name, q.stderr, q.n).await?;
    let Some(rx) = follow else {
        return Ok(text(Body::from_stream(first)));
    };
    let cancel = s.cancel.clone();
    let rest = futures_util::stream::unfold((rx, cancel), |(mut rx, cancel)| async move {
        let item = tokio::select! {
            _ = cancel.cancelled() => return None,
            r = rx.recv() => r,
        };
        let bytes = match item {
            Ok(b) => b,
            Err(broadcast::error::RecvError::Lagged(n)) => Bytes::from(format!(
                "[upkeep] {n} chunks skipped: this reader fell behind\n"
            )),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(bytes), (rx, cancel)))
    });
    Ok(text(Body::from_stream(futures_util::StreamExt::chain(
        first, rest,
    ))))
}
