//! Pages of the admin lists (issue 17, item 4): incidents (with titles), every open incident,
//! feedback, the outbox, subscribers and who did what, read from the store a page at a time
//! with an offset (`upkeep_store::Paging`), so any page is one query however far back.
//!
//! Not here: how a page is chosen and shown (`upkeep_web::admin`), the lists the API and the
//! CLI read (`reports.rs`, `notify.rs`: the latest N).

use upkeep_core::api::{Incident, OutboxNotice, StoredEvent};
use upkeep_core::feedback::FeedbackItem;
use upkeep_core::subscription::SubscriberInfo;
use upkeep_store::Span;

use crate::control::Daemon;
use crate::ops::reports::ReportError;

fn store(what: &'static str) -> impl FnOnce(upkeep_store::Error) -> ReportError {
    move |source| ReportError::Store { what, source }
}

pub async fn incidents(daemon: &Daemon, span: Span) -> Result<Vec<Incident>, ReportError> {
    daemon.history_ready().await?;
    daemon
        .store
        .incidents_page(span)
        .await
        .map_err(store("incidents"))
}

pub async fn open_incidents(daemon: &Daemon) -> Result<Vec<Incident>, ReportError> {
    daemon.history_ready().await?;
    daemon
        .store
        .open_incidents()
        .await
        .map_err(store("open incidents"))
}

pub async fn feedback(daemon: &Daemon, span: Span) -> Result<Vec<FeedbackItem>, ReportError> {
    daemon.store_ready()?;
    daemon
        .store
        .feedback_page(span)
        .await
        .map_err(store("feedback"))
}

pub async fn notices(daemon: &Daemon, span: Span) -> Result<Vec<OutboxNotice>, ReportError> {
    daemon.store_ready()?;
    let rows = daemon
        .store
        .outbox_page(span)
        .await
        .map_err(store("the outbox"))?;
    Ok(rows.into_iter().map(crate::ops::notify::view).collect())
}

pub async fn subscribers(daemon: &Daemon, span: Span) -> Result<Vec<SubscriberInfo>, ReportError> {
    daemon.store_ready()?;
    let rows = daemon
        .store
        .subscribers_page(span)
        .await
        .map_err(store("subscribers"))?;
    Ok(rows.into_iter().map(crate::subscriptions::info).collect())
}

pub async fn actions(daemon: &Daemon, span: Span) -> Result<Vec<StoredEvent>, ReportError> {
    daemon.history_ready().await?;
    daemon
        .store
        .actions_page(span)
        .await
        .map_err(store("operator actions"))
}
