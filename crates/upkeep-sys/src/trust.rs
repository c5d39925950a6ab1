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

/// Reads a small file of the daemon's own (at most `max` bytes): None when there is none; an
/// error when it is a symlink, someone else's, or writable by others (its content would be
/// theirs to choose).
pub fn read_own(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    check_owned(&file.metadata()?, path)?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Replaces the file at `path` with `bytes`, mode 0600, so that a reader (or a kill at any
/// moment) sees the old content or the new, never a part: a temporary file beside it, written
/// and synced, renamed over it, and the rename synced.
pub fn replace_own(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp); // left by a killed run of this pid
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
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
    fn an_own_file_is_replaced_whole_and_a_foreign_one_is_not_read() {
        let base = tempfile::tempdir().unwrap();
        let f = base.path().join("state.json");
        assert!(read_own(&f, 100).unwrap().is_none());
        replace_own(&f, b"one").unwrap();
        replace_own(&f, b"two").unwrap();
        assert_eq!(read_own(&f, 100).unwrap().unwrap(), b"two");
        assert_eq!(read_own(&f, 2).unwrap().unwrap(), b"tw");
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        // Nothing left beside it.
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 1);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(read_own(&f, 100).is_err());
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(read_own(&link, 100).is_err());
        assert!(
            replace_own(&link, b"x").is_ok(),
            "replacing a link puts a file in its place"
        );
        assert_eq!(
            std::fs::read(&f).unwrap(),
            b"two",
            "and leaves its target alone"
        );
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
