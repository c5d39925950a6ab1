//! Spawning a process straight into a cgroup: `clone3(CLONE_INTO_CGROUP)`, then exec.
//!
//! Why not std's `Command` and a move: a process moved into a cgroup after it starts may fork
//! before the move (a shell's background job did, in the tests), and that child stays outside.
//! Moving itself between fork and exec (a `pre_exec` writing to `cgroup.procs`) closes that
//! race but costs a migration, which takes the kernel's cgroup threadgroup lock for writing and
//! waits out an RCU grace period: 10 to 15 ms per restart on this machine, seen with strace,
//! where the whole restart takes about 1.5 ms. `CLONE_INTO_CGROUP` creates the process in its
//! cgroup from the start: no race, no migration.
//!
//! The child side runs between clone and exec in the memory of a multi-threaded process
//! (shared, the parent thread suspended, on x86_64; a copy elsewhere: see [`clone_and_exec`]),
//! so it does only async-signal-safe system calls on memory prepared before the clone: no
//! allocation, no lock. A failure there (a `chdir`, a `setuid`, the `execve`) is written as an errno to a
//! close-on-exec pipe, which the parent reads: an empty read means the exec happened.
//!
//! Start at [`spawn_into`]. Where the clone itself fails (kernels before 5.7, a cgroup this
//! process may not create into) it says so ([`SpawnError::Clone`]) and the caller falls back
//! to std's spawn.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `clone3`'s argument (linux/sched.h), the fields this file uses and the rest zero.
#[repr(C, align(8))]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Reset every signal handler to its default in the child (ignored signals stay ignored).
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
/// Create the child in the cgroup whose directory `cgroup` is open on.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What to run, as the supervisor knows it.
pub struct Exec<'a> {
    /// The program's resolved path.
    pub path: &'a Path,
    /// argv, with argv[0] as the user wrote it.
    pub argv: &'a [String],
    /// The whole environment of the child.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<&'a Path>,
    /// (uid, gid) to switch to.
    pub user: Option<(u32, u32)>,
    /// A descriptor of this process to hand the child as another number: `(ours, theirs)`,
    /// e.g. the write end of a readiness pipe as fd 3. `ours` must be above `theirs` (see
    /// [`spawn_into`]).
    pub pass_fd: Option<(RawFd, i32)>,
}

/// A process started by [`spawn_into`]: its pid and the read ends of its stdout and stderr.
pub struct Spawned {
    pub pid: u32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

fn cstr(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} holds a NUL byte"),
        )
    })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `fd` moved to a number above `n` (close-on-exec), unless it is there already.
pub fn above(fd: OwnedFd, n: i32) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > n {
        return Ok(fd);
    }
    // SAFETY: duplicates a descriptor we own; the new one is ours alone.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, n + 1) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fcntl just made it, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// Everything the child needs, made before the clone (the child may not allocate).
struct Prepared {
    path: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    env_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    user: Option<(u32, u32)>,
    pass_fd: Option<(RawFd, i32)>,
    stdin: OwnedFd,
    stdout: RawFd,
    stderr: RawFd,
    report: RawFd,
}

