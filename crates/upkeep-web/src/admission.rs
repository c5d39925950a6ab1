//! Who may hold a listener's connections, and who gives way (issue 17, "hardening": 2,000
//! idle sockets from one address held every permit of `public_listen`, and the status page
//! answered 503 to everyone for as long as they were held). [`serve`](crate::serve) asks
//! [`Admission::admit`] before it serves a new connection, and tells the connection's
//! [`Slot`] when a request starts and when its answer is out.
//!
//! - **A cap per client address**: at most `Limits::per_address` connections from one TCP
//!   peer address (an IPv6 peer by its /64, which is what one host is usually given), each
//!   counted until it closes, streams included; past it a connection is refused before it
//!   takes a permit. The TCP peer, not the client a proxy's headers name: the peer is what
//!   holds the socket. A trusted proxy is not capped (every client behind it shares its
//!   address, and it bounds them itself), nor is the control socket (its peers have no
//!   address, only the operators' uid).
//! - **Waiting connections give way**: a connection is *waiting* while it has no whole request
//!   in hand (just opened, sending its head or its body slowly, or kept alive between
//!   requests; `arrival.rs` says when a request is whole). When the
//!   listener is nearly full (3/4 of its permits taken), a new connection first sheds those
//!   that have waited longer than `Limits::crowded_header_timeout` (instead of
//!   `header_timeout`); when it is full, the one that has waited longest hands its permit
//!   over. So idle and slowloris sockets, from however many addresses, go first, a client
//!   that sends its request at once is served, and only a listener whose every connection is
//!   busy with a request answers 503. A shed connection is closed without an answer: it has
//!   asked nothing yet.
//!
//! Nothing here polls: shedding happens when a new connection needs room, which is the only
//! time a waiting connection costs anyone anything. Not here: hyper's own head deadline
//! (`header_timeout`, whatever the load), the whole request's (`arrival.rs`), the answers to
//! refused connections (`serve.rs`).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::serve::{Limits, Peer};

/// How long a connection that has just been answered counts as busy still: the answer's
/// last bytes may be in hyper's buffer when its body is done, and shedding the connection
/// then would cut them off.
const FLUSH_GRACE: Duration = Duration::from_millis(250);

/// What a per-address cap counts connections by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(Ipv4Addr),
    /// The /64 prefix: one host is usually given a whole /64, and could otherwise open
    /// connections from as many addresses as it likes.
    V6(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        match ip.to_canonical() {
            IpAddr::V4(a) => Client::V4(a),
            IpAddr::V6(a) => Client::V6((u128::from(a) >> 64) as u64),
        }
    }
}

/// Why a connection is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address holds `per_address` connections already.
    PerAddress,
    /// Every permit is held by a connection busy with a request.
    Full,
}

/// One listener's book of its connections: the permits, who holds them, who waits.
pub(crate) struct Admission {
    limits: Limits,
    /// Peers not capped per address (trusted proxies).
    exempt: Arc<[IpNet]>,
    permits: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    next_id: u64,
    /// Open connections per capped client.
    per_client: HashMap<Client, usize>,
    conns: HashMap<u64, Conn>,
    /// The waiting connections, by the time they began to wait (see [`Conn::waiting`]),
    /// oldest first.
    waiting: BTreeSet<(Instant, u64)>,
}

struct Conn {
    client: Option<Client>,
    /// A connection permit, a stream permit (`stream`), or nothing once shed.
    permit: Option<OwnedSemaphorePermit>,
    stream: bool,
    /// Since when it has had no request in hand; None while it has one. For a kept-alive
    /// connection this is [`FLUSH_GRACE`] after its last answer was done.
    waiting: Option<Instant>,
    shed: CancellationToken,
}

impl Book {
    /// Sheds connection `id` (a waiting one): its permit goes back (or to the caller), and its
    /// connection is told to close.
    fn shed(&mut self, id: u64) -> Option<OwnedSemaphorePermit> {
        let conn = self.conns.get_mut(&id)?;
        if let Some(since) = conn.waiting.take() {
            self.waiting.remove(&(since, id));
        }
        conn.shed.cancel();
        conn.permit.take()
    }

    /// Sheds every connection that began to wait before `before`; how many.
    fn shed_waiting_before(&mut self, before: Instant) -> usize {
        let due: Vec<u64> = self
            .waiting
            .iter()
            .take_while(|(since, _)| *since < before)
            .map(|(_, id)| *id)
            .collect();
        for id in &due {
            drop(self.shed(*id));
        }
        due.len()
    }

    /// The permit of the connection that has waited longest (since before `now`), shed.
    fn take_oldest(&mut self, now: Instant) -> Option<OwnedSemaphorePermit> {
        let &(since, id) = self.waiting.first()?;
        if since > now {
            return None;
        }
        self.shed(id)
    }

