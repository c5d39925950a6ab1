//! [`Tap`]: the output of one job run, kept for its `job_ran` event.
//!
//! The capture of stdout and of stderr each hold a [`StreamTap`] of the run's tap and show it
//! every framed chunk; it keeps the last [`KEEP_LINES`] lines (each cut at [`LINE_CHARS`]) and
//! counts the ones it let go. The capture ends at the pipe's end of file, dropping its
//! `StreamTap`: once both are gone, every line the run wrote has been seen, and
//! [`Tap::finished`] returns. The log files get the same lines as always; this is a copy.
//! Only jobs have a tap: a service that runs for months would keep nothing useful in it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// Lines of a run kept in its record.
pub const KEEP_LINES: usize = 100;
/// Characters of a line kept (a run's record stays small in the store).
pub const LINE_CHARS: usize = 1000;

#[derive(Default)]
struct Lines {
    kept: VecDeque<String>,
    dropped: u64,
}

struct Shared {
    lines: Mutex<Lines>,
    /// Streams still open.
    open: AtomicUsize,
    closed: Notify,
}

/// One run's tap (see the module docs).
#[derive(Clone)]
pub(crate) struct Tap(Arc<Shared>);

impl Tap {
    /// A tap for a run with two streams (stdout and stderr).
    pub fn new() -> Tap {
        Tap(Arc::new(Shared {
            lines: Mutex::default(),
            open: AtomicUsize::new(2),
            closed: Notify::new(),
        }))
    }

    /// A tap for a run an earlier image of the daemon began (`upkeep upgrade`): it goes on
    /// from the lines that image kept (`dropped` let go before them), with `streams` streams
    /// handed over.
    pub fn carried_on(kept: Vec<String>, dropped: u64, streams: usize) -> Tap {
        let mut kept: VecDeque<String> = kept.into();
        let mut dropped = dropped;
        while kept.len() > KEEP_LINES {
            kept.pop_front();
            dropped += 1;
        }
        Tap(Arc::new(Shared {
            lines: Mutex::new(Lines { kept, dropped }),
            open: AtomicUsize::new(streams),
            closed: Notify::new(),
        }))
    }

    /// The side one capture holds; `stderr` marks its lines.
    pub fn stream(&self, stderr: bool) -> StreamTap {
        StreamTap {
            shared: self.0.clone(),
            stderr,
        }
    }

    /// Waits until both streams ended (at most `bound`: a process the run left behind may
    /// hold a pipe open), then returns the kept lines and how many were let go.
    pub async fn finished(&self, bound: Duration) -> (Vec<String>, u64) {
        let closed = async {
            loop {
                let notified = self.0.closed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.0.open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(bound, closed).await;
        let mut lines = self.0.lines.lock().expect("tap poisoned");
        (
            std::mem::take(&mut lines.kept).into(),
            std::mem::take(&mut lines.dropped),
        )
    }
}

/// A capture's side of a [`Tap`]; dropping it says the stream ended.
pub(crate) struct StreamTap {
    shared: Arc<Shared>,
    stderr: bool,
}

impl StreamTap {
    /// Keeps the lines of a framed chunk, each without its `stamp` prefix of `stamp_len`
    /// bytes. A std Mutex, held for a few pushes, never across an await.
    pub fn chunk(&self, chunk: &[u8], stamp_len: usize) {
        let mut lines = self.shared.lines.lock().expect("tap poisoned");
        for line in chunk.split(|b| *b == b'\n') {
            let Some(text) = line.get(stamp_len..) else {
                continue;
            };
            let text = String::from_utf8_lossy(text);
            let mut kept: String = text.chars().take(LINE_CHARS).collect();
            if self.stderr {
                kept.insert_str(0, "stderr| ");
            }
            if lines.kept.len() == KEEP_LINES {
                lines.kept.pop_front();
                lines.dropped += 1;
            }
            lines.kept.push_back(kept);
        }
    }
}

impl Drop for StreamTap {
    fn drop(&mut self) {
        if self.shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_lines_of_both_streams_until_both_end() {
        let tap = Tap::new();
        let (out, err) = (tap.stream(false), tap.stream(true));
        let mut chunk = Vec::new();
        for i in 0..KEEP_LINES + 5 {
            chunk.extend_from_slice(format!("STAMP line {i}\n").as_bytes());
        }
        out.chunk(&chunk, 6);
        err.chunk(b"STAMP oops\n", 6);
        drop(out);
        // One stream still open: waits out the bound, then gives what it has.
        let (lines, dropped) = tap.finished(Duration::from_millis(1)).await;
        assert_eq!(lines.len(), KEEP_LINES);
        assert_eq!(dropped, 6);
        assert_eq!(lines.last().unwrap(), "stderr| oops");
        assert_eq!(lines[0], "line 6");
        drop(err);
        assert_eq!(tap.finished(Duration::from_secs(3600)).await.0.len(), 0);
    }
}
