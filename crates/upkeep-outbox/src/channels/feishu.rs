//! `feishu`: a Feishu / Lark (飞书) custom bot, an interactive card (the subject as its
//! header, the short markdown as its body) posted to its webhook URL
//! (`https://open.feishu.cn/open-apis/bot/v2/hook/...`), signed when the bot's security
//! setting asks for a signature.
//!
//! The signature, as Feishu documents it (not the same as DingTalk's): the timestamp in
//! seconds; `timestamp + "\n" + secret` is the HMAC-SHA256 *key*, over an empty message; the
//! result in base64 goes in the body beside `timestamp`. The URL is the credential, so it
//! comes from `url_env` or `url_file`, the secret from `secret_env` or `secret_file`. Feishu
//! answers 200 with `{"code": 0}`; 9499 and 11232 are its rate limits (retry); any other code
//! (19021: bad signature or a clock more than an hour off) is permanent.

use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;

use super::hmac_sha256;
use super::http::Poster;
use crate::channel::{Channel, Delivery, SendError};
use crate::config::{BuildContext, Check, ConfigErrors, Secret};
use crate::notice::{IdempotencyKey, Priority, Recipient};
use crate::render::Rendered;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuConfig {
    /// The bot's webhook URL's environment variable (or `url_file`).
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    /// The signing secret, when the bot checks signatures.
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub timeout: Option<String>,
}

pub(crate) struct Feishu {
    url: url::Url,
    secret: Option<Secret>,
    poster: Poster,
}

impl FeishuConfig {
    pub(crate) fn build(&self, name: &str, ctx: &BuildContext) -> Result<Feishu, ConfigErrors> {
        let mut c = Check::new(ctx);
        let url = c.secret_url(&self.url_env, &self.url_file);
        let secret = c.secret("secret", &self.secret_env, &self.secret_file, false);
        let poster = Poster::new(c.timeout(&self.timeout), c.clock());
        c.finish(
            name,
            url.map(|(url, _)| Feishu {
                url,
                secret,
                poster,
            }),
        )
    }
}

/// The `sign` field for `timestamp` (seconds).
pub(crate) fn sign(secret: &str, timestamp: i64) -> String {
    let mac = hmac_sha256(format!("{timestamp}\n{secret}").as_bytes(), b"");
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// Today's answers carry `code` and `msg` beside the older `StatusCode` and `StatusMessage`;
/// older ones only the latter.
#[derive(Deserialize)]
struct Answer {
    code: Option<i64>,
    #[serde(default)]
    msg: String,
    #[serde(rename = "StatusCode")]
    status_code: Option<i64>,
}

fn verdict(a: Answer) -> Result<(), SendError> {
    let Some(code) = a.code.or(a.status_code) else {
        return Err(SendError::retry("Feishu answered without a code"));
    };
    match code {
        0 => Ok(()),
        9499 | 11232 => Err(SendError::retry(format!(
            "Feishu is rate-limiting this bot: {}",
            a.msg
        ))),
        code => Err(SendError::permanent(format!(
            "Feishu refused the message (code {code}): {}",
            a.msg
        ))),
    }
}

fn card(notice: &Rendered) -> serde_json::Value {
    let colour = match notice.notice.priority {
        Priority::Emergency => "red",
        Priority::Important => "orange",
        Priority::Routine => "blue",
    };
    serde_json::json!({
        "header": {"title": {"tag": "plain_text", "content": notice.subject}, "template": colour},
        "elements": [{"tag": "markdown", "content": notice.chat_markdown}],
    })
}

#[async_trait]
impl Channel for Feishu {
    fn kind(&self) -> &'static str {
        "feishu"
    }

    async fn send(
        &self,
        _to: &Recipient,
        notice: &Rendered,
        _key: &IdempotencyKey,
    ) -> Result<Delivery, SendError> {
        let mut body = serde_json::json!({"msg_type": "interactive", "card": card(notice)});
        if let Some(secret) = &self.secret {
            let timestamp = self.poster.now().as_second();
            body["timestamp"] = timestamp.to_string().into();
            body["sign"] = sign(secret.expose(), timestamp).into();
        }
        let body = serde_json::to_vec(&body).map_err(|e| {
            SendError::permanent("the notice cannot be written as JSON").caused_by(e)
        })?;
        let answer = self
            .poster
            .post("Feishu", self.url.clone(), &[], body)
            .await?;
        verdict(answer.json("Feishu")?)?;
        Ok(Delivery::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_the_documented_algorithm() {
        // Python: base64.b64encode(hmac.new(b"1700000000\nSECabc", b"",
        // hashlib.sha256).digest())
        assert_eq!(
            sign("SECabc", 1_700_000_000),
            "XprR1de+0SSBnwWyU/4k6x2TL+Q2SJlM5NNEdAv7MWg="
        );
    }

    #[test]
    fn codes_sort_into_retry_and_permanent() {
        let code = |code| {
            verdict(Answer {
                code: Some(code),
                msg: "m".into(),
                status_code: None,
            })
        };
        assert!(code(0).is_ok());
        assert!(!code(11232).unwrap_err().is_permanent());
        assert!(!code(9499).unwrap_err().is_permanent());
        assert!(code(19021).unwrap_err().is_permanent());
        let old: Answer =
            serde_json::from_str(r#"{"StatusCode":0,"StatusMessage":"success"}"#).unwrap();
        assert!(verdict(old).is_ok());
        let today: Answer = serde_json::from_str(
            r#"{"code":19021,"msg":"sign match fail","data":{},"StatusCode":19021}"#,
        )
        .unwrap();
        assert!(verdict(today).unwrap_err().is_permanent());
    }
}
