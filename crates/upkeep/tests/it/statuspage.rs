//! The public status page end to end (issue 17): the real daemon on `public_listen`, real
//! services and a real probe; the page, its stream, badges and banner.js over real TCP.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use upkeep_testkit::{Answer, TestDaemon, free_addr, http, psql, wait_page};

use crate::LONG;

/// A daemon with a public listener; its address.
pub(crate) fn public_daemon(services: &str) -> (TestDaemon, SocketAddr) {
    let addr = free_addr();
    let mut d = TestDaemon::prepare(crate::BIN, services)
        .with_daemon_keys(&format!("public_listen = \"{addr}\"\n"));
    d.launch();
    (d, addr)
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    http(addr, "GET", path, headers, b"").unwrap()
}

/// Services: `web` run by upkeep (grouped, renamed, described with markup), `db` watched by a
/// tcp probe on the test's listener, `secret` not public.
fn services(db: SocketAddr) -> String {
    format!(
        "[services.web]\ncommand = \"sleep 1000\"\ngroup = \"Shop\"\ndisplay_name = \"Web shop\"\ndescription = \"<script>alert(1)</script> where people buy\"\n\n\
[services.db]\nincident_after = \"0s\"\nprobes = [{{ kind = \"tcp\", addr = \"{db}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n\n\
[services.secret]\ncommand = \"sleep 1000\"\npublic = false\n"
    )
}

#[test]
fn the_page_shows_public_services_escaped_with_security_headers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, addr) = public_daemon(&services(listener.local_addr().unwrap()));
    d.wait_state("db", "up", LONG);
    d.wait_state("web", "up", LONG);
    let page = wait_page(addr, "/", "both services up", |p| {
        p.contains("All systems operational")
    });
    assert!(page.contains("<h3 class=\"group\">Shop</h3>"), "{page}");
    assert!(
        page.contains("Web shop") && page.contains("data-svc=\"db\""),
        "{page}"
    );
    assert!(page.contains("&lt;script&gt;alert(1)&lt;"), "{page}");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        !page.contains("secret"),
        "a service with public = false is not shown:\n{page}"
    );
    let a = get(addr, "/", &[]);
    assert!(
        a.head
            .contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{}",
        a.head
    );
    assert!(
        a.head.contains("x-content-type-options: nosniff"),
        "{}",
        a.head
    );
    // The same page in Chinese, by Accept-Language.
    let zh = get(addr, "/", &[("Accept-Language", "zh-CN,zh;q=0.9")]).text();
    assert!(zh.contains("所有服务运行正常"), "{zh}");
    // Badges of public services only; banner.js for any site.
    // The page is published within 100 ms of a change, so it may still show db starting
    // (which the headline does not count against "all operational"): wait for its badge.
    wait_page(
        addr,
        "/badge/db/status.svg",
        "db's badge to say Operational",
        |b| b.contains(">Operational<"),
    );
    assert_eq!(get(addr, "/badge/secret/status.svg", &[]).code, 404);
    let status = get(addr, "/api/v1/status", &[]).text();
    assert!(
        status.contains("\"db\"") && !status.contains("secret"),
        "{status}"
    );
    let js = get(addr, "/banner.js", &[]);
    assert!(
        js.head.contains("access-control-allow-origin: *"),
        "{}",
        js.head
    );
    assert!(js.text().contains("var D = null;"), "{}", js.text());
    let ann = get(addr, "/api/v1/announcements", &[]);
    assert!(
        ann.head.contains("access-control-allow-origin: *"),
        "{}",
        ann.head
    );
    for asset in ["/static/page.css", "/static/page.js", "/history"] {
        assert_eq!(get(addr, asset, &[]).code, 200, "{asset}");
    }
    drop(listener);
}

/// The stream's `status` messages until one contains `needle`.
fn stream_until(addr: SocketAddr, needle: &str, deadline: Duration) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(deadline)).unwrap();
    write!(s, "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut seen = String::new();
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if line.starts_with("data: ") && line.contains(needle) {
            return seen;
        }
    }
    panic!("no stream message with {needle}:\n{seen}");
}

#[test]
fn an_outage_shows_on_the_stream_the_page_and_the_badge_within_a_second_or_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (d, addr) = public_daemon(&services(listener.local_addr().unwrap()));
    d.wait_state("db", "up", LONG);
    wait_page(addr, "/", "db up", |p| {
        p.contains("All systems operational")
    });
    // A reader of the stream first gets where things stand.
    let first = stream_until(addr, "\"db\":\"up\"", LONG);
    assert!(first.contains("event: status"), "{first}");
    let watcher = std::thread::spawn(move || stream_until(addr, "\"db\":\"down\"", LONG));
    std::thread::sleep(Duration::from_millis(200));
    drop(listener);
    let seen = watcher.join().unwrap();
    assert!(seen.contains("\"overall\":\"outage\""), "{seen}");
    let page = wait_page(addr, "/", "db down and its incident", |p| {
        p.contains("Some services are down") && p.contains("Incident on db")
    });
    assert!(
        page.contains("<span class=\"st k-outage\">Down</span>"),
        "{page}"
    );
    assert!(page.contains("Incident opened"), "{page}");
    let badge = get(addr, "/badge/db/status.svg", &[]).text();
    assert!(badge.contains(">Down<"), "{badge}");
    let js = get(addr, "/banner.js", &[]).text();
    assert!(
        js.contains("\"level\":\"outage\"") && js.contains("Incident on db"),
        "{js}"
    );
}