impl Prepared {
    fn new(exec: &Exec<'_>, stdout: RawFd, stderr: RawFd, report: RawFd) -> io::Result<Self> {
        let path = cstr(exec.path.as_os_str().as_bytes(), "the program's path")?;
        let argv: Vec<CString> = exec
            .argv
            .iter()
            .map(|a| cstr(a.as_bytes(), "an argument"))
            .collect::<io::Result<_>>()?;
        let env: Vec<CString> = exec
            .env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstr(&kv, "an environment variable")
            })
            .collect::<io::Result<_>>()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        let stdin = std::fs::File::open("/dev/null")?.into();
        Ok(Prepared {
            path,
            argv_ptrs: ptrs(&argv),
            _argv: argv,
            env_ptrs: ptrs(&env),
            _env: env,
            cwd: exec
                .cwd
                .map(|c| cstr(c.as_os_str().as_bytes(), "the working directory"))
                .transpose()?,
            user: exec.user,
            pass_fd: exec.pass_fd,
            stdin,
            stdout,
            stderr,
            report,
        })
    }

    /// The child, between clone and exec. Async-signal-safe calls only.
    ///
    /// # Safety
    /// Call only in the child of a fork-like clone, with `self` prepared by the parent.
    unsafe fn exec(&self) -> ! {
        // SAFETY (whole body): each call is async-signal-safe and gets pointers into memory
        // that `self` owns and that the clone shares (the parent waits) or copied; none
        // returns on success but execve.
        unsafe {
            let fail = |report: RawFd| -> ! {
                let errno = *libc::__errno_location();
                libc::write(report, (&errno as *const i32).cast(), 4);
                libc::_exit(127)
            };
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // Rust ignores SIGPIPE, and an ignored signal stays ignored across exec.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if libc::setpgid(0, 0) != 0 {
                fail(self.report);
            }
            for (from, to) in [
                (self.stdin.as_raw_fd(), 0),
                (self.stdout, 1),
                (self.stderr, 2),
            ] {
                if libc::dup2(from, to) < 0 {
                    fail(self.report);
                }
            }
            // After stdio, and over whatever had that number (nothing the child needs: the
            // report pipe is above it); dup2 leaves the copy open across exec.
            if let Some((from, to)) = self.pass_fd
                && libc::dup2(from, to) < 0
            {
                fail(self.report);
            }
            if let Some((uid, gid)) = self.user {
                // As std does: only root may (and must) drop its supplementary groups; a
                // daemon naming its own user has nothing to switch (setgroups would fail).
                // Raw system calls, not glibc's wrappers: those believe the parent's threads
                // are still there (a raw clone does not tell glibc it forked) and wait for each
                // to switch its credentials too, forever (found as a hung test with the test
                // harness's threads; the daemon has worker threads too). In this one-thread
                // child the raw calls switch the whole process.
                let groups = [gid];
                if (libc::geteuid() == 0
                    && libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()) != 0)
                    || libc::syscall(libc::SYS_setgid, gid) != 0
                    || libc::syscall(libc::SYS_setuid, uid) != 0
                {
                    fail(self.report);
                }
            }
            // As the service's user, as std's spawn does: a folder that user cannot enter
            // fails the start here, saying so, not as a program that cannot find its files.
            if let Some(dir) = &self.cwd
                && libc::chdir(dir.as_ptr()) != 0
            {
                fail(self.report);
            }
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.env_ptrs.as_ptr(),
            );
            fail(self.report)
        }
    }
}

/// Why [`spawn_into`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The clone itself (an old kernel, or a cgroup this process may not create into): the
    /// caller may spawn another way.
    #[error("cannot create a process in the cgroup")]
    Clone(#[source] io::Error),
    /// Preparing the child, or the child's set-up or exec (no such program, no permission).
    #[error(transparent)]
    Child(io::Error),
}

/// Starts `exec` in its own process group, inside the cgroup whose directory `cgroup` is open
/// on, with stdin from /dev/null and stdout and stderr on new pipes, and `exec.pass_fd` as its
/// number. Returns once the program is executing (or with the reason it could not be).
pub fn spawn_into(exec: &Exec<'_>, cgroup: BorrowedFd<'_>) -> Result<Spawned, SpawnError> {
    spawn_inner(exec, cgroup)
}

