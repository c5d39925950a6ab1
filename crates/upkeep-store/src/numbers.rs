//! The sequence numbers this node has handed out, kept in `<data_dir>/seq`, so that a daemon
//! that starts while the store is away numbers its events on from the last one, with no gap
//! and no duplicate, instead of asking the store.
//!
//! Two marks ([`Marks`]): `kept`, below which every number is stored, journaled, or refused
//! for good; and `handed`, above which no number was ever handed to the store. Between them
//! (a batch in flight when the daemon was killed) the store may hold the events or not: the
//! next daemon, if it cannot ask, stands an [`upkeep_core::EventKind::Unrecorded`] in for each
//! (see `writer.rs`), stored only where the store has nothing.
//!
//! One fixed-width line, rewritten in place (one small `pwrite`, no fsync: a kill -9 leaves it
//! to the kernel, like the journal; a power cut may leave an older line). A line that does
//! not read back whole (torn, edited, another format) is refused, never guessed at: the
//! writer then waits for the store to say where numbering stands, and writes the file again.
//!
//! It does not decide when to write; `writer.rs` does.

use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where numbering stands (see the module's comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Marks {
    /// Every number up to this one is stored, journaled, or refused for good.
    pub kept: u64,
    /// No number past this one was handed to the store.
    pub handed: u64,
}

/// Why the file's line was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unreadable {
    #[error("it is empty")]
    Empty,
    #[error("its line is not what upkeep writes (torn, or edited by hand)")]
    Garbled,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `{kept} {handed} {check}\n`, each number zero-padded, so every write is the same length
/// and a torn write cannot pass for a whole one.
const LEN: usize = 20 + 1 + 20 + 1 + 16 + 1;

fn check(m: Marks) -> u64 {
    // FNV-1a over both numbers: enough to tell a whole line from a torn or mixed one.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in m
        .kept
        .to_le_bytes()
        .into_iter()
        .chain(m.handed.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn line(m: Marks) -> String {
    format!("{:020} {:020} {:016x}\n", m.kept, m.handed, check(m))
}

fn parse(bytes: &[u8]) -> Result<Marks, Unreadable> {
    if bytes.is_empty() {
        return Err(Unreadable::Empty);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| Unreadable::Garbled)?;
    let fields: Vec<&str> = text.strip_suffix('\n').unwrap_or("").split(' ').collect();
    let [kept, handed, sum] = fields[..] else {
        return Err(Unreadable::Garbled);
    };
    let number = |s: &str| {
        (s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (Some(kept), Some(handed)) = (number(kept), number(handed)) else {
        return Err(Unreadable::Garbled);
    };
    let m = Marks { kept, handed };
    if bytes.len() != LEN || sum != format!("{:016x}", check(m)) || kept > handed {
        return Err(Unreadable::Garbled);
    }
    Ok(m)
}

/// The open file; writes go to its start.
pub(crate) struct SeqFile {
    file: File,
    path: PathBuf,
    /// The file held something else: cut it to one line at the next write.
    cut: bool,
}

impl SeqFile {
    /// Opens (creating, private, never through a symlink) the file at `path`, and reads
    /// where numbering stood.
    pub(crate) fn open(path: &Path) -> std::io::Result<(SeqFile, Result<Marks, Unreadable>)> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let read = read_marks(&file);
        Ok((
            SeqFile {
                file,
                path: path.to_owned(),
                cut: read.is_err(),
            },
            read,
        ))
    }

    /// Writes `m` over what was there; once this returns, a kill leaves `m`.
    pub(crate) fn write(&mut self, m: Marks) -> std::io::Result<()> {
        if self.cut {
            self.file.set_len(0)?;
            self.cut = false;
        }
        self.file.write_all_at(line(m).as_bytes(), 0)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn read_marks(file: &File) -> Result<Marks, Unreadable> {
    // One more byte than a line holds: a longer file is not one of ours.
    let mut buf = [0; LEN + 1];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    parse(&buf[..n])
}

/// Records that this node has no events yet: called when its node id is made, so that a
/// first start with the store away numbers from 1 instead of waiting for the store.
pub fn start_numbering(path: &Path) -> std::io::Result<()> {
    let (mut file, _) = SeqFile::open(path)?;
    file.cut = true;
    file.write(Marks::default())?;
    file.file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(kept: u64, handed: u64) -> Marks {
        Marks { kept, handed }
    }

    #[test]
    fn marks_read_back_across_reopening_and_each_write_replaces_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq");
        let (mut f, read) = SeqFile::open(&path).unwrap();
        assert!(matches!(read, Err(Unreadable::Empty)), "{read:?}");
        f.write(marks(7, 12)).unwrap();
        f.write(marks(u64::MAX - 1, u64::MAX)).unwrap();
        f.write(marks(12, 40)).unwrap();
        drop(f);
        let (_, read) = SeqFile::open(&path).unwrap();
        assert_eq!(read.unwrap(), marks(12, 40));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), LEN as u64);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_new_node_numbers_from_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq");
        std::fs::write(
            &path,
            "left by another node id, longer than a line of ours ........",
        )
        .unwrap();
        start_numbering(&path).unwrap();
        let (_, read) = SeqFile::open(&path).unwrap();
        assert_eq!(read.unwrap(), Marks::default());
    }

    /// A torn, mixed, edited or foreign file is refused, never read as numbers and never a
    /// panic: the writer then asks the store.
    #[test]
    fn a_torn_or_corrupt_file_is_refused() {
        let whole = line(marks(12, 40));
        let mixed = format!("{}{}", &line(marks(13, 41))[..21], &whole[21..]);
        let swapped = {
            let m = marks(40, 12);
            format!("{:020} {:020} {:016x}\n", m.kept, m.handed, check(m))
        };
        let bad: Vec<Vec<u8>> = vec![
            whole.as_bytes()[..30].to_vec(),          // torn
            mixed.into_bytes(),                       // half of one write, half of another
            whole.replace('\n', "").into_bytes(),     // no newline
            format!("{whole}{whole}").into_bytes(),   // twice
            whole.replacen('0', "x", 1).into_bytes(), // edited
            swapped.into_bytes(),                     // handed before kept
            b"12 40\n".to_vec(),                      // by hand
            vec![0; LEN],                             // zeros (a power cut)
            vec![0xff; 7],                            // not text
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq");
        for bytes in bad {
            std::fs::write(&path, &bytes).unwrap();
            let (_, read) = SeqFile::open(&path).unwrap();
            assert!(
                matches!(read, Err(Unreadable::Garbled)),
                "{:?}: {read:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
        // The next write makes it whole again.
        std::fs::write(&path, format!("{whole}{whole}")).unwrap();
        let (mut f, _) = SeqFile::open(&path).unwrap();
        f.write(marks(3, 3)).unwrap();
        let (_, read) = SeqFile::open(&path).unwrap();
        assert_eq!(read.unwrap(), marks(3, 3));
    }

    #[test]
    fn a_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "").unwrap();
        let path = dir.path().join("seq");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(SeqFile::open(&path).is_err());
    }
}
