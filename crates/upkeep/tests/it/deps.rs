//! Start order and readiness: services start once what they depend on is ready (as the
//! dependency says it, by sd_notify, s6's fd, a log line or a deadline), stop dependents
//! first, and follow a dependency that goes down (stop, restart). The services are real
//! programs: a Python sd_notify client (`fixtures/notify_service.py`), shells, and Vite.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use upkeep_testkit::TestDaemon;

use crate::{BIN, LONG, daemon, stderr, stdout};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `command = [...]` running the sd_notify fixture with `args`.
pub(crate) fn notifier(args: &[&str]) -> String {
    let mut argv = vec![
        "python3".to_owned(),
        fixture("notify_service.py").display().to_string(),
    ];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    let quoted: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    format!("command = [{}]\n", quoted.join(", "))
}

/// A stored event: (id, service, kind, detail, at).
#[derive(Debug, Clone)]
struct Ev {
    id: i64,
    service: String,
    kind: String,
    detail: serde_json::Value,
    at: jiff::Timestamp,
}

/// Every stored event, oldest first.
fn events(d: &TestDaemon) -> Vec<Ev> {
    let mut all: Vec<Ev> = d
        .api_get("/api/v1/events?limit=10000")
        .as_array()
        .expect("events")
        .iter()
        .map(|e| Ev {
            id: e["id"].as_i64().unwrap(),
            service: e["service"].as_str().unwrap_or_default().to_owned(),
            kind: e["kind"].as_str().unwrap().to_owned(),
            detail: e["detail"].clone(),
            at: e["at"].as_str().unwrap().parse().unwrap(),
        })
        .collect();
    all.sort_by_key(|e| e.id);
    all
}

/// The events of `service` of `kind`, oldest first.
fn of<'a>(all: &'a [Ev], service: &str, kind: &str) -> Vec<&'a Ev> {
    all.iter()
        .filter(|e| e.service == service && e.kind == kind)
        .collect()
}

fn first<'a>(all: &'a [Ev], service: &str, kind: &str) -> &'a Ev {
    of(all, service, kind)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {kind} event of {service} in {all:#?}"))
}

fn last<'a>(all: &'a [Ev], service: &str, kind: &str) -> &'a Ev {
    of(all, service, kind)
        .into_iter()
        .last()
        .unwrap_or_else(|| panic!("no {kind} event of {service} in {all:#?}"))
}

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
}

/// Where `needle` is in the config file, as line:column.
fn line_col_of(d: &TestDaemon, needle: &str) -> String {
    let text = std::fs::read_to_string(&d.config).unwrap();
    let at = text.find(needle).expect("in the config");
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    format!("{line}:{col}")
}

