//! Lineage: which processes are the daemon's own, known even after the daemon is SIGKILLed.
//!
//! A supervisor's one promise is one copy of each service. A daemon killed at any instant must
//! leave the next one enough to find every process it started (issue 14, part A), and the next
//! one must never kill on a weaker word than its own records (a database row can be edited).
//! Three records, each covering what the others miss:
//!
//! - **A cgroup per service** (cgroup2, where the daemon may create one: the `unified`
//!   hierarchy of systemd's hybrid layout, or a pure cgroup2 system). It holds every
//!   descendant, including those that left the process group (a double fork with `setsid`),
//!   and its member list lets the whole tree be killed. The process is created inside it
//!   (`clone3(CLONE_INTO_CGROUP)`, see `clone.rs`): moved in after the spawn, a shell had
//!   forked its background job in the meantime (seen in the tests), and that job stayed
//!   outside; moving itself before exec cost 10 to 15 ms per restart.
//! - **A run record per service** (`<data_dir>/run/NAME`): leader pid, its start time and its
//!   session, written with one `pwrite` right after the spawn, no fsync (it must survive the
//!   daemon's death, not a power cut, which ends the services too). It names the process group
//!   even when the leader is gone and the rest rewrote their memory (nginx, PostgreSQL).
//!   After the record, in the same file, the supervisor's note on the run (ready or not, its
//!   restart counts, a job's due time: [`ServiceLineage::note`]), for a daemon that adopts the
//!   run after a crash (systemd's fd store); this crate keeps its bytes and reads none of it.
//! - **A mark in the environment** (`UPKEEP_NODE`, `UPKEEP_SERVICE`): where no cgroup exists,
//!   finds a process spawned in the microseconds before its run record was written (it is too
//!   young to have rewritten anything), and escapees, as long as they keep it.
//!
//! It does not stop anything (the supervisor does, with each service's stop settings) and
//! keeps nothing in the database. Start at [`Lineage::open`], then [`Lineage::leftovers`] once
//! at start-up and [`ServiceLineage::adopt`] after each spawn.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// The environment variable that carries the daemon's node id to every service process.
pub const NODE_ENV: &str = "UPKEEP_NODE";
/// The environment variable that carries the service's name.
pub const SERVICE_ENV: &str = "UPKEEP_SERVICE";

/// Width of a run record: fixed, so that a `pwrite` at offset 0 replaces it whole (wide
/// enough for five numbers at their widest). The note follows it.
const RECORD_LEN: usize = 80;
/// The longest note read back: a note is a line of JSON of a few hundred bytes.
const NOTE_MAX: u64 = 64 * 1024;

/// The daemon's records of what it started, for one data dir.
#[derive(Debug, Clone)]
pub struct Lineage {
    node: String,
    run_dir: PathBuf,
    /// `<cgroup2 mount><our cgroup>/upkeep-<node>`, if we could create it.
    cgroups: Option<PathBuf>,
}