fn spawn_inner(exec: &Exec<'_>, cgroup: BorrowedFd<'_>) -> Result<Spawned, SpawnError> {
    let child = SpawnError::Child;
    let (out_r, out_w) = pipe().map_err(child)?;
    let (err_r, err_w) = pipe().map_err(child)?;
    let (report_r, report_w) = pipe().map_err(child)?;
    // The passed descriptor is copied over its number last: the report pipe must not have
    // that number, or a later failure could not be reported.
    let report_w = match exec.pass_fd {
        Some((_, to)) => above(report_w, to).map_err(child)?,
        None => report_w,
    };
    let prepared = Prepared::new(
        exec,
        out_w.as_raw_fd(),
        err_w.as_raw_fd(),
        report_w.as_raw_fd(),
    )
    .map_err(child)?;
    let pid = clone_and_exec(&prepared, cgroup)?;
    drop((out_w, err_w, report_w));
    // An empty read: the exec closed the report pipe. Four bytes: the child's errno.
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        // SAFETY: reads into the rest of a 4-byte buffer this function owns.
        let n = unsafe {
            libc::read(
                report_r.as_raw_fd(),
                errno[got..].as_mut_ptr().cast(),
                4 - got,
            )
        };
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return Err(child(io::Error::last_os_error())),
        }
    }
    if got == 4 {
        // The child has exited (127) or is about to: reap it here, it never ran the program.
        // SAFETY: waits for our own child, just forked, whose pid nothing else has.
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
        return Err(child(io::Error::from_raw_os_error(i32::from_ne_bytes(
            errno,
        ))));
    }
    Ok(Spawned {
        pid: pid as u32,
        stdout: out_r,
        stderr: err_r,
    })
}

/// Clones a child into `cgroup` that runs `prepared.exec()`; returns its pid in the parent.
///
/// On x86_64 the clone shares this memory and suspends the calling thread until the child
/// has executed its program or exited (`CLONE_VM | CLONE_VFORK`, as glibc's `posix_spawn`
/// does), and the child runs on a stack of its own. A fork-like clone copied the daemon's
/// page tables at every spawn, made each page it wrote afterwards a copy-on-write fault, and
/// had the child tear that copy down again at its exec: about 2 ms a spawn under a cold start
/// of 100 services, where this takes a few tenths (`bench/deps`). Elsewhere, the fork.
fn clone_and_exec(prepared: &Prepared, cgroup: BorrowedFd<'_>) -> Result<i64, SpawnError> {
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP | CLONE_CLEAR_SIGHAND,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    #[cfg(target_arch = "x86_64")]
    let pid = {
        // The child's stack: `Prepared::exec` and the libc calls in it need a few KiB.
        let mut stack = vec![0u8; CHILD_STACK];
        let base = stack.as_mut_ptr() as u64;
        // The kernel starts the child at base + size: the ABI wants it 16-byte aligned.
        let top = (base + stack.len() as u64) & !15;
        args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
        args.stack = base;
        args.stack_size = top - base;
        // SAFETY: see `vfork_clone3`; `stack` and `prepared` outlive the child's use of them,
        // since this thread waits (CLONE_VFORK) until the child has executed or exited.
        let pid = unsafe { vfork_clone3(&args, prepared) };
        drop(stack);
        pid
    };
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: clone3 with no CLONE_VM is a fork: the child gets a copy of this memory and runs
    // only `Prepared::exec`, which never returns.
    let pid = unsafe {
        let pid = libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        );
        if pid == 0 {
            prepared.exec()
        }
        if pid < 0 {
            -i64::from(*libc::__errno_location())
        } else {
            pid
        }
    };
    if pid < 0 {
        return Err(SpawnError::Clone(io::Error::from_raw_os_error(-pid as i32)));
    }
    Ok(pid)
}

/// Size of the child's stack in [`clone_and_exec`].
#[cfg(target_arch = "x86_64")]
const CHILD_STACK: usize = 64 * 1024;

/// Where the child of [`vfork_clone3`] begins, on its own stack.
#[cfg(target_arch = "x86_64")]
extern "C" fn vfork_child(prepared: *const Prepared) -> ! {
    // SAFETY: the parent passed a `Prepared` it keeps alive, and is suspended until this
    // child executes or exits.
    unsafe { (*prepared).exec() }
}

