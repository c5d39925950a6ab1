//! The dispatcher over a real store (SQLite always; PostgreSQL when `UPKEEP_TEST_POSTGRES`
//! names a database), with real receivers on loopback: several dispatchers share one
//! store's rows, one is killed mid-send and one hangs longer than its lease, and every row
//! is delivered exactly once. Time is a test clock: leases run out when the test moves it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use upkeep_core::{Clock, TestClock};
use upkeep_outbox::{BuildContext, ChannelConfig, Dispatcher, Lane, Settings, Templates};
use upkeep_store::{Location, NewNotice, Node, OutboxState, PgLocation, Store};
use upkeep_testkit::WebhookReceiver;

/// A receiver that takes connections and never answers: a hung send.
async fn silent_receiver() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    port
}

fn webhook(url: &str, timeout: &str) -> Arc<dyn upkeep_outbox::Channel> {
    let config: ChannelConfig = toml::from_str(&format!(
        "kind = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"SECRET\"\ntimeout = \"{timeout}\""
    ))
    .unwrap();
    let env = |k: &str| (k == "SECRET").then(|| "k".to_owned());
    let ctx = BuildContext {
        clock: Clock::system(),
        base_dir: ".".into(),
        env: &env,
    };
    config.build("hook", &ctx).unwrap()
}

fn dispatcher(
    store: Arc<dyn Store>,
    clock: &Clock,
    owner: &str,
    channel: Arc<dyn upkeep_outbox::Channel>,
) -> Dispatcher {
    let mut lanes = BTreeMap::new();
    lanes.insert(
        "hook".to_owned(),
        Lane {
            channel,
            concurrency: 2,
            rate: None,
        },
    );
    Dispatcher::new(
        store,
        clock.clone(),
        Templates::builtin(),
        lanes,
        Settings {
            owner: owner.into(),
            lease: Duration::from_secs(30),
            give_up_after: Duration::from_secs(86_400),
        },
    )
}

