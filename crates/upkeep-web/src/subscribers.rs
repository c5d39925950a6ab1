//! The subscriber routes. Public: `POST /api/v1/subscribe` (JSON, for a status page's form),
//! `GET /api/v1/subscribe/confirm?token=…` (the double opt-in link: a page with one button,
//! which `POST`s to the same URL: a GET confirms nothing, since mail scanners fetch links),
//! `GET /api/v1/unsubscribe?token=…` (a page with one button) and `POST` on the same URL
//! (RFC 8058's one-click unsubscribe, which mail clients send with the body
//! `List-Unsubscribe=One-Click`; the token is in the URL, so the body is not read). Read:
//! `GET /api/v1/subscribers`; write: `DELETE /api/v1/subscribers/{email}`.
//!
//! Subscriptions are rate-limited per client address (a TCP peer; the control socket's
//! operators are not limited): a form that mails whoever it is given must not become a way to
//! flood someone's inbox or the daemon's store. Pages are in the subscriber's language (from
//! the token's subscriber) or, before that is known, the request's `Accept-Language`.
//!
//! What a subscription does (checks, tokens, rows) is the daemon's, behind [`Subscriptions`].

use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use upkeep_core::Principal;
use upkeep_core::i18n::Lang;
use upkeep_core::subscription::{SubscribeAnswer, SubscribeRequest, SubscriberInfo};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api::{AppState, bad_json, path_params};
use crate::auth::By;
use crate::per_client::{self, Limiter, Refusal};

/// What the subscriber routes need from the daemon.
#[async_trait]
pub trait Subscriptions: Send + Sync + 'static {
    /// Records a subscription and plans its confirmation mail.
    async fn subscribe(&self, req: SubscribeRequest) -> Result<SubscribeAnswer, ApiError>;
    /// Checks a confirmation token without acting (the page before the button).
    async fn check_confirm(&self, token: &str) -> Result<Linked, LinkError>;
    /// Confirms the subscription a link's token names.
    async fn confirm(&self, token: &str) -> Result<Linked, LinkError>;
    /// Checks an unsubscribe token without acting (the page before the button).
    async fn check_unsubscribe(&self, token: &str) -> Result<Linked, LinkError>;
    /// Deletes the subscriber an unsubscribe token names.
    async fn unsubscribe(&self, token: &str) -> Result<Linked, LinkError>;
    async fn list(&self) -> Result<Vec<SubscriberInfo>, ApiError>;
    /// Deletes a subscriber by address, for an operator.
    async fn remove(&self, email: &str, by: &Principal) -> Result<SubscriberInfo, ApiError>;
}

/// The subscriber a link named.
#[derive(Debug, Clone)]
pub struct Linked {
    pub email: String,
    pub lang: Lang,
}

/// Why a link did nothing.
#[derive(Debug, Clone)]
pub enum LinkError {
    /// Not a token upkeep makes, or a changed one.
    Forged,
    /// A confirmation link past its time.
    Expired,
    /// The subscription is gone (unsubscribed, renewed, or expired and forgotten).
    Gone,
    /// The store does not answer: try again later.
    Unavailable,
}

/// Subscription requests per client address: a burst of this many...
const BURST: u32 = 10;
/// ...then one every this many seconds.
const REFILL_S: u64 = 6;

/// The limit both ways to subscribe share (this API and the status page's form).
pub(crate) fn limiter() -> Limiter {
    Limiter::new(BURST, std::time::Duration::from_secs(REFILL_S))
}

pub(crate) fn public_routes(limiter: Limiter) -> OpenApiRouter<AppState> {
    // Only a subscription is limited: it mails whoever it names. A link is checked against
    // its signature before the store is read, and a person may click it as often as they like.
    OpenApiRouter::new()
        .routes(routes!(subscribe))
        .route_layer(axum::middleware::from_fn_with_state(
            (limiter, too_many as Refusal),
            per_client::limit,
        ))
        .routes(routes!(confirm_page, confirm))
        .routes(routes!(unsubscribe_page, unsubscribe))
}

pub(crate) fn read_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

