//! `dingtalk`: a DingTalk (钉钉) custom robot, a markdown message to its webhook URL
//! (`https://oapi.dingtalk.com/robot/send?access_token=...`), signed when the robot's
//! security setting is "加签" (signing).
//!
//! The signature, as DingTalk documents it: the timestamp in milliseconds, then
//! HMAC-SHA256 keyed with the secret over `timestamp + "\n" + secret`, in base64, URL-encoded,
//! appended as `&timestamp=...&sign=...`. The URL's `access_token` is a credential, so the URL
//! comes from `url_env` or `url_file`, the secret from `secret_env` or `secret_file`.
//! DingTalk answers 200 with `{"errcode": 0}`; 130101 means more than 20 messages a minute,
//! after which the robot is throttled for 10 minutes (retry then); -1 is "system busy";
//! any other code (310000: bad signature, a missing keyword) is permanent.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;

use super::hmac_sha256;
use super::http::Poster;
use crate::channel::{Channel, Delivery, SendError};
use crate::config::{BuildContext, Check, ConfigErrors, Secret};
use crate::notice::{IdempotencyKey, Recipient};
use crate::render::Rendered;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkConfig {
    /// The robot's webhook URL's environment variable (or `url_file`).
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    /// The signing secret (`SEC...`), when the robot signs.
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub timeout: Option<String>,
}

pub(crate) struct Dingtalk {
    url: url::Url,
    secret: Option<Secret>,
    poster: Poster,
}

impl DingtalkConfig {
    pub(crate) fn build(&self, name: &str, ctx: &BuildContext) -> Result<Dingtalk, ConfigErrors> {
        let mut c = Check::new(ctx);
        let url = c.secret_url(&self.url_env, &self.url_file);
        let secret = c.secret("secret", &self.secret_env, &self.secret_file, false);
        let poster = Poster::new(c.timeout(&self.timeout), c.clock());
        c.finish(
            name,
            url.map(|(url, _)| Dingtalk {
                url,
                secret,
                poster,
            }),
        )
    }
}

/// The `sign` parameter for `timestamp_ms`, before URL encoding.
pub(crate) fn sign(secret: &str, timestamp_ms: i64) -> String {
    let mac = hmac_sha256(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(mac)
}

#[derive(Deserialize)]
struct Answer {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

fn verdict(a: Answer) -> Result<(), SendError> {
    match a.errcode {
        0 => Ok(()),
        130101 => Err(SendError::retry_after(
            Some(Duration::from_secs(600)),
            format!("DingTalk is throttling this robot: {}", a.errmsg),
        )),
        -1 => Err(SendError::retry(format!("DingTalk is busy: {}", a.errmsg))),
        code => Err(SendError::permanent(format!(
            "DingTalk refused the message (errcode {code}): {}",
            a.errmsg
        ))),
    }
}

#[async_trait]
impl Channel for Dingtalk {
    fn kind(&self) -> &'static str {
        "dingtalk"
    }

    async fn send(
        &self,
        _to: &Recipient,
        notice: &Rendered,
        _key: &IdempotencyKey,
    ) -> Result<Delivery, SendError> {
        let mut url = self.url.clone();
        if let Some(secret) = &self.secret {
            let timestamp = self.poster.now().as_millisecond();
            url.query_pairs_mut()
                .append_pair("timestamp", &timestamp.to_string())
                .append_pair("sign", &sign(secret.expose(), timestamp));
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "msgtype": "markdown",
            "markdown": {"title": notice.subject, "text": notice.chat_markdown},
        }))
        .map_err(|e| SendError::permanent("the notice cannot be written as JSON").caused_by(e))?;
        let answer = self.poster.post("DingTalk", url, &[], body).await?;
        verdict(answer.json("DingTalk")?)?;
        Ok(Delivery::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_matches_the_documented_algorithm() {
        // Python: base64.b64encode(hmac.new(b"SECabc", b"1700000000123\nSECabc",
        // hashlib.sha256).digest())
        assert_eq!(
            sign("SECabc", 1_700_000_000_123),
            "IqXBU/aLfwMA3S/tDcfRmHx5vWHw9Y1aOgFLBr1Ti9w="
        );
        let mut url = url::Url::parse("https://h/robot/send?access_token=t").unwrap();
        url.query_pairs_mut()
            .append_pair("sign", &sign("SECabc", 1_700_000_000_123));
        assert!(
            url.as_str()
                .ends_with("&sign=IqXBU%2FaLfwMA3S%2FtDcfRmHx5vWHw9Y1aOgFLBr1Ti9w%3D"),
            "{url}"
        );
    }

    #[test]
    fn errcodes_sort_into_retry_and_permanent() {
        let code = |errcode| {
            verdict(Answer {
                errcode,
                errmsg: "m".into(),
            })
        };
        assert!(code(0).is_ok());
        assert_eq!(
            code(130101).unwrap_err().retry_delay(),
            Some(Duration::from_secs(600))
        );
        assert!(!code(-1).unwrap_err().is_permanent());
        assert!(code(310000).unwrap_err().is_permanent());
    }
}
