//! `daemon.trusted_proxies`: behind a reverse proxy (nginx), every request comes from the
//! proxy's address, so rate limits per client would throttle everyone at once and the record
//! of who did what would name the proxy. For a request whose TCP peer is a trusted proxy, the
//! client is read from `Forwarded` (RFC 7239, `for=`) or, without it, `X-Forwarded-For`, and
//! becomes the request's [`Peer`] for everything after (limits, sign-in throttles, events).
//!
//! Which address: proxies append, so the list ends with what the last proxy saw. Walking it
//! from the right, trusted proxies are skipped and the first address that is not one is the
//! client; anything left of it was written by that client and is not believed. An entry that
//! is not an address (`unknown`, an obfuscated name) stops the walk, and the request keeps
//! the last proxy's address. A peer that is not trusted keeps its own address whatever its
//! headers say.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::Peer;

/// `router` with the client address of requests from `trusted` proxies taken from their
/// forwarding headers; `router` itself when none is trusted.
pub fn trust_proxies(router: Router, trusted: &[IpNet]) -> Router {
    if trusted.is_empty() {
        return router;
    }
    let trusted: Arc<[IpNet]> = trusted.into();
    router.layer(axum::middleware::from_fn_with_state(trusted, rewrite))
}

async fn rewrite(State(trusted): State<Arc<[IpNet]>>, mut req: Request, next: Next) -> Response {
    if let Some(Peer::Remote(peer)) = req.extensions().get::<Peer>()
        && is_trusted(&trusted, peer.ip())
        && let Some(client) = client_of(req.headers(), &trusted)
    {
        req.extensions_mut().insert(Peer::Remote(client));
    }
    next.run(req).await
}

fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|net| net.contains(&ip))
}

/// The client the forwarding headers name (see the opening comment). Port 0 where the header
/// gives none.
fn client_of(headers: &HeaderMap, trusted: &[IpNet]) -> Option<SocketAddr> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(for_value)
        .collect();
    let entries: Vec<&str> = if forwarded.is_empty() {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect()
    } else {
        forwarded
    };
    for entry in entries.iter().rev() {
        let addr = parse_node(entry)?;
        if !is_trusted(trusted, addr.ip()) {
            return Some(addr);
        }
    }
    None
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`),
/// unquoted.
fn for_value(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip.to_canonical(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let client =
            |h: &[(&'static str, &str)]| client_of(&headers(h), &trusted).map(|a| a.to_string());
        assert_eq!(
            client(&[("x-forwarded-for", "203.0.113.9")]).as_deref(),
            Some("203.0.113.9:0")
        );
        // What the client wrote itself (left of what our proxies saw) is not believed.
        assert_eq!(
            client(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]).as_deref(),
            Some("203.0.113.9:0")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            client(&[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "198.51.100.7")
            ])
            .as_deref(),
            Some("198.51.100.7:0")
        );
        // Forwarded wins over X-Forwarded-For; quoted IPv6 with a port.
        assert_eq!(
            client(&[
                (
                    "forwarded",
                    "for=1.2.3.4, for=\"[2001:db8:cafe::17]:4711\";proto=https"
                ),
                ("x-forwarded-for", "198.51.100.7"),
            ])
            .as_deref(),
            Some("[2001:db8:cafe::17]:4711")
        );
        assert_eq!(
            client(&[("forwarded", "For=192.0.2.60;proto=http;by=203.0.113.43")]).as_deref(),
            Some("192.0.2.60:0")
        );
        // Not an address: the walk stops; only proxies: nobody is named.
        assert_eq!(client(&[("forwarded", "for=unknown")]), None);
        assert_eq!(client(&[("x-forwarded-for", "garbage, 10.0.0.2")]), None);
        assert_eq!(client(&[("x-forwarded-for", "10.0.0.2, 127.0.0.1")]), None);
        assert_eq!(client(&[]), None);
    }

    #[test]
    fn ipv4_mapped_peers_count_as_their_ipv4_address() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert!(is_trusted(&trusted, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_trusted(&trusted, "127.0.0.2".parse().unwrap()));
    }
}
