//! Who asks, and may they: every request to a route that reads or acts passes one gate, which
//! names the [`Principal`] and checks the scope the route needs.
//!
//! - On the control socket (mode 0600, so only the daemon's user and root reach it) the peer's
//!   uid from SO_PEERCRED names the person (its user name, or `uid:N` when it has none) and
//!   every scope is allowed: the socket is the local operator's.
//! - Over TCP a bearer token names the principal (the token's name) and carries its scope.
//!   No token, or one that no live token matches: 401. The wrong scope: 403. Checking a token
//!   is the daemon's business ([`Tokens`], backed by `<data_dir>/tokens.json`); this file
//!   only reads the header and asks.
//!
//! Public routes pass no gate. The handlers read the principal with the [`By`] extractor and
//! hand it to [`crate::Control`], so each action records who asked. Input: the [`Peer`] that
//! `serve.rs` puts in each request. Start at [`authorize`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use upkeep_core::api::Scope;
use upkeep_core::{Principal, Via};

use crate::{ApiError, Peer};

/// A live token's name and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub scope: Scope,
}

/// The daemon's tokens: what a bearer secret grants, if anything.
pub trait Tokens: Send + Sync + 'static {
    /// The grant of the token whose secret is `secret`, or `None` when no live token has it.
    /// Called on every authenticated TCP request: it must be cheap (a revoke must still take
    /// effect without a restart).
    fn check(&self, secret: &str) -> Option<Grant>;
}

/// The longest `Authorization` value looked at. A real one is under 100 bytes; a longer one
/// is refused without hashing it.
const MAX_AUTHORIZATION: usize = 512;

/// How a router's gate names people.
#[derive(Clone)]
pub(crate) enum Gate {
    /// The control socket: by uid, every scope.
    Local(Arc<UserNames>),
    /// TCP: by bearer token.
    Bearer(Arc<dyn Tokens>),
}

/// A gate and the scope its routes need.
#[derive(Clone)]
pub(crate) struct Need {
    pub gate: Gate,
    pub scope: Scope,
}

/// Names the principal of `req` and checks it may use the route; puts the [`Principal`] into
/// the request's extensions for [`By`].
pub(crate) async fn authorize(
    State(need): State<Need>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let peer = req
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or(Peer::Unknown);
    let principal = match &need.gate {
        Gate::Local(names) => {
            let uid = match peer {
                Peer::Local { uid } => Some(uid),
                Peer::Remote(_) | Peer::Unknown => None,
            };
            Principal {
                name: match uid {
                    Some(uid) => names.name_of(uid).await,
                    None => "unknown".into(),
                },
                via: Via::Socket,
                from: uid.map(|u| format!("uid {u}")),
            }
        }
        Gate::Bearer(tokens) => {
            let secret = bearer(req.headers())?;
            let grant = tokens.check(secret).ok_or_else(|| ApiError::Unauthorized {
                message: "the bearer token is not valid (unknown or revoked)".into(),
                invalid: true,
            })?;
            if !grant.scope.allows(need.scope) {
                return Err(ApiError::Forbidden {
                    message: format!(
                        "token `{}` has scope {}; {} {} needs {}",
                        grant.name,
                        grant.scope.as_str(),
                        req.method(),
                        req.uri().path(),
                        need.scope.as_str()
                    ),
                    need: need.scope,
                });
            }
            Principal {
                name: grant.name,
                via: Via::Tcp,
                from: peer.remote(),
            }
        }
    };
    req.extensions_mut().insert(principal);
    Ok(next.run(req).await)
}

/// The secret of `Authorization: Bearer <secret>`, or the 401 that its absence or shape earns.
fn bearer(headers: &axum::http::HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        let several = headers
            .get_all(axum::http::header::AUTHORIZATION)
            .iter()
            .next()
            .is_some();
        return Err(ApiError::Unauthorized {
            message: if several {
                "send one Authorization header, not several".into()
            } else {
                "this route needs a bearer token".into()
            },
            invalid: several,
        });
    };
    let invalid = |message: &str| ApiError::Unauthorized {
        message: message.into(),
        invalid: true,
    };
    if value.len() > MAX_AUTHORIZATION {
        return Err(invalid("the Authorization header is too long for a token"));
    }
    let text = value
        .to_str()
        .map_err(|_| invalid("the Authorization header is not ASCII text"))?;
    let (scheme, secret) = text
        .split_once(' ')
        .ok_or_else(|| invalid("the Authorization header is not `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(invalid("the Authorization scheme must be Bearer"));
    }
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(invalid("the bearer token is empty"));
    }
    Ok(secret)
}

/// The principal a gate named, for the handlers of routes behind one.
pub(crate) struct By(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for By {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(By)
            // A route that acts without a gate in front is a wiring mistake of ours.
            .ok_or_else(|| ApiError::Internal("an action route has no gate".into()))
    }
}

/// User names by uid, looked up once each (a lookup may ask NSS, LDAP even: off the
/// runtime's thread, and not on every request).
#[derive(Default)]
pub(crate) struct UserNames {
    /// A std Mutex: never held across an await.
    known: Mutex<HashMap<u32, String>>,
}

impl UserNames {
    async fn name_of(&self, uid: u32) -> String {
        if let Some(n) = self.lock().get(&uid) {
            return n.clone();
        }
        let name = tokio::task::spawn_blocking(move || user_name(uid))
            .await
            .unwrap_or_else(|_| format!("uid:{uid}"));
        let mut known = self.lock();
        // Few users ever reach the socket; the cap only keeps the map from growing unbounded.
        if known.len() < 1024 {
            known.insert(uid, name.clone());
        }
        name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, String>> {
        // A panic elsewhere while holding it leaves a usable map.
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The name of `uid` from the user database, or `uid:N` when it has none.
fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid:{uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_the_bearer_secret() {
        assert_eq!(bearer(&with(&[b"Bearer abc"])).unwrap(), "abc");
        assert_eq!(bearer(&with(&[b"bearer  abc "])).unwrap(), "abc");
    }

    #[test]
    fn refuses_what_is_not_one_bearer_token() {
        let refused = |h: HeaderMap, invalid: bool| match bearer(&h) {
            Err(ApiError::Unauthorized { invalid: i, .. }) => assert_eq!(i, invalid),
            other => panic!("{other:?}"),
        };
        refused(with(&[]), false);
        refused(with(&[b"Basic dXNlcjpwdw=="]), true);
        refused(with(&[b"Bearer"]), true);
        refused(with(&[b"Bearer   "]), true);
        refused(with(&[b"Bearer a", b"Bearer b"]), true);
        refused(with(&[b"Bearer \xff\xfe"]), true);
        let long = format!("Bearer {}", "a".repeat(10_000));
        refused(with(&[long.as_bytes()]), true);
    }

    #[test]
    fn a_uid_without_a_user_is_named_by_number() {
        assert_eq!(user_name(4_000_000_000), "uid:4000000000");
        assert_eq!(user_name(0), "root");
    }
}