/// The seed's story: an API that starts only once its database answers. db is ready a
/// second after it starts (it says so over NOTIFY_SOCKET); api waits for that, web for api.
#[test]
fn a_chain_starts_in_dependency_order_and_stops_in_reverse() {
    let d = daemon(&format!(
        "[services.db]\n{}ready = \"notify\"\n\n\
         [services.api]\ncommand = \"sleep 1000\"\ndepends_on = [\"db\"]\n\n\
         [services.web]\ncommand = \"sleep 1000\"\ndepends_on = [{{ service = \"api\", condition = \"started\" }}]\n",
        notifier(&["--ready-after", "1"])
    ));
    d.wait_state("web", "up", LONG);
    let all = events(&d);
    let db_started = first(&all, "db", "started");
    let db_ready = first(&all, "db", "ready");
    let api_started = first(&all, "api", "started");
    let web_started = first(&all, "web", "started");
    assert_eq!(db_ready.detail["how"], "notify");
    assert!(
        db_started.id < db_ready.id
            && db_ready.id < api_started.id
            && api_started.id < web_started.id,
        "{all:#?}"
    );
    assert!(db_ready.at.duration_since(db_started.at) >= jiff::SignedDuration::from_secs(1));
    assert!(api_started.at >= db_ready.at && web_started.at >= api_started.at);
    // While db was getting ready, api said what it waited for (again when that changed).
    let waiting = last(&all, "api", "waiting");
    assert!(waiting.id < api_started.id);
    assert_eq!(
        waiting.detail["reason"],
        "waiting for db to be ready (it is starting)"
    );
    assert_eq!(d.service("db")["info"]["ready"], true);
    // The graph, each service under what it depends on.
    let tree = stdout(&d.cli(&["ls", "--tree"]));
    assert_eq!(
        tree, "db  up\n└─ api (ready)  up\n   └─ web (started)  up\n",
        "{tree}"
    );

    // Stopping all: web first, then api, then db.
    let out = d.cli(&["stop", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = events(&d);
    let stopped = |s| last(&all, s, "stopped").id;
    let stopping = |s| last(&all, s, "stopping").id;
    assert!(stopped("web") < stopping("api"), "{all:#?}");
    assert!(stopped("api") < stopping("db"), "{all:#?}");
}

#[test]
fn a_cycle_or_an_unknown_dependency_is_refused_with_its_line_and_column() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    d.wait_state("a", "up", LONG);
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!(
            "{good}\n[services.b]\ncommand = \"sleep 1000\"\ndepends_on = [\"c\"]\n\n\
             [services.c]\ncommand = \"sleep 1000\"\ndepends_on = [\"a\", \"b\"]\n"
        ),
    )
    .unwrap();
    let at = line_col_of(&d, "\"b\"]");
    for verb in ["reload", "check"] {
        let out = d.cli(&[verb]);
        assert_eq!(out.status.code(), Some(2), "{verb}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("upkeep.toml:{at} (services.c.depends_on.1)")),
            "{err}"
        );
        assert!(
            err.contains("dependency cycle: b → c → b: none of these services could ever start"),
            "{err}"
        );
    }
    // The running config stays.
    let (code, _) = d.try_api("GET", "/api/v1/services/b", None).unwrap();
    assert_eq!(code, 404);
    // An unknown service, with what it may have meant.
    std::fs::write(
        &d.config,
        format!("{good}\n[services.b]\ncommand = \"sleep 1000\"\ndepends_on = [\"aa\"]\n"),
    )
    .unwrap();
    let at = line_col_of(&d, "\"aa\"");
    let err = stderr(&d.cli(&["check"]));
    assert!(
        err.contains(&format!("upkeep.toml:{at} (services.b.depends_on.0)")),
        "{err}"
    );
    assert!(err.contains("hint: did you mean `a`?"), "{err}");
}

/// `on_dependency_down = "restart"`: db is killed and comes back (ready a second later); api
/// keeps running meanwhile and restarts once db is ready again.
#[test]
fn a_dependent_restarts_once_its_dependency_is_ready_again() {
    let d = daemon(&format!(
        "[services.db]\n{}ready = \"notify\"\n\n\
         [services.api]\ncommand = \"sleep 1000\"\ndepends_on = [\"db\"]\non_dependency_down = \"restart\"\n",
        notifier(&["--ready-after", "1"])
    ));
    d.wait_state("api", "up", LONG);
    let (db, api) = (d.pid("db").unwrap(), d.pid("api").unwrap());
    sigkill(db);
    let new_api = d.wait_new_pid("api", api, LONG);
    assert_ne!(new_api, api);
    let all = events(&d);
    let db_back = last(&all, "db", "ready");
    let restart = first(&all, "api", "dependency_restart");
    assert_eq!(restart.detail["reason"], "db went down and is back");
    let api_exit = of(&all, "api", "exited")[0];
    let api_again = last(&all, "api", "started");
    // api ran on until db was ready again, then restarted.
    assert!(first(&all, "db", "exited").id < db_back.id, "{all:#?}");
    assert!(
        db_back.id < restart.id && restart.id < api_exit.id,
        "{all:#?}"
    );
    assert_eq!(api_exit.detail["pid"], api);
    assert!(api_exit.id < api_again.id);
    assert_eq!(d.state("db"), "up");
}

