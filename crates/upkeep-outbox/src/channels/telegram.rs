//! `telegram`: a Telegram bot's `sendMessage`, the short plain text to a chat.
//!
//! The chat is the recipient's address when it has one (a subscriber's chat), else the
//! configured `chat_id` (a group). The bot token is a credential: `token_env` or
//! `token_file`. `base_url` (default `https://api.telegram.org`) lets tests and a local Bot
//! API server take the requests. Plain text, no parse mode: nothing in a notice can break
//! the markup, and Telegram links URLs itself. Telegram answers `{"ok": true, "result":
//! {"message_id": ...}}`; an error's HTTP status is its `error_code`, and a 429 says how long
//! to wait in `parameters.retry_after`, which is used when no `Retry-After` header came.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::http::{Poster, cut_chars};
use crate::channel::{Channel, Delivery, SendError};
use crate::config::{BuildContext, Check, ConfigErrors, Secret};
use crate::notice::{IdempotencyKey, Recipient};
use crate::render::Rendered;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The bot token's environment variable (or `token_file`).
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    /// The chat for recipients without their own: a numeric id or `@channelname`.
    pub chat_id: Option<String>,
    pub base_url: Option<String>,
    pub timeout: Option<String>,
}

pub(crate) struct Telegram {
    /// `<base_url>/bot<token>/sendMessage`: holds the token, so it is never shown.
    url: url::Url,
    chat_id: Option<String>,
    poster: Poster,
}

const DEFAULT_BASE: &str = "https://api.telegram.org";

impl TelegramConfig {
    pub(crate) fn build(&self, name: &str, ctx: &BuildContext) -> Result<Telegram, ConfigErrors> {
        let mut c = Check::new(ctx);
        let token = c.secret("token", &self.token_env, &self.token_file, true);
        let base = c.url("base_url", self.base_url.as_deref().unwrap_or(DEFAULT_BASE));
        if let Some(chat) = &self.chat_id
            && !valid_chat(chat)
        {
            c.problem(
                "chat_id",
                format!("chat_id `{chat}` is neither a number nor @channelname"),
                Some("e.g. chat_id = \"-1001234567890\" or \"@upkeep_status\"".into()),
            );
        }
        let poster = Poster::new(c.timeout(&self.timeout), c.clock());
        let built = base.zip(token).and_then(|(base, token)| {
            let url = method_url(&base, &token)?;
            Some(Telegram {
                url,
                chat_id: self.chat_id.clone(),
                poster,
            })
        });
        if built.is_none() && c.is_clean() {
            c.problem("token_env", "the token cannot be part of a URL", None);
        }
        c.finish(name, built)
    }
}

fn method_url(base: &url::Url, token: &Secret) -> Option<url::Url> {
    let base = base.as_str().trim_end_matches('/');
    url::Url::parse(&format!("{base}/bot{}/sendMessage", token.expose())).ok()
}

/// Why `chat` is not a chat id, if it is not.
pub(crate) fn check_chat(chat: &str) -> Result<(), String> {
    if valid_chat(chat) {
        Ok(())
    } else {
        Err(format!("`{chat}` is neither a chat id nor @channelname"))
    }
}

fn valid_chat(chat: &str) -> bool {
    let digits = chat.strip_prefix('-').unwrap_or(chat);
    let numeric = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    let name = chat
        .strip_prefix('@')
        .is_some_and(|n| n.len() >= 4 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    numeric || name
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    description: String,
    result: Option<Sent>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Sent {
    message_id: i64,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

#[async_trait]
impl Channel for Telegram {
    fn kind(&self) -> &'static str {
        "telegram"
    }

    async fn send(
        &self,
        to: &Recipient,
        notice: &Rendered,
        _key: &IdempotencyKey,
    ) -> Result<Delivery, SendError> {
        let chat = match (to.address.as_str(), &self.chat_id) {
            ("", Some(configured)) => configured.as_str(),
            ("", None) => {
                return Err(SendError::permanent(
                    "no Telegram chat: the recipient has none and chat_id is not set",
                ));
            }
            (own, _) if valid_chat(own) => own,
            (own, _) => {
                return Err(SendError::permanent(format!(
                    "`{own}` is not a Telegram chat id"
                )));
            }
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "chat_id": chat,
            "text": cut_chars(&notice.chat_text, 4096),
            "link_preview_options": {"is_disabled": true},
        }))
        .map_err(|e| SendError::permanent("the notice cannot be written as JSON").caused_by(e))?;
        let mut reply = self
            .poster
            .exchange("Telegram", self.url.clone(), &[], body)
            .await?;
        if reply.retry_after.is_none()
            && let Ok(a) = serde_json::from_slice::<Answer>(&reply.body)
        {
            reply.retry_after = a
                .parameters
                .and_then(|p| p.retry_after)
                .map(Duration::from_secs);
        }
        let answer: Answer = reply.classify("Telegram")?.json("Telegram")?;
        match (answer.ok, answer.result) {
            (true, Some(sent)) => Ok(Delivery {
                id: Some(sent.message_id.to_string()),
            }),
            _ => Err(SendError::retry(format!(
                "Telegram answered 2xx without a message: {}",
                answer.description
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chats_are_numbers_or_channel_names() {
        for ok in ["123", "-1001234567890", "@upkeep_status"] {
            assert!(valid_chat(ok), "{ok}");
        }
        for bad in ["", "-", "@ab", "chat", "12a", "@a b"] {
            assert!(!valid_chat(bad), "{bad}");
        }
    }

    #[test]
    fn the_token_goes_in_the_path() {
        let base = url::Url::parse("http://127.0.0.1:9/tg/").unwrap();
        let url = method_url(&base, &Secret::for_test("123:abc")).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/tg/bot123:abc/sendMessage");
    }
}