fn rows(n: usize, at: jiff::Timestamp) -> Vec<NewNotice> {
    let notice = serde_json::json!({
        "kind": "announced", "title": "PostgreSQL 17", "reason": "security fixes",
        "start": at, "priority": "routine", "lang": "en", "time_zone": "UTC"
    });
    let run = fastrand::u64(..);
    (0..n)
        .map(|i| NewNotice {
            channel: "hook".into(),
            recipient: String::new(),
            kind: "announced".into(),
            subject: "window:1".into(),
            notice: notice.to_string(),
            key: format!("upk-{run:016x}-{i}"),
            digest: None,
        })
        .collect()
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Rows by state: (state, lease owner, takeovers).
type States = BTreeMap<String, Vec<(OutboxState, Option<String>, u32)>>;

async fn states(store: &dyn Store) -> States {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in store.outbox(None, 10_000).await.unwrap() {
        out.entry(r.state.as_str().to_owned()).or_default().push((
            r.state,
            r.lease_owner,
            r.takeovers,
        ));
    }
    out
}

async fn every_row_once_with_one_killed_and_one_hung(at: Location) {
    let node = Node {
        id: format!("dispatch-{:016x}", fastrand::u64(..)),
        name: "test".into(),
    };
    // Three dispatchers, each with its own connections, as three processes would have.
    let open =
        || async { Arc::new(upkeep_store::open(&at, &node).await.unwrap()) as Arc<dyn Store> };
    let (store_a, store_h, store_b) = (open().await, open().await, open().await);
    let hand = TestClock::running();
    let clock = hand.clock();
    let n = 40;
    store_a
        .add_notices(&rows(n, clock.now()), clock.now())
        .await
        .unwrap();

    // A and H send to a receiver that never answers (longer than their lease).
    let silent = format!("http://127.0.0.1:{}/hook", silent_receiver().await);
    let a = tokio::spawn(dispatcher(store_a.clone(), &clock, "a", webhook(&silent, "5m")).run());
    let h = tokio::spawn(dispatcher(store_h.clone(), &clock, "h", webhook(&silent, "5m")).run());
    let held = |s: &States, who: &str| {
        s.get("sending").map_or(0, |v| {
            v.iter()
                .filter(|(_, o, _)| o.as_deref() == Some(who))
                .count()
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = states(store_b.as_ref()).await;
        if held(&s, "a") == 4 && held(&s, "h") == 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a and h never held their rows: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A is killed mid-send; H stays, hung.
    a.abort();
    let _ = a.await;

    // B sends to a receiver that works: it takes every row nobody holds...
    let receiver = WebhookReceiver::start();
    let b = tokio::spawn(
        dispatcher(
            store_b.clone(),
            &clock,
            "b",
            webhook(&receiver.url("/hook"), "10s"),
        )
        .run(),
    );
    wait_for("b to send the rows nobody holds", || {
        receiver.requests().len() == n - 8
    })
    .await;
    // ...and, once the leases of A and H run out, theirs.
    assert!(
        hand.advance(Duration::from_secs(31), Duration::from_secs(5))
            .await
    );
    wait_for("b to send the rows taken over", || {
        receiver.requests().len() == n
    })
    .await;
    // A row is marked sent once the receiver's answer is in, which can come just after the
    // receiver has it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = states(store_b.as_ref()).await;
        if s.get("sent").map_or(0, Vec::len) == n || tokio::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s["sent"].len(), n, "{s:?}");
    let takeovers: u32 = s["sent"].iter().map(|(_, _, t)| t).sum();
    assert_eq!(takeovers, 8, "the rows of A and H, each taken over once");

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in receiver.requests() {
        let key = r["headers"]["idempotency-key"].as_str().unwrap().to_owned();
        *seen.entry(key).or_default() += 1;
    }
    let keys: BTreeSet<String> = store_b
        .outbox(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    assert_eq!(seen.keys().cloned().collect::<BTreeSet<_>>(), keys);
    assert!(seen.values().all(|c| *c == 1), "each row once: {seen:?}");
    h.abort();
    b.abort();
}

#[tokio::test]
async fn every_row_is_sent_once_by_dispatchers_sharing_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    every_row_once_with_one_killed_and_one_hung(Location::Sqlite(dir.path().join("u.db"))).await;
}

#[tokio::test]
async fn every_row_is_sent_once_by_dispatchers_sharing_postgres() {
    let Ok(url) = std::env::var("UPKEEP_TEST_POSTGRES") else {
        eprintln!("UPKEEP_TEST_POSTGRES is not set: skipped");
        return;
    };
    let at = Location::Postgres(PgLocation {
        url: url.parse().unwrap(),
        password: std::env::var("PGPASSWORD").ok(),
    });
    every_row_once_with_one_killed_and_one_hung(at).await;
}

/// The daily digest (issue 16, item 5), over SQLite and a real SMTP server: digest rows wait
/// for their time while a row of its own goes at once; then each recipient gets ONE mail
/// listing its rows in order, keyed by them (the same Message-ID if it were sent again),
/// and every row is marked sent.
#[tokio::test]
async fn a_digest_is_one_mail_per_recipient_listing_its_notices_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node {
        id: format!("digest-{:016x}", fastrand::u64(..)),
        name: "test".into(),
    };
    let store = Arc::new(
        upkeep_store::open(&Location::Sqlite(dir.path().join("u.db")), &node)
            .await
            .unwrap(),
    ) as Arc<dyn Store>;
    let hand = TestClock::running();
    let clock = hand.clock();
    let now = clock.now();
    let at = now + jiff::SignedDuration::from_hours(1);
    let notice = |title: &str| {
        serde_json::json!({
            "kind": "announced", "title": title, "reason": "security fixes",
            "start": now, "priority": "routine", "lang": "en", "time_zone": "UTC"
        })
        .to_string()
    };
    let run = fastrand::u64(..);
    let row = |i: usize, to: &str, title: &str, digest: Option<jiff::Timestamp>| NewNotice {
        channel: "mail".into(),
        recipient: to.into(),
        kind: "announced".into(),
        subject: format!("window:{i}"),
        notice: notice(title),
        key: format!("upk-{run:016x}-{i}"),
        digest,
    };
    let rows = [
        row(1, "a@example.com", "first", Some(at)),
        row(2, "b@example.com", "for b", Some(at)),
        row(3, "a@example.com", "second", Some(at)),
        row(4, "a@example.com", "at once", None),
        row(5, "a@example.com", "third", Some(at)),
    ];
    store.add_notices(&rows, now).await.unwrap();
    let sink = upkeep_testkit::SmtpSink::start();
    let config: ChannelConfig = toml::from_str(&format!(
        "kind = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\nfrom = \"upkeep <noreply@example.com>\"",
        sink.port
    ))
    .unwrap();
    let env = |_: &str| None;
    let ctx = BuildContext {
        clock: Clock::system(),
        base_dir: ".".into(),
        env: &env,
    };
    let mut lanes = BTreeMap::new();
    lanes.insert(
        "mail".to_owned(),
        Lane {
            channel: config.build("mail", &ctx).unwrap(),
            concurrency: 2,
            rate: None,
        },
    );
    let d = Dispatcher::new(
        store.clone(),
        clock.clone(),
        Templates::builtin(),
        lanes,
        Settings {
            owner: "d".into(),
            lease: Duration::from_secs(30),
            give_up_after: Duration::from_secs(86_400),
        },
    );
    let wake = d.waker();
    let task = tokio::spawn(d.run());
    wait_for("the row of its own", || sink.count() == 1).await;
    // Marked sent once the server's answer is in, which can come just after the sink has it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store
        .outbox(Some(OutboxState::Sent), 100)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the row of its own marked sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A minute before the digest's time: nothing more is due, and nothing more goes.
    assert!(
        hand.advance(Duration::from_secs(59 * 60), Duration::from_secs(5))
            .await
    );
    wake.notify_one();
    let pending = store.outbox(Some(OutboxState::Pending), 100).await.unwrap();
    assert_eq!(pending.len(), 4, "{pending:?}");
    assert!(pending.iter().all(|r| r.digest && r.attempts == 0));
    assert_eq!(sink.count(), 1);
    assert!(
        hand.advance(Duration::from_secs(60), Duration::from_secs(5))
            .await
    );
    wait_for("the two digests", || sink.count() == 3).await;
    let mails = sink.messages();
    assert!(mails[0]["subject"].as_str().unwrap().contains("at once"));
    let to_a = mails
        .iter()
        .find(|m| m["to"].as_str().unwrap().contains("a@example.com") && m != &&mails[0])
        .unwrap();
    assert_eq!(to_a["subject"], "3 routine notices: first, second, third");
    let text = upkeep_testkit::SmtpSink::text(to_a);
    let order: Vec<usize> = [
        "1. Scheduled maintenance: first",
        "2. Scheduled maintenance: second",
        "3. Scheduled maintenance: third",
    ]
    .iter()
    .map(|l| text.find(l).unwrap_or_else(|| panic!("{l} in {text}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    let to_b = mails
        .iter()
        .find(|m| m["to"].as_str().unwrap().contains("b@example.com"))
        .unwrap();
    assert_eq!(to_b["subject"], "1 routine notice: for b");
    assert_ne!(to_a["message_id"], to_b["message_id"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store
        .outbox(Some(OutboxState::Sent), 100)
        .await
        .unwrap()
        .len()
        < 5
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "every row marked sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
}