/// `on_dependency_down = "stop"`: api stops while db is down and starts again once it is
/// back; while it waits, `upkeep status` says for what.
#[test]
fn a_dependent_stops_while_its_dependency_is_down_and_starts_again() {
    let d = daemon(&format!(
        "[services.db]\n{}ready = \"notify\"\n\n\
         [services.api]\ncommand = \"sleep 1000\"\ndepends_on = [\"db\"]\non_dependency_down = \"stop\"\n",
        notifier(&["--ready-after", "1"])
    ));
    d.wait_state("api", "up", LONG);
    let (db, api) = (d.pid("db").unwrap(), d.pid("api").unwrap());
    sigkill(db);
    let new_api = d.wait_new_pid("api", api, LONG);
    let all = events(&d);
    let db_down = first(&all, "db", "exited");
    let api_stopping = first(&all, "api", "stopping");
    let db_back = last(&all, "db", "ready");
    let api_again = last(&all, "api", "started");
    assert!(db_down.id < api_stopping.id, "{all:#?}");
    assert!(
        api_stopping.id < db_back.id,
        "stopped before db was back: {all:#?}"
    );
    assert!(db_back.id < api_again.id, "{all:#?}");
    assert_eq!(api_again.detail["pid"], new_api);
    assert!(of(&all, "api", "dependency_restart").is_empty());

    // An operator stops db: api stops and waits, saying why, until db is started again.
    let out = d.cli(&["stop", "db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_until("api to wait for db", LONG, || {
        let info = d.service("api")["info"].clone();
        (info["state"] == "starting" && info["pid"].is_null()).then_some(())
    });
    let status = stdout(&d.cli(&["status", "api"]));
    assert!(
        status.contains("waiting: waiting for db to be ready (it is stopped)"),
        "{status}"
    );
    assert!(status.contains("depends on: db (ready)"), "{status}");
    let out = d.cli(&["start", "db"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_new_pid("api", new_api, LONG);
    assert!(d.service("api")["info"]["waiting"].is_null());
}

/// `ready = "notify"` with a real sd_notify client: its STATUS= lines are shown; with a
/// watchdog, a run that stops pinging (alive, hung) is restarted, and the next one pings.
#[test]
fn notify_status_is_shown_and_a_missed_watchdog_ping_heals() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("hung-once");
    let d = daemon(&format!(
        "[services.svc]\n{}ready = \"notify\"\nwatchdog = \"1s\"\nstop_timeout = \"2s\"\n",
        notifier(&[
            "--status",
            "warming up",
            "--then-status",
            "serving",
            "--hang-once",
            &marker.display().to_string(),
            "--pings",
            "2",
        ])
    ));
    d.wait_until("a watchdog_missed event", LONG, || {
        events(&d)
            .iter()
            .any(|e| e.kind == "watchdog_missed")
            .then_some(())
    });
    d.wait_until("the second run to be up", LONG, || {
        let info = d.service("svc")["info"].clone();
        (info["state"] == "up" && info["restarts"] == 1).then_some(())
    });
    let all = events(&d);
    let missed = first(&all, "svc", "watchdog_missed");
    assert_eq!(missed.detail["timeout_ms"], 1000);
    let heal = first(&all, "svc", "heal_requested");
    assert!(missed.id < heal.id);
    assert_eq!(heal.detail["reason"], "watchdog: no WATCHDOG=1 within 1s");
    assert_eq!(of(&all, "svc", "started").len(), 2);
    assert_eq!(of(&all, "svc", "ready").len(), 2);
    // The second run pings: it stays up through several watchdog periods (each of its pings
    // is seen; a miss would show as another event).
    let status = stdout(&d.cli(&["status", "svc"]));
    assert!(status.contains("says: serving"), "{status}");
    let json = d.service("svc");
    assert_eq!(json["info"]["notify_status"], "serving");
}

/// A hostile process cannot mark a service ready: a READY=1 from outside the service's
/// process group and cgroup is refused, and the service's own later READY=1 counts.
#[test]
fn a_notify_datagram_from_another_process_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let d = daemon(&format!(
        "[services.svc]\n{}ready = \"notify\"\n\n[services.after]\ncommand = \"sleep 1000\"\ndepends_on = [\"svc\"]\n",
        notifier(&["--wait-for", &go.display().to_string()])
    ));
    d.wait_until("svc to run, not ready", LONG, || {
        let info = d.service("svc")["info"].clone();
        (info["state"] == "starting" && info["pid"].is_number()).then_some(())
    });
    let socket = d.data_dir.join("notify").join("svc");
    let hostile = std::os::unix::net::UnixDatagram::unbound().unwrap();
    hostile.send_to(b"READY=1", &socket).unwrap();
    d.wait_until("the daemon to refuse the datagram", LONG, || {
        d.daemon_log()
            .contains("notify datagram refused: its sender is not one of the service's processes")
            .then_some(())
    });
    assert_eq!(d.state("svc"), "starting");
    assert_eq!(d.state("after"), "starting");
    assert!(of(&events(&d), "svc", "ready").is_empty());
    std::fs::write(&go, "").unwrap();
    d.wait_state("after", "up", LONG);
    assert_eq!(d.state("svc"), "up");
}

