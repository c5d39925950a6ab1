//! Notices, asked for by operators: the outbox listed (`upkeep notify ls`), a failed notice
//! put back to pending (`notify retry`), a test notice through one channel (`notify test`),
//! which goes through the outbox like any other so that it proves the whole path.

use upkeep_core::Principal;
use upkeep_core::api::{NotifyTestRequest, OutboxNotice};
use upkeep_store::{OutboxRow, OutboxState};

use crate::control::Daemon;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no notice number {0}")]
    Unknown(i64),
    #[error("notice {id} is {state}, not failed: only a failed notice is retried")]
    NotFailed { id: i64, state: &'static str },
    #[error("no channel named `{0}` is configured under [notify.channels]")]
    UnknownChannel(String),
    #[error("channel `{channel}` cannot send to `{to}`: {why}")]
    BadRecipient {
        channel: String,
        to: String,
        why: String,
    },
    #[error("channel `{0}` has no recipients: say who with --to")]
    NoRecipient(String),
    #[error(transparent)]
    Away(#[from] crate::ops::StoreAway),
    #[error("{what} in the store")]
    Store {
        what: &'static str,
        #[source]
        source: upkeep_store::Error,
    },
}

fn store(what: &'static str) -> impl FnOnce(upkeep_store::Error) -> NotifyError {
    move |source| NotifyError::Store { what, source }
}

/// A row as the API shows it.
pub fn view(r: OutboxRow) -> OutboxNotice {
    let title = serde_json::from_str::<serde_json::Value>(&r.notice)
        .ok()
        .and_then(|n| n["title"].as_str().map(str::to_owned))
        .unwrap_or_default();
    OutboxNotice {
        id: r.id,
        channel: r.channel,
        recipient: r.recipient,
        kind: r.kind,
        subject: r.subject,
        title,
        state: r.state.as_str().to_owned(),
        attempts: r.attempts,
        takeovers: r.takeovers,
        key: r.key,
        due: r.due,
        next: r.next,
        last_error: r.last_error,
        delivery: r.delivery,
        created: r.created,
        sent: r.sent,
        digest: r.digest,
    }
}

/// The outbox, newest first (of one state, if given: the API checked its name).
pub async fn list(
    daemon: &Daemon,
    state: Option<&str>,
    limit: u32,
) -> Result<Vec<OutboxNotice>, NotifyError> {
    daemon.store_ready()?;
    let state = match state {
        Some("pending") => Some(OutboxState::Pending),
        Some("sending") => Some(OutboxState::Sending),
        Some("sent") => Some(OutboxState::Sent),
        Some("failed") => Some(OutboxState::Failed),
        _ => None,
    };
    let rows = daemon
        .store
        .outbox(state, limit)
        .await
        .map_err(store("reading the outbox"))?;
    Ok(rows.into_iter().map(view).collect())
}

/// A failed notice goes back to pending, to be sent at once.
pub async fn retry(daemon: &Daemon, id: i64, by: &Principal) -> Result<OutboxNotice, NotifyError> {
    daemon.store_ready()?;
    let now = daemon.clock.now();
    // A row of a channel no longer in the config would wait for a dispatcher that never
    // comes (break-it, session 10: pending for good, past give_up_after).
    let before = daemon
        .store
        .outbox_row(id)
        .await
        .map_err(store("reading the notice"))?
        .ok_or(NotifyError::Unknown(id))?;
    if daemon.notices.channel(&before.channel).is_none() {
        return Err(NotifyError::UnknownChannel(before.channel));
    }
    let done = daemon
        .store
        .retry_notice(id, now)
        .await
        .map_err(store("retrying the notice"))?;
    let row = daemon
        .store
        .outbox_row(id)
        .await
        .map_err(store("reading the notice"))?
        .ok_or(NotifyError::Unknown(id))?;
    if !done {
        return Err(NotifyError::NotFailed {
            id,
            state: row.state.as_str(),
        });
    }
    tracing::info!(id, by = %by, "failed notice put back to pending");
    daemon.notices.added();
    Ok(view(row))
}

/// A test notice through `req.channel`, by way of the outbox.
pub async fn test(
    daemon: &Daemon,
    req: NotifyTestRequest,
    by: &Principal,
) -> Result<Vec<OutboxNotice>, NotifyError> {
    daemon.store_ready()?;
    let addressing = daemon
        .notices
        .channel(&req.channel)
        .ok_or_else(|| NotifyError::UnknownChannel(req.channel.clone()))?;
    if let Some(to) = &req.to
        && let Err(why) = addressing.check(to)
    {
        return Err(NotifyError::BadRecipient {
            channel: req.channel.clone(),
            to: to.clone(),
            why,
        });
    }
    let now = daemon.clock.now();
    let rows = daemon
        .notices
        .test_rows(&req.channel, req.to.as_deref(), now)
        .unwrap_or_default();
    if rows.is_empty() {
        return Err(NotifyError::NoRecipient(req.channel));
    }
    daemon
        .store
        .add_notices(&rows, now)
        .await
        .map_err(store("storing the test notice"))?;
    tracing::info!(channel = %req.channel, by = %by, rows = rows.len(), "test notice planned");
    daemon.notices.added();
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let stored = daemon
        .store
        .outbox(None, 100)
        .await
        .map_err(store("reading the outbox"))?;
    Ok(stored
        .into_iter()
        .filter(|r| keys.contains(&r.key.as_str()))
        .map(view)
        .collect())
}