impl Lineage {
    /// Opens the records in `data_dir` (which the caller has locked and checked): creates
    /// `run/` and, if `cgroups` and cgroup2 lets us, our cgroup. `node` is the data dir's id.
    pub fn open(data_dir: &Path, node: &str, cgroups: bool) -> io::Result<Lineage> {
        let run_dir = data_dir.join("run");
        match std::fs::create_dir(&run_dir) {
            Ok(()) => std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        crate::trust::check_private(&run_dir)?;
        let cgroups = cgroup_root(node).filter(|_| cgroups).and_then(
            |dir| match std::fs::create_dir(&dir) {
                Ok(()) => Some(dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(dir),
                Err(e) => {
                    tracing::info!(
                        dir = %dir.display(),
                        "no cgroup per service ({e}): process groups, run records and marks only"
                    );
                    None
                }
            },
        );
        Ok(Lineage {
            node: node.to_owned(),
            run_dir,
            cgroups,
        })
    }

    /// True when each service gets a cgroup of its own.
    pub fn has_cgroups(&self) -> bool {
        self.cgroups.is_some()
    }

    /// The environment that marks a process of service `name` as ours.
    pub fn mark(&self, name: &str) -> [(&'static str, String); 2] {
        [
            (NODE_ENV, self.node.clone()),
            (SERVICE_ENV, name.to_owned()),
        ]
    }

    /// The records of one service: its run record (opened once, so each spawn costs one
    /// `pwrite`) and its cgroup. One that cannot be made is logged and left out: the
    /// service still runs, in its process group, with its mark.
    pub fn service(&self, name: &str) -> ServiceLineage {
        let path = self.run_dir.join(name);
        let run = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|f| crate::trust::check_owned(&f.metadata()?, &path).map(|()| f))
            .inspect_err(|e| tracing::warn!(service = name, "cannot keep its run record: {e}"))
            .ok();
        // A shorter note than the one in the file is padded over all of it.
        let note_len = run
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| (m.len() as usize).saturating_sub(RECORD_LEN));
        let cgroup = self.cgroups.as_ref().and_then(|root| {
            Cgroup::create(&root.join(cgroup_dir(name)))
                .inspect_err(|e| tracing::warn!(service = name, "cannot create its cgroup: {e}"))
                .ok()
        });
        ServiceLineage {
            run,
            cgroup,
            note_len: std::sync::atomic::AtomicUsize::new(note_len),
        }
    }

    /// The leader each service's run record names, by service name, whether anything of its
    /// group still runs or not: a run an earlier daemon started and did not see end (a run
    /// that ends clears its record). With the store away, the only word on what a killed
    /// daemon was running when its processes have ended since.
    pub fn recorded(&self) -> BTreeMap<String, u32> {
        std::fs::read_dir(&self.run_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                Some((name, read_record(&entry.path())?.pid))
            })
            .collect()
    }