/// s6's notification fd: a newline on fd 3 is ready, and what depends on it starts then.
#[test]
fn a_newline_on_the_notification_fd_is_ready() {
    let d = daemon(
        "[services.s6]\ncommand = [\"sh\", \"-c\", \"sleep 0.5; echo >&3; exec sleep 1000\"]\nready = { fd = 3 }\n\n\
         [services.after]\ncommand = \"sleep 1000\"\ndepends_on = [\"s6\"]\n",
    );
    d.wait_state("after", "up", LONG);
    let all = events(&d);
    let ready = first(&all, "s6", "ready");
    assert_eq!(ready.detail["how"], "fd");
    assert!(first(&all, "s6", "started").id < ready.id);
    assert!(ready.id < first(&all, "after", "started").id);
}

/// `ready = { log = "ready in" }` with `npm run dev` of a real Vite app: ready when Vite
/// prints its `ready in N ms`, and what depends on it starts then. Needs `npm ci` in the
/// fixture (scripts/test does it).
#[test]
fn vite_is_ready_when_it_says_ready_in() {
    let app = fixture("vite-app");
    assert!(
        app.join("node_modules/.bin/vite").exists(),
        "run `npm ci` in {} (scripts/test does)",
        app.display()
    );
    let port = upkeep_testkit::free_port();
    let d = daemon(&format!(
        "[services.dev]\ncommand = [\"npm\", \"run\", \"dev\", \"--\", \"--port\", \"{port}\", \"--strictPort\", \"--host\", \"127.0.0.1\"]\ncwd = \"{}\"\nready = {{ log = \"ready in\" }}\nready_timeout = \"60s\"\n\n\
         [services.after]\ncommand = \"sleep 1000\"\ndepends_on = [\"dev\"]\n",
        app.display()
    ));
    d.wait_state("after", "up", LONG);
    let all = events(&d);
    let ready = first(&all, "dev", "ready");
    assert_eq!(ready.detail["how"], "log");
    assert!(ready.id < first(&all, "after", "started").id);
    // Vite said it, so it serves.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("vite listens once ready");
    let log = stdout(&d.cli(&["logs", "dev"]));
    assert!(log.contains("ready in"), "{log}");
}