    fn set_waiting(&mut self, id: u64, since: Option<Instant>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        // A shed connection is on its way out; a stream holds no connection permit.
        if conn.permit.is_none() || conn.stream {
            return;
        }
        if let Some(old) = conn.waiting.take() {
            self.waiting.remove(&(old, id));
        }
        if let Some(since) = since {
            conn.waiting = Some(since);
            self.waiting.insert((since, id));
        }
    }
}

impl Admission {
    pub(crate) fn new(limits: Limits, exempt: Arc<[IpNet]>) -> Arc<Admission> {
        Arc::new(Admission {
            limits,
            exempt,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            book: Mutex::new(Book::default()),
        })
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Poisoned only by a panic while it was held, and every change under it is whole.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives a new connection from `peer` a permit (shedding waiting ones to make room, see
    /// the opening comment), or says why it gets none.
    pub(crate) fn admit(self: &Arc<Self>, peer: &Peer) -> Result<Slot, Refusal> {
        let client = match peer {
            Peer::Remote(addr)
                if !self
                    .exempt
                    .iter()
                    .any(|n| n.contains(&addr.ip().to_canonical())) =>
            {
                Some(Client::of(addr.ip()))
            }
            _ => None,
        };
        let now = Instant::now();
        let mut book = self.book();
        if let Some(c) = client
            && book
                .per_client
                .get(&c)
                .is_some_and(|n| *n >= self.limits.per_address)
        {
            return Err(Refusal::PerAddress);
        }
        let max = self.limits.max_connections;
        let taken = max - self.permits.available_permits();
        if taken * 4 >= max * 3
            && let Some(before) = now.checked_sub(self.limits.crowded_header_timeout)
        {
            let shed = book.shed_waiting_before(before);
            if shed > 0 {
                tracing::debug!(
                    shed,
                    taken,
                    "listener nearly full: waiting connections shed"
                );
            }
        }
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => book.take_oldest(now).ok_or(Refusal::Full)?,
        };
        let id = book.next_id;
        book.next_id += 1;
        let shed = CancellationToken::new();
        book.conns.insert(
            id,
            Conn {
                client,
                permit: Some(permit),
                stream: false,
                waiting: Some(now),
                shed: shed.clone(),
            },
        );
        book.waiting.insert((now, id));
        if let Some(c) = client {
            *book.per_client.entry(c).or_default() += 1;
        }
        Ok(Slot {
            admission: self.clone(),
            id,
            shed,
        })
    }
}

/// A connection's place in its listener's book, for as long as the connection is open
/// (dropped: its permit goes back and its address counts one less).
pub(crate) struct Slot {
    admission: Arc<Admission>,
    id: u64,
    /// Cancelled when the connection is shed: its task then closes it.
    pub(crate) shed: CancellationToken,
}

impl Slot {
    /// A request's head is in: the connection is busy until [`Slot::answered`].
    pub(crate) fn busy(&self) {
        self.admission.book().set_waiting(self.id, None);
    }

    /// The answer's body is done (or dropped): the connection waits for its next request.
    pub(crate) fn answered(&self) {
        let since = Instant::now() + FLUSH_GRACE;
        self.admission.book().set_waiting(self.id, Some(since));
    }

    /// Since when the connection has waited for its request (see [`Conn::waiting`]); None
    /// while it is busy, carries a stream or has been shed.
    pub(crate) fn waiting_since(&self) -> Option<Instant> {
        self.admission.book().conns.get(&self.id)?.waiting
    }

