//! The journal: a file in the data dir that holds events, with their sequence numbers, while
//! the store cannot take them (PostgreSQL away, SQLite locked or its disk full), so that
//! memory stays bounded and a daemon killed during the outage loses none of them.
//!
//! One JSON line per event, appended (no fsync: a kill -9 leaves the page cache to the
//! kernel; only a power cut could lose the last lines, as with SQLite's NORMAL sync). The
//! writer reads it back from the front once the store answers again, and empties it when
//! everything is stored. A torn last line (the daemon killed mid-write) is dropped: its event
//! was never acknowledged as kept.
//!
//! It does not decide when to journal; `writer.rs` does.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use upkeep_core::Event;

/// A line as written.
#[derive(Serialize)]
struct LineOut<'a> {
    seq: u64,
    event: &'a Event,
}

/// A line as read back.
#[derive(Deserialize)]
struct Line {
    seq: u64,
    event: Event,
}

pub(crate) struct Journal {
    path: PathBuf,
    /// Appends go here.
    file: tokio::fs::File,
    /// Where the next unstored line starts.
    read_at: u64,
    /// Bytes written so far (the file's length).
    len: u64,
}

impl Journal {
    /// Opens (creating, private) the journal at `path`, with whatever a previous daemon left.
    pub(crate) async fn open(path: &Path) -> std::io::Result<Journal> {
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .await?;
        let len = file.metadata().await?.len();
        Ok(Journal {
            path: path.to_owned(),
            file,
            read_at: 0,
            len,
        })
    }

    /// True when every line written has been read back.
    pub(crate) fn is_drained(&self) -> bool {
        self.read_at >= self.len
    }

    /// True when consuming up to `offset` empties it (see [`Journal::consume`]).
    pub(crate) fn drains_at(&self, offset: u64) -> bool {
        offset >= self.len
    }

    /// Appends events numbered from `first_seq` and returns once the kernel has them.
    pub(crate) async fn append(&mut self, first_seq: u64, events: &[Event]) -> std::io::Result<()> {
        let mut text = Vec::with_capacity(events.len() * 160);
        for (i, event) in events.iter().enumerate() {
            let line = LineOut {
                seq: first_seq + i as u64,
                event,
            };
            serde_json::to_writer(&mut text, &line).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        self.file.write_all(&text).await?;
        // tokio hands writes to a blocking thread: flush waits until it is done.
        self.file.flush().await?;
        self.len += text.len() as u64;
        Ok(())
    }

    /// Up to `max` events from where reading stopped, with the sequence number of the first,
    /// and the offset to [`Journal::consume`] once they are stored. A line that does not
    /// parse ends the read (a torn last line) and is skipped.
    pub(crate) async fn peek(&self, max: usize) -> std::io::Result<(u64, Vec<Event>, u64)> {
        let mut file = tokio::fs::File::open(&self.path).await?;
        file.seek(SeekFrom::Start(self.read_at)).await?;
        let mut reader = BufReader::new(file);
        let (mut first, mut events, mut at) = (0, Vec::new(), self.read_at);
        let mut buf = String::new();
        while events.len() < max && at < self.len {
            buf.clear();
            let n = reader.read_line(&mut buf).await?;
            if n == 0 {
                // Shorter than written (cut by hand): nothing more to read.
                at = self.len;
                break;
            }
            match serde_json::from_str::<Line>(&buf) {
                Ok(line) => {
                    // Consecutive numbers only: a batch is stored from its first number on.
                    if events.is_empty() {
                        first = line.seq;
                    } else if line.seq != first + events.len() as u64 {
                        break;
                    }
                    events.push(line.event);
                    at += n as u64;
                }
                Err(e) => {
                    if events.is_empty() {
                        tracing::error!(
                            offset = at,
                            "skipping a journal line that does not parse: {e}"
                        );
                        at += n as u64;
                        continue;
                    }
                    break;
                }
            }
        }
        // Skipped lines are consumed with the batch (or alone, if nothing else was read).
        Ok((first, events, at))
    }

    /// Marks everything before `offset` as stored; empties the file once it is all stored.
    pub(crate) async fn consume(&mut self, offset: u64) -> std::io::Result<()> {
        self.read_at = offset;
        if self.is_drained() {
            self.file.set_len(0).await?;
            self.read_at = 0;
            self.len = 0;
        }
        Ok(())
    }

    /// How many lines the journal holds and the number of its last whole event, read line
    /// by line: after a long outage it may be large, and start-up must not hold it in memory.
    pub(crate) async fn scan(&self) -> std::io::Result<(u64, Option<u64>)> {
        scan(&self.path).await
    }
}

/// See [`Journal::scan`]; also for a journal no writer has open (what the daemon reports at
/// start). A missing file holds nothing.
pub(crate) async fn scan(path: &Path) -> std::io::Result<(u64, Option<u64>)> {
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, None)),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let (mut lines, mut last) = (0, None);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).await? == 0 {
            return Ok((lines, last));
        }
        if buf.ends_with(b"\n") {
            lines += 1;
        }
        if let Ok(line) = serde_json::from_slice::<Line>(&buf) {
            last = Some(line.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::{EventKind, ServiceName};

    fn ev(pid: u32) -> Event {
        Event::now(
            &ServiceName::new("web").unwrap(),
            EventKind::StaleStopped { pid },
        )
    }

    #[tokio::test]
    async fn events_come_back_in_order_across_reopening_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        {
            let mut j = Journal::open(&path).await.unwrap();
            j.append(7, &[ev(1), ev(2), ev(3)]).await.unwrap();
        }
        // A daemon killed mid-line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map(|mut f| std::io::Write::write_all(&mut f, b"{\"seq\":10,\"ev"))
            .unwrap()
            .unwrap();
        let mut j = Journal::open(&path).await.unwrap();
        // Three whole lines, the last whole event number 9; the torn line is not counted.
        assert_eq!(j.scan().await.unwrap(), (3, Some(9)));
        let (first, events, at) = j.peek(2).await.unwrap();
        assert_eq!((first, events.len()), (7, 2));
        j.consume(at).await.unwrap();
        let (first, events, at) = j.peek(100).await.unwrap();
        assert_eq!(first, 9);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::StaleStopped { pid: 3 });
        j.consume(at).await.unwrap();
        // The torn line: skipped on its own, and then the file is empty.
        let (_, events, at) = j.peek(100).await.unwrap();
        assert!(events.is_empty());
        j.consume(at).await.unwrap();
        assert!(j.is_drained());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