/// A start not ready within `ready_timeout` is a failed start: the restart policy decides.
/// On the daemon's test clock: an hour's timeout passes in one request.
#[test]
fn a_start_not_ready_in_time_is_failed_and_the_restart_policy_applies() {
    let d = TestDaemon::start_on_test_clock(
        BIN,
        "[services.again]\ncommand = \"sleep 1000\"\nready = \"notify\"\nready_timeout = \"1h\"\n\n\
         [services.once]\ncommand = \"sleep 1000\"\nready = \"notify\"\nready_timeout = \"1h\"\nrestart = \"never\"\n",
    );
    d.wait_state("again", "starting", LONG);
    d.wait_state("once", "starting", LONG);
    let first_pid = d.pid("again").unwrap();
    d.advance_clock("59m");
    assert_eq!(d.pid("again"), Some(first_pid));
    assert!(of(&events(&d), "again", "ready_timed_out").is_empty());
    d.advance_clock("1m");
    d.wait_until("again restarted", LONG, || {
        d.pid("again").filter(|p| *p != first_pid)
    });
    d.wait_state("once", "exited", LONG);
    let all = events(&d);
    for s in ["again", "once"] {
        let timed_out = first(&all, s, "ready_timed_out");
        assert_eq!(timed_out.detail["timeout_ms"], 3_600_000);
        assert!(timed_out.id < first(&all, s, "exited").id);
    }
    assert!(
        first(&all, "again", "ready_timed_out").id < first(&all, "again", "restart_scheduled").id
    );
    assert_eq!(
        first(&all, "once", "not_restarted").detail["policy"],
        "never"
    );
    assert_eq!(d.state("again"), "recovering");
}

