//! One reader per pipe: reads what the child writes, stamps each line, queues it for the writer.
//!
//! This task must keep up with any child, so it only copies bytes: no file I/O, no awaiting on
//! anything but the pipe. If the writer falls more than `IN_FLIGHT_LIMIT` behind, chunks are
//! dropped and counted instead of waiting. Until a run says it is ready through its log
//! (`ready = { log = ... }`), each line is also matched against the pattern (a dropped line
//! too); after that, no line is looked at again. A job's run also shows each chunk to its
//! tap (`tap.rs`), which keeps the run's last lines for its record.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};
use upkeep_core::{Clock, Event, EventKind};

use super::writer::WriterMsg;
use super::{IN_FLIGHT_LIMIT, StreamShared};
use crate::ready::LineWatch;

const READ_SIZE: usize = 256 * 1024;
/// A line longer than this is cut into pieces rather than held in memory whole.
const MAX_LINE: usize = 64 * 1024;

/// A pipe a reader let go of, with the start of a line it had read no end of.
pub(crate) struct Released {
    pub fd: OwnedFd,
    pub partial: Vec<u8>,
}

/// Asks a reader to let go of its pipe; it answers on the sender it is given.
pub(crate) type ReleaseRequest = oneshot::Receiver<oneshot::Sender<Released>>;

pub(crate) async fn run(
    (fd, partial, read_to_end): (OwnedFd, Vec<u8>, Box<dyn FnOnce() + Send>),
    shared: Arc<StreamShared>,
    writer: std_mpsc::Sender<WriterMsg>,
    (events, clock): (mpsc::Sender<Event>, Clock),
    mut watch: Option<LineWatch>,
    tap: Option<super::tap::StreamTap>,
    release: ReleaseRequest,
) {
    let mut release = Some(release);
    let Ok(pipe) = pipe::Receiver::from_owned_fd(fd) else {
        return;
    };
    let mut framer = Framer { partial };
    let mut queue = Queue {
        shared,
        writer,
        events,
        clock,
        dropped_pending: 0,
    };
    // Allocated on the first byte: an idle service (most of them) costs no buffer.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let asked = tokio::select! {
            biased;
            asked = async {
                match release.as_mut() {
                    Some(r) => r.await.ok(),
                    None => std::future::pending().await,
                }
            } => Some(asked),
            ready = pipe.readable() => {
                if ready.is_err() {
                    break;
                }
                None
            }
        };
        match asked {
            Some(Some(reply)) => {
                queue.report_drops();
                // Blocking again, as the pipe was before we took it.
                if let Ok(fd) = pipe.into_blocking_fd() {
                    let _ = reply.send(Released {
                        fd,
                        partial: std::mem::take(&mut framer.partial),
                    });
                }
                return;
            }
            // Nobody will ask any more (the run ended): read on to the end.
            Some(None) => {
                release = None;
                continue;
            }
            None => {}
        }
        if buf.is_empty() {
            buf = vec![0; READ_SIZE];
        }
        match pipe.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some((chunk, lines)) = framer.push(&buf[..n]) {
                    look(&mut watch, &chunk);
                    if let Some(t) = &tap {
                        t.chunk(&chunk, STAMP_LEN);
                    }
                    queue.push(chunk, lines);
                }
                // One chunk, then the others' turn: a service that writes without pause would
                // otherwise keep the daemon's one thread for dozens of chunks at a time (tokio
                // lets a task run about 128 ready reads before it must yield), and restarts
                // and probes of every other service waited seconds (seen by a tester).
                tokio::task::yield_now().await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
    }
    if let Some((chunk, lines)) = framer.finish() {
        look(&mut watch, &chunk);
        if let Some(t) = &tap {
            t.chunk(&chunk, STAMP_LEN);
        }
        queue.push(chunk, lines);
    }
    queue.report_drops();
    // Read to its end (not handed on): whoever kept the pipe may let go of it.
    read_to_end();
}

/// Shows each line of a framed chunk to the watch (without its time stamp), until it fires.
fn look(watch: &mut Option<LineWatch>, chunk: &[u8]) {
    let Some(w) = watch else {
        return;
    };
    for line in chunk.split(|b| *b == b'\n') {
        if !w.waiting() {
            break;
        }
        if let Some(text) = line.get(STAMP_LEN..) {
            w.line(text);
        }
    }
    if !w.waiting() {
        *watch = None;
    }
}