/// Each thread of process `pid`: its name and nice value (from `/proc/PID/task/TID/stat`).
fn threads_nice(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the name in parentheses: state is field 3, nice field 19.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i64 = rest.split(' ').nth(16).unwrap().parse().unwrap();
        out.push((comm.trim().to_owned(), nice));
    }
    out
}

#[test]
fn the_page_threads_run_below_supervision() {
    let (d, addr) = public_daemon("[services.web]\ncommand = \"sleep 1000\"\n");
    d.wait_state("web", "up", LONG);
    wait_page(addr, "/", "the page", |p| p.contains("data-svc=\"web\""));
    let pid = d.daemon_pid().unwrap();
    let threads = threads_nice(pid);
    let of = |name: &str| -> Vec<i64> {
        threads
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .collect()
    };
    let main = threads.iter().find(|(n, _)| n == "upkeep").map(|t| t.1);
    assert_eq!(main, Some(0), "the daemon's own thread: {threads:?}");
    // The listener's thread, its two workers, and the page's renderer.
    let public = of("upkeep-public");
    assert!(public.len() >= 3, "{threads:?}");
    assert!(public.iter().all(|n| *n == 10), "{threads:?}");
    assert_eq!(of("upkeep-render"), vec![10], "{threads:?}");
}

/// Sessions whose query of incident updates waits on a lock (the page's store reads: the
/// incident planner reads them too, but only with `[notify]`, which the test has none of).
fn waiting_on_updates(url: &str) -> u32 {
    psql(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM incident_updates%'",
    )
    .parse()
    .expect("a count")
}

/// Issue 17: a render never waits on the store. A session of the test's own PostgreSQL server
/// holds `incident_updates` locked, so each read of an incident's updates (the page reads one
/// per incident, to show what people wrote) waits on it until the store gives up (5 s, its
/// `lock_timeout`): seven open incidents make a read of the store that lasts over half a
/// minute. An operator's stop during it shows on the page at once, while that read still
/// waits. Before, the page task read the store inline: nothing showed until every read had
/// given up.
#[test]
fn issue_17_a_stop_shows_on_the_page_while_its_store_read_waits_on_a_lock() {
    if std::env::var("UPKEEP_TEST_POSTGRES").is_err() {
        eprintln!("UPKEEP_TEST_POSTGRES is not set (scripts/postgres): skipped");
        return;
    }
    let pg = upkeep_testkit::PgServer::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Six services down from the start, each with its incident open.
    let dead = free_addr();
    let mut config = services(listener.local_addr().unwrap());
    for i in 0..6 {
        config.push_str(&format!(
            "\n[services.dead{i}]\nincident_after = \"0s\"\nprobes = [{{ kind = \"tcp\", addr = \"{dead}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n"
        ));
    }
    let addr = free_addr();
    let mut d = TestDaemon::prepare(crate::BIN, &config)
        .with_daemon_keys(&format!("public_listen = \"{addr}\"\n"));
    d.use_store(&pg.url);
    d.launch();
    d.wait_state("web", "up", LONG);
    d.wait_state("db", "up", LONG);
    d.wait_until("six open incidents in the store", LONG, || {
        let n: u32 = psql(
            &pg.url,
            "SELECT count(*) FROM incidents WHERE resolved_ms IS NULL",
        )
        .parse()
        .ok()?;
        (n >= 6).then_some(())
    });
    wait_page(addr, "/", "web up", |p| {
        p.contains("data-svc=\"web\"") && !p.contains(">Stopped<")
    });

    // The lock, held by a psql session until the test ends.
    let mut holder = std::process::Command::new("psql")
        .args([pg.url.as_str(), "-qtAX"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run psql");
    let mut sql = holder.stdin.take().unwrap();
    writeln!(
        sql,
        "BEGIN; LOCK TABLE incident_updates IN ACCESS EXCLUSIVE MODE;"
    )
    .unwrap();
    d.wait_until("the lock on incident_updates", LONG, || {
        let held = psql(
            &pg.url,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'incident_updates' AND l.mode = 'AccessExclusiveLock' AND l.granted",
        );
        (held == "1").then_some(())
    });
    // db goes down: its incident opens, and the page's store read begins, and waits.
    drop(listener);
    d.wait_until("the page's store read to wait on the lock", LONG, || {
        (waiting_on_updates(&pg.url) > 0).then_some(())
    });

    let out = d.cli(&["stop", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = wait_page(addr, "/", "web stopped", |p| {
        p.split("data-svc=\"web\"")
            .nth(1)
            .and_then(|row| row.split("</li>").next())
            .is_some_and(|row| row.contains(">Stopped<"))
    });
    // Still while the read waits: a read is seven waits one after the other, so a check may
    // fall between two of them; a few in a row cannot all (each wait lasts 5 s).
    let still = (0..5).any(|_| {
        let n = waiting_on_updates(&pg.url);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        n > 0
    });
    assert!(
        still,
        "the page showed web stopped only once its store read had given up:\n{page}"
    );
    drop(sql);
    let _ = holder.kill();
    let _ = holder.wait();
}
