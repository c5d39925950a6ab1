//! `slack`: a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat take the same
//! body): `text` for notifications and clients without blocks, and `blocks` with the
//! subject as a header and the short text as a section.
//!
//! The webhook URL is the credential, so it comes from `url_env` or `url_file`. Slack answers
//! `ok` with 200 and refuses with a 4xx (`invalid_payload`, `channel_not_found`,
//! `no_service`); `http.rs` sorts those, and a 429's `Retry-After`.

use async_trait::async_trait;
use serde::Deserialize;

use super::http::{Poster, cut_chars};
use crate::channel::{Channel, Delivery, SendError};
use crate::config::{BuildContext, Check, ConfigErrors};
use crate::notice::{IdempotencyKey, Recipient};
use crate::render::Rendered;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming webhook URL's environment variable (or `url_file`).
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub timeout: Option<String>,
}

pub(crate) struct Slack {
    url: url::Url,
    poster: Poster,
}

impl SlackConfig {
    pub(crate) fn build(&self, name: &str, ctx: &BuildContext) -> Result<Slack, ConfigErrors> {
        let mut c = Check::new(ctx);
        let url = c.secret_url(&self.url_env, &self.url_file);
        let poster = Poster::new(c.timeout(&self.timeout), c.clock());
        c.finish(name, url.map(|(url, _)| Slack { url, poster }))
    }
}

/// Slack's mrkdwn gives `&`, `<` and `>` meaning; text shows them escaped.
fn mrkdwn_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body: a header block holds at most 150 characters, a section 3,000.
fn body(notice: &Rendered) -> serde_json::Value {
    serde_json::json!({
        "text": notice.chat_text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": cut_chars(&notice.subject, 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": cut_chars(&mrkdwn_escape(&notice.chat_text), 3000)}},
        ],
    })
}

#[async_trait]
impl Channel for Slack {
    fn kind(&self) -> &'static str {
        "slack"
    }

    async fn send(
        &self,
        _to: &Recipient,
        notice: &Rendered,
        _key: &IdempotencyKey,
    ) -> Result<Delivery, SendError> {
        let body = serde_json::to_vec(&body(notice)).map_err(|e| {
            SendError::permanent("the notice cannot be written as JSON").caused_by(e)
        })?;
        self.poster
            .post("Slack", self.url.clone(), &[], body)
            .await?;
        Ok(Delivery::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_mrkdwn() {
        assert_eq!(mrkdwn_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
