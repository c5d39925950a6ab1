//! `bench/outbox`: notices to a local SMTP sink (aiosmtpd), through the outbox and the
//! dispatcher (rows in a real store, leased, sent, marked), beside two plain concurrent
//! senders in the same run: Python's smtplib with messages of the same shape (what the sink
//! takes from a mailer) and the same SMTP channel without the outbox (lettre, the same concurrency, no store). Time until all
//! are delivered, rate, upkeep's share of the plain channel's rate, and duplicates by
//! Message-ID. Prints figures; asserts nothing.
//!
//! Usage: cargo run --release -p upkeep-outbox --example bench [N...] (default 1000 10000);
//! `UPKEEP_TEST_POSTGRES` set: also on PostgreSQL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use upkeep_core::Clock;
use upkeep_outbox::{
    BuildContext, Channel, ChannelConfig, Dispatcher, IdempotencyKey, Lane, Notice, Recipient,
    Settings, Templates,
};
use upkeep_store::{Location, NewNotice, Node, OutboxState, PgLocation, Store};
use upkeep_testkit::SmtpSink;

const CONCURRENCY: u32 = 8;

fn channel(port: u16) -> Arc<dyn Channel> {
    let config: ChannelConfig = toml::from_str(&format!(
        "kind = \"email\"\nurl = \"smtp://127.0.0.1:{port}\"\nfrom = \"upkeep <noreply@example.com>\"\npool_size = {CONCURRENCY}\ntimeout = \"30s\""
    ))
    .expect("a channel config");
    let env = |_: &str| None;
    let ctx = BuildContext {
        clock: Clock::system(),
        base_dir: ".".into(),
        env: &env,
    };
    config.build("mail", &ctx).expect("the channel builds")
}

fn notice() -> Notice {
    serde_json::from_value(serde_json::json!({
        "kind": "announced", "title": "PostgreSQL 17", "reason": "security fixes",
        "start": "2026-12-01T00:00:00Z", "expected_end": "2026-12-01T02:00:00Z",
        "services": [{"name": "db", "impact": "outage"}],
        "alternatives": "the read replica", "follow_up": "https://status.example.com",
        "priority": "routine", "lang": "en", "time_zone": "Asia/Shanghai"
    }))
    .expect("a notice")
}

