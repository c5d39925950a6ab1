//! The status page's two forms, served without JavaScript: `POST /subscribe` (an email and a
//! checkbox per public service; none checked: all) and `POST /feedback` (a message, an
//! optional email, an optional public service), both `application/x-www-form-urlencoded`,
//! each answered with a small HTML page in the reader's language (the form's hidden `lang`,
//! else `Accept-Language`). Operators read the feedback at `GET /api/v1/feedback` (read
//! scope) and with `upkeep feedback`.
//!
//! The subscription form drives the same double opt-in as `POST /api/v1/subscribe` and shares
//! its rate limit per client address (both mail whoever they name); feedback has a limit of its
//! own; a feedback form must come from this site (its `Origin` or `Referer` names the host,
//! as the admin pages' forms must). Bodies are bounded twice: by the listener (`serve::bounded_body`) and by [`FORM_MAX`];
//! either way past it is a 413 with a message. Every text shown back is escaped.
//!
//! What a message may say, and which services exist, is the daemon's, behind [`Feedbacks`]
//! and [`crate::Subscriptions`].

use std::net::IpAddr;

use async_trait::async_trait;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use upkeep_core::feedback::{FeedbackItem, FeedbackRequest};
use upkeep_core::i18n::Lang;
use upkeep_core::subscription::SubscribeRequest;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::AppState;
use crate::per_client::{self, Limiter, Refusal};
use crate::subscribers::{escape, page};
use crate::{ApiError, Peer};

/// What the feedback routes need from the daemon.
#[async_trait]
pub trait Feedbacks: Send + Sync + 'static {
    /// Checks and keeps one message from `from` (a TCP client's address); returns its id.
    async fn add(&self, req: FeedbackRequest, from: Option<IpAddr>) -> Result<i64, ApiError>;
    /// The latest `limit` messages, newest first.
    async fn list(&self, limit: u32) -> Result<Vec<FeedbackItem>, ApiError>;
}

/// Largest form body read: a message of 4,000 Chinese characters, percent-encoded, is 36 KB.
pub const FORM_MAX: usize = 48 * 1024;

/// Feedback messages per client address: a burst of this many...
const FEEDBACK_BURST: u32 = 5;
/// ...then one every this many seconds.
const FEEDBACK_REFILL_S: u64 = 30;

pub(crate) fn feedback_limiter() -> Limiter {
    Limiter::new(
        FEEDBACK_BURST,
        std::time::Duration::from_secs(FEEDBACK_REFILL_S),
    )
}

/// The forms' routes: `subscriptions` is the limiter `POST /api/v1/subscribe` uses too.
pub(crate) fn public_routes(subscriptions: Limiter, feedbacks: Limiter) -> Router<AppState> {
    // Layers run outside in: the limit first, then the body is read within its bounds.
    let bounded = || axum::middleware::from_fn(crate::serve::bounded_body);
    let as_page = || axum::middleware::from_fn(too_large_as_page);
    let limited = |limiter| {
        axum::middleware::from_fn_with_state((limiter, too_many as Refusal), per_client::limit)
    };
    let subscribe = Router::new()
        .route("/subscribe", post(subscribe))
        .route_layer(bounded())
        .route_layer(as_page())
        .route_layer(limited(subscriptions));
    let feedback = Router::new()
        .route("/feedback", post(feedback))
        .route_layer(bounded())
        .route_layer(as_page())
        .route_layer(limited(feedbacks));
    subscribe.merge(feedback)
}

pub(crate) fn read_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// A TCP client past its quota gets a 429 page with `Retry-After`, in the language its
/// `Accept-Language` asks for (the form's own `lang` field is in the body, unread).
fn too_many(headers: &HeaderMap, secs: u64) -> Response {
    let lang = crate::site::accept_language(headers);
    let mut r = refused(
        StatusCode::TOO_MANY_REQUESTS,
        lang,
        &text(lang, Words::TooMany).replace("{secs}", &secs.to_string()),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    r
}

/// A body past the listener's cap is refused by `bounded_body` in JSON, before the form is
/// read: a browser that sent the form gets the form's page instead, in the language its
/// `Accept-Language` asks for (the form's own `lang` field is in the body, unread).
async fn too_large_as_page(req: Request, next: Next) -> Response {
    let lang = crate::site::accept_language(req.headers());
    let answer = next.run(req).await;
    let json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    // The form's own refusals (a message too long) are pages already.
    if answer.status() != StatusCode::PAYLOAD_TOO_LARGE || !json {
        return answer;
    }
    refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        lang,
        &text(lang, Words::TooLarge).replace("{max}", &(FORM_MAX / 1024).to_string()),
    )
}

