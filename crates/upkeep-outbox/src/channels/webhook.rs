//! `webhook`: the notice as JSON to any URL, signed so the receiver knows it came from here.
//!
//! The body holds every field of the notice plus its subject and text. Headers:
//! `X-Upkeep-Timestamp` (Unix seconds), `X-Upkeep-Signature: sha256=<hex>` (HMAC-SHA256 with
//! the shared secret over `<timestamp>.<body>`, so a captured request cannot be replayed
//! later with a new time) and `Idempotency-Key` (the same on every attempt of one delivery).

use async_trait::async_trait;
use serde::Deserialize;

use super::hmac_sha256;
use super::http::Poster;
use crate::channel::{Channel, Delivery, SendError};
use crate::config::{BuildContext, Check, ConfigErrors, Secret};
use crate::notice::{IdempotencyKey, Recipient};
use crate::render::Rendered;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to post: https, or http to this host.
    pub url: String,
    /// The signing secret's environment variable (or `secret_file`): required.
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    pub timeout: Option<String>,
}

pub(crate) struct Webhook {
    url: url::Url,
    secret: Secret,
    poster: Poster,
}

impl WebhookConfig {
    pub(crate) fn build(&self, name: &str, ctx: &BuildContext) -> Result<Webhook, ConfigErrors> {
        let mut c = Check::new(ctx);
        let url = c.url("url", &self.url);
        let secret = c.secret("secret", &self.secret_env, &self.secret_file, true);
        let timeout = c.timeout(&self.timeout);
        let poster = Poster::new(timeout, c.clock());
        let built = url.zip(secret).map(|(url, secret)| Webhook {
            url,
            secret,
            poster,
        });
        c.finish(name, built)
    }
}

/// `sha256=<hex>` over `<timestamp>.<body>`.
pub(crate) fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &message))
    )
}

#[async_trait]
impl Channel for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    async fn send(
        &self,
        _to: &Recipient,
        notice: &Rendered,
        key: &IdempotencyKey,
    ) -> Result<Delivery, SendError> {
        let body = serde_json::to_vec(&serde_json::json!({
            "idempotency_key": key,
            "notice": notice.notice,
            "subject": notice.subject,
            "text": notice.text,
        }))
        .map_err(|e| SendError::permanent("the notice cannot be written as JSON").caused_by(e))?;
        let timestamp = self.poster.now().as_second();
        let headers = [
            ("X-Upkeep-Timestamp", timestamp.to_string()),
            (
                "X-Upkeep-Signature",
                signature(self.secret.expose(), timestamp, &body),
            ),
            ("Idempotency-Key", key.to_string()),
        ];
        self.poster
            .post("the webhook", self.url.clone(), &headers, body)
            .await?;
        Ok(Delivery::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_time_and_body() {
        // Python: hmac.new(b"k", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("k", 1_700_000_000, b"{}"),
            "sha256=c6ef4734033cee2367414a0939385eca0397754aa7a59716da7463a9298b5146"
        );
        assert_ne!(signature("k", 1, b"{}"), signature("k", 2, b"{}"));
        assert_ne!(signature("k", 1, b"{}"), signature("k", 1, b"[]"));
    }
}