pub(crate) fn write_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(remove))
}

/// A TCP client past its quota gets a 429 with `Retry-After`.
fn too_many(_: &HeaderMap, secs: u64) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        Json(serde_json::json!({
            "error": "too many subscription requests from this address",
            "hint": format!("try again in {secs} s"),
        })),
    )
        .into_response()
}

fn subscriptions(s: &AppState) -> Result<Arc<dyn Subscriptions>, ApiError> {
    s.control.subscriptions().ok_or_else(|| {
        ApiError::NotFound(
            "this upkeep takes no subscriptions ([notify.subscribers] is not set)".into(),
        )
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/subscribe",
    tag = "public",
    request_body = upkeep_core::subscription::SubscribeRequest,
    responses((status = 202, description = "Asks for notices by mail; a confirmation link is mailed", body = SubscribeAnswer), crate::openapi::Failure)
)]
async fn subscribe(
    State(s): State<AppState>,
    body: Result<Json<SubscribeRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<SubscribeAnswer>), ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let answer = subscriptions(&s)?.subscribe(req).await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenQuery {
    token: String,
}

/// What every link's page needs: the reader's language, the link's token (none: forged) and
/// the subscriptions (none: 404); or the answer that refuses it.
#[allow(clippy::result_large_err)]
fn link(
    s: &AppState,
    headers: &HeaderMap,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<(Lang, String, Arc<dyn Subscriptions>), Response> {
    let lang = crate::site::accept_language(headers);
    let Ok(Query(TokenQuery { token })) = q else {
        return Err(refused(lang, LinkError::Forged));
    };
    let subs = subscriptions(s).map_err(IntoResponse::into_response)?;
    Ok((lang, token, subs))
}

/// The two links a subscriber's mails carry. Each has a page with one button (a GET changes
/// nothing: mail scanners and link previews fetch every link in a mail, and a confirmation on
/// GET would subscribe an address its owner never agreed for) and the POST that button, or a
/// mail client's one click (RFC 8058), sends to the same URL.
#[derive(Debug, Clone, Copy)]
enum LinkKind {
    Confirm,
    Unsubscribe,
}

impl LinkKind {
    /// Checks the link's token without acting (the page before the button).
    async fn check(self, subs: &dyn Subscriptions, token: &str) -> Result<Linked, LinkError> {
        match self {
            LinkKind::Confirm => subs.check_confirm(token).await,
            LinkKind::Unsubscribe => subs.check_unsubscribe(token).await,
        }
    }

    /// Does what the link is for.
    async fn act(self, subs: &dyn Subscriptions, token: &str) -> Result<Linked, LinkError> {
        match self {
            LinkKind::Confirm => subs.confirm(token).await,
            LinkKind::Unsubscribe => subs.unsubscribe(token).await,
        }
    }

    /// The page's form id, then its title, question and button.
    fn asks(self) -> (&'static str, Words, Words, Words) {
        match self {
            LinkKind::Confirm => (
                "confirm",
                Words::ConfirmTitle,
                Words::ConfirmAsk,
                Words::ConfirmButton,
            ),
            LinkKind::Unsubscribe => (
                "unsubscribe",
                Words::UnsubscribeTitle,
                Words::UnsubscribeAsk,
                Words::UnsubscribeButton,
            ),
        }
    }

    /// The title and text of the page once done.
    fn done(self) -> (Words, Words) {
        match self {
            LinkKind::Confirm => (Words::ConfirmedTitle, Words::Confirmed),
            LinkKind::Unsubscribe => (Words::UnsubscribedTitle, Words::Unsubscribed),
        }
    }
}

/// A link's page: a button that posts to this very URL (the token in its query).
async fn link_page(
    kind: LinkKind,
    s: AppState,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let (lang, token, subs) = match link(&s, &headers, q) {
        Ok(it) => it,
        Err(refusal) => return refusal,
    };
    match kind.check(subs.as_ref(), &token).await {
        Ok(l) => button_page(kind, &uri, l.lang, &l.email),
        Err(e) => refused(lang, e),
    }
}

/// A link's button pressed: done, or the page that says why not.
async fn link_act(
    kind: LinkKind,
    s: AppState,
    headers: HeaderMap,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let (lang, token, subs) = match link(&s, &headers, q) {
        Ok(it) => it,
        Err(refusal) => return refusal,
    };
    match kind.act(subs.as_ref(), &token).await {
        Ok(l) => {
            let (title, done) = kind.done();
            page(
                StatusCode::OK,
                l.lang,
                text(l.lang, title),
                &format!(
                    "<p>{}</p>",
                    text(l.lang, done).replace("{email}", &escape(&l.email))
                ),
            )
        }
        Err(e) => refused(lang, e),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/subscribe/confirm",
    tag = "public",
    params(TokenQuery),
    responses((status = 200, description = "The confirmation link's page: a button that confirms", body = String, content_type = "text/html"))
)]
async fn confirm_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    link_page(LinkKind::Confirm, s, headers, uri, q).await
}

#[utoipa::path(
    post,
    path = "/api/v1/subscribe/confirm",
    tag = "public",
    params(TokenQuery),
    responses((status = 200, description = "Confirms a subscription", body = String, content_type = "text/html"))
)]
async fn confirm(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    link_act(LinkKind::Confirm, s, headers, q).await
}

