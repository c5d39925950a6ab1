//! Whether a service's user may enter its folder and run its program, and if not, why: one
//! judge for `upkeep check` (a problem at `cwd` or `command`, with its file:line:col) and for a
//! start that failed (the `spawn_failed` reason), so that both tell the same story. A missing
//! folder is a missing folder, not a missing program; a program without an execute bit is
//! not executable, not "not found"; a folder its user cannot enter names the folder in the
//! way, its mode and its owner (break-it, session 11: each was told wrong or not at all).
//!
//! Judged from the mode bits as the kernel judges them for that user: the owner's bits, else
//! the group's, else the others'; root passes everything but a file with no execute bit at
//! all. A file or folder with an access control list is not judged (its mode bits are not the
//! whole story): nothing is refused here that the kernel would allow.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::UserIds;

/// Who a service runs as: its `user` (with that user's primary group only: the spawn drops
/// the others), or the daemon's own user and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// `user = "..."`, for messages; None for the daemon's own user.
    pub name: Option<String>,
    pub uid: u32,
    pub groups: Vec<u32>,
}

impl Who {
    /// The service's `user`, or (None) this process's user.
    pub fn of(user: Option<&UserIds>) -> Who {
        let me = Self::current();
        match user {
            // Only root switches (and drops the other groups); a daemon naming its own user
            // runs the service with every group it has itself.
            Some(u) if me.is_root() || u.uid != me.uid => Who {
                name: Some(u.name.clone()),
                uid: u.uid,
                groups: vec![u.gid],
            },
            Some(u) => Who {
                name: Some(u.name.clone()),
                ..me
            },
            None => me,
        }
    }

    fn current() -> Who {
        let mut groups = nix::unistd::getgroups().unwrap_or_default();
        groups.push(nix::unistd::getegid());
        Who {
            name: None,
            uid: nix::unistd::geteuid().as_raw(),
            groups: groups.into_iter().map(|g| g.as_raw()).collect(),
        }
    }

    fn is_root(&self) -> bool {
        self.uid == 0
    }
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(name) => write!(f, "user `{name}`"),
            None => write!(f, "the daemon's user (uid {})", self.uid),
        }
    }
}

/// Why a service cannot start in a folder or run a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{what} {} does not exist", path.display())]
    Missing { what: &'static str, path: PathBuf },
    #[error("{} is not a folder", path.display())]
    NotFolder { path: PathBuf },
    #[error("{} is a folder, not a program", path.display())]
    IsFolder { path: PathBuf },
    #[error("{} is not executable (mode {mode:03o})", path.display())]
    NotExecutable { path: PathBuf, mode: u32 },
    /// `who` may not pass through (or run) `blocker` on the way to `path`.
    #[error("{who} {} {}: {}", if *folder { "cannot enter folder" } else { "cannot run" }, path.display(), denied(path, blocker, *mode, owner))]
    Denied {
        who: String,
        folder: bool,
        path: PathBuf,
        blocker: PathBuf,
        mode: u32,
        owner: String,
    },
}

fn denied(path: &Path, blocker: &Path, mode: u32, owner: &str) -> String {
    if path == blocker {
        format!("permission denied (mode {mode:03o}, owned by {owner})")
    } else {
        format!(
            "permission denied on {} (mode {mode:03o}, owned by {owner})",
            blocker.display()
        )
    }
}

impl Refusal {
    /// What to do about it, for `upkeep check`.
    pub fn hint(&self) -> Option<String> {
        match self {
            Refusal::Missing { what: "folder", .. } => {
                Some("create it, or point cwd at a folder that exists".into())
            }
            Refusal::NotExecutable { path, .. } => Some(format!(
                "make it executable (chmod +x {}), or run it through its interpreter",
                path.display()
            )),
            Refusal::Denied { blocker, who, .. } => Some(format!(
                "let {who} through {} (chmod o+x, or its group), or run the service as a user who may",
                blocker.display()
            )),
            _ => None,
        }
    }
}

/// Whether `who` may make `dir` its working directory.
pub fn folder(dir: &Path, who: &Who) -> Result<(), Refusal> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let meta = match dir.metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Refusal::Missing {
                what: "folder",
                path: dir,
            });
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(Refusal::NotFolder { path: dir });
        }
        // Not ours to see (`upkeep check` as another user): the start will tell.
        Err(_) => return Ok(()),
    };
    if !meta.is_dir() {
        return Err(Refusal::NotFolder { path: dir });
    }
    through(&dir, &dir, who, true)
}

/// Whether `who` may execute the file at `path`.
pub fn program(path: &Path, who: &Who) -> Result<(), Refusal> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let meta = match path.metadata() {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Refusal::Missing {
                what: "program",
                path,
            });
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(Refusal::Missing {
                what: "program",
                path,
            });
        }
        Err(_) => return Ok(()),
    };
    if meta.is_dir() {
        return Err(Refusal::IsFolder { path });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o111 == 0 && !has_acl(&path) {
        return Err(Refusal::NotExecutable {
            path,
            mode: mode & 0o777,
        });
    }
    if let Some(parent) = path.parent() {
        through(parent, &path, who, false)?;
    }
    allowed(&path, &meta, who, &path, false)
}