/// A reload that adds or removes an edge restarts nothing; the edge holds from then on. A
/// reload that removes services stops them dependents first, and so does a shutdown.
#[test]
fn reloads_change_edges_without_restarts_and_removals_and_shutdowns_go_in_order() {
    let three = "[services.db]\ncommand = \"sleep 1000\"\n\n[services.api]\ncommand = \"sleep 1000\"\n\n[services.other]\ncommand = \"sleep 1000\"\n";
    let mut d = daemon(three);
    for s in ["db", "api", "other"] {
        d.wait_state(s, "up", LONG);
    }
    let pids = |d: &TestDaemon| ["db", "api", "other"].map(|s| d.pid(s));
    let before = pids(&d);
    let edge = "[services.db]\ncommand = \"sleep 1000\"\n\n[services.api]\ncommand = \"sleep 1000\"\ndepends_on = [\"db\"]\non_dependency_down = \"stop\"\n\n[services.other]\ncommand = \"sleep 1000\"\n";
    d.write_services(edge);
    let out = d.cli(&["reload", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["changed"], serde_json::json!(["api"]));
    assert_eq!(pids(&d), before, "nothing restarted");
    // The edge holds: db stops, api stops with it and waits.
    assert!(d.cli(&["stop", "db"]).status.success());
    d.wait_until("api to wait for db", LONG, || {
        (d.state("api") == "starting" && d.pid("api").is_none()).then_some(())
    });
    // Without the edge, nothing holds it: it starts.
    d.write_services(three);
    assert!(d.cli(&["reload"]).status.success());
    d.wait_state("api", "up", LONG);
    assert_eq!(d.pid("other"), before[2]);
    assert_eq!(d.state("db"), "stopped");
    assert!(d.cli(&["start", "db"]).status.success());

    // Shutdown: api (depending on db again) stops before db.
    d.write_services(edge);
    assert!(d.cli(&["reload"]).status.success());
    d.wait_state("db", "up", LONG);
    d.wait_state("api", "up", LONG);
    let status = d.signal_daemon(Signal::SIGTERM);
    assert!(status.success());
    d.launch();
    let all = events(&d);
    let shutdown_api = last(&all, "api", "stopped").id;
    assert!(shutdown_api < last(&all, "db", "stopping").id, "{all:#?}");
    // Both were running, so both run again.
    d.wait_state("api", "up", LONG);

    // A reload that removes both: api first.
    d.write_services("[services.other]\ncommand = \"sleep 1000\"\n");
    let out = d.cli(&["reload", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let all = events(&d);
    assert!(
        last(&all, "api", "stopped").id < last(&all, "db", "stopping").id,
        "{all:#?}"
    );
}

/// Break-it, session 12: an external dependency down with an open incident came back from a
/// daemon restart `recovering`, and its dependent started at once (and, with `stop`, ran on
/// while it was down). It waits, as on the first start.
#[test]
fn an_external_dependency_down_across_a_daemon_restart_still_holds_its_dependent() {
    let port = upkeep_testkit::free_port();
    let mut d = daemon(&format!(
        "[services.ext]\nprobes = [{{ kind = \"tcp\", addr = \"127.0.0.1:{port}\", every = \"200ms\", failures = 1 }}]\nincident_after = \"0s\"\n\n[services.onext]\ncommand = \"sleep 1000\"\ndepends_on = [{{ service = \"ext\", condition = \"healthy\" }}]\non_dependency_down = \"stop\"\n"
    ));
    d.wait_state("ext", "down", LONG);
    d.wait_until("the outage to be an incident", LONG, || {
        (!d.service("ext")["incidents"][0].is_null()).then_some(())
    });
    assert!(d.pid("onext").is_none());
    let status = d.signal_daemon(Signal::SIGTERM);
    assert!(status.success());
    d.launch();
    // Several checks of ext after the restart, each down: onext has not run.
    d.wait_probe_checked_for("ext", "tcp", Duration::from_secs(1));
    d.wait_state("ext", "down", LONG);
    d.wait_probe_checked_for("ext", "tcp", Duration::from_secs(1));
    let all = events(&d);
    assert!(
        of(&all, "onext", "started").is_empty(),
        "onext started while ext was down: {all:#?}"
    );
    assert!(d.pid("onext").is_none());
}

/// Break-it, session 12: `upkeep start s3` answered "started" (exit 0) while s3 waited,
/// for ever, for s2, which an operator had stopped. The answer says what it waits for, and
/// that nothing but a start of s2 starts it.
#[test]
fn a_start_that_waits_for_a_stopped_dependency_says_so() {
    let d = daemon(
        "[services.s2]\ncommand = \"sleep 1000\"\n\n[services.s3]\ncommand = \"sleep 1000\"\ndepends_on = [\"s2\"]\n",
    );
    d.wait_state("s3", "up", LONG);
    for name in ["s3", "s2"] {
        assert!(d.cli(&["stop", name]).status.success());
    }
    let out = d.cli(&["start", "s3"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("s3: waiting: waiting for s2 to be ready"),
        "{text}"
    );
    assert!(text.contains("`upkeep start s2`"), "{text}");
    // Started, s2 lets it go.
    assert!(d.cli(&["start", "s2"]).status.success());
    d.wait_state("s3", "up", LONG);
    let out = d.cli(&["start", "s3"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Break-it, session 12: `upkeep status` of a run that had not said it was ready showed
/// `starting` and nothing of what it waited for.
#[test]
fn status_says_what_a_run_not_yet_ready_waits_for() {
    let d = daemon(
        "[services.n]\ncommand = \"sleep 1000\"\nready = \"notify\"\nready_timeout = \"300s\"\n\n[services.l]\ncommand = \"sleep 1001\"\nready = { log = \"ready in\" }\n",
    );
    d.wait_until("n to run", LONG, || d.pid("n"));
    d.wait_until("l to run", LONG, || d.pid("l"));
    let out = stdout(&d.cli(&["status", "n"]));
    assert!(out.contains("for READY=1 on its notify socket ("), "{out}");
    assert!(out.contains("s left of its ready_timeout"), "{out}");
    let out = stdout(&d.cli(&["status", "l"]));
    assert!(
        out.contains("for a line of its output matching `ready in`"),
        "{out}"
    );
}