    /// Each service's recorded run, whole (leader, its group, its start time): what a daemon
    /// restarted by systemd checks before it adopts a run whose pipes it kept (`fdstore.rs`
    /// in the binary). Cleared records are left out.
    pub fn runs(&self) -> BTreeMap<String, RecordedRun> {
        std::fs::read_dir(&self.run_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                let r = read_record(&entry.path())?;
                Some((
                    name,
                    RecordedRun {
                        pid: r.pid,
                        pgid: r.pgid,
                        start_ticks: r.start_ticks,
                        pipes: r.pipes,
                    },
                ))
            })
            .collect()
    }

    /// The note the supervisor of `name` left on its run (see [`ServiceLineage::note`]), if
    /// any: a line of text, not checked here (it may belong to an earlier run than the
    /// record's; its reader checks the pid and start time in it).
    pub fn note(&self, name: &str) -> Option<String> {
        let path = self.run_dir.join(name);
        let f = open_record(&path)?;
        let mut text = Vec::new();
        f.take(RECORD_LEN as u64 + NOTE_MAX)
            .read_to_end(&mut text)
            .ok()?;
        let note = text.get(RECORD_LEN..)?;
        let line = note.split(|b| *b == b'\n').next()?;
        let line = String::from_utf8(line.to_vec()).ok()?;
        let line = line.trim();
        (!line.is_empty()).then(|| line.to_owned())
    }

    /// What earlier daemons left running, by service name: one pass over /proc, checked
    /// against our three records. Every process named here is one this data dir's daemons
    /// started; nothing is taken on the database's word.
    pub fn leftovers(&self) -> BTreeMap<String, Leftovers> {
        let procs = crate::procfs::all_processes();
        let mut out: BTreeMap<String, Leftovers> = BTreeMap::new();
        // Cgroups: everything inside is ours.
        if let Some(root) = &self.cgroups {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let Some(name) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix(CGROUP_PREFIX))
                    .map(str::to_owned)
                else {
                    continue;
                };
                if let Ok(cg) = Cgroup::open(&entry.path())
                    && cg.populated()
                {
                    out.entry(name).or_default().cgroup = Some(cg);
                }
            }
        }
        // Run records: the group of a leader we started, if a member still proves it is ours.
        for entry in std::fs::read_dir(&self.run_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some(rec) = read_record(&entry.path()) else {
                continue;
            };
            // The leader's own group (after a `setsid`, even one it made after the record was
            // written) and the group it was recorded in (the same, but for a forking daemon
            // that stayed in its start command's).
            let mut groups = vec![rec.pid];
            if rec.pgid != rec.pid {
                groups.push(rec.pgid);
            }
            for group in groups {
                let ours = procs.iter().any(|p| {
                    p.pgrp == group
                        && p.state != 'Z'
                        && ((p.pid == rec.pid && p.start_ticks == rec.start_ticks)
                            // The leader is gone (killed while no daemon ran): a member of
                            // its group in its session (or the one it made), started after
                            // it, was forked inside it (a reused group id would need the
                            // whole group gone first, and a new session of the same id too).
                            || ((p.session == rec.session || p.session == rec.pid)
                                && p.start_ticks >= rec.start_ticks))
                });
                if ours {
                    out.entry(name.clone()).or_default().pgids.insert(group);
                }
            }
        }
        // Marks: processes that carry our node id, wherever they went.
        for p in &procs {
            if p.state == 'Z' || p.pid == std::process::id() {
                continue;
            }
            if let Some(name) = crate::procfs::marked_service(p.pid, &self.node) {
                let l = out.entry(name).or_default();
                l.pgids.insert(p.pgrp);
                l.pids.insert(p.pid);
            }
        }
        out.retain(|_, l| !l.is_empty());
        out
    }

    /// Clears the run record of `name` (if there is one): what it named was stopped, or had
    /// ended, while no daemon watched. Without this a service that does not start again (a
    /// job, a stopped service) would be found "left running" by every later start. Best
    /// effort, like every write of a record.
    pub fn forget(&self, name: &str) {
        let path = self.run_dir.join(name);
        let cleared = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|f| crate::trust::check_owned(&f.metadata()?, &path).map(|()| f))
            .and_then(|f| f.write_all_at(&Record::default().encode(), 0));
        if let Err(e) = cleared
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(service = name, "cannot clear its run record: {e}");
        }
    }

    /// Removes the cgroups (while empty) and run records of services not in `keep`. Called once
    /// start-up has stopped what earlier daemons left; best effort.
    pub fn prune(&self, keep: &BTreeSet<String>) {
        for entry in std::fs::read_dir(&self.run_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Some(name) = entry.file_name().to_str()
                && !keep.contains(name)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        if let Some(root) = &self.cgroups {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str().and_then(|n| n.strip_prefix(CGROUP_PREFIX)) else {
                    continue;
                };
                if !keep.contains(name) {
                    // Fails while populated: then it is kept, as it must be.
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
    }

    /// Removes every empty cgroup of ours, at shutdown (a populated one stays, and so does
    /// its run record). Best effort.
    pub fn release(&self) {
        if let Some(root) = &self.cgroups {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(entry.path());
            }
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// Cgroup directories of services are prefixed, so that no service name (`cgroup.procs`,
/// `cpu.max`) can collide with a cgroup's interface files.
const CGROUP_PREFIX: &str = "svc-";

fn cgroup_dir(name: &str) -> String {
    format!("{CGROUP_PREFIX}{name}")
}

/// Where the cgroups of node `node` go: below the cgroup2 hierarchy's node for this process,
/// so that a daemon run by systemd (with `Delegate=yes`) stays inside its own unit. None
/// without cgroup2. (Public for test harnesses, which clean up after daemons they kill.)
pub fn cgroup_root(node: &str) -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|line| {
        // … mount-point … - fstype source options
        let (left, right) = line.split_once(" - ")?;
        (right.split(' ').next()? == "cgroup2")
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let short: String = node.chars().take(16).collect();
    Some(
        mount
            .join(own.trim_start_matches('/'))
            .join(format!("upkeep-{short}")),
    )
}

/// A run as its run record names it (see [`Lineage::runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedRun {
    pub pid: u32,
    pub pgid: u32,
    pub start_ticks: u64,
    /// The pid its output pipes are named by where they are kept (systemd's fd store): the
    /// spawned process's, which for a forking service is its start command, not `pid`.
    pub pipes: u32,
}

/// One service's records.
#[derive(Debug)]
pub struct ServiceLineage {
    run: Option<File>,
    cgroup: Option<Cgroup>,
    /// The longest note in the file (a shorter one is padded over it).
    note_len: std::sync::atomic::AtomicUsize,
}

impl ServiceLineage {
    /// Records a process just spawned as this service's leader in the run record. Called on
    /// the restart path, so it costs one write and no fsync; a failure is logged, never fatal
    /// (the process group, the cgroup and the mark still hold it).
    pub fn adopt(&self, pid: u32, start_ticks: u64) {
        self.adopt_in(pid, pid, start_ticks, pid);
    }

    /// Records `pid` as the leader though it was last seen in group `pgid`: a forking
    /// service's daemon, in its start command's group. It may still move to a group of its
    /// own (a `setsid` seen after its PID file was: it happens with nginx under load), so
    /// the record names both, and the next daemon looks for either. `pipes` is the pid its
    /// output pipes are kept under (the start command's: see [`RecordedRun::pipes`]).
    pub fn adopt_in(&self, pid: u32, pgid: u32, start_ticks: u64, pipes: u32) {
        let session = nix::unistd::getsid(Some(Pid::from_raw(pid as i32)))
            .map(|s| s.as_raw() as u32)
            .unwrap_or(0);
        let rec = Record {
            pid,
            start_ticks,
            session,
            pgid,
            pipes,
        };
        if let Some(run) = &self.run
            && let Err(e) = run.write_all_at(&rec.encode(), 0)
        {
            tracing::warn!(pid, "cannot write the run record: {e}");
        }
    }

    /// Writes the supervisor's note on the current run after the record: one line (no
    /// newline in it), padded over a longer one written before, in one `pwrite` like the
    /// record's, no fsync. Best effort: the next daemon then adopts the run as if it had no
    /// note (ready, its counts afresh).
    pub fn note(&self, line: &[u8]) {
        use std::sync::atomic::Ordering;
        let Some(run) = &self.run else {
            return;
        };
        let longest = self.note_len.load(Ordering::Relaxed);
        let mut buf = Vec::with_capacity(longest.max(line.len() + 1));
        buf.extend_from_slice(line);
        buf.push(b'\n');
        if buf.len() < longest {
            buf.resize(longest, b' ');
        }
        match run.write_all_at(&buf, RECORD_LEN as u64) {
            Ok(()) => self.note_len.store(buf.len(), Ordering::Relaxed),
            Err(e) => tracing::warn!("cannot write the run's note: {e}"),
        }
    }

    /// Forgets the leader: nothing of this service runs any more.
    pub fn clear(&self) {
        if let Some(run) = &self.run {
            let _ = run.write_all_at(&Record::default().encode(), 0);
        }
    }

    /// The service's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }
}

/// What an earlier daemon left of one service.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Process groups proven ours (by a run record or a marked member).
    pub pgids: BTreeSet<u32>,
    /// Marked processes (which may have left every group above).
    pub pids: BTreeSet<u32>,
    /// The service's cgroup, while anything lives in it.
    pub cgroup: Option<Cgroup>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.pgids.is_empty() && self.pids.is_empty() && self.cgroup.is_none()
    }

    /// True while any of it lives (zombies aside), judged on `procs` (one pass over /proc,
    /// shared by every service's leftovers).
    pub fn alive_in(&self, procs: &[crate::procfs::Process]) -> bool {
        self.cgroup.as_ref().is_some_and(Cgroup::populated)
            || procs.iter().any(|p| {
                p.state != 'Z' && (self.pgids.contains(&p.pgrp) || self.pids.contains(&p.pid))
            })
    }

    /// Sends `signal` to all of it. True if anything was there to get it.
    pub fn signal(&self, signal: Signal) -> bool {
        let mut any = false;
        for &g in &self.pgids {
            any |= killpg(Pid::from_raw(g as i32), signal).is_ok();
        }
        for &p in &self.pids {
            any |= kill(Pid::from_raw(p as i32), signal).is_ok();
        }
        if let Some(cg) = &self.cgroup {
            any |= cg.signal(signal);
        }
        any
    }
}

/// A service's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    /// The directory itself, open for `clone3`.
    dir_fd: File,
}

