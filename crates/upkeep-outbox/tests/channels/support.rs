//! Starting the Python receivers, building channels from config text, sample notices.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use upkeep_core::i18n::Lang;
use upkeep_outbox::{
    AffectedService, BuildContext, Channel, ChannelConfig, IdempotencyKey, Impact, Notice,
    NoticeKind, Priority, ReaderZone, Rendered, Templates,
};

/// The secrets the receivers check against (the environment of both sides).
pub const SECRETS: [(&str, &str); 4] = [
    ("WEBHOOK_SECRET", "whsec-test-7f3a"),
    ("DINGTALK_SECRET", "SECdingtalk-test-91c2"),
    ("FEISHU_SECRET", "feishu-test-04be"),
    ("TELEGRAM_TOKEN", "123456:test-token"),
];

pub fn secret(name: &str) -> &'static str {
    SECRETS.iter().find(|(k, _)| *k == name).unwrap().1
}

/// A Python helper on a port of its own, killed when dropped.
pub struct Helper {
    _child: tokio::process::Child,
    pub port: u16,
    out: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Helper {
    /// Starts `tests/<script>` writing records to a fresh file; waits for its port line.
    pub async fn start(script: &str, args: &[&str]) -> Helper {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("records.jsonl");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = tokio::process::Command::new("python3")
            .arg(format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR")))
            .arg(&out)
            .args(args)
            .envs(SECRETS)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs it)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        let port = match line {
            Ok(Ok(Some(l))) => l.trim().parse().unwrap(),
            other => panic!(
                "{script} did not print its port within 30 s ({other:?}); its stderr:\n{}",
                std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
            ),
        };
        Helper {
            _child: child,
            port,
            out,
            dir,
        }
    }

    /// Every record so far, oldest first.
    pub fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn last(&self) -> Value {
        self.records()
            .pop()
            .expect("the receiver recorded a request")
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Builds a channel from its TOML config, with `env` as the whole environment.
pub fn build(toml_text: &str, env: HashMap<String, String>) -> Arc<dyn Channel> {
    try_build(toml_text, env).unwrap_or_else(|e| panic!("{e}"))
}

pub fn try_build(
    toml_text: &str,
    env: HashMap<String, String>,
) -> Result<Arc<dyn Channel>, upkeep_outbox::ConfigErrors> {
    let config: ChannelConfig = toml::from_str(toml_text).unwrap();
    let lookup = move |k: &str| env.get(k).cloned();
    let ctx = BuildContext {
        clock: upkeep_core::Clock::system(),
        base_dir: PathBuf::from("."),
        env: &lookup,
    };
    config.build("test", &ctx)
}

pub fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    SECRETS
        .iter()
        .chain(pairs)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k).unwrap()
}

/// An incident notice with every field set, read in Shanghai.
pub fn notice(lang: Lang) -> Notice {
    let start: jiff::Timestamp = "2026-11-30T18:00:00Z".parse().unwrap();
    Notice {
        kind: NoticeKind::IncidentResolved,
        title: "Checkout API unavailable".into(),
        reason: "the primary database ran out of disk".into(),
        start,
        expected_end: Some(start + SignedDuration::from_hours(1)),
        actual_end: Some(start + SignedDuration::from_mins(90)),
        services: vec![
            AffectedService {
                name: upkeep_core::ServiceName::new("api").unwrap(),
                impact: Impact::Outage,
            },
            AffectedService {
                name: upkeep_core::ServiceName::new("web").unwrap(),
                impact: Impact::Degraded,
            },
        ],
        alternatives: Some("pay by bank transfer".into()),
        follow_up: Some("https://status.example.com or ops@example.com".into()),
        priority: Priority::Emergency,
        link: Some("https://status.example.com/incidents/42".parse().unwrap()),
        duration: Some(SignedDuration::from_mins(90)),
        runbook: Some("https://wiki.example.com/runbooks/api".into()),
        unsubscribe: None,
        lang,
        time_zone: ReaderZone::new("Asia/Shanghai").unwrap(),
    }
}

pub fn rendered(lang: Lang) -> Rendered {
    Templates::builtin().render(&notice(lang)).unwrap()
}

/// What people must be able to read in any channel: every content field of [`notice`].
pub fn assert_every_field(kind: &str, text: &str) {
    for want in [
        "Checkout API unavailable",
        "the primary database ran out of disk",
        "2026-12-01 02:00 CST (UTC+08:00)",
        "2026-12-01 03:00 CST (UTC+08:00)",
        "2026-12-01 03:30 CST (UTC+08:00)",
        "api",
        "outage",
        "web",
        "degraded",
        "pay by bank transfer",
        "https://status.example.com or ops@example.com",
        "Emergency",
        "https://status.example.com/incidents/42",
        "1h 30m",
        "https://wiki.example.com/runbooks/api",
    ] {
        assert!(
            text.contains(want),
            "{kind}: {want:?} missing from:\n{text}"
        );
    }
}
