//! The check a binary passes before the daemon re-executes into it (`upkeep upgrade`, issue
//! 17): it must be a file only its owner can change, and it must answer a fresh challenge the
//! way only upkeep's own code does, for the hand-over protocol this daemon speaks.
//!
//! Answering `--version` with `upkeep 0.1.0` proved nothing: a two-line script passed, the
//! daemon executed it and was gone. Now the daemon runs `BINARY __handover-check NONCE
//! PROTOCOL` (as its own user, its own environment, in a process group of its own, killed after
//! [`TIMEOUT`]); the binary answers `upkeep-handover PROTOCOL VERSION PROOF` only if it can
//! take that protocol's state record (`upgrade.rs`), where PROOF is a SHA-256 over the nonce
//! and the protocol under upkeep's own label. This is no signature (anyone who reads this file
//! can compute it): it shows the binary runs this code and reads this record format, so a
//! wrong file, a wrapper that prints the right words, or an upkeep too old or too new for the
//! record is refused while the daemon keeps running. Who may put a binary there is the file's
//! permissions' business: [`open_trusted`] refuses one that someone else could replace. The
//! file is opened once: the checks, the challenge and the exec are all of that open file.
//!
//! Not here: the hand-over itself (`upgrade.rs`), the CLI command (`cli/lifecycle.rs`).

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};
use upkeep_supervisor::Reaper;

/// The hand-over protocol: the state record's format and what is handed with it. Raise it
/// when either changes in a way an older or newer image cannot read.
pub const PROTOCOL: u32 = 1;
/// The protocols this binary can take a hand-over in.
const TAKES: std::ops::RangeInclusive<u32> = 1..=1;
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The hidden subcommand that answers the challenge.
pub const SUBCOMMAND: &str = "__handover-check";
/// Longest wait for an answer: a binary that hangs is no binary to upgrade to.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most read of an answer.
const MAX_ANSWER: u64 = 4096;

/// The proof for `nonce` under `protocol`.
fn proof(nonce: &str, protocol: u32) -> String {
    let mut h = Sha256::new();
    h.update(b"upkeep hand-over check\0");
    h.update(protocol.to_be_bytes());
    h.update(nonce.as_bytes());
    hex::encode(h.finalize())
}

/// `upkeep __handover-check NONCE PROTOCOL`, run in the new binary: its answer, or why it
/// cannot take that protocol.
pub fn answer(nonce: &str, protocol: u32) -> Result<String, String> {
    if !TAKES.contains(&protocol) {
        return Err(format!(
            "upkeep {VERSION} takes hand-over protocols {}..={}, not {protocol}",
            TAKES.start(),
            TAKES.end()
        ));
    }
    Ok(format!(
        "upkeep-handover {protocol} {VERSION} {}",
        proof(nonce, protocol)
    ))
}

/// The version an answer says, if it is the right answer to `nonce`.
fn verify(said: &str, nonce: &str) -> Option<String> {
    let mut words = said.trim().split(' ');
    let (Some("upkeep-handover"), Some(protocol), Some(version), Some(got), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return None;
    };
    let ok = protocol == PROTOCOL.to_string()
        && !version.is_empty()
        && version.len() <= 64
        && subtle::ConstantTimeEq::ct_eq(got.as_bytes(), proof(nonce, PROTOCOL).as_bytes()).into();
    ok.then(|| version.to_owned())
}

/// Opens `binary` once, for every check and for the exec (`upgrade.rs`): checking a path and
/// then executing it let a file swapped in between run in the daemon's place (break-it,
/// session 9). The file is opened read-only, close-on-exec and non-blocking (a FIFO must not
/// hold the daemon), and refused if, as opened, it is not a regular executable file, if
/// someone other than its owner could change it, if its owner is neither root nor this
/// daemon's user, if its group may write it and that group is not root's (gid 0), or if it
/// is a script (`#!`): a script's interpreter reads it again by
/// path (`/dev/fd/N`, gone with close-on-exec), so the file checked would not be what runs.
pub fn open_trusted(binary: &Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let shown = binary.display();
    // std opens with O_CLOEXEC: no service started meanwhile inherits it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(binary)
        .map_err(|e| format!("cannot upgrade to {shown}: {e}"))?;
    let m = file
        .metadata()
        .map_err(|e| format!("cannot upgrade to {shown}: {e}"))?;
    if !m.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if m.mode() & 0o111 == 0 {
        return Err(format!("{shown} is not executable"));
    }
    // Through the descriptor: the kernel's word on this very file, for this user.
    let by_fd = format!("/proc/self/fd/{}", file.as_raw_fd());
    if let Err(e) = nix::unistd::access(by_fd.as_str(), nix::unistd::AccessFlags::X_OK) {
        return Err(format!("cannot upgrade to {shown}: not executable ({e})"));
    }
    let me = nix::unistd::geteuid().as_raw();
    if m.uid() != 0 && m.uid() != me {
        return Err(format!(
            "{shown} belongs to uid {}, neither root nor this daemon's user (uid {me})",
            m.uid()
        ));
    }
    if m.mode() & 0o002 != 0 {
        return Err(format!(
            "{shown} is writable by anyone (mode {:o}): anyone could replace what the daemon runs",
            m.mode() & 0o7777
        ));
    }
    // A group's members could replace it as well as anyone: only root's group is trusted
    // (root could replace it anyway). Break-it, session 10: `chmod 775` with a group of
    // ordinary users passed.
    if m.mode() & 0o020 != 0 && m.gid() != 0 {
        return Err(format!(
            "{shown} is writable by its group (gid {}, mode {:o}): every member of that group could replace what the daemon runs; `chmod g-w` it (a group-writable binary is taken only when its group is root's)",
            m.gid(),
            m.mode() & 0o7777
        ));
    }
    let mut magic = [0u8; 2];
    if file.read_exact_at(&mut magic, 0).is_ok() && magic == *b"#!" {
        return Err(format!(
            "{shown} is a script (#!): the daemon executes the file it checked through its open descriptor, and a script cannot be run that way; name the upkeep binary itself"
        ));
    }
    Ok(file)
}