/// Most rounds of SIGKILL over a cgroup's processes (see [`Cgroup::signal`]).
const ROUNDS: usize = 16;

impl Cgroup {
    fn create(dir: &Path) -> io::Result<Cgroup> {
        match std::fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Cgroup::open(dir)
    }

    fn open(dir: &Path) -> io::Result<Cgroup> {
        let dir_fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(dir)?;
        Ok(Cgroup {
            dir: dir.to_owned(),
            dir_fd,
        })
    }

    /// The cgroup's directory, open: `clone3(CLONE_INTO_CGROUP)` creates a service's process
    /// in it (see `clone.rs`).
    pub fn dir(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.dir_fd.as_fd()
    }

    /// Its `cgroup.procs` file: who is in it (read by the notify socket's reader, which
    /// checks that a sender is one of the service's processes).
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Processes in it now.
    pub fn pids(&self) -> Vec<u32> {
        let mut text = String::new();
        let _ =
            File::open(self.dir.join("cgroup.procs")).and_then(|mut f| f.read_to_string(&mut text));
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// True while any process lives in it (`cgroup.events`: exited processes leave at once,
    /// zombies included).
    pub fn populated(&self) -> bool {
        match std::fs::read_to_string(self.dir.join("cgroup.events")) {
            Ok(t) => t.lines().any(|l| l == "populated 1"),
            // Removed (by hand, or by another daemon): a cgroup that is not there holds
            // nothing; a stop used to wait out its whole grace period on it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            // Otherwise unreadable: assume the worst, so nothing is taken as gone too early.
            Err(_) => true,
        }
    }

    /// Sends `signal` to every process in it. True if there was any.
    ///
    /// SIGKILL goes to each process too, in rounds until a round finds none it had not
    /// signalled (a process forked meanwhile is caught by the next), never through
    /// `cgroup.kill`: on this machine's kernel (6.18) a cgroup once killed that way makes every
    /// later `clone3(CLONE_INTO_CGROUP)` into it die of SIGKILL at birth (the child's kill
    /// sequence is taken from the parent's cgroup and compared with the target's), so a
    /// service whose stop needed SIGKILL could never run again (found by a fresh-eyes test).
    pub fn signal(&self, signal: Signal) -> bool {
        let mut signalled = std::collections::HashSet::new();
        for _ in 0..ROUNDS {
            let pids = self.pids();
            let new: Vec<u32> = pids
                .into_iter()
                .filter(|p| !signalled.contains(p))
                .collect();
            if new.is_empty() {
                break;
            }
            for pid in new {
                if kill(Pid::from_raw(pid as i32), signal).is_ok() {
                    signalled.insert(pid);
                }
            }
            if signal != Signal::SIGKILL {
                break;
            }
        }
        !signalled.is_empty()
    }
}

/// A run record: the leader of the service's current run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Record {
    pid: u32,
    start_ticks: u64,
    session: u32,
    /// The group it was in when recorded (`pid` but for a forking daemon, see
    /// [`ServiceLineage::adopt_in`]). Records written before this field name `pid`'s.
    pgid: u32,
    /// See [`RecordedRun::pipes`]. Records written before this field name `pid`.
    pipes: u32,
}