/// The length of [`stamp`]'s prefix: `2026-01-02T03:04:05.678Z `.
const STAMP_LEN: usize = 25;

fn stamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ ")
        .to_string()
}

/// Splits bytes into lines and prefixes each with the time it was read.
#[derive(Default)]
struct Framer {
    partial: Vec<u8>,
}

impl Framer {
    /// Complete lines of `data` (and of what was held back before), stamped; the rest is kept.
    fn push(&mut self, data: &[u8]) -> Option<(Bytes, u64)> {
        let Some(last_nl) = memchr::memrchr(b'\n', data) else {
            self.partial.extend_from_slice(data);
            if self.partial.len() >= MAX_LINE {
                let mut line = std::mem::take(&mut self.partial);
                line.push(b'\n');
                return Some(self.frame(&line));
            }
            return None;
        };
        let (complete, rest) = data.split_at(last_nl + 1);
        let out = if self.partial.is_empty() {
            self.frame(complete)
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(complete);
            self.frame(&joined)
        };
        self.partial.extend_from_slice(rest);
        Some(out)
    }

    fn finish(&mut self) -> Option<(Bytes, u64)> {
        if self.partial.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.partial);
        line.push(b'\n');
        Some(self.frame(&line))
    }

    /// `lines` ends in '\n'. One SIMD pass finds the line ends, a second copies.
    fn frame(&self, lines: &[u8]) -> (Bytes, u64) {
        let ts = stamp();
        let count = memchr::memchr_iter(b'\n', lines).count();
        let mut out = BytesMut::with_capacity(lines.len() + count * ts.len());
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', lines) {
            out.put_slice(ts.as_bytes());
            out.put_slice(&lines[start..=end]);
            start = end + 1;
        }
        (out.freeze(), count as u64)
    }
}

struct Queue {
    shared: Arc<StreamShared>,
    writer: std_mpsc::Sender<WriterMsg>,
    events: mpsc::Sender<Event>,
    /// Stamps the drop reports (log lines themselves carry the system's time: when read).
    clock: Clock,
    /// Dropped since the last report.
    dropped_pending: u64,
}

impl Queue {
    fn push(&mut self, chunk: Bytes, lines: u64) {
        let queued = self.shared.in_flight.load(Ordering::Acquire);
        if queued + chunk.len() > IN_FLIGHT_LIMIT {
            self.dropped_pending += lines;
            return;
        }
        let chunk = if self.dropped_pending > 0 {
            let marker = format!(
                "{}[upkeep] {} lines dropped: the service wrote faster than its log could be written\n",
                stamp(),
                self.dropped_pending
            );
            self.report_drops();
            let mut joined = BytesMut::from(marker.as_bytes());
            joined.extend_from_slice(&chunk);
            joined.freeze()
        } else {
            chunk
        };
        self.shared
            .in_flight
            .fetch_add(chunk.len(), Ordering::AcqRel);
        let _ = self.writer.send(WriterMsg::Write {
            shared: self.shared.clone(),
            data: chunk,
        });
    }

    fn report_drops(&mut self) {
        if self.dropped_pending == 0 {
            return;
        }
        let kind = EventKind::LogLinesDropped {
            stream: self.shared.stream.as_str().into(),
            lines: self.dropped_pending,
        };
        // try_send: this task must never wait on anyone but the pipe.
        let _ = self
            .events
            .try_send(self.clock.event(&self.shared.name, kind));
        self.dropped_pending = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &Bytes) -> String {
        // Drop the 25-byte timestamps to compare content.
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| &l[25..])
            .collect::<Vec<_>>()
            .join("|")
    }

    #[test]
    fn frames_lines_across_reads() {
        let mut f = Framer::default();
        assert!(f.push(b"hel").is_none());
        let (out, n) = f.push(b"lo\nwor").unwrap();
        assert_eq!((text(&out), n), ("hello".into(), 1));
        let (out, n) = f.push(b"ld\na\nb\n").unwrap();
        assert_eq!((text(&out), n), ("world|a|b".into(), 3));
        f.push(b"tail");
        assert_eq!(text(&f.finish().unwrap().0), "tail");
        assert!(f.finish().is_none());
    }

    #[test]
    fn cuts_endless_lines() {
        let mut f = Framer::default();
        let (out, n) = f.push(&vec![b'x'; MAX_LINE]).unwrap();
        assert_eq!(n, 1);
        assert_eq!(out.len(), MAX_LINE + 1 + 25);
    }
}
