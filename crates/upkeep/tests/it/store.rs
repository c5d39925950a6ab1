//! The store seen from the daemon: PostgreSQL going away under load and coming back (issue
//! 15, item 4). Each test runs a PostgreSQL server of its own (scripts/postgres on a free
//! port), since it stops it; it needs Debian's PostgreSQL, which `scripts/test` installs.

use std::time::{Duration, Instant};

use upkeep_testkit::{PgServer, TestDaemon};

use crate::{BIN, LONG, stderr};

/// A service that ends every 200 ms and is restarted each time: a steady stream of events
/// (exited, restart scheduled, started) and of restarts to time.
const FLAPPING: &str = "[services.flap]\ncommand = \"sleep 0.2\"\nmin_uptime = \"50ms\"\nmax_restarts = 1000000\nwindow = \"1s\"\n";

/// How long the server stays away (the benchmark's is 60 s: `bench/store-outage`).
fn outage() -> Duration {
    let secs = std::env::var("UPKEEP_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    Duration::from_secs(secs)
}

fn restarts(d: &TestDaemon) -> u64 {
    d.service("flap")["info"]["restarts"].as_u64().unwrap_or(0)
}

fn store_health(d: &TestDaemon) -> serde_json::Value {
    d.api_get("/api/v1/daemon")["store"].clone()
}

/// Every event the node stored: numbered 1, 2, 3... with no gap and no duplicate, and every
/// start matched by its end. Returns how many starts there were.
fn check_history(d: &TestDaemon) -> usize {
    let rows =
        d.store_sql("SELECT seq, kind, detail FROM events WHERE node = '{node}' ORDER BY seq");
    let seqs: Vec<u64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "sequence numbers"
    );
    let pids = |kind: &str| -> Vec<u64> {
        rows.iter()
            .filter(|r| r[1] == kind)
            .map(|r| {
                let detail: serde_json::Value = serde_json::from_str(&r[2]).unwrap();
                detail["pid"].as_u64().unwrap()
            })
            .collect()
    };
    let started = pids("started");
    // An exit, or a stop of what a killed daemon left by the next one.
    let exited = [pids("exited"), pids("stale_stopped")].concat();
    let mut unique = started.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), started.len(), "a start stored twice");
    // Every start but the last has its exit.
    for pid in &started[..started.len() - 1] {
        assert!(exited.contains(pid), "start of {pid} without its exit");
    }
    started.len()
}