#[utoipa::path(
    get,
    path = "/api/v1/unsubscribe",
    tag = "public",
    params(TokenQuery),
    responses((status = 200, description = "The unsubscribe link's page: a button that unsubscribes", body = String, content_type = "text/html"))
)]
async fn unsubscribe_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    link_page(LinkKind::Unsubscribe, s, headers, uri, q).await
}

#[utoipa::path(
    post,
    path = "/api/v1/unsubscribe",
    tag = "public",
    params(TokenQuery),
    responses((status = 200, description = "Ends a subscription (one click, RFC 8058)", body = String, content_type = "text/html"))
)]
async fn unsubscribe(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    link_act(LinkKind::Unsubscribe, s, headers, q).await
}

/// A page that asks (naming `email`) and a button (in the form the kind names) that posts to
/// this very URL (the token in its query), as a mail client's one-click POST does.
fn button_page(kind: LinkKind, uri: &Uri, lang: Lang, email: &str) -> Response {
    let (id, title, ask, button) = kind.asks();
    let action = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    page(
        StatusCode::OK,
        lang,
        text(lang, title),
        &format!(
            "<p>{}</p><form id=\"{id}\" method=\"post\" action=\"{}\">\
             <button type=\"submit\">{}</button></form>",
            text(lang, ask).replace("{email}", &escape(email)),
            escape(&action),
            text(lang, button),
        ),
    )
}

#[utoipa::path(
    get,
    path = "/api/v1/subscribers",
    tag = "read",
    responses((status = 200, description = "Every subscriber", body = Vec<upkeep_core::subscription::SubscriberInfo>), crate::openapi::Failure)
)]
async fn list(State(s): State<AppState>) -> Result<Json<Vec<SubscriberInfo>>, ApiError> {
    subscriptions(&s)?.list().await.map(Json)
}

#[utoipa::path(
    delete,
    path = "/api/v1/subscribers/{email}",
    tag = "write",
    params(("email" = String, Path, description = "A subscriber's address")),
    responses((status = 200, description = "Removes a subscriber", body = upkeep_core::subscription::SubscriberInfo), crate::openapi::Failure)
)]
async fn remove(
    State(s): State<AppState>,
    By(by): By,
    uri: Uri,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<SubscriberInfo>, ApiError> {
    let email = path_params(path, "the address", &uri)?;
    subscriptions(&s)?.remove(&email, &by).await.map(Json)
}

fn refused(lang: Lang, e: LinkError) -> Response {
    let (status, words) = match e {
        LinkError::Forged => (StatusCode::FORBIDDEN, Words::Forged),
        LinkError::Expired => (StatusCode::GONE, Words::Expired),
        LinkError::Gone => (StatusCode::NOT_FOUND, Words::Gone),
        LinkError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, Words::Unavailable),
    };
    page(
        status,
        lang,
        text(lang, Words::RefusedTitle),
        &format!("<p>{}</p>", text(lang, words)),
    )
}

