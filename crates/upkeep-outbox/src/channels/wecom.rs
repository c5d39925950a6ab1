//! `wecom`: a WeCom (企业微信) group bot, a markdown message to its webhook URL
//! (`https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`).
//!
//! The URL's `key` is the credential, so the URL comes from `url_env` or `url_file`. WeCom
//! answers 200 with `{"errcode": 0}` on success and a non-zero `errcode` otherwise: 45009 is
//! its rate limit (20 messages a minute per bot) and -1 "system busy", both worth a retry; any
//! other code (a wrong key, a bad body) is permanent. Markdown content is cut to WeCom's
//! 4,096 bytes.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::http::{Poster, cut_bytes};
use crate::channel::{Channel, Delivery, SendError};
use crate::config::{BuildContext, Check, ConfigErrors};
use crate::notice::{IdempotencyKey, Recipient};
use crate::render::Rendered;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomConfig {
    /// The bot's webhook URL's environment variable (or `url_file`).
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub timeout: Option<String>,
}

pub(crate) struct Wecom {
    url: url::Url,
    poster: Poster,
}

impl WecomConfig {
    pub(crate) fn build(&self, name: &str, ctx: &BuildContext) -> Result<Wecom, ConfigErrors> {
        let mut c = Check::new(ctx);
        let url = c.secret_url(&self.url_env, &self.url_file);
        let poster = Poster::new(c.timeout(&self.timeout), c.clock());
        c.finish(name, url.map(|(url, _)| Wecom { url, poster }))
    }
}

#[derive(Deserialize)]
struct Answer {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

/// WeCom's verdict, from its `errcode`.
fn verdict(a: Answer) -> Result<(), SendError> {
    match a.errcode {
        0 => Ok(()),
        // The limit is per minute: a retry sooner is refused again.
        45009 => Err(SendError::retry_after(
            Some(Duration::from_secs(60)),
            format!("WeCom is rate-limiting this bot: {}", a.errmsg),
        )),
        -1 => Err(SendError::retry(format!("WeCom is busy: {}", a.errmsg))),
        code => Err(SendError::permanent(format!(
            "WeCom refused the message (errcode {code}): {}",
            a.errmsg
        ))),
    }
}

#[async_trait]
impl Channel for Wecom {
    fn kind(&self) -> &'static str {
        "wecom"
    }

    async fn send(
        &self,
        _to: &Recipient,
        notice: &Rendered,
        _key: &IdempotencyKey,
    ) -> Result<Delivery, SendError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "msgtype": "markdown",
            "markdown": {"content": cut_bytes(&notice.chat_markdown, 4096)},
        }))
        .map_err(|e| SendError::permanent("the notice cannot be written as JSON").caused_by(e))?;
        let answer = self
            .poster
            .post("WeCom", self.url.clone(), &[], body)
            .await?;
        verdict(answer.json("WeCom")?)?;
        Ok(Delivery::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(errcode: i64) -> Result<(), SendError> {
        verdict(Answer {
            errcode,
            errmsg: "m".into(),
        })
    }

    #[test]
    fn errcodes_sort_into_retry_and_permanent() {
        assert!(code(0).is_ok());
        let limited = code(45009).unwrap_err();
        assert_eq!(limited.retry_delay(), Some(Duration::from_secs(60)));
        assert!(!code(-1).unwrap_err().is_permanent());
        assert!(code(93000).unwrap_err().is_permanent());
    }
}
