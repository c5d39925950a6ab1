//! Logs: captured line by line with timestamps, rotated by size, never stalling the service.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use crate::{BIN, LONG, daemon, stdout};

const LINES: u64 = 500_000; // 100 bytes each: 50 MB

/// Every line number found in the service's stdout log files, in file order (oldest first).
fn logged_numbers(dir: &std::path::Path) -> (Vec<u64>, Vec<u64>) {
    let mut files: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.to_owned();
            let rest = name.strip_prefix("big.out.log")?;
            let n = if rest.is_empty() {
                0
            } else {
                rest.trim_start_matches('.').parse().ok()?
            };
            Some((n, p))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut numbers = Vec::new();
    let mut sizes = Vec::new();
    for (_, p) in files {
        let text = std::fs::read_to_string(&p).unwrap();
        sizes.push(text.len() as u64);
        for line in text.lines() {
            // "2026-01-01T00:00:00.000Z line 00000042 xxxx..."
            if let Some(n) = line
                .get(25..)
                .and_then(|l| l.strip_prefix("line "))
                .and_then(|l| l.get(..8))
            {
                numbers.push(n.parse().unwrap());
            }
        }
    }
    (numbers, sizes)
}

#[test]
fn fifty_megabytes_of_output_rotate_at_the_limit_and_every_line_is_kept_or_counted() {
    let script = format!(
        "import sys\\nw = sys.stdout.write\\nfor i in range({LINES}):\\n    w('line %08d %s\\\\n' % (i, 'x' * 85))\\n"
    );
    let d = daemon(&format!(
        "[services.big]\ncommand = [\"python3\", \"-c\", \"{script}\"]\nrestart = \"never\"\nlog = {{ max_size = \"5MiB\", keep = 30 }}\n"
    ));
    d.wait_state("big", "exited", LONG * 3);
    let logs = d.data_dir.join("logs");
    let (numbers, sizes) = d.wait_until(
        "every line to be written or counted as dropped",
        LONG,
        || {
            let (numbers, sizes) = logged_numbers(&logs);
            let dropped = d.service("big")["info"]["dropped_lines"].as_u64().unwrap();
            (numbers.len() as u64 + dropped == LINES).then_some((numbers, sizes))
        },
    );
    assert!(
        sizes.len() >= 12,
        "expected rotation into many files, got sizes {sizes:?}"
    );
    for s in &sizes {
        assert!(*s <= 5 * 1024 * 1024, "a file passed max_size: {sizes:?}");
    }
    // Rotated files are full to within one line of the limit.
    for s in &sizes[..sizes.len() - 1] {
        assert!(*s > 5 * 1024 * 1024 - 200, "rotated early: {sizes:?}");
    }
    // Lines are in order, none twice.
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "lines out of order or repeated"
    );
    assert_eq!(d.service("big")["info"]["last_exit"]["code"], 0);
}

#[test]
fn logs_shows_the_last_lines_of_stdout_or_stderr_with_timestamps() {
    let d = daemon(
        "[services.talk]\ncommand = \"for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; sleep 1000\"\n",
    );
    d.wait_state("talk", "up", LONG);
    d.wait_until("five lines in the log", LONG, || {
        let o = d.cli(&["logs", "talk", "-n", "2"]);
        stdout(&o).contains("out5").then_some(())
    });
    let o = d.cli(&["logs", "talk", "-n", "2"]);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].ends_with(" out4") && lines[1].ends_with(" out5"),
        "{lines:?}"
    );
    lines[0][..24]
        .parse::<jiff::Timestamp>()
        .expect("line starts with an RFC 3339 time");
    let o = d.cli(&["logs", "talk", "--stderr", "-n", "1"]);
    assert!(stdout(&o).trim_end().ends_with(" err5"), "{}", stdout(&o));
    let o = d.cli(&["logs", "talk", "-n", "3", "--json"]);
    let objs: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        objs.iter()
            .map(|o| o["line"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["out3", "out4", "out5"]
    );
    assert!(
        objs[0]["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    let o = d.cli(&["logs", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn logs_follow_streams_new_lines() {
    let d = daemon(
        "[services.tick]\ncommand = \"i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.05; done\"\n",
    );
    d.wait_state("tick", "up", LONG);
    let mut child = Command::new(BIN)
        .args(["logs", "tick", "-f", "-n", "0", "-c"])
        .arg(&d.config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    // A deadline for the reads (issue 14, F24): past it the follower is killed, so a read
    // that would wait forever ends, and the test fails saying so instead of hanging.
    let follower = child.id();
    let (done, deadline) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if deadline.recv_timeout(LONG).is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(follower as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let mut seen = Vec::new();
    for _ in 0..5 {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "no new line within {LONG:?}; seen so far: {seen:?}");
        seen.push(
            line.trim_end()
                .rsplit(' ')
                .next()
                .unwrap()
                .trim_start_matches("tick")
                .parse::<u64>()
                .unwrap(),
        );
    }
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    let _ = done.send(());
    child.kill().unwrap();
    let _ = child.wait();
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
}

/// D19: `upkeep logs` wrote what services print raw to the terminal, so a line could clear
/// the screen, set the window title or hide itself behind a carriage return. Control
/// characters now show escaped (tab and line ends kept, bytes that are not UTF-8 as `\xNN`);
/// `--raw` writes the bytes as they are, and `--json` stays exact.
#[test]
fn issue_14_logs_show_control_characters_escaped_unless_raw() {
    let d = daemon(
        "[services.esc]\ncommand = \"printf 'a\\\\033]0;pwned\\\\007\\\\033[2Jb\\\\tc\\\\rd\\\\351\\\\n'; sleep 1000\"\n",
    );
    d.wait_state("esc", "up", LONG);
    let raw = d.wait_until("the line in the log", LONG, || {
        let o = d.cli(&["logs", "esc", "--raw"]);
        o.stdout.ends_with(b"\n").then_some(o.stdout)
    });
    assert!(
        raw.ends_with(b" a\x1b]0;pwned\x07\x1b[2Jb\tc\rd\xe9\n"),
        "--raw keeps the bytes: {:?}",
        String::from_utf8_lossy(&raw)
    );
    let o = d.cli(&["logs", "esc"]);
    assert!(o.status.success());
    assert!(
        stdout(&o).ends_with(concat!(
            r" a\x1b]0;pwned\x07\x1b[2Jb",
            "\t",
            r"c\rd\xe9",
            "\n"
        )),
        "{:?}",
        stdout(&o)
    );
    let o = d.cli(&["logs", "esc", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["line"], "a\u{1b}]0;pwned\u{7}\u{1b}[2Jb\tc\rd\u{fffd}");
}
