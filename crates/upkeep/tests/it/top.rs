//! `upkeep top` in a real terminal: tmux runs it in a 160×40 window, the test reads the screen
//! with `capture-pane` and types with `send-keys`; and the live route behind it
//! (`/api/v1/live/services`), read over the control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{BIN, LONG, daemon, stderr};

/// A tmux server of the test's own (its own socket: no other tmux is touched), running one
/// command in a detached session. Killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Runs `command` (through sh) in a 160×40 window. When it ends, the window stays, saying
    /// how it ended, so a failed start is on the screen the test reads.
    fn start(command: &str) -> Tmux {
        let socket = format!("upkeep-top-{}", upkeep_testkit::unique());
        let wrapped = format!("{command}; echo \"top exited with $?\"; sleep 600");
        let ok = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "160", "-y", "40", "-s", "top", "sh", "-c", &wrapped])
            .env("TERM", "xterm-256color")
            .status()
            .expect("run tmux (apt install tmux)");
        assert!(ok.success(), "tmux new-session failed");
        Tmux { socket }
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "top"]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &str) {
        let o = self.tmux(&["send-keys", "-t", "top", keys]);
        assert!(o.status.success(), "send-keys: {}", stderr(&o));
    }

    /// Waits until the screen satisfies `check`, or fails showing the last screen.
    fn wait_screen(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LONG;
        loop {
            let s = self.screen();
            if check(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {LONG:?} waiting for the screen to show {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The screen's row of service `name` (the table's line that starts with it).
fn row<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| {
        l.trim_start_matches(['│', ' ', '>'])
            .starts_with(&format!("{name} "))
    })
}

const SERVICES: &str = r#"
[services.api]
command = "echo api says hello; exec sleep 1000"

[services.web]
command = "echo web says hello from $$; exec sleep 1000"
"#;

#[test]
fn top_shows_services_and_restarts_stops_and_starts_the_selected_one() {
    let d = daemon(SERVICES);
    d.wait_state("api", "up", LONG);
    d.wait_state("web", "up", LONG);
    let api = d.pid("api").unwrap();
    let web = d.pid("web").unwrap();

    let t = Tmux::start(&format!(
        "UPKEEP_LANG=en {BIN} -c {} top",
        d.config.display()
    ));
    let s = t.wait_screen("both services, up, with their pids and api's log", |s| {
        row(s, "api").is_some_and(|r| r.contains(" up ") && r.contains(&api.to_string()))
            && row(s, "web").is_some_and(|r| r.contains(" up ") && r.contains(&web.to_string()))
            && s.contains("api says hello")
    });
    for column in [
        "name", "state", "pid", "cpu", "memory", "restarts", "uptime",
    ] {
        assert!(s.contains(column), "no column {column}:\n{s}");
    }
    // Memory is the daemon's reading of the group (a sleep has some resident pages).
    assert!(
        row(&s, "web").is_some_and(|r| r.contains("KiB") || r.contains("MiB")),
        "{s}"
    );

    assert!(
        row(&s, "api").is_some_and(|r| r.contains("> api")),
        "api is selected:\n{s}"
    );
    // Down to web: its log replaces api's.
    t.keys("j");
    let s = t.wait_screen("web's log", |s| {
        s.contains("web stdout") && s.contains(&format!("web says hello from {web}"))
    });
    assert!(!s.contains("api says hello"), "{s}");

    // r restarts the selected service, and only it.
    t.keys("r");
    let new = d.wait_new_pid("web", web, LONG);
    assert_eq!(d.pid("api"), Some(api), "api was not selected");
    t.wait_screen("web's new pid in its row and the new run's log line", |s| {
        row(s, "web").is_some_and(|r| r.contains(&new.to_string()) && r.contains(" up "))
            && s.contains(&format!("web says hello from {new}"))
    });
    let status = d.cli(&["status", "web"]);
    let text = crate::stdout(&status);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(text.contains(&new.to_string()), "{text}");
    assert!(
        text.contains("restart_requested (by "),
        "the operator's restart: {text}"
    );
    let restarts: Vec<_> = d
        .events("web")
        .into_iter()
        .filter(|(kind, _)| kind == "restart_requested")
        .collect();
    assert_eq!(
        restarts.len(),
        1,
        "one operator restart: {restarts:?}\n{text}"
    );

    // x stops it, s starts it again.
    t.keys("x");
    d.wait_state("web", "stopped", LONG);
    t.wait_screen("web stopped", |s| {
        row(s, "web").is_some_and(|r| r.contains("stopped"))
    });
    t.keys("s");
    d.wait_state("web", "up", LONG);
    let again = d.pid("web").unwrap();
    t.wait_screen("web up again with its new pid", |s| {
        row(s, "web").is_some_and(|r| r.contains(&again.to_string()) && r.contains(" up "))
    });

    t.keys("q");
    t.wait_screen("top to end cleanly", |s| s.contains("top exited with 0"));
}

/// The view outlives its daemon: through `upkeep upgrade` (the stream ends when the old image
/// lets go) and a daemon stopped and started again, it says so, connects again and acts.
#[test]
fn top_connects_again_after_an_upgrade_and_a_daemon_restart() {
    let mut d = daemon(SERVICES);
    d.wait_state("api", "up", LONG);
    let api = d.pid("api").unwrap();
    let t = Tmux::start(&format!(
        "UPKEEP_LANG=en {BIN} -c {} top",
        d.config.display()
    ));
    t.wait_screen("api up", |s| {
        row(s, "api").is_some_and(|r| r.contains(&api.to_string()))
    });
    let up = d.cli(&["upgrade"]);
    assert!(up.status.success(), "{}", stderr(&up));
    t.wait_screen("the view connected again", |s| {
        s.contains("connected to the daemon again")
    });
    assert_eq!(d.pid("api"), Some(api));

    // Down: the view says it lost the daemon and waits; up again: a new api, shown.
    let down = d.cli(&["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    t.wait_screen("the view reconnecting", |s| s.contains("reconnecting"));
    d.launch();
    d.wait_state("api", "up", LONG);
    let new = d.pid("api").unwrap();
    t.wait_screen("api's new pid after the daemon came back", |s| {
        s.contains("connected to the daemon again")
            && row(s, "api").is_some_and(|r| r.contains(&new.to_string()))
    });
    // Keys act on the new daemon.
    t.keys("x");
    d.wait_state("api", "stopped", LONG);
    t.keys("q");
    t.wait_screen("top to end cleanly", |s| s.contains("top exited with 0"));
}

#[test]
fn top_needs_a_terminal() {
    let d = daemon(SERVICES);
    let o = d.cli(&["top"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
}

/// Opens `GET path` on the control socket and returns a reader of its (chunked) body's lines.
fn open_stream(socket: &std::path::Path, path: &str) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(LONG)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: upkeep\r\n\r\n").unwrap();
    BufReader::new(s)
}

/// The next service list on a live stream (chunk sizes and headers skipped).
fn next_list(r: &mut BufReader<UnixStream>) -> Vec<serde_json::Value> {
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).expect("a line within the timeout");
        assert!(n > 0, "the live stream ended");
        if line.starts_with('[') {
            return serde_json::from_str(&line).unwrap();
        }
    }
}

#[test]
fn the_live_list_comes_at_once_and_again_when_an_event_is_committed() {
    let d = daemon(SERVICES);
    d.wait_state("web", "up", LONG);
    let web = d.pid("web").unwrap();
    // Every minute: a list sooner than that was pushed by an event.
    let mut r = open_stream(&d.socket(), "/api/v1/live/services?every=60s");
    let first = next_list(&mut r);
    let names: Vec<&str> = first.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["api", "web"]);
    assert!(
        first[1]["memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "{first:?}"
    );

    let o = d.cli(&["restart", "web"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let new = d.wait_new_pid("web", web, LONG);
    let deadline = Instant::now() + LONG;
    loop {
        let list = next_list(&mut r);
        if list[1]["pid"].as_u64() == Some(new as u64) && list[1]["state"] == "up" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no list with web's new pid {new}"
        );
    }
}

#[test]
fn the_live_list_refuses_a_bad_interval() {
    let d = daemon(SERVICES);
    for bad in ["soon", "10ms", "1h"] {
        let (code, body) = d
            .try_api("GET", &format!("/api/v1/live/services?every={bad}"), None)
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body.contains("500ms to 60s"), "{body}");
    }
}