    /// Trades the connection permit for a stream permit (see `serve::Lease::to_stream`);
    /// false when every stream permit is taken.
    pub(crate) fn to_stream(&self) -> bool {
        let Ok(stream) = self.admission.streams.clone().try_acquire_owned() else {
            return false;
        };
        let mut book = self.admission.book();
        book.set_waiting(self.id, None);
        match book.conns.get_mut(&self.id) {
            Some(conn) if conn.permit.is_some() => {
                conn.permit = Some(stream);
                conn.stream = true;
                true
            }
            // Shed meanwhile: its connection is closing.
            _ => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut book = self.admission.book();
        let Some(conn) = book.conns.remove(&self.id) else {
            return;
        };
        if let Some(since) = conn.waiting {
            book.waiting.remove(&(since, self.id));
        }
        if let Some(c) = conn.client
            && let Some(n) = book.per_client.get_mut(&c)
        {
            *n -= 1;
            if *n == 0 {
                book.per_client.remove(&c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_address: usize) -> Limits {
        Limits {
            max_connections: max,
            per_address,
            max_streams: 1,
            crowded_header_timeout: Duration::from_secs(3600),
            ..Limits::TCP
        }
    }

    fn from(ip: &str) -> Peer {
        Peer::Remote(std::net::SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_one_as_ipv4() {
        let c = |ip: &str| Client::of(ip.parse().unwrap());
        assert_eq!(c("2001:db8:1:2::1"), c("2001:db8:1:2:ffff::9"));
        assert_ne!(c("2001:db8:1:2::1"), c("2001:db8:1:3::1"));
        assert_eq!(c("::ffff:192.0.2.7"), c("192.0.2.7"));
        assert_ne!(c("192.0.2.7"), c("192.0.2.8"));
    }

    #[test]
    fn one_address_gets_its_cap_and_no_more_and_a_closed_connection_counts_no_longer() {
        let a = Admission::new(limits(100, 2), Arc::from([]));
        let one = a.admit(&from("192.0.2.1")).unwrap();
        let _two = a.admit(&from("192.0.2.1")).unwrap();
        assert_eq!(a.admit(&from("192.0.2.1")).err(), Some(Refusal::PerAddress));
        // The same /64, another address in it.
        let _v6 = a.admit(&from("2001:db8::1")).unwrap();
        let _v6b = a.admit(&from("2001:db8::2")).unwrap();
        assert!(a.admit(&from("2001:db8::3")).is_err());
        // Others are not held back, and a refusal took no permit.
        assert!(a.admit(&from("192.0.2.2")).is_ok());
        assert_eq!(a.permits.available_permits(), 100 - 4);
        drop(one);
        assert!(a.admit(&from("192.0.2.1")).is_ok());
    }

    #[test]
    fn trusted_proxies_and_local_peers_are_not_capped() {
        let a = Admission::new(
            limits(100, 1),
            Arc::from(["10.0.0.0/8".parse::<IpNet>().unwrap()]),
        );
        let held: Vec<Slot> = (0..5)
            .map(|_| a.admit(&from("10.1.2.3")).unwrap())
            .chain((0..5).map(|_| a.admit(&Peer::Local { uid: 0 }).unwrap()))
            .collect();
        assert_eq!(held.len(), 10);
    }

    #[test]
    fn when_full_the_longest_waiting_connection_gives_way_and_busy_ones_never_do() {
        let a = Admission::new(limits(3, 10), Arc::from([]));
        let oldest = a.admit(&from("192.0.2.1")).unwrap();
        let busy = a.admit(&from("192.0.2.2")).unwrap();
        busy.busy();
        let newer = a.admit(&from("192.0.2.3")).unwrap();
        // Full: the oldest waiting one is shed for the newcomer.
        let first = a.admit(&from("192.0.2.4")).unwrap();
        assert!(oldest.shed.is_cancelled());
        assert!(!busy.shed.is_cancelled() && !newer.shed.is_cancelled());
        first.busy();
        newer.busy();
        // Every permit is held by a busy connection: refused.
        assert_eq!(a.admit(&from("192.0.2.5")).err(), Some(Refusal::Full));
        // Just answered: it may still be writing, so not yet shed.
        newer.answered();
        assert_eq!(a.admit(&from("192.0.2.5")).err(), Some(Refusal::Full));
        drop(busy);
        assert!(a.admit(&from("192.0.2.5")).is_ok());
    }

    #[test]
    fn a_nearly_full_listener_sheds_every_connection_that_waited_past_the_short_deadline() {
        let mut l = limits(8, 10);
        l.crowded_header_timeout = Duration::ZERO;
        let a = Admission::new(l, Arc::from([]));
        let mut slots: Vec<Slot> = (0..5)
            .map(|i| a.admit(&from(&format!("192.0.2.{i}"))).unwrap())
            .collect();
        slots[0].busy();
        // 5 of 8 taken: not yet nearly full, nobody is shed.
        slots.push(a.admit(&from("192.0.2.50")).unwrap());
        assert!(slots.iter().all(|s| !s.shed.is_cancelled()));
        // 6 of 8: every waiting one goes, the busy one stays.
        std::thread::sleep(Duration::from_millis(2));
        let _new = a.admit(&from("192.0.2.51")).unwrap();
        assert!(!slots[0].shed.is_cancelled());
        assert!(slots[1..].iter().all(|s| s.shed.is_cancelled()));
        assert_eq!(a.permits.available_permits(), 8 - 2);
    }

    #[test]
    fn a_stream_holds_a_stream_permit_and_is_never_shed_for_a_connection() {
        let a = Admission::new(limits(1, 10), Arc::from([]));
        let s = a.admit(&from("192.0.2.1")).unwrap();
        assert!(s.to_stream());
        s.answered();
        // Its connection permit went back: the next one gets it without shedding the stream.
        let t = a.admit(&from("192.0.2.2")).unwrap();
        assert!(!s.shed.is_cancelled());
        // One stream permit only.
        assert!(!t.to_stream());
    }
}
