//! The daemon's feedback desk: what the status page's feedback form sends
//! (`upkeep_web::Feedbacks`), checked and kept in the store; the list operators read.
//!
//! A message is 1 to [`MAX_MESSAGE_CHARS`] characters (longer: a 413 saying the limit); an
//! email, when given, is checked as a subscriber's is; a service, when given, must be one the
//! status page shows (a `public = false` one is refused as if it did not exist). Text is kept
//! as written: every reader escapes what it shows. The rate limit per client address is the
//! web layer's; [`FEEDBACK_PER_HOUR`], for every client together, is this desk's (a script
//! that changes its source address still fills the operators' list at most that fast),
//! counted from the store's rows of the last hour, so a restart or an upgrade does not
//! refill it.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use upkeep_core::Clock;
use upkeep_core::feedback::{FeedbackItem, FeedbackRequest, MAX_MESSAGE_CHARS};
use upkeep_store::{NewFeedback, Store};
use upkeep_web::{ApiError, Feedbacks, Site};

/// Feedback messages kept in any hour, every client together; past it a 429 says when to try.
pub const FEEDBACK_PER_HOUR: u32 = 300;

/// Held from counting the last hour's messages to keeping the next, so that requests served
/// at once cannot each find the budget one short and all be kept. One for the process (a
/// desk is made per request); it holds no state: the budget is the store's rows.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Answers the feedback routes, over the store and what the status page shows.
pub struct Desk {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    pub site: Site,
}

fn unavailable(e: upkeep_store::Error) -> ApiError {
    ApiError::Unavailable {
        message: format!("the store is unreachable: {}", e.with_causes()),
        hint: Some("try again in a few minutes".into()),
    }
}

#[async_trait]
impl Feedbacks for Desk {
    async fn add(&self, req: FeedbackRequest, from: Option<IpAddr>) -> Result<i64, ApiError> {
        let message = req.message.trim();
        if message.is_empty() {
            return Err(ApiError::bad_request("the message is empty"));
        }
        let chars = message.chars().count();
        if chars > MAX_MESSAGE_CHARS {
            return Err(ApiError::TooLarge(format!(
                "the message has {chars} characters; at most {MAX_MESSAGE_CHARS} are kept"
            )));
        }
        let email =
            match req
                .email
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty())
            {
                Some(e) => Some(crate::subscriptions::check_address(e).map_err(|m| {
                    ApiError::BadRequest {
                        message: upkeep_web::clip(&m),
                        hint: Some("one address, such as name@example.com, or none".into()),
                    }
                })?),
                None => None,
            };
        let service = match req
            .service
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(s) if self.site.shows(s) => Some(s.to_owned()),
            Some(s) => {
                return Err(ApiError::BadRequest {
                    message: format!("no public service named `{}`", upkeep_web::clip(s)),
                    hint: Some("name a service the status page shows, or none".into()),
                });
            }
            None => None,
        };
        let lang = match req.lang.as_deref() {
            None | Some("en") => "en",
            Some("zh-CN") => "zh-CN",
            Some(other) => {
                return Err(ApiError::BadRequest {
                    message: format!("unknown language `{}`", upkeep_web::clip(other)),
                    hint: Some("use \"en\" or \"zh-CN\"".into()),
                });
            }
        };
        let address = from.map(|a| a.to_string());
        let _counting = COUNTING.lock().await;
        let now = self.clock.now();
        let hour = jiff::SignedDuration::from_hours(1);
        let spent = self
            .store
            .nth_newest_feedback(FEEDBACK_PER_HOUR)
            .await
            .map_err(unavailable)?
            .filter(|oldest| now.duration_since(*oldest) < hour);
        if let Some(oldest) = spent {
            // Free again an hour after the oldest of the hour's last messages.
            let retry_after = std::time::Duration::try_from(hour - now.duration_since(oldest))
                .ok()
                .filter(|d| !d.is_zero())
                .unwrap_or(std::time::Duration::from_secs(1));
            let minutes = retry_after.as_secs().div_ceil(60).max(1);
            return Err(ApiError::TooMany {
                message: if lang == "zh-CN" {
                    format!("本小时收到的留言已达上限，请 {minutes} 分钟后再试。")
                } else {
                    format!(
                        "This status page has taken as many messages as it takes in an hour. Try again in {minutes} min."
                    )
                },
                retry_after,
            });
        }
        let id = self
            .store
            .add_feedback(
                NewFeedback {
                    message,
                    email: email.as_deref(),
                    service: service.as_deref(),
                    lang,
                    address: address.as_deref(),
                },
                now,
            )
            .await
            .map_err(unavailable)?;
        tracing::info!(feedback = id, "feedback received");
        Ok(id)
    }

    async fn list(&self, limit: u32) -> Result<Vec<FeedbackItem>, ApiError> {
        self.store.feedback(limit).await.map_err(unavailable)
    }
}
