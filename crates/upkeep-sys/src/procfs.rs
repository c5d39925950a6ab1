//! Reading /proc: process start times (to recognise our own processes after a daemon restart)
//! and CPU and memory per process group (for `upkeep ls`).

use std::collections::HashMap;

/// Fields of /proc/PID/stat we use. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
struct Stat {
    state: char,
    ppid: u32,
    pgrp: u32,
    session: u32,
    ticks: u64,
    start_ticks: u64,
    rss_pages: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15) ... starttime(22) vsize(23) rss(24)
    let at = |field: usize| f.get(field - 3).copied();
    Some(Stat {
        state: at(3)?.chars().next()?,
        ppid: at(4)?.parse().ok()?,
        pgrp: at(5)?.parse().ok()?,
        session: at(6)?.parse().ok()?,
        ticks: at(14)?.parse::<u64>().ok()? + at(15)?.parse::<u64>().ok()?,
        start_ticks: at(22)?.parse().ok()?,
        rss_pages: at(24)?.parse().ok()?,
    })
}

/// The start time of `pid` in clock ticks after boot, or None if it does not exist.
pub fn start_ticks(pid: u32) -> Option<u64> {
    read_stat(pid).map(|s| s.start_ticks)
}

/// The start time of `pid` if it still runs: None for a zombie (dead, not yet reaped: an
/// orphan waits up to seconds for PID 1 to reap it) as for a process that does not exist.
pub fn running_start_ticks(pid: u32) -> Option<u64> {
    read_stat(pid)
        .filter(|s| s.state != 'Z')
        .map(|s| s.start_ticks)
}

fn all_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// A process as lineage sees it (see `lineage.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    /// `R`, `S`, `D`, `T` (stopped), `Z` (zombie)...
    pub state: char,
    pub start_ticks: u64,
}

/// Process `pid`, if it exists.
pub fn process(pid: u32) -> Option<Process> {
    read_stat(pid).map(|s| Process {
        pid,
        ppid: s.ppid,
        pgrp: s.pgrp,
        session: s.session,
        state: s.state,
        start_ticks: s.start_ticks,
    })
}

/// Every process on the machine, in one pass over /proc.
pub fn all_processes() -> Vec<Process> {
    all_pids().filter_map(process).collect()
}

/// Live processes whose parent is `parent` (for the daemon: its children, and the orphans
/// it adopted as subreaper).
pub fn children_of(parent: u32) -> Vec<u32> {
    all_pids()
        .filter(|pid| read_stat(*pid).is_some_and(|s| s.ppid == parent && s.state != 'Z'))
        .collect()
}

/// True while `pid` exists and is not a zombie: `kill(pid, 0)` succeeds on an unreaped
/// zombie, which has ended all the same.
pub fn is_running(pid: u32) -> bool {
    read_stat(pid).is_some_and(|s| s.state != 'Z')
}

/// The service `pid` belongs to, if its environment carries the mark of node `node`
/// (`UPKEEP_NODE=node` and `UPKEEP_SERVICE=name`; see `lineage.rs`).
pub fn marked_service(pid: u32, node: &str) -> Option<String> {
    use std::io::Read;
    // The environment is at most a few hundred KiB; read a bounded amount.
    let mut env = Vec::new();
    std::fs::File::open(format!("/proc/{pid}/environ"))
        .ok()?
        .take(1 << 20)
        .read_to_end(&mut env)
        .ok()?;
    let mut ours = false;
    let mut service = None;
    for var in env.split(|b| *b == 0) {
        if let Some(v) = var.strip_prefix(crate::lineage::NODE_ENV.as_bytes())
            && let Some(v) = v.strip_prefix(b"=")
        {
            ours = v == node.as_bytes();
        } else if let Some(v) = var.strip_prefix(crate::lineage::SERVICE_ENV.as_bytes())
            && let Some(v) = v.strip_prefix(b"=")
        {
            service = std::str::from_utf8(v).ok().map(str::to_owned);
        }
    }
    service.filter(|_| ours)
}

/// Members of group `pgid` that are not zombies.
pub fn group_live_members(pgid: u32) -> usize {
    all_pids()
        .filter_map(read_stat)
        .filter(|s| s.pgrp == pgid && s.state != 'Z')
        .count()
}

/// (pid, state letter) of every member of group `pgid`: `R`, `S`, `D`, `T` (stopped), `Z`...
pub fn group_states(pgid: u32) -> Vec<(u32, char)> {
    all_pids()
        .filter_map(|pid| {
            read_stat(pid)
                .filter(|s| s.pgrp == pgid)
                .map(|s| (pid, s.state))
        })
        .collect()
}

