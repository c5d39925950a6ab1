//! `upkeep signal NAME SIGNAL [--group]` and `upkeep reload NAME`: a signal to a running
//! service over the API (`POST /api/v1/services/{name}/signal` and `.../reload`). What may be
//! sent is decided by the daemon (`ops/signal.rs`); this prints what it answered.

use anyhow::Result;
use upkeep_core::ServiceName;
use upkeep_core::api::{SignalRequest, SignalResult};
use upkeep_core::i18n::{Msg, tr};

use super::client::ApiPath;
use super::{Client, by_whom, escape, print_json};

/// Sends `signal` to `name` (its tree with `group`).
pub(super) async fn signal(
    client: &Client,
    name: &ServiceName,
    signal: String,
    group: bool,
    json: bool,
) -> Result<()> {
    let path = ApiPath::new("/api/v1/services")
        .segment(name.as_str())
        .segment("signal");
    let req = SignalRequest { signal, group };
    let r: SignalResult = client.post(path, Some(&req)).await?;
    print(
        &r,
        if group {
            Msg::SignalSentGroup
        } else {
            Msg::SignalSent
        },
        json,
    );
    Ok(())
}

/// Sends `name`'s `reload_signal` to its main process.
pub(super) async fn reload(client: &Client, name: &ServiceName, json: bool) -> Result<()> {
    let path = ApiPath::new("/api/v1/services")
        .segment(name.as_str())
        .segment("reload");
    let r: SignalResult = client.post(path, None::<&()>).await?;
    print(&r, Msg::ReloadSent, json);
    Ok(())
}

fn print(r: &SignalResult, msg: Msg, json: bool) {
    if json {
        return print_json(r);
    }
    let (service, signal, pid) = (escape::field(r.service.as_str()), &r.signal, r.pid);
    let text = match msg {
        Msg::ReloadSent => tr(msg, &[&service, signal, &pid]),
        _ => tr(msg, &[signal, &service, &pid]),
    };
    println!("{text}{}", by_whom(Some(&r.by)));
}
