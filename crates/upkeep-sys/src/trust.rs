//! Trust in the data dir: a daemon (often root) acts on what it finds there (it kills the
//! processes its run records name, appends to its log files, truncates its lock), so the data
//! dir and its files must be its own: owned by the daemon's user, writable by nobody else, and
//! never reached through a symlink (issue 14, D15). A directory that exists is never chmodded:
//! a `data_dir` naming a shared folder is refused, not taken over (D16).

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{}: {why}", path.display()),
    )
}

/// Checks that `meta` (of `path`, read without following a symlink) is a file or directory of
/// this process's user that nobody else may write.
pub fn check_owned(meta: &Metadata, path: &Path) -> io::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    if meta.file_type().is_symlink() {
        return Err(refuse(path, "is a symbolic link"));
    }
    if meta.uid() != me {
        return Err(refuse(
            path,
            &format!(
                "is owned by uid {}, not by this daemon's uid {me}",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(refuse(
            path,
            &format!("is writable by others (mode {:o})", meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

/// Checks that the directory `dir` (not a symlink) is ours and private (see [`check_owned`]).
pub fn check_private(dir: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(refuse(dir, "is not a directory"));
    }
    check_owned(&meta, dir)
}

/// Makes the data dir (mode 0700, parents as needed) or, if it exists, checks that it is ours
/// and private, leaving its mode alone.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Parents are made with the usual mode; only the data dir itself is private.
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)?;
            }
            return match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_private(dir),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    }
    check_private(dir)
}

/// If `path` exists, checks that it is ours and private (see [`check_owned`]).
pub fn check_if_present(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => check_owned(&meta, path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_dir_is_private_and_an_existing_shared_one_is_refused_unchanged() {
        let base = tempfile::tempdir().unwrap();
        let new = base.path().join("a/b/data");
        private_dir(&new).unwrap();
        assert_eq!(std::fs::metadata(&new).unwrap().mode() & 0o777, 0o700);
        private_dir(&new).unwrap(); // again: fine

        let shared = base.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = private_dir(&shared).unwrap_err();
        assert!(err.to_string().contains("writable by others"), "{err}");
        assert_eq!(std::fs::metadata(&shared).unwrap().mode() & 0o7777, 0o1777);
    }

    #[test]
    fn symlinks_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(check_private(&link).is_err());
        let file = base.path().join("f");
        std::fs::write(&file, "").unwrap();
        let flink = base.path().join("flink");
        std::os::unix::fs::symlink(&file, &flink).unwrap();
        assert!(check_if_present(&flink).is_err());
        assert!(check_if_present(&base.path().join("absent")).is_ok());
    }
}
