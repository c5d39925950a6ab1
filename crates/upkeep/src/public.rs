//! The public listener (`daemon.public_listen`: the status page, its stream, badges, feeds)
//! served on threads of its own, a small runtime beside the daemon's one-thread runtime.
//!
//! Why: the status page is what people open when something is wrong, so it gets most traffic
//! exactly when services fail. On the daemon's thread, a flood of page views would queue
//! behind (and ahead of) every reaped child, probe and restart; on its own two threads, the
//! page scales to the machine's cores and supervision keeps its thread (`bench/statuspage`
//! measures respawn latency while wrk runs). Its threads run at nice 10 (`pace.rs`): when
//! the cores are short, the daemon's thread goes first. What the page serves is rendered bytes in
//! memory (`upkeep_web::Site`), so these threads share nothing with supervision but a `watch`;
//! the few routes that read the store (feeds, announcements) do so through the same store,
//! whose connections work from any runtime.
//!
//! Input: the bound listener (bound by the daemon, or handed over by `upkeep upgrade`), the
//! public router, its limits, the trusted proxies (not capped per address) and its TLS, if
//! any; ends with `cancel`.

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

/// Worker threads of the public runtime: two cores' worth, which is what this machine class
/// has; more would only contend with the services.
const THREADS: usize = 2;

/// Serves `app` on `listener` (bound by the caller, so a taken port stops the start, as for
/// the other listeners) from a runtime of its own until `cancel`.
pub fn serve_apart(
    listener: std::net::TcpListener,
    app: axum::Router,
    limits: upkeep_web::Limits,
    trusted_proxies: &[ipnet::IpNet],
    tls: Option<upkeep_web::Tls>,
    cancel: CancellationToken,
) -> Result<()> {
    let https = tls.is_some();
    let trusted = trusted_proxies.to_vec();
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .thread_name("upkeep-public")
        // Below supervision: when the cores are short, the daemon's thread goes first.
        .on_thread_start(crate::pace::below_supervision)
        .enable_all()
        .build()
        .context("starting the public listener's runtime")?;
    std::thread::Builder::new()
        .name("upkeep-public".into())
        .spawn(move || {
            crate::pace::below_supervision();
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => upkeep_web::serve_with(l, app, limits, &trusted, tls, cancel).await,
                    Err(e) => tracing::error!("public_listen not served: {e}"),
                }
            });
        })
        .context("starting the public listener's thread")?;
    tracing::info!(%addr, key = "public_listen", https, "serving over TCP (threads of its own)");
    Ok(())
}
