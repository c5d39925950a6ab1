//! The event writer: the one task that writes events, in batches.
//!
//! It ends when every sender is gone, after writing what is queued: shutdown loses nothing in
//! flight. A failed write is logged and retried once with the next batch rather than stopping
//! the daemon: supervision goes on even when the disk is full.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use upkeep_core::Event;

use crate::Store;

/// Most events written in one transaction.
const BATCH: usize = 512;

/// `written` counts the events handled so far (stored, or given up on after the retry), in
/// arrival order: readers wait on it to know their events are in the store.
pub async fn run(
    store: Arc<dyn Store>,
    mut events: mpsc::Receiver<Event>,
    written: watch::Sender<u64>,
) {
    let mut batch = Vec::with_capacity(64);
    while events.recv_many(&mut batch, BATCH).await > 0 {
        if let Err(e) = store.append(&batch).await {
            tracing::error!(error = %e, events = batch.len(), "cannot store events; retrying once");
            if let Err(e) = store.append(&batch).await {
                tracing::error!(error = %e, events = batch.len(), "events lost");
            }
        }
        written.send_modify(|n| *n += batch.len() as u64);
        batch.clear();
    }
}