#[test]
fn issue_15_postgres_away_under_load_loses_no_event_and_delays_no_restart() {
    if std::env::var("UPKEEP_TEST_POSTGRES").is_err() {
        eprintln!("UPKEEP_TEST_POSTGRES is not set (scripts/postgres): skipped");
        return;
    }
    let pg = PgServer::start();
    let mut d = TestDaemon::prepare(BIN, FLAPPING);
    d.use_store(&pg.url);
    d.launch();
    d.wait_until("a few restarts", LONG, || (restarts(&d) >= 3).then_some(()));
    assert_eq!(store_health(&d)["engine"], "postgres");

    // The server goes away under load.
    pg.stop();
    let before = restarts(&d);
    let away = Instant::now();
    d.wait_until("the daemon to see the store away", LONG, || {
        (store_health(&d)["reachable"] == false).then_some(())
    });
    // Supervision goes on at the same pace: a restart every 200 ms or so, never a wait on
    // the store (a restart that waited would take the 5 s connection timeout).
    let mut seen = vec![(Instant::now(), restarts(&d))];
    while away.elapsed() < outage() {
        std::thread::sleep(Duration::from_millis(100));
        seen.push((Instant::now(), restarts(&d)));
    }
    let during = restarts(&d) - before;
    let expected = outage().as_millis() as u64 / 250;
    assert!(
        during * 2 >= expected,
        "{during} restarts in {:?} with the store away",
        outage()
    );
    let longest = seen
        .windows(2)
        .filter(|w| w[1].1 == w[0].1)
        .map(|w| w[1].0 - w[0].0)
        .sum::<Duration>();
    assert!(
        longest < outage() / 2,
        "restarts stalled for {longest:?} of {:?}",
        outage()
    );
    // People are told, and history reads fail at once with why.
    let ls = d.cli(&["ls"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert!(stderr(&ls).contains("unreachable"), "{}", stderr(&ls));
    let events = d.cli(&["incidents"]);
    assert!(!events.status.success());
    assert!(
        stderr(&events).contains("unreachable"),
        "{}",
        stderr(&events)
    );
    let health = store_health(&d);
    assert!(health["journaled"].as_u64().unwrap() > 0, "{health}");
    let status = d.cli(&["status", "flap"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("history unavailable"), "{said}");

    // Back: everything of the outage is stored, once, in order.
    let journaled = health["journaled"].as_u64().unwrap_or(0);
    pg.restart();
    let back = Instant::now();
    d.wait_until("the journal to be stored", LONG, || {
        let h = store_health(&d);
        (h["reachable"] == true && h["journaled"] == 0).then_some(())
    });
    let drained = back.elapsed();
    let starts = check_history(&d);
    eprintln!(
        "outage: {:?} without PostgreSQL: {during} restarts (one every {:.0} ms), restarts stalled {longest:?} in all;          {journaled}+ events journaled, stored {drained:.1?} after it was back; {starts} starts on record, none twice, no gap",
        outage(),
        outage().as_millis() as f64 / during.max(1) as f64,
    );
    assert!(starts as u64 > during, "{starts} starts stored");

    // Away again, and the daemon killed while it is: the next one stores what the first kept.
    pg.stop();
    let second = restarts(&d);
    d.wait_until("the daemon to see the store away", LONG, || {
        (store_health(&d)["journaled"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    let kept = restarts(&d);
    std::thread::sleep(Duration::from_millis(500));
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    let journal = std::fs::metadata(d.data_dir.join("journal")).unwrap().len();
    assert!(journal > 0);
    pg.restart();
    d.launch();
    d.wait_until("the journal to be stored", LONG, || {
        let h = store_health(&d);
        (h["reachable"] == true && h["journaled"] == 0).then_some(())
    });
    let starts_after = check_history(&d);
    // Every restart the first daemon made while the store was away is on record.
    assert!(
        starts_after as u64 >= starts as u64 + (kept - second),
        "{starts_after} starts stored after the kill; {starts} before, {} while away",
        kept - second
    );
    assert_eq!(
        std::fs::metadata(d.data_dir.join("journal")).unwrap().len(),
        0
    );
}

/// Issue 15, item 9: committed events fan out to live views: `upkeep events --follow` shows
/// the recent ones, then each new one once, in order, as it is stored.
#[test]
fn issue_15_events_follow_shows_each_committed_event_once_as_it_comes() {
    use std::io::BufRead;
    let d = crate::daemon("[services.web]\ncommand = \"sleep 1000\"\n");
    d.wait_state("web", "up", LONG);
    let mut follow = d.cli_spawn(&["events", "--follow", "--json", "-n", "3"]);
    let mut lines = std::io::BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut seen: Vec<serde_json::Value> = Vec::new();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    for _ in 0..3 {
        seen.push(next());
    }
    let out = d.cli(&["restart", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The restart's events, live: ending with the new process started.
    loop {
        let e = next();
        let started = e["kind"] == "started";
        seen.push(e);
        if started {
            break;
        }
    }
    follow.kill().unwrap();
    let _ = follow.wait();
    let ids: Vec<i64> = seen.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "each once, in order, no gap: {ids:?}"
    );
    let kinds: Vec<&str> = seen.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"restart_requested"), "{kinds:?}");
    // The same events as the stored history has.
    let stored = d.api_get("/api/v1/events?limit=100");
    let stored_ids: Vec<i64> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids.iter().all(|i| stored_ids.contains(i)),
        "{ids:?} {stored_ids:?}"
    );
}

/// Issue 15, item 1: `upkeep store copy --to postgres://...` moves a SQLite history to
/// PostgreSQL; the daemon then runs on it with its history whole.
#[test]
fn issue_15_store_copy_moves_a_sqlite_history_to_postgres() {
    let Ok(shared) = std::env::var("UPKEEP_TEST_POSTGRES") else {
        eprintln!("UPKEEP_TEST_POSTGRES is not set (scripts/postgres): skipped");
        return;
    };
    let mut d = TestDaemon::prepare(BIN, "[services.web]\ncommand = \"sleep 1000\"\n");
    d.use_sqlite();
    d.launch();
    d.wait_state("web", "up", LONG);
    assert!(d.cli(&["restart", "web"]).status.success());
    // What people wrote travels too: an incident opened by hand, with an update.
    let opened = crate::cli_json(
        &d,
        &[
            "incident",
            "open",
            "--service",
            "web",
            "--title",
            "payments provider down",
            "--message",
            "card payments fail",
            "--json",
        ],
    );
    let id = opened["incident"]["id"].as_i64().unwrap().to_string();
    crate::cli_json(
        &d,
        &[
            "incident",
            "update",
            &id,
            "--status",
            "identified",
            "a bad deploy",
            "--json",
        ],
    );
    let before = d.api_get("/api/v1/events?limit=1000");
    let target = upkeep_testkit::create_database(&shared);
    // Not while the daemon runs: it would write meanwhile.
    let busy = d.cli(&["store", "copy", "--to", &target]);
    assert!(!busy.status.success());
    assert!(
        stderr(&busy).contains("must be stopped"),
        "{}",
        stderr(&busy)
    );
    assert!(d.cli(&["down"]).status.success());
    // A password in the URL is refused without being repeated.
    for url in [
        "postgres://u:s3cret@127.0.0.1/x",
        "postgres://u@127.0.0.1/x?password=s3cret",
    ] {
        let bad = d.cli(&["store", "copy", "--to", url]);
        assert_eq!(bad.status.code(), Some(2), "{url}");
        assert!(!stderr(&bad).contains("s3cret"), "{}", stderr(&bad));
    }

    let out = d.cli(&["store", "copy", "--to", &target]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("events") && said.contains(&target), "{said}");
    assert!(said.contains("1 incidents with 2 updates"), "{said}");
    // Twice: refused, the target unchanged.
    let again = d.cli(&["store", "copy", "--to", &target]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("empty"), "{}", stderr(&again));

    d.use_store(&target);
    d.launch();
    d.wait_state("web", "up", LONG);
    assert_eq!(store_health(&d)["engine"], "postgres");
    let after = d.api_get("/api/v1/events?limit=1000");
    let ids = |v: &serde_json::Value| -> Vec<(i64, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["id"].as_i64().unwrap(),
                    e["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let (old, new) = (ids(&before), ids(&after));
    assert!(
        old.iter().all(|e| new.contains(e)),
        "every event before the copy, with its number: {old:?} in {new:?}"
    );
    assert!(
        new.len() > old.len(),
        "and the new daemon's events after them"
    );
    let incidents = d.api_get("/api/v1/incidents");
    let copied = &incidents.as_array().unwrap()[0];
    assert_eq!(copied["service"], "web", "{incidents}");
    let detail = d.api_get(&format!("/api/v1/incidents/{}", copied["id"]));
    assert_eq!(
        detail["notes"]["title"], "payments provider down",
        "{detail}"
    );
    let updates = detail["notes"]["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2, "{detail}");
    assert_eq!(updates[1]["message"], "a bad deploy", "{detail}");
}

/// A daemon that could not journal would lose an outage's events to a kill: a journal that
/// cannot be opened (here a directory in its place) stops the start with why.
#[test]
fn issue_15_a_journal_that_cannot_be_opened_stops_the_start() {
    let d = TestDaemon::prepare(BIN, "[services.web]\ncommand = \"sleep 1000\"\n");
    std::fs::create_dir_all(d.data_dir.join("journal")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = d.cli(&["up"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("journal"), "{}", stderr(&out));
}

/// Two daemons with one node id (a data dir copied with its `node-id`) killed each other's
/// services (found by a fresh-eyes test): the second is refused, and the first's services
/// are untouched.
#[test]
fn a_second_daemon_with_the_same_node_id_is_refused() {
    let first = crate::daemon("[services.web]\ncommand = \"sleep 1000\"\n");
    first.wait_state("web", "up", LONG);
    let pid = first.pid("web").unwrap();
    let second = TestDaemon::prepare(BIN, "[services.web]\ncommand = \"sleep 1000\"\n");
    std::fs::create_dir_all(&second.data_dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&second.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(
        first.data_dir.join("node-id"),
        second.data_dir.join("node-id"),
    )
    .unwrap();
    let out = second.cli(&["up"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("node id"), "{}", stderr(&out));
    assert!(upkeep_testkit::alive(pid));
    assert_eq!(first.pid("web"), Some(pid));
}

/// A PostgreSQL server of this test's own, made and then stopped: the store is away before
/// the daemon ever starts. None (the test skipped) without `UPKEEP_TEST_POSTGRES`.
fn postgres_away() -> Option<PgServer> {
    if std::env::var("UPKEEP_TEST_POSTGRES").is_err() {
        eprintln!("UPKEEP_TEST_POSTGRES is not set (scripts/postgres): skipped");
        return None;
    }
    let pg = PgServer::start();
    pg.stop();
    Some(pg)
}

/// Waits until the store is back and holds everything the journal kept.
fn wait_stored(d: &TestDaemon) {
    d.wait_until("the journal to be stored", LONG, || {
        let h = store_health(d);
        (h["reachable"] == true && h["journaled"] == 0).then_some(())
    });
}

/// `upkeep ls` works from the live snapshot and says the store is unreachable, and why.
fn ls_says_unreachable(d: &TestDaemon, why: &str) {
    let ls = d.cli(&["ls"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    let said = String::from_utf8_lossy(&ls.stdout);
    assert!(said.contains("flap") || said.contains("web"), "{said}");
    assert!(
        stderr(&ls).contains("unreachable") && stderr(&ls).contains(why),
        "{}",
        stderr(&ls)
    );
    let health = store_health(d);
    assert_eq!(health["reachable"], false, "{health}");
    assert!(
        health["error"].as_str().unwrap_or_default().contains(why),
        "{health}"
    );
}

/// A supervisor that cannot start its services because a database on another host is away
/// has failed at its one job: with PostgreSQL stopped, the daemon starts and supervises at
/// once, `ls` says the store is unreachable; once it is back, every event of the outage is
/// stored once, in order, numbered with no gap, and the config revision the daemon started
/// on is stored, dated at the start.
#[test]
fn the_daemon_starts_and_supervises_with_postgres_away_and_stores_the_outage_once_back() {
    let Some(pg) = postgres_away() else { return };
    let mut d = TestDaemon::prepare(BIN, FLAPPING);
    d.use_store(&pg.url);
    let launched = jiff::Timestamp::now();
    d.launch();
    d.wait_until("a few restarts with the store away", LONG, || {
        (restarts(&d) >= 3).then_some(())
    });
    ls_says_unreachable(&d, "refused");
    assert!(store_health(&d)["journaled"].as_u64().unwrap() > 0);
    let history = d.try_api("GET", "/api/v1/events", None).unwrap();
    assert_eq!(history.0, 503, "{}", String::from_utf8_lossy(&history.1));

    pg.restart();
    wait_stored(&d);
    let starts = check_history(&d);
    assert!(starts >= 3, "{starts} starts stored");
    // Taken up once the store holds what was journaled.
    let applied = d.wait_until("the revision to be recorded", LONG, || {
        let rows = d.store_sql(
            "SELECT at_ms, seq FROM events WHERE node = '{node}' AND kind = 'config_applied'",
        );
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(applied.len(), 1, "{applied:?}");
    let revisions = d.store_sql("SELECT COUNT(*) FROM config_revisions WHERE node = '{node}'");
    assert_eq!(revisions, [["1"]]);
    // Dated when the daemon started, though stored after the outage's events.
    let at: i64 = applied[0][0].parse().unwrap();
    assert!(
        at >= launched.as_millisecond() - 1000 && at < launched.as_millisecond() + 10_000,
        "{at} vs {launched}"
    );
    let seq: u64 = applied[0][1].parse().unwrap();
    assert!(seq > 3, "stored once the store was back: {seq}");
}

/// Killed while PostgreSQL is away, and started again while it still is, twice: numbering
/// goes on from the data dir, and once the store is back every event is there once, in
/// order, with no gap and no duplicate number.
#[test]
fn daemons_killed_and_started_while_postgres_is_away_leave_no_gap_and_no_duplicate() {
    let Some(pg) = postgres_away() else { return };
    pg.restart();
    let mut d = TestDaemon::prepare(BIN, FLAPPING);
    d.use_store(&pg.url);
    d.launch();
    // Stored directly at first, then the store goes away under load.
    d.wait_until("a few restarts", LONG, || (restarts(&d) >= 3).then_some(()));
    pg.stop();
    let mut kept = 0;
    for _ in 0..2 {
        d.wait_until("events journaled", LONG, || {
            (store_health(&d)["journaled"].as_u64().unwrap_or(0) > kept).then_some(())
        });
        kept = store_health(&d)["journaled"].as_u64().unwrap();
        d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
        d.launch();
        // Supervising at once, the store still away.
        let before = restarts(&d);
        d.wait_until("restarts with the store away", LONG, || {
            (restarts(&d) >= before + 3).then_some(())
        });
        ls_says_unreachable(&d, "refused");
    }
    pg.restart();
    wait_stored(&d);
    check_history(&d);
    let unrecorded =
        d.store_sql("SELECT COUNT(*) FROM events WHERE node = '{node}' AND kind = 'unrecorded'");
    assert_eq!(unrecorded, [["0"]], "no batch was in flight at a kill");
}

/// A daemon killed just after it saw a process end (its run record cleared, the `exited` not
/// yet kept) leaves the process's start without its end: only the store knows of it. The next
/// daemon, started with PostgreSQL away, restarts the service and, once the store is back,
/// records the old process stopped, though by then the store names the new one as running
/// (it read what the last daemon left after storing its own starts, and lost that end).
#[test]
fn a_run_only_the_store_knew_of_gets_its_end_when_the_next_daemon_started_with_postgres_away() {
    let Some(pg) = postgres_away() else { return };
    pg.restart();
    let mut d = TestDaemon::prepare(BIN, "[services.web]\ncommand = \"sleep 1000\"\n");
    d.use_store(&pg.url);
    d.launch();
    d.wait_state("web", "up", LONG);
    let old = d.service("web")["info"]["pid"].as_u64().unwrap();
    wait_stored(&d);
    // The state that kill leaves: the process ended, its run record cleared, no `exited`.
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    let group = nix::unistd::Pid::from_raw(old as i32);
    nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL).unwrap();
    d.wait_until("the old process to be gone", LONG, || {
        upkeep_supervisor::procfs::process(old as u32)
            .is_none_or(|p| p.state == 'Z')
            .then_some(())
    });
    std::fs::remove_file(d.data_dir.join("run").join("web")).unwrap();

    pg.stop();
    d.launch();
    d.wait_state("web", "up", LONG);
    assert_ne!(d.service("web")["info"]["pid"].as_u64(), Some(old));
    pg.restart();
    wait_stored(&d);
    // `later` records the revision after what the last daemon left: once it is there, so
    // is the old process's end.
    d.wait_until("the store to be taken up", LONG, || {
        let rows = d.store_sql(
            "SELECT COUNT(*) FROM events WHERE node = '{node}' AND kind = 'config_applied'",
        );
        (rows == [["2"]]).then_some(())
    });
    let ends: Vec<String> = d
        .store_sql(
            "SELECT kind, detail FROM events WHERE node = '{node}' AND service = 'web' \
             AND kind IN ('exited', 'stale_stopped')",
        )
        .into_iter()
        .filter(|r| serde_json::from_str::<serde_json::Value>(&r[1]).unwrap()["pid"] == old)
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(ends, ["stale_stopped"], "the end of {old}");
    check_history(&d);
}

/// An operator's `stop` while the store is away is kept (in the data dir): a daemon started
/// again, with the store still away, leaves the service stopped; once the store is back it
/// has the stop too, and a start with the store up leaves it stopped as well.
#[test]
fn an_operators_stop_while_postgres_is_away_survives_a_daemon_restart() {
    let Some(pg) = postgres_away() else { return };
    let mut d = TestDaemon::prepare(
        BIN,
        "[services.web]\ncommand = \"sleep 1000\"\n\n[services.db]\ncommand = \"sleep 1000\"\n",
    );
    d.use_store(&pg.url);
    d.launch();
    d.wait_state("web", "up", LONG);
    d.wait_state("db", "up", LONG);
    let out = d.cli(&["stop", "db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("db", "stopped", LONG);
    // Maintenance asked meanwhile holds too.
    let out = d.cli(&["maintenance", "web", "--for", "1h", "--reason", "disk swap"]);
    assert!(out.status.success(), "{}", stderr(&out));

    for signal in [
        nix::sys::signal::Signal::SIGKILL,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        d.signal_daemon(signal);
        d.launch();
        d.wait_state("web", "maintenance", LONG);
        assert_eq!(
            d.service("web")["info"]["maintenance"]["reason"],
            "disk swap"
        );
        assert_eq!(d.service("db")["info"]["desired"], "stopped");
        assert_eq!(d.state("db"), "stopped");
        ls_says_unreachable(&d, "refused");
    }

    pg.restart();
    wait_stored(&d);
    d.wait_until("the store to have the stop", LONG, || {
        let rows =
            d.store_sql("SELECT name, desired FROM services WHERE node = '{node}' ORDER BY name");
        (rows == [["db", "stopped"], ["web", "running"]]).then_some(())
    });
    // From the store alone now: the same.
    d.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    std::fs::remove_file(d.data_dir.join("intent.json")).unwrap();
    d.launch();
    d.wait_state("web", "maintenance", LONG);
    assert_eq!(d.state("db"), "stopped");
    assert_eq!(store_health(&d)["reachable"], true);
}

/// The time no daemon watched (from a killed daemon to the next, which started without its
/// store) is recorded once the store is back, where it happened: the report counts it apart.
#[test]
fn the_time_no_daemon_watched_is_recorded_once_postgres_is_back() {
    let Some(pg) = postgres_away() else { return };
    pg.restart();
    let mut d = TestDaemon::prepare(BIN, "[services.s]\ncommand = \"sleep 1000\"\n");
    d.use_store(&pg.url);
    d.launch();
    d.wait_state("s", "up", LONG);
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    let gone = Instant::now();
    pg.stop();
    std::thread::sleep(Duration::from_millis(1500));
    d.launch();
    let away = gone.elapsed();
    d.wait_state("s", "up", LONG);
    // Watched, with the store away, for longer than the slack allowed below: this time must
    // not count as unwatched (the late record goes where it happened, not after the rest).
    std::thread::sleep(Duration::from_secs(4));
    pg.restart();
    wait_stored(&d);
    let unwatched = d.wait_until("the unwatched time in the report", LONG, || {
        let out = d.cli(&["report", "--since", "1h", "--json"]);
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let ms = r["current"]["services"]["s"]["unknown_ms"].as_u64()?;
        (ms > 0).then_some(ms)
    });
    // At least the time no daemon ran, at most that plus the moment before the kill: not
    // the time the store was away after the start.
    assert!(unwatched >= 1500, "{unwatched}");
    assert!(
        unwatched <= away.as_millis() as u64 + 3_000,
        "{unwatched} {away:?}"
    );
}

/// A wrong password is not a config error: the daemon starts and supervises, keeps trying,
/// and says why in `upkeep ls` and `GET /api/v1/daemon`.
#[test]
fn a_wrong_store_password_is_said_plainly_and_supervision_goes_on() {
    let Some(pg) = postgres_away() else { return };
    pg.restart();
    let mut d = TestDaemon::prepare(BIN, "[services.web]\ncommand = \"sleep 1000\"\n");
    let password = d.dir.path().join("db-password");
    std::fs::write(&password, "not-the-password\n").unwrap();
    d.use_store_with_password_file(&pg.url, &password);
    d.launch();
    d.wait_state("web", "up", LONG);
    ls_says_unreachable(&d, "password authentication failed");
    let out = d.cli(&["restart", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("web", "up", LONG);
}