/// CPU ticks, resident bytes and process count of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupUsage {
    pub ticks: u64,
    pub rss_bytes: u64,
    pub processes: u32,
}

/// Usage of every process group in `pgids`, in one pass over /proc.
pub fn group_usage(pgids: &[u32]) -> HashMap<u32, GroupUsage> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let mut out: HashMap<u32, GroupUsage> = HashMap::new();
    for stat in all_pids().filter_map(read_stat) {
        if stat.state != 'Z' && pgids.contains(&stat.pgrp) {
            let u = out.entry(stat.pgrp).or_default();
            u.ticks += stat.ticks;
            u.rss_bytes += stat.rss_pages * page;
            u.processes += 1;
        }
    }
    out
}

/// Members of group `pgid` that hold a listening TCP socket, as (pid, port).
pub fn listening_in_group(pgid: u32) -> Vec<(u32, u16)> {
    // inode → port of every listening socket (state 0A), IPv4 and IPv6.
    let mut listening = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&"0A") {
                continue;
            }
            let port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(port), Some(inode)) = (port, f.get(9).and_then(|i| i.parse::<u64>().ok()))
            {
                listening.insert(inode, port);
            }
        }
    }
    let mut out = Vec::new();
    for (pid, _) in group_states(pgid) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target.to_str().and_then(|t| {
                t.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse::<u64>()
                    .ok()
            });
            if let Some(port) = inode.and_then(|i| listening.get(&i)) {
                out.push((pid, *port));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// This process's own figures, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OwnProcess {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    /// Seconds since the Unix epoch.
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub threads: u64,
}

pub fn own_process() -> OwnProcess {
    let hz = ticks_per_second() as f64;
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, r)| r.split_ascii_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| {
        f.get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    OwnProcess {
        cpu_seconds: (field(14) + field(15)) as f64 / hz,
        rss_bytes: field(24) * page,
        start_time_seconds: btime as f64 + field(22) as f64 / hz,
        open_fds: std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0),
        threads: field(20),
    }
}

/// Clock ticks per second (USER_HZ), for turning tick deltas into CPU %.
pub fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line = "1234 (my (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 98765 1000000 250 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (
                s.state,
                s.pgrp,
                s.session,
                s.ticks,
                s.start_ticks,
                s.rss_pages
            ),
            ('S', 1234, 1234, 10, 98765, 250)
        );
    }

    #[test]
    fn finds_the_listener_in_a_group() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let pgid = nix::unistd::getpgrp().as_raw() as u32;
        assert!(listening_in_group(pgid).contains(&(std::process::id(), port)));
    }

    #[test]
    fn own_figures_are_plausible() {
        let me = own_process();
        assert!(me.rss_bytes > 0 && me.threads >= 1 && me.open_fds >= 3);
        assert!(me.start_time_seconds > 1_600_000_000.0);
    }

    #[test]
    fn a_zombie_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Wait for it to exit without reaping it.
        while read_stat(pid).is_some_and(|s| s.state != 'Z') {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok());
        assert!(!is_running(pid));
        child.wait().unwrap();
        assert!(is_running(std::process::id()));
    }

    #[test]
    fn finds_a_marked_process_of_its_node_only() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .env("UPKEEP_NODE", "n1")
            .env("UPKEEP_SERVICE", "web")
            .spawn()
            .unwrap();
        let pid = child.id();
        // spawn returns once the child's exec has swapped its memory, a moment before the
        // new environment is laid out: wait for it.
        let t0 = std::time::Instant::now();
        while marked_service(pid, "n1").is_none() && t0.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(marked_service(pid, "n1").as_deref(), Some("web"));
        assert_eq!(marked_service(pid, "n2"), None);
        assert_eq!(marked_service(std::process::id(), "n1"), None);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(start_ticks(me).is_some());
        let pgid = nix::unistd::getpgrp().as_raw() as u32;
        assert!(group_usage(&[pgid])[&pgid].processes >= 1);
    }

    #[test]
    fn a_zombie_has_a_start_but_does_not_run() {
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert_eq!(running_start_ticks(pid), start_ticks(pid));
        child.kill().unwrap();
        // Dead, not reaped: a zombie until `wait`.
        while process(pid).is_some_and(|p| p.state != 'Z') {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(start_ticks(pid).is_some());
        assert_eq!(running_start_ticks(pid), None);
        child.wait().unwrap();
        assert_eq!(start_ticks(pid), None);
    }
}