impl Record {
    fn encode(&self) -> [u8; RECORD_LEN] {
        let mut buf = [b' '; RECORD_LEN];
        let text = format!(
            "{} {} {} {} {}",
            self.pid, self.start_ticks, self.session, self.pgid, self.pipes
        );
        buf[..text.len()].copy_from_slice(text.as_bytes());
        buf[RECORD_LEN - 1] = b'\n';
        buf
    }

    fn decode(text: &str) -> Option<Record> {
        let mut f = text.split_ascii_whitespace().map(str::parse::<u64>);
        let pid = u32::try_from(f.next()?.ok()?).ok()?;
        let start_ticks = f.next()?.ok()?;
        let session = u32::try_from(f.next()?.ok()?).ok()?;
        let or_pid = |f: Option<Result<u64, _>>| match f {
            None => Some(pid),
            Some(n) => u32::try_from(n.ok()?).ok(),
        };
        let pgid = or_pid(f.next())?;
        let pipes = or_pid(f.next())?;
        let rec = Record {
            pid,
            start_ticks,
            session,
            pgid,
            pipes,
        };
        // pid 0 is a cleared record; pid 1 is never a service of ours.
        (rec.pid > 1).then_some(rec)
    }
}

/// A run record's file, opened to read (never through a symlink, and only ours).
fn open_record(path: &Path) -> Option<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    crate::trust::check_owned(&f.metadata().ok()?, path).ok()?;
    Some(f)
}

