//! systemd's value syntaxes that upkeep settings come from: time spans (`1min 30s`), sizes
//! (`512M`) and the `kill -SIG $MAINPID` commands that stand for a signal.

use std::time::Duration;

use super::exec;

/// systemd's time spans: "5", "5s", "1min 30s", "500ms", "2h"; a bare number is seconds.
pub(super) fn timespan(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = rest[n_end..].trim_start();
        let u_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "us" | "usec" => 1e-6,
            "ms" | "msec" => 1e-3,
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604_800.0,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(n * secs).ok()?;
        rest = rest[u_end..].trim_start();
    }
    Some(total)
}

/// systemd's sizes: bytes, or K, M, G, T (powers of 1024).
pub(super) fn bytes(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// `/bin/kill -HUP $MAINPID` (and `kill -s HUP $MAINPID`) → "SIGHUP".
pub(super) fn kill_signal(line: &str) -> Option<String> {
    let words = exec::split_words(line.trim_start_matches(['-', '@', '+', '!', ':'])).ok()?;
    let (prog, rest) = words.split_first()?;
    if !(prog == "kill" || prog.ends_with("/kill")) {
        return None;
    }
    let sig = match rest {
        [s, pid] if s.starts_with('-') => {
            (pid == "$MAINPID" || pid == "${MAINPID}").then(|| s[1..].to_owned())
        }
        [flag, s, pid] if flag == "-s" => {
            (pid == "$MAINPID" || pid == "${MAINPID}").then(|| s.clone())
        }
        _ => None,
    }?;
    let upper = sig.to_ascii_uppercase();
    Some(if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_time_spans() {
        assert_eq!(timespan("1h 2min 3s"), Some(Duration::from_secs(3723)));
        assert_eq!(timespan("20"), Some(Duration::from_secs(20)));
        assert_eq!(timespan("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(timespan("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(timespan("soon"), None);
        assert_eq!(timespan(""), None);
    }

    #[test]
    fn reads_sizes() {
        assert_eq!(bytes("512M"), Some(512 << 20));
        assert_eq!(bytes("2G"), Some(2 << 30));
        assert_eq!(bytes("4096"), Some(4096));
        assert_eq!(bytes("50%"), None);
        assert_eq!(bytes("infinity"), None);
    }

    #[test]
    fn finds_the_signal_of_a_kill_command() {
        assert_eq!(
            kill_signal("/bin/kill -HUP $MAINPID").as_deref(),
            Some("SIGHUP")
        );
        assert_eq!(
            kill_signal("kill -s usr2 ${MAINPID}").as_deref(),
            Some("SIGUSR2")
        );
        assert_eq!(
            kill_signal("-/bin/kill -SIGQUIT $MAINPID").as_deref(),
            Some("SIGQUIT")
        );
        assert_eq!(kill_signal("/usr/sbin/nginx -s reload"), None);
        assert_eq!(kill_signal("/bin/kill -HUP 1"), None);
    }
}