/// `clone3(args)` where the child, on the stack `args` names, calls [`vfork_child`] with
/// `prepared` and never returns. Answers the child's pid, or `-errno`.
///
/// # Safety
/// `args` must carry `CLONE_VM | CLONE_VFORK` and a stack of at least a few KiB that stays
/// allocated until this returns; `prepared` must stay alive as long.
#[cfg(target_arch = "x86_64")]
unsafe fn vfork_clone3(args: &CloneArgs, prepared: &Prepared) -> i64 {
    let ret: i64;
    // SAFETY: the system call returns twice: in the parent with the pid (or -errno), which
    // leaves the asm block; in the child with 0, on the new stack (the kernel set its stack
    // pointer to the top of `args.stack`, 16-byte aligned), where it clears the frame pointer
    // and calls `vfork_child`, which never returns (`ud2` if it did). The parent's registers
    // and stack are untouched by the child, which has its own registers and stack.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") prepared as *const Prepared,
            in("r13") vfork_child as extern "C" fn(*const Prepared) -> !,
            out("rcx") _,
            out("r11") _,
        );
    }
    ret
}

/// The environment a child gets: what it inherits of this process's (see `environ`), with
/// `overrides` on top, in order.
pub fn child_env<'a>(
    overrides: impl IntoIterator<Item = (&'a OsStr, &'a OsStr)>,
) -> Vec<(OsString, OsString)> {
    let mut env = crate::environ::inherited();
    for (k, v) in overrides {
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.to_owned(),
            None => env.push((k.to_owned(), v.to_owned())),
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A cgroup of the test's own (tests run at once, and each removes its own at the end).
    fn cgroup_dir() -> Option<(std::path::PathBuf, std::fs::File)> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = crate::lineage::cgroup_root(&format!("clonetest{}-{n}", std::process::id()))?;
        std::fs::create_dir_all(&root).ok()?;
        let dir = std::fs::File::open(&root).ok()?;
        Some((root, dir))
    }

    #[test]
    fn the_child_starts_inside_the_cgroup_with_its_argv_env_and_cwd() {
        let Some((root, dir)) = cgroup_dir() else {
            eprintln!("no writable cgroup2 here: skipped");
            return;
        };
        let argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "echo $MARK; pwd; cat /proc/self/cgroup | grep ^0::; ps -o pgid= -p $$".to_owned(),
        ];
        let env = child_env([(OsStr::new("MARK"), OsStr::new("marked"))]);
        let exec = Exec {
            path: Path::new("/bin/sh"),
            argv: &argv,
            env,
            cwd: Some(Path::new("/tmp")),
            user: None,
            pass_fd: None,
        };
        use std::os::fd::AsFd;
        let s = spawn_into(&exec, dir.as_fd()).unwrap();
        let mut out = String::new();
        std::fs::File::from(s.stdout)
            .read_to_string(&mut out)
            .unwrap();
        // SAFETY: our own child.
        unsafe { libc::waitpid(s.pid as i32, std::ptr::null_mut(), 0) };
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "marked");
        assert_eq!(lines[1], "/tmp");
        let cg = root.to_str().unwrap();
        assert!(cg.ends_with(lines[2].trim_start_matches("0::")), "{out}");
        assert_eq!(lines[3].trim(), s.pid.to_string(), "its own process group");
        let _ = std::fs::remove_dir(&root);
    }

    /// Spawns `path` into `dir`'s cgroup as a service naming the daemon's own user.
    fn spawn_as_ourselves(dir: &std::fs::File, path: &str, argv: &[&str]) -> Spawned {
        use std::os::fd::AsFd;
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
        let exec = Exec {
            path: Path::new(path),
            argv: &argv,
            env: child_env([]),
            cwd: None,
            user: Some((uid, gid)),
            pass_fd: None,
        };
        spawn_into(&exec, dir.as_fd()).unwrap()
    }

    /// A service naming the daemon's own user (all a non-root daemon may name) starts: the
    /// switch to it must not ask for what only root may do.
    #[test]
    fn a_service_of_the_daemons_own_user_starts_without_root_powers() {
        let Some((root, dir)) = cgroup_dir() else {
            return;
        };
        // As root this exercises setgroups; the non-root path is the same call minus it.
        let s = spawn_as_ourselves(&dir, "/usr/bin/id", &["id", "-u"]);
        // SAFETY: a plain getter.
        let uid = unsafe { libc::geteuid() };
        let mut out = String::new();
        std::fs::File::from(s.stdout)
            .read_to_string(&mut out)
            .unwrap();
        // SAFETY: our own child.
        unsafe { libc::waitpid(s.pid as i32, std::ptr::null_mut(), 0) };
        assert_eq!(out.trim(), uid.to_string());
        let _ = std::fs::remove_dir(&root);
    }

    /// The daemon has threads (the runtime's blocking pool, SQLite's workers): a child that
    /// switches user must not wait on them (glibc's setuid did, forever).
    #[test]
    fn a_child_switching_user_in_a_threaded_process_does_not_hang() {
        let Some((root, dir)) = cgroup_dir() else {
            return;
        };
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let stop_rx = std::sync::Arc::new(std::sync::Mutex::new(stop_rx));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let rx = stop_rx.clone();
                std::thread::spawn(move || {
                    let _ = rx.lock().map(|r| r.recv());
                })
            })
            .collect();
        for _ in 0..5 {
            let s = spawn_as_ourselves(&dir, "/bin/true", &["true"]);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let mut status = 0;
            // SAFETY: our own child; WNOHANG never blocks.
            while unsafe { libc::waitpid(s.pid as i32, &mut status, libc::WNOHANG) } == 0 {
                if std::time::Instant::now() > deadline {
                    // SAFETY: our own child.
                    unsafe { libc::kill(s.pid as i32, libc::SIGKILL) };
                    panic!("the child hung switching to its user");
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        drop(stop_tx);
        for t in threads {
            t.join().unwrap();
        }
        let _ = std::fs::remove_dir(&root);
    }

    #[test]
    fn an_exec_that_fails_is_an_error_not_a_child() {
        let Some((root, dir)) = cgroup_dir() else {
            return;
        };
        let argv = vec!["nope".to_owned()];
        let exec = Exec {
            path: Path::new("/nonexistent/program"),
            argv: &argv,
            env: child_env([]),
            cwd: None,
            user: None,
            pass_fd: None,
        };
        use std::os::fd::AsFd;
        let Err(SpawnError::Child(err)) = spawn_into(&exec, dir.as_fd()) else {
            panic!("the exec's failure is the child's")
        };
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let bad_cwd = Exec {
            path: Path::new("/bin/true"),
            cwd: Some(Path::new("/nonexistent/dir")),
            ..exec
        };
        assert!(matches!(
            spawn_into(&bad_cwd, dir.as_fd()),
            Err(SpawnError::Child(_))
        ));
        let _ = std::fs::remove_dir(&root);
    }

    /// A passed descriptor arrives as the number asked for (s6's notification fd), open
    /// across exec, and the child's failures are still reported with it in place.
    #[test]
    fn a_passed_descriptor_arrives_as_its_number() {
        let Some((root, dir)) = cgroup_dir() else {
            return;
        };
        use std::os::fd::AsFd;
        let (r, w) = pipe().unwrap();
        let w = above(w, 5).unwrap();
        let argv = vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "echo ready >&5".to_owned(),
        ];
        let exec = Exec {
            path: Path::new("/bin/sh"),
            argv: &argv,
            env: child_env([]),
            cwd: None,
            user: None,
            pass_fd: Some((w.as_raw_fd(), 5)),
        };
        let s = spawn_into(&exec, dir.as_fd()).unwrap();
        drop(w);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        // SAFETY: our own child.
        unsafe { libc::waitpid(s.pid as i32, std::ptr::null_mut(), 0) };
        assert_eq!(out, "ready\n");
        let missing = Exec {
            path: Path::new("/nonexistent/program"),
            ..exec
        };
        assert!(matches!(
            spawn_into(&missing, dir.as_fd()),
            Err(SpawnError::Child(_))
        ));
        let _ = std::fs::remove_dir(&root);
    }
}