/// A small page: no script, no outside resource.
pub(crate) fn page(status: StatusCode, lang: Lang, title: &str, body: &str) -> Response {
    let tag = match lang {
        Lang::En => "en",
        Lang::ZhCn => "zh-CN",
    };
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"{tag}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 36em; margin: 2em auto\">\
         <h1>{title}</h1>{body}</body></html>\n"
    );
    let mut resp = (status, Html(html)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            // Input shown back (a NUL in an address) is never echoed raw: `\0`, `\u{1b}`.
            c if c.is_control() => out.extend(c.escape_debug()),
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Words {
    ConfirmTitle,
    ConfirmAsk,
    ConfirmButton,
    ConfirmedTitle,
    Confirmed,
    UnsubscribeTitle,
    UnsubscribeAsk,
    UnsubscribeButton,
    UnsubscribedTitle,
    Unsubscribed,
    RefusedTitle,
    Forged,
    Expired,
    Gone,
    Unavailable,
}

fn text(lang: Lang, w: Words) -> &'static str {
    match (lang, w) {
        (Lang::En, Words::ConfirmTitle) => "Confirm your subscription",
        (Lang::ZhCn, Words::ConfirmTitle) => "确认订阅",
        (Lang::En, Words::ConfirmAsk) => "Send notices about maintenance and incidents to {email}?",
        (Lang::ZhCn, Words::ConfirmAsk) => "向 {email} 发送维护与故障通知？",
        (Lang::En, Words::ConfirmButton) => "Confirm",
        (Lang::ZhCn, Words::ConfirmButton) => "确认",
        (Lang::En, Words::ConfirmedTitle) => "Subscription confirmed",
        (Lang::ZhCn, Words::ConfirmedTitle) => "订阅已确认",
        (Lang::En, Words::Confirmed) => {
            "{email} will now hear about maintenance and incidents. Every mail has a link to unsubscribe."
        }
        (Lang::ZhCn, Words::Confirmed) => "{email} 将收到维护与故障通知。每封邮件都附有退订链接。",
        (Lang::En, Words::UnsubscribeTitle) => "Unsubscribe",
        (Lang::ZhCn, Words::UnsubscribeTitle) => "退订",
        (Lang::En, Words::UnsubscribeAsk) => {
            "Stop sending notices to {email}? The address will be deleted."
        }
        (Lang::ZhCn, Words::UnsubscribeAsk) => "不再向 {email} 发送通知？该地址将被删除。",
        (Lang::En, Words::UnsubscribeButton) => "Unsubscribe",
        (Lang::ZhCn, Words::UnsubscribeButton) => "退订",
        (Lang::En, Words::UnsubscribedTitle) => "Unsubscribed",
        (Lang::ZhCn, Words::UnsubscribedTitle) => "已退订",
        (Lang::En, Words::Unsubscribed) => {
            "{email} was deleted: no more notices will be sent to it."
        }
        (Lang::ZhCn, Words::Unsubscribed) => "{email} 已删除，不会再收到任何通知。",
        (Lang::En, Words::RefusedTitle) => "This link does not work",
        (Lang::ZhCn, Words::RefusedTitle) => "链接无效",
        (Lang::En, Words::Forged) => "The link is not valid. Copy it whole from the mail.",
        (Lang::ZhCn, Words::Forged) => "链接无效，请从邮件中完整复制。",
        (Lang::En, Words::Expired) => {
            "The confirmation link has expired. Subscribe again for a new one."
        }
        (Lang::ZhCn, Words::Expired) => "确认链接已过期，请重新订阅以获取新链接。",
        (Lang::En, Words::Gone) => "This subscription no longer exists.",
        (Lang::ZhCn, Words::Gone) => "该订阅已不存在。",
        (Lang::En, Words::Unavailable) => "Please try again in a few minutes.",
        (Lang::ZhCn, Words::Unavailable) => "请几分钟后再试。",
    }
}