/// Messages at the sink and how many Message-IDs came more than once.
fn tally(sink: &SmtpSink) -> (usize, usize) {
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let messages = sink.messages();
    for m in &messages {
        *ids.entry(m["message_id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    (messages.len(), ids.values().filter(|n| **n > 1).count())
}

async fn wait_sink(sink: &SmtpSink, n: usize) {
    while sink.count() < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The plain sender: render once, send n messages with CONCURRENCY in flight. Returns one
/// message as the sink recorded it, too.
async fn plain(n: usize) -> (Duration, serde_json::Value) {
    let sink = SmtpSink::start();
    let ch = channel(sink.port);
    let rendered = Arc::new(Templates::builtin().render(&notice()).unwrap());
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY as usize));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (ch, r, sem) = (ch.clone(), rendered.clone(), sem.clone());
        tasks.spawn(async move {
            let _p = sem.acquire().await;
            let key = IdempotencyKey::new(format!("plain-{i}")).unwrap();
            ch.send(&Recipient::address(format!("r{i}@example.com")), &r, &key)
                .await
                .expect("the sink takes it");
        });
    }
    while tasks.join_next().await.is_some() {}
    wait_sink(&sink, n).await;
    let took = start.elapsed();
    let sample = sink.messages().swap_remove(0);
    (took, sample)
}

/// What the sink takes from Python's smtplib, CONCURRENCY connections each sending its share
/// in one session, of a message like `sample` (the same subject, text and HTML parts, as the
/// sink recorded one of ours: the sink parses every message, so size and shape count): the
/// most this sink takes from any mailer.
fn sink_own(n: usize, sample: &serde_json::Value) -> Duration {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let sample_file = dir.path().join("sample.json");
    std::fs::write(&sample_file, sample.to_string()).unwrap();
    let script = r#"
import json, smtplib, sys, threading
from email.message import EmailMessage
port, n, c, sample = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.load(open(sys.argv[4]))
parts = {p["content_type"]: p["text"] for p in sample["parts"]}
def run(k):
    s = smtplib.SMTP("127.0.0.1", port)
    for i in range(k, n, c):
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "upkeep <noreply@example.com>", f"r{i}@example.com", sample["subject"]
        m["Message-ID"] = f"<py-{i}@example.com>"
        m.set_content(parts["text/plain"])
        m.add_alternative(parts["text/html"], subtype="html")
        s.send_message(m)
    s.quit()
ts = [threading.Thread(target=run, args=(k,)) for k in range(c)]
[t.start() for t in ts]
[t.join() for t in ts]
"#;
    let start = Instant::now();
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(sink.port.to_string())
        .arg(n.to_string())
        .arg(CONCURRENCY.to_string())
        .arg(&sample_file)
        .status()
        .expect("python3 runs");
    assert!(status.success());
    start.elapsed()
}

/// Through the outbox: n rows inserted, then one dispatcher sends them.
async fn outbox(n: usize, at: &Location) -> (Duration, usize, usize) {
    let sink = SmtpSink::start();
    let node = Node {
        id: format!("bench-{:016x}", fastrand::u64(..)),
        name: "bench".into(),
    };
    let store: Arc<dyn Store> = Arc::new(upkeep_store::open(at, &node).await.unwrap());
    let notice = serde_json::to_string(&notice()).unwrap();
    let run = fastrand::u64(..);
    let rows: Vec<NewNotice> = (0..n)
        .map(|i| NewNotice {
            channel: "mail".into(),
            recipient: format!("r{i}@example.com"),
            kind: "announced".into(),
            subject: "window:1".into(),
            notice: notice.clone(),
            key: format!("upk-{run:016x}-{i}"),
            digest: None,
        })
        .collect();
    let clock = Clock::system();
    let mut lanes = BTreeMap::new();
    lanes.insert(
        "mail".to_owned(),
        Lane {
            channel: channel(sink.port),
            concurrency: CONCURRENCY,
            rate: None,
        },
    );
    let start = Instant::now();
    store.add_notices(&rows, clock.now()).await.unwrap();
    let d = Dispatcher::new(
        store.clone(),
        clock,
        Templates::builtin(),
        lanes,
        Settings {
            owner: "bench".into(),
            lease: Duration::from_secs(600),
            give_up_after: Duration::from_secs(86_400),
        },
    );
    let task = tokio::spawn(d.run());
    wait_sink(&sink, n).await;
    // Delivered is when the sink has them; marked is when the store knows.
    let delivered = start.elapsed();
    loop {
        let sent = store
            .outbox(Some(OutboxState::Sent), n as u32 + 10)
            .await
            .unwrap()
            .len();
        if sent >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    let (messages, dup_ids) = tally(&sink);
    let distinct: BTreeSet<String> = sink
        .messages()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(distinct.len(), n, "every notice arrived");
    (delivered, messages - n, dup_ids)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 10_000]
    } else {
        sizes
    };
    let dir = tempfile::tempdir().unwrap();
    let mut engines = vec![("sqlite", Location::Sqlite(dir.path().join("bench.db")))];
    if let Ok(url) = std::env::var("UPKEEP_TEST_POSTGRES") {
        engines.push((
            "postgres",
            Location::Postgres(PgLocation {
                url: url.parse().unwrap(),
                password: std::env::var("PGPASSWORD").ok(),
            }),
        ));
    }
    println!(
        "notices to aiosmtpd on loopback, {CONCURRENCY} in flight (one runtime thread, as the daemon)"
    );
    println!(
        "{:>7}  {:<22} {:>9} {:>9} {:>7} {:>10}",
        "n", "sender", "seconds", "per sec", "share", "duplicates"
    );
    for n in sizes {
        let (p, sample) = plain(n).await;
        let own = sink_own(n, &sample);
        println!(
            "{n:>7}  {:<22} {:>9.2} {:>9.0} {:>7} {:>10}",
            "python smtplib",
            own.as_secs_f64(),
            n as f64 / own.as_secs_f64(),
            "",
            "-"
        );
        let prate = n as f64 / p.as_secs_f64();
        println!(
            "{n:>7}  {:<22} {:>9.2} {:>9.0} {:>7} {:>10}",
            "SMTP channel alone",
            p.as_secs_f64(),
            prate,
            "100%",
            "-"
        );
        for (name, at) in &engines {
            let (t, resent, dups) = outbox(n, at).await;
            let rate = n as f64 / t.as_secs_f64();
            println!(
                "{n:>7}  {:<22} {:>9.2} {:>9.0} {:>6.0}% {:>10}",
                format!("upkeep outbox ({name})"),
                t.as_secs_f64(),
                rate,
                100.0 * rate / prate,
                format!("{resent} ({dups} ids)")
            );
        }
    }
}
