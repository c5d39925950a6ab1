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
//! permissions' business: [`trusted_file`] refuses one that someone else could replace.
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

/// Refuses a file that is not a regular executable file, or that someone other than its owner
/// could replace, or whose owner is neither root nor this daemon's user: the daemon would run
/// it with every service as its children.
pub fn trusted_file(binary: &Path) -> Result<(), String> {
    let shown = binary.display();
    let m = std::fs::metadata(binary).map_err(|e| format!("cannot upgrade to {shown}: {e}"))?;
    if !m.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if m.mode() & 0o111 == 0 {
        return Err(format!("{shown} is not executable"));
    }
    if let Err(e) = nix::unistd::access(binary, nix::unistd::AccessFlags::X_OK) {
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
    Ok(())
}

/// Runs `binary __handover-check` with a fresh nonce: the version it says, or why it is not an
/// upkeep this daemon can hand over to. Run through the reaper: it reaps every child of the
/// daemon's.
pub async fn check(reaper: &Reaper, binary: &Path) -> Result<String, String> {
    use std::io::Read;
    let shown = binary.display();
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes from the system: {e}"))?;
    let nonce = hex::encode(bytes);
    let mut cmd = std::process::Command::new(binary);
    cmd.arg(SUBCOMMAND)
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
    fn a_file_anyone_may_write_or_that_is_not_a_regular_executable_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bin");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        let mode = |m| std::fs::set_permissions(&f, std::fs::Permissions::from_mode(m)).unwrap();
        mode(0o644);
        assert!(trusted_file(&f).unwrap_err().contains("not executable"));
        mode(0o757);
        assert!(trusted_file(&f).unwrap_err().contains("writable by anyone"));
        mode(0o755);
        assert_eq!(trusted_file(&f), Ok(()));
        assert!(
            trusted_file(dir.path())
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(trusted_file(&dir.path().join("none")).is_err());
    }
}