/// Runs `file` (opened by [`open_trusted`] from `binary`) as `__handover-check` with a fresh
/// nonce: the version it says, or why it is not an upkeep this daemon can hand over to. It is
/// run through its descriptor (`/proc/self/fd/N`, resolved in the child before its exec
/// closes it), so what answers is the file that will be executed, whatever the path names by
/// then. Run through the reaper: it reaps every child of the daemon's.
pub async fn check(reaper: &Reaper, binary: &Path, file: &std::fs::File) -> Result<String, String> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let shown = binary.display();
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes from the system: {e}"))?;
    let nonce = hex::encode(bytes);
    let mut cmd = std::process::Command::new(format!("/proc/self/fd/{}", file.as_raw_fd()));
    cmd.arg0(binary)
        .arg(SUBCOMMAND)
        .arg(&nonce)
        .arg(PROTOCOL.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    let (mut child, exit) = reaper
        .spawn(&mut cmd)
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let pid = child.id();
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let read = tokio::task::spawn_blocking(move || {
        let (mut text, mut why) = (String::new(), String::new());
        let _ = (&mut out).take(MAX_ANSWER).read_to_string(&mut text);
        let _ = (&mut err).take(MAX_ANSWER).read_to_string(&mut why);
        (text, why)
    });
    let answered = tokio::time::timeout(TIMEOUT, async {
        (read.await.unwrap_or_default(), exit.await)
    })
    .await;
    // Whatever it left behind in its group goes with it.
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let Ok(((text, why), status)) = answered else {
        return Err(format!(
            "{shown} did not answer the hand-over check within {}s",
            TIMEOUT.as_secs()
        ));
    };
    match (status, verify(&text, &nonce)) {
        (Ok(s), Some(version)) if s.success() => Ok(version),
        _ => {
            let said = if why.trim().is_empty() { text } else { why };
            let said: String = said.trim().chars().take(200).collect();
            Err(format!(
                "{shown} is not an upkeep binary that can take this daemon's hand-over (protocol {PROTOCOL}; an upkeep too old or too new for it cannot either: stop the daemon and start it with that binary instead); it said {said:?}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_the_answer_to_this_nonce_and_protocol_passes() {
        let good = answer("abc", PROTOCOL).unwrap();
        assert_eq!(verify(&good, "abc").as_deref(), Some(VERSION));
        assert_eq!(
            verify(&format!("{good}\n"), "abc").as_deref(),
            Some(VERSION)
        );
        assert_eq!(verify(&good, "abd"), None, "another nonce");
        assert_eq!(verify("upkeep 0.1.0", "abc"), None, "a --version line");
        assert_eq!(verify(&format!("{good} extra"), "abc"), None);
        let other = format!(
            "upkeep-handover {} {VERSION} {}",
            PROTOCOL + 1,
            proof("abc", PROTOCOL + 1)
        );
        assert_eq!(verify(&other, "abc"), None, "another protocol");
        assert!(
            answer("abc", PROTOCOL + 1)
                .unwrap_err()
                .contains("protocols")
        );
    }

    #[test]
    fn a_file_anyone_may_write_a_script_or_what_is_not_a_regular_executable_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        let mode = |m| std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m)).unwrap();
        let refused = |p: &Path| open_trusted(p).err().unwrap_or_default();
        mode(0o644);
        assert!(refused(&f).contains("not executable"));
        mode(0o757);
        assert!(refused(&f).contains("writable by anyone"));
        mode(0o755);
        assert!(refused(&f).contains("is a script"), "{}", refused(&f));
        std::fs::write(&f, b"\x7fELF").unwrap();
        assert!(open_trusted(&f).is_ok());
        // Writable by a group other than root's: refused. As root, the file is given a
        // group of no one's; as anyone else, it has that user's own group already.
        let root = nix::unistd::geteuid().is_root();
        if root {
            let nogroup = Some(nix::unistd::Gid::from_raw(65534));
            nix::unistd::chown(&f, None, nogroup).unwrap();
        }
        assert_ne!(
            std::fs::metadata(&f).unwrap().gid(),
            0,
            "a test run in group root"
        );
        mode(0o775);
        assert!(
            refused(&f).contains("writable by its group (gid "),
            "{}",
            refused(&f)
        );
        if root {
            // Root's group may write it: root could anyway.
            let wheel = Some(nix::unistd::Gid::from_raw(0));
            nix::unistd::chown(&f, None, wheel).unwrap();
            assert!(open_trusted(&f).is_ok());
        }
        mode(0o755);
        assert!(refused(dir.path()).contains("not a regular file"));
        assert!(!refused(&dir.path().join("none")).is_empty());
        // A FIFO is refused, not waited on.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
        assert!(refused(&fifo).contains("not a regular file"));
    }
}
