//! A real supervisor and real processes: the permit holds, releases, stops and restarts a
//! service, and each readiness signal (notify with its STATUS= and watchdog, the s6 fd) comes
//! through as events. The watchdog's deadline is on a frozen test clock, moved by the test.
//!
//! One test function: the reaper reaps every child of the process, so two supervisors' tests
//! running at once in one process would take each other's children.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use upkeep_core::{Actor, Event, EventKind, Permit, ServiceName, TestClock};
use upkeep_supervisor::{
    Lineage, LogHub, Reaper, Supervisor, SupervisorCommand, SupervisorDeps, SupervisorHandle,
};

const GUARD: Duration = Duration::from_secs(20);
const SETTLE: Duration = Duration::from_secs(5);

struct Rig {
    dir: tempfile::TempDir,
    deps: SupervisorDeps,
    events: mpsc::Receiver<Event>,
    tc: TestClock,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Rig {
    fn service(
        &self,
        name: &str,
        extra: &str,
        permit: Permit,
    ) -> (SupervisorHandle, watch::Sender<Permit>) {
        let toml = format!("[services.{name}]\n{extra}");
        let config = upkeep_config::parse(&self.dir.path().join("upkeep.toml"), &toml)
            .unwrap_or_else(|e| panic!("{e}"));
        let cfg = config
            .services
            .into_values()
            .next()
            .unwrap()
            .managed
            .unwrap();
        let (tx, rx) = watch::channel(permit);
        let name = ServiceName::new(name).unwrap();
        let h = Supervisor::spawn(
            name,
            cfg,
            true,
            &self.deps,
            rx,
            self.cancel.child_token(),
            &self.tasks,
        );
        (h, tx)
    }

    /// The next event's kind, skipping status-free noise (group clean-ups).
    async fn next(&mut self) -> EventKind {
        loop {
            let e = tokio::time::timeout(GUARD, self.events.recv())
                .await
                .expect("no event from the supervisor")
                .expect("the supervisor ended");
            if !matches!(e.kind, EventKind::GroupCleaned { .. }) {
                return e.kind;
            }
        }
    }

    async fn tags(&mut self, n: usize) -> Vec<&'static str> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.next().await.tag());
        }
        out
    }
}

fn wait(reason: &str, stop: bool) -> Permit {
    Permit {
        wait: Some(reason.into()),
        stop,
        ..Default::default()
    }
}

/// A Python service that sends `lines` (one datagram each, `;`-separated) to NOTIFY_SOCKET,
/// then sleeps.
fn notifier(lines: &str) -> String {
    format!(
        "command = [\"python3\", \"-c\", \"\"\"\nimport os, socket, time\naddr = os.environ['NOTIFY_SOCKET']\naddr = '\\\\0' + addr[1:] if addr.startswith('@') else addr\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\nfor line in '{lines}'.split(';'):\n    s.sendto(line.encode(), addr)\ntime.sleep(1000)\n\"\"\"]\nready = \"notify\"\nstop_timeout = \"2s\"\n"
    )
}

#[tokio::test]
async fn permits_and_readiness_signals_drive_a_real_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let tc = TestClock::frozen("2030-01-01T00:00:00Z".parse().unwrap());
    let clock = tc.clock();
    let (tx, events) = mpsc::channel(256);
    let deps = SupervisorDeps {
        reaper: Reaper::start().unwrap(),
        logs: LogHub::start(dir.path().join("logs"), tx.clone(), clock.clone()).unwrap(),
        events: tx,
        lineage: Lineage::open(dir.path(), "readiness-test", true).unwrap(),
        clock: clock.clone(),
        notify_dir: dir.path().join("notify"),
        seal: Default::default(),
    };
    let mut r = Rig {
        dir,
        deps,
        events,
        tc,
        cancel: CancellationToken::new(),
        tasks: TaskTracker::new(),
    };

    // Held by its dependencies: it says for what, and starts the moment they allow it.
    let sleeper = "command = \"sleep 1000\"\nstop_timeout = \"2s\"\n";
    let (api, permit) = r.service("api", sleeper, wait("waiting for db", false));
    assert_eq!(
        r.next().await,
        EventKind::Waiting {
            reason: "waiting for db".into()
        }
    );
    // A new reason is said; the same one is not said again.
    permit.send_replace(wait("waiting for db, cache", false));
    permit.send_replace(wait("waiting for db, cache", false));
    assert_eq!(r.next().await.tag(), "waiting");
    permit.send_replace(Permit::default());
    assert_eq!(r.next().await.tag(), "started");
    // Waiting without stop: it keeps running. With stop: it stops, and waits.
    permit.send_replace(wait("waiting for db", false));
    permit.send_replace(wait("waiting for db", true));
    assert_eq!(r.tags(3).await, ["stopping", "exited", "waiting"]);
    permit.send_replace(Permit::default());
    assert_eq!(r.next().await.tag(), "started");
    // A restart asked for by the gate.
    permit.send_replace(Permit {
        restarts: 1,
        restart_reason: "db went down and is back".into(),
        ..Default::default()
    });
    assert_eq!(
        r.next().await,
        EventKind::DependencyRestart {
            reason: "db went down and is back".into()
        }
    );
    assert_eq!(r.tags(3).await, ["stopping", "exited", "started"]);
    // An operator's stop ends the waiting too.
    permit.send_replace(wait("waiting for db", true));
    assert_eq!(r.tags(3).await, ["stopping", "exited", "waiting"]);
    api.request(|done| SupervisorCommand::Stop {
        by: Actor::Upkeep,
        done,
    })
    .await;
    assert_eq!(r.next().await.tag(), "stopped");
    permit.send_replace(Permit::default());
    api.remove();

    // notify: READY=1 and STATUS= over the socket; the watchdog runs from ready on.
    let cfg = format!(
        "{}watchdog = \"10s\"\n",
        notifier("STATUS=warming up;READY=1;WATCHDOG=1")
    );
    let (db, _p) = r.service("db", &cfg, Permit::default());
    assert_eq!(r.next().await.tag(), "started");
    assert_eq!(
        r.next().await,
        EventKind::Ready {
            how: "notify".into()
        }
    );
    assert_eq!(db.notify_status().as_deref(), Some("warming up"));
    // No ping for 10 s on the clock: missed, once.
    let pending = async {
        while r.tc.pending().is_empty() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(GUARD, pending)
        .await
        .expect("the watchdog armed");
    assert!(r.tc.advance(Duration::from_secs(10), SETTLE).await);
    assert_eq!(
        r.next().await,
        EventKind::WatchdogMissed { timeout_ms: 10_000 }
    );
    assert!(
        r.tc.pending().is_empty(),
        "disarmed until the next run is ready"
    );
    db.remove();
    assert_eq!(r.tags(3).await, ["stopping", "exited", "stopped"]);

    // s6's notification fd.
    let cfg = "command = [\"sh\", \"-c\", \"echo >&3; exec sleep 1000\"]\nready = { fd = 3 }\nstop_timeout = \"2s\"\n";
    let (s6, _p) = r.service("s6", cfg, Permit::default());
    assert_eq!(r.next().await.tag(), "started");
    assert_eq!(r.next().await, EventKind::Ready { how: "fd".into() });
    s6.remove();
    assert_eq!(r.tags(3).await, ["stopping", "exited", "stopped"]);

    r.cancel.cancel();
    r.tasks.close();
    tokio::time::timeout(GUARD, r.tasks.wait()).await.unwrap();
}