fn read_record(path: &Path) -> Option<Record> {
    let f = open_record(path)?;
    // The record alone: the note after it is not the record's (records of before the note
    // were 64 bytes, and nothing followed them).
    let mut text = Vec::new();
    f.take(RECORD_LEN as u64).read_to_end(&mut text).ok()?;
    Record::decode(&String::from_utf8_lossy(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_cleared_records_name_nothing() {
        let r = Record {
            pid: 4242,
            start_ticks: 123456789,
            session: 77,
            pgid: 4242,
            pipes: 4242,
        };
        let bytes = r.encode();
        assert_eq!(bytes.len(), RECORD_LEN);
        assert_eq!(
            Record::decode(std::str::from_utf8(&bytes).unwrap()),
            Some(r)
        );
        let cleared = Record::default().encode();
        assert_eq!(Record::decode(std::str::from_utf8(&cleared).unwrap()), None);
        assert_eq!(Record::decode("garbage"), None);
        assert_eq!(Record::decode("1 2 3"), None);
        assert_eq!(Record::decode("99999999999 2 3"), None);
        // A record from before the group was written names the leader's own, and one from
        // before the pipes' pid names the leader's.
        assert_eq!(Record::decode("4242 5 77").map(|r| r.pgid), Some(4242));
        assert_eq!(
            Record::decode("4242 5 77 4241").map(|r| r.pipes),
            Some(4242)
        );
        let forking = Record {
            pgid: 4241,
            pipes: 4241,
            ..r
        };
        // Every field at its widest still fits.
        let widest = Record {
            pid: u32::MAX,
            start_ticks: u64::MAX,
            session: u32::MAX,
            pgid: u32::MAX,
            pipes: u32::MAX,
        };
        assert_eq!(
            Record::decode(std::str::from_utf8(&widest.encode()).unwrap()),
            Some(widest)
        );
        assert_eq!(
            Record::decode(std::str::from_utf8(&forking.encode()).unwrap()),
            Some(forking)
        );
    }

    #[test]
    fn a_record_replaces_the_last_whole() {
        let dir = tempfile::tempdir().unwrap();
        let l = Lineage::open(dir.path(), "testnode", true).unwrap();
        let s = l.service("web");
        s.adopt(999_999_998, 5);
        s.adopt(12, 7);
        let text = std::fs::read_to_string(dir.path().join("run/web")).unwrap();
        assert_eq!(
            Record::decode(&text).map(|r| (r.pid, r.start_ticks)),
            Some((12, 7))
        );
        // Named whether anything of it runs or not (pid 12 is no process of ours)...
        assert_eq!(l.recorded(), BTreeMap::from([("web".to_string(), 12)]));
        assert!(l.leftovers().is_empty());
        // A note after it, a shorter one over it, and the record rewritten: each read whole.
        s.note(br#"{"a":"a long first note"}"#);
        s.note(b"short");
        assert_eq!(l.note("web").as_deref(), Some("short"));
        s.adopt(13, 8);
        assert_eq!(l.runs()["web"].pid, 13);
        assert_eq!(l.note("web").as_deref(), Some("short"));
        s.clear();
        assert_eq!(read_record(&dir.path().join("run/web")), None);
        // ...until the run is seen to end.
        assert!(l.recorded().is_empty());
        l.prune(&BTreeSet::new());
        l.release();
    }

    #[test]
    fn a_symlinked_run_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let l = Lineage::open(dir.path(), "testnode2", true).unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("run/web")).unwrap();
        l.service("web").adopt(1234, 5);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        l.release();
    }
}