/// A form's fields, as sent: every value of each name, in order.
struct Fields(Vec<(String, String)>);

impl Fields {
    fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

/// The form's fields and the reader's language, or the page that refuses the body.
#[allow(clippy::result_large_err)]
fn read_form(headers: &HeaderMap, body: &Bytes) -> Result<(Fields, Lang), Response> {
    let fallback = crate::site::accept_language(headers);
    if body.len() > FORM_MAX {
        return Err(refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            fallback,
            &text(fallback, Words::TooLarge).replace("{max}", &(FORM_MAX / 1024).to_string()),
        ));
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            fallback,
            text(fallback, Words::NotAForm),
        ));
    }
    let fields = Fields(
        form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    let lang = match fields.one("lang") {
        Some(l) if l.eq_ignore_ascii_case("zh-CN") => Lang::ZhCn,
        Some(l) if l.eq_ignore_ascii_case("en") => Lang::En,
        _ => fallback,
    };
    Ok((fields, lang))
}

fn lang_tag(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "en",
        Lang::ZhCn => "zh-CN",
    }
}

async fn subscribe(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (fields, lang) = match read_form(&headers, &body) {
        Ok(it) => it,
        Err(refusal) => return refusal,
    };
    let Some(subs) = s.control.subscriptions() else {
        return refused(
            StatusCode::NOT_FOUND,
            lang,
            text(lang, Words::NoSubscriptions),
        );
    };
    let Some(email) = fields.one("email") else {
        return refused(StatusCode::BAD_REQUEST, lang, text(lang, Words::NoEmail));
    };
    let req = SubscribeRequest {
        email: email.to_owned(),
        services: fields.all("service"),
        lang: Some(lang_tag(lang).into()),
    };
    match subs.subscribe(req).await {
        Ok(answer) => page(
            StatusCode::ACCEPTED,
            lang,
            text(lang, Words::SubscribedTitle),
            &format!("<p>{}</p>{}", escape(&answer.message), back(lang)),
        ),
        Err(e) => failed(lang, e),
    }
}

async fn feedback(
    State(s): State<AppState>,
    headers: HeaderMap,
    peer: Option<Extension<Peer>>,
    body: Bytes,
) -> Response {
    let (fields, lang) = match read_form(&headers, &body) {
        Ok(it) => it,
        Err(refusal) => return refusal,
    };
    // Sent from the status page, as the admin pages' forms must be: another site's page
    // could otherwise post messages in its visitors' names (break-it, session 10).
    if crate::admin::same_origin(&headers).is_err() {
        return refused(StatusCode::FORBIDDEN, lang, text(lang, Words::OtherSite));
    }
    let Some(desk) = s.control.feedback() else {
        return refused(StatusCode::NOT_FOUND, lang, text(lang, Words::NoFeedback));
    };
    let Some(message) = fields.one("message") else {
        return refused(StatusCode::BAD_REQUEST, lang, text(lang, Words::NoMessage));
    };
    let req = FeedbackRequest {
        message: message.to_owned(),
        email: fields.one("email").map(str::to_owned),
        service: fields.one("service").map(str::to_owned),
        lang: Some(lang_tag(lang).into()),
    };
    let from = match peer {
        Some(Extension(Peer::Remote(a))) => Some(a.ip()),
        _ => None,
    };
    match desk.add(req, from).await {
        Ok(_) => page(
            StatusCode::OK,
            lang,
            text(lang, Words::ThanksTitle),
            &format!("<p>{}</p>{}", text(lang, Words::Thanks), back(lang)),
        ),
        Err(e) => failed(lang, e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

#[utoipa::path(
    get,
    path = "/api/v1/feedback",
    tag = "read",
    responses((status = 200, description = "What people wrote with the feedback form, newest first", body = Vec<upkeep_core::feedback::FeedbackItem>), crate::openapi::Failure)
)]
async fn list(
    State(s): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<FeedbackItem>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let desk = s
        .control
        .feedback()
        .ok_or_else(|| ApiError::NotFound("this upkeep keeps no feedback".into()))?;
    desk.list(q.limit.min(10_000)).await.map(Json)
}

fn back(lang: Lang) -> String {
    format!("<p><a href=\"/\">{}</a></p>", text(lang, Words::Back))
}

/// The daemon's refusal as a page: its message (and hint) escaped, under a title in the
/// reader's language; an internal error says no more than the API would.
fn failed(lang: Lang, e: ApiError) -> Response {
    let (status, message, hint) = match e {
        ApiError::BadRequest { message, hint } => (StatusCode::BAD_REQUEST, message, hint),
        ApiError::Unprocessable { message, hint } => {
            (StatusCode::UNPROCESSABLE_ENTITY, message, hint)
        }
        ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m, None),
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m, None),
        ApiError::TooMany {
            message,
            retry_after,
        } => {
            let mut body = format!("<p>{}</p>", escape(&message));
            body.push_str(&back(lang));
            let mut r = page(
                StatusCode::TOO_MANY_REQUESTS,
                lang,
                text(lang, Words::RefusedTitle),
                &body,
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(retry_after.as_secs().max(1)),
            );
            return r;
        }
        ApiError::Unavailable { .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            text(lang, Words::Unavailable).to_owned(),
            None,
        ),
        other => {
            // Logged in full by its own answer; the page says nothing of it.
            let status = other.into_response().status();
            (status, text(lang, Words::Unavailable).to_owned(), None)
        }
    };
    let mut body = format!("<p>{}</p>", escape(&message));
    if let Some(h) = hint {
        body.push_str(&format!("<p>{}</p>", escape(&h)));
    }
    body.push_str(&back(lang));
    page(status, lang, text(lang, Words::RefusedTitle), &body)
}

