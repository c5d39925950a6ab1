//! Reading the small files a config names (certificates, keys, secrets, env files) without
//! letting the file decide how long it takes or how much memory it gets: a FIFO would block
//! the open (and the daemon's reload with it) until someone writes, and `/dev/zero` or a huge
//! file would be read whole. Such files are refused with a reason instead.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest certificate chain, key or secret file read (1 MiB).
pub const SMALL_FILE_MAX: u64 = 1024 * 1024;

/// Reads `path` whole if it is a regular file of at most `max` bytes. Opened non-blocking (a
/// FIFO's open returns at once) and checked on the open file; errors name what is wrong.
pub fn read_small(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(bytes)
}

/// [`read_small`], as UTF-8 text.
pub fn read_small_text(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_small(path, max)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_directories_and_big_files_are_refused_small_files_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Would block for ever in a plain open: refused at once.
        let e = read_small(&fifo, 10).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_small(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(read_small(dir.path(), 10).is_err());
        let big = dir.path().join("big");
        std::fs::write(&big, [b'x'; 11]).unwrap();
        let e = read_small(&big, 10).unwrap_err();
        assert!(e.to_string().contains("larger than 10 bytes"), "{e}");
        std::fs::write(&big, b"secret\n").unwrap();
        assert_eq!(read_small_text(&big, 10).unwrap(), "secret\n");
        assert!(read_small(&dir.path().join("none"), 10).is_err());
    }
}