/// Why a service could not start, if its folder or program says (None: something else, such
/// as a limit or the kernel, and the spawn's own error is the story). For a start that failed.
pub fn why_not_started(cfg: &crate::ManagedConfig) -> Option<Refusal> {
    let who = Who::of(cfg.user.as_ref());
    if let Some(dir) = &cfg.cwd
        && let Err(r) = folder(dir, &who)
    {
        return Some(r);
    }
    program(&cfg.program.path, &who).err()
}

/// Whether `who` may pass through every folder from `/` down to `dir` (`target` is what it
/// is on the way to, for the message).
fn through(dir: &Path, target: &Path, who: &Who, folder: bool) -> Result<(), Refusal> {
    let mut ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors.reverse();
    for step in ancestors {
        let Ok(meta) = step.metadata() else {
            continue;
        };
        allowed(step, &meta, who, target, folder)?;
    }
    Ok(())
}

/// Whether `who` has the execute (search) bit on `path`, as the kernel decides from its mode.
fn allowed(
    path: &Path,
    meta: &std::fs::Metadata,
    who: &Who,
    target: &Path,
    folder: bool,
) -> Result<(), Refusal> {
    let mode = meta.permissions().mode();
    let ok = if who.is_root() {
        meta.is_dir() || mode & 0o111 != 0
    } else if meta.uid() == who.uid {
        mode & 0o100 != 0
    } else if who.groups.contains(&meta.gid()) {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    };
    if ok || has_acl(path) {
        return Ok(());
    }
    Err(Refusal::Denied {
        who: who.to_string(),
        folder,
        path: target.to_owned(),
        blocker: path.to_owned(),
        mode: mode & 0o777,
        owner: owner(meta),
    })
}

/// `user:group` by name where the host knows them, else by number.
fn owner(meta: &std::fs::Metadata) -> String {
    let user = nix::unistd::User::from_uid(meta.uid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    let group = nix::unistd::Group::from_gid(meta.gid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |g| g.name);
    format!("{user}:{group}")
}

/// Whether `path` has an access control list beyond its mode bits.
fn has_acl(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: both names are NUL-terminated; a size of 0 with a null buffer only asks the
    // attribute's size.
    let got = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    got > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn nobody() -> Who {
        Who {
            name: Some("nobody".into()),
            uid: 65534,
            groups: vec![65534],
        }
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn each_refusal_names_its_real_cause() {
        let tmp = tempfile::tempdir().unwrap();
        chmod(tmp.path(), 0o755);
        let me = Who::current();
        // A folder that is not there, and a file where a folder should be.
        let gone = tmp.path().join("gone");
        assert_eq!(
            folder(&gone, &me).unwrap_err().to_string(),
            format!("folder {} does not exist", gone.display())
        );
        let file = tmp.path().join("app.sh");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        chmod(&file, 0o644);
        assert!(matches!(folder(&file, &me), Err(Refusal::NotFolder { .. })));
        assert!(matches!(
            folder(&file.join("below"), &me),
            Err(Refusal::NotFolder { .. })
        ));
        // A program without an execute bit is not executable, whoever runs it.
        let err = program(&file, &me).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} is not executable (mode 644)", file.display())
        );
        assert!(err.hint().unwrap().contains("chmod +x"), "{err:?}");
        assert!(matches!(
            program(tmp.path(), &me),
            Err(Refusal::IsFolder { .. })
        ));
        assert!(matches!(
            program(&gone, &me),
            Err(Refusal::Missing {
                what: "program",
                ..
            })
        ));
        chmod(&file, 0o755);
        assert_eq!(program(&file, &me), Ok(()));
        // A folder only its owner may enter: root may, another user may not, and the
        // refusal names the folder in the way.
        let private = tmp.path().join("private");
        std::fs::create_dir(&private).unwrap();
        let inside = private.join("www");
        std::fs::create_dir(&inside).unwrap();
        chmod(&private, 0o700);
        let root = Who {
            name: None,
            uid: 0,
            groups: vec![0],
        };
        assert_eq!(folder(&inside, &root), Ok(()));
        let owner = std::fs::metadata(&private).unwrap().uid();
        if owner != 65534 {
            let err = folder(&inside, &nobody()).unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(&format!(
                    "user `nobody` cannot enter folder {}: permission denied on {} (mode 700, owned by ",
                    inside.display(),
                    private.display()
                )),
                "{text}"
            );
            // Its group may, with the group's bit.
            chmod(&private, 0o710);
            let group = Who {
                groups: vec![std::fs::metadata(&private).unwrap().gid()],
                ..nobody()
            };
            assert_eq!(folder(&inside, &group), Ok(()));
            // A program in it: not to be run by whoever cannot reach it.
            let prog = inside.join("run");
            std::fs::write(&prog, "#!/bin/sh\n").unwrap();
            chmod(&prog, 0o755);
            chmod(&private, 0o700);
            assert!(matches!(
                program(&prog, &nobody()),
                Err(Refusal::Denied { folder: false, .. })
            ));
            // Executable by its owner only.
            chmod(&private, 0o755);
            chmod(&prog, 0o700);
            let text = program(&prog, &nobody()).unwrap_err().to_string();
            assert!(
                text.starts_with(&format!(
                    "user `nobody` cannot run {}: permission denied (mode 700",
                    prog.display()
                )),
                "{text}"
            );
        }
    }
}