fn refused(status: StatusCode, lang: Lang, message: &str) -> Response {
    page(
        status,
        lang,
        text(lang, Words::RefusedTitle),
        &format!("<p>{}</p>{}", escape(message), back(lang)),
    )
}

#[derive(Clone, Copy)]
enum Words {
    SubscribedTitle,
    ThanksTitle,
    Thanks,
    RefusedTitle,
    Back,
    TooMany,
    TooLarge,
    NotAForm,
    NoSubscriptions,
    NoFeedback,
    NoEmail,
    NoMessage,
    OtherSite,
    Unavailable,
}

fn text(lang: Lang, w: Words) -> &'static str {
    match (lang, w) {
        (Lang::En, Words::SubscribedTitle) => "Check your mail",
        (Lang::ZhCn, Words::SubscribedTitle) => "请查收邮件",
        (Lang::En, Words::ThanksTitle) => "Thank you",
        (Lang::ZhCn, Words::ThanksTitle) => "谢谢",
        (Lang::En, Words::Thanks) => "Your message was received. The operators read every one.",
        (Lang::ZhCn, Words::Thanks) => "我们已收到您的留言，运维人员会逐条阅读。",
        (Lang::En, Words::RefusedTitle) => "Not sent",
        (Lang::ZhCn, Words::RefusedTitle) => "未能提交",
        (Lang::En, Words::Back) => "Back to the status page",
        (Lang::ZhCn, Words::Back) => "返回状态页",
        (Lang::En, Words::TooMany) => {
            "Too many forms were sent from your address. Try again in {secs} s."
        }
        (Lang::ZhCn, Words::TooMany) => "您的地址提交过于频繁，请在 {secs} 秒后重试。",
        (Lang::En, Words::TooLarge) => "The form is larger than {max} KB: shorten the message.",
        (Lang::ZhCn, Words::TooLarge) => "表单超过 {max} KB，请缩短留言。",
        (Lang::En, Words::NotAForm) => {
            "Send the form as application/x-www-form-urlencoded, as a browser does."
        }
        (Lang::ZhCn, Words::NotAForm) => {
            "请以 application/x-www-form-urlencoded 格式提交表单（浏览器默认如此）。"
        }
        (Lang::En, Words::NoSubscriptions) => "This status page takes no subscriptions.",
        (Lang::ZhCn, Words::NoSubscriptions) => "此状态页不提供订阅。",
        (Lang::En, Words::NoFeedback) => "This status page takes no feedback.",
        (Lang::ZhCn, Words::NoFeedback) => "此状态页不接受留言。",
        (Lang::En, Words::NoEmail) => "Write the email address to send notices to.",
        (Lang::ZhCn, Words::NoEmail) => "请填写接收通知的邮箱地址。",
        (Lang::En, Words::NoMessage) => "Write a message first.",
        (Lang::ZhCn, Words::NoMessage) => "请先填写留言。",
        (Lang::En, Words::OtherSite) => {
            "Send your message from the feedback form of this status page."
        }
        (Lang::ZhCn, Words::OtherSite) => "请通过本状态页的留言表单提交留言。",
        (Lang::En, Words::Unavailable) => "Please try again in a few minutes.",
        (Lang::ZhCn, Words::Unavailable) => "请几分钟后再试。",
    }
}
