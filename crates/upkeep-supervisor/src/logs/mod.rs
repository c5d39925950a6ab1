//! Log capture: each service's stdout and stderr, line by line with timestamps, into files
//! under `<data_dir>/logs/`, rotated by size.
//!
//! A service must never be slowed by logging. One async reader per pipe reads as fast as the
//! child writes and hands whole chunks of timestamped lines to one writer thread (file writes
//! are blocking calls, so they stay off the runtime). Each stream may have at most
//! [`IN_FLIGHT_LIMIT`] bytes queued; past that the reader drops lines, counts them, writes a
//! marker line once the writer catches up, and reports a `LogLinesDropped` event: counted,
//! never a stall.
//!
//! Layout: `capture.rs` (pipe readers), `writer.rs` (writer thread, rotation, gzip), and here
//! the [`LogHub`] that both share, plus `tail` for `upkeep logs`, and the [`PipeKeeper`] that
//! holds each run's pipes while no daemon reads them (systemd's fd store, set by the binary).

mod capture;
pub(crate) mod tap;
mod writer;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use upkeep_config::LogConfig;
use upkeep_core::{Clock, Event, ServiceName};

use writer::WriterMsg;

/// Chunks a `logs -f` reader may fall behind before it is told it skipped some.
const FOLLOW_CHUNKS: usize = 256;

/// Bytes one stream may have queued for the writer before its lines are dropped.
pub(crate) const IN_FLIGHT_LIMIT: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(&self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
    fn suffix(&self) -> &'static str {
        match self {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        }
    }
}

/// Somewhere a run's output pipes (their read ends) outlive the daemon, so that a daemon
/// killed and started again reads on from them instead of the service dying of SIGPIPE (the
/// binary's `fdstore.rs`: systemd's fd store). Each pipe is named by service, stream and the
/// pid of the process spawned. Kept when the run is spawned, let go once its reader read the
/// pipe to its end (every writer gone: the run ended and its output is read), or, for a
/// forking service, whose daemon may close its output long before it ends, once the run
/// ended (see [`LogHub::capture`]).
pub trait PipeKeeper: Send + Sync {
    fn keep(&self, name: &ServiceName, stream: Stream, pid: u32, fd: BorrowedFd<'_>);
    fn let_go(&self, name: &ServiceName, stream: Stream, pid: u32);
    /// The read end of a run's readiness pipe (`ready = { fd = N }`), kept from the spawn
    /// until the run is ready or ends: a run adopted still starting can say it is ready.
    fn keep_ready(&self, name: &ServiceName, pid: u32, fd: BorrowedFd<'_>);
    fn let_go_ready(&self, name: &ServiceName, pid: u32);
}

/// The supervisor's side of one pipe reader.
pub(crate) struct Capture {
    release: tokio::sync::oneshot::Sender<tokio::sync::oneshot::Sender<capture::Released>>,
}

impl Capture {
    /// Stops the reader between two reads and takes its pipe back, with the start of a line
    /// it had not seen the end of. None if the reader had ended (the pipe was closed).
    pub(crate) async fn release(self) -> Option<(OwnedFd, Vec<u8>)> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.release.send(tx).ok()?;
        rx.await.ok().map(|r| (r.fd, r.partial))
    }
}

/// What a reader and the writer share about one stream.
pub(crate) struct StreamShared {
    pub name: ServiceName,
    pub stream: Stream,
    /// Bytes handed to the writer and not yet written. Reader adds, writer subtracts.
    pub in_flight: AtomicUsize,
    /// Live copy of written bytes for `upkeep logs -f`; sent to only while someone listens.
    /// Made on the first follow: a broadcast channel allocates all its slots up front, and
    /// most logs are never followed (200 eager channels were 11 MiB of the daemon's heap).
    pub follow: std::sync::OnceLock<broadcast::Sender<Bytes>>,
}

#[derive(Clone)]
pub struct LogHub {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    writer: std_mpsc::Sender<WriterMsg>,
    streams: Mutex<HashMap<(ServiceName, Stream), Arc<StreamShared>>>,
    events: mpsc::Sender<Event>,
    clock: Clock,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Set once at start if the daemon runs where pipes can be kept (see [`PipeKeeper`]).
    keeper: std::sync::OnceLock<Arc<dyn PipeKeeper>>,
}

impl LogHub {
    /// Starts the writer thread. Files go to `dir`; dropped-line reports go to `events`,
    /// stamped by `clock`.
    pub fn start(
        dir: PathBuf,
        events: mpsc::Sender<Event>,
        clock: Clock,
    ) -> std::io::Result<LogHub> {
        {
            use std::os::unix::fs::DirBuilderExt;
            // Service output is private: 0700, like the data dir.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        let (tx, rx) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("upkeep-logs".into())
            .spawn(move || writer::run(rx))?;
        Ok(LogHub {
            inner: Arc::new(Inner {
                dir,
                writer: tx,
                streams: Mutex::new(HashMap::new()),
                events,
                clock,
                thread: Mutex::new(Some(thread)),
                keeper: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn path(&self, name: &ServiceName, stream: Stream) -> PathBuf {
        self.inner
            .dir
            .join(format!("{name}.{}.log", stream.suffix()))
    }

    /// Keeps every run's pipes with `keeper` from now on (set once, before any spawn).
    pub fn keep_pipes_with(&self, keeper: Arc<dyn PipeKeeper>) {
        let _ = self.inner.keeper.set(keeper);
    }

    /// Hands a new run's pipe to the keeper, if there is one.
    pub(crate) fn keep(&self, name: &ServiceName, stream: Stream, pid: u32, fd: BorrowedFd<'_>) {
        if let Some(k) = self.inner.keeper.get() {
            k.keep(name, stream, pid, fd);
        }
    }

    /// Hands a new run's readiness pipe to the keeper, if there is one.
    pub(crate) fn keep_ready(&self, name: &ServiceName, pid: u32, fd: BorrowedFd<'_>) {
        if let Some(k) = self.inner.keeper.get() {
            k.keep_ready(name, pid, fd);
        }
    }

    /// Tells the keeper, if there is one, to let go of the readiness pipe kept under `pid`.
    pub(crate) fn let_go_ready(&self, name: &ServiceName, pid: u32) {
        if let Some(k) = self.inner.keeper.get() {
            k.let_go_ready(name, pid);
        }
    }

    /// Tells the keeper, if there is one, to let go of both pipes of the run kept under `pid`
    /// (one whose reader does not: see [`LogHub::capture`]).
    pub(crate) fn let_go(&self, name: &ServiceName, pid: u32) {
        if let Some(k) = self.inner.keeper.get() {
            for stream in [Stream::Stdout, Stream::Stderr] {
                k.let_go(name, stream, pid);
            }
        }
    }

    /// Sets (or changes, on reload) the rotation rules of a service's two files.
    pub fn configure(&self, name: &ServiceName, cfg: &LogConfig) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let shared = self.shared(name, stream);
            let path = self.path(name, stream);
            let _ = self.inner.writer.send(WriterMsg::Configure {
                shared,
                path,
                cfg: cfg.clone(),
            });
        }
    }

    /// Starts a reader for one pipe of a freshly spawned process; `watch` looks for the line
    /// that says it is ready (`ready = { log = ... }`). `partial` is the start of a line an
    /// earlier reader of the pipe read no end of (empty for a new process). The answer asks the
    /// reader to let go of the pipe (see [`Capture::release`]). `let_go` is the pid the keeper
    /// knows the pipe by, to let go of it at the pipe's end (see [`PipeKeeper`]); None where
    /// the supervisor does at the run's end instead (a forking service's: a pipe at its end
    /// is then kept, so that the run is adopted with it after a crash).
    pub(crate) fn capture(
        &self,
        name: &ServiceName,
        stream: Stream,
        let_go: Option<u32>,
        (fd, partial): (OwnedFd, Vec<u8>),
        watch: Option<crate::ready::LineWatch>,
        tap: Option<tap::StreamTap>,
    ) -> Capture {
        let shared = self.shared(name, stream);
        let writer = self.inner.writer.clone();
        let events = (self.inner.events.clone(), self.inner.clock.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let keeper = self.inner.keeper.get().cloned();
        let (owner, at_end) = (name.clone(), stream);
        let read_to_end: Box<dyn FnOnce() + Send> = Box::new(move || {
            if let (Some(k), Some(pid)) = (keeper, let_go) {
                k.let_go(&owner, at_end, pid);
            }
        });
        tokio::spawn(capture::run(
            (fd, partial, read_to_end),
            shared,
            writer,
            events,
            watch,
            tap,
            rx,
        ));
        Capture { release: tx }
    }

    /// A receiver of every chunk written to a stream from now on.
    pub fn subscribe(&self, name: &ServiceName, stream: Stream) -> broadcast::Receiver<Bytes> {
        self.shared(name, stream)
            .follow
            .get_or_init(|| broadcast::channel(FOLLOW_CHUNKS).0)
            .subscribe()
    }

    fn shared(&self, name: &ServiceName, stream: Stream) -> Arc<StreamShared> {
        let mut streams = self.inner.streams.lock().expect("log streams poisoned");
        streams
            .entry((name.clone(), stream))
            .or_insert_with(|| {
                Arc::new(StreamShared {
                    name: name.clone(),
                    stream,
                    in_flight: AtomicUsize::new(0),
                    follow: std::sync::OnceLock::new(),
                })
            })
            .clone()
    }

    /// Writes everything queued so far and stops the writer thread. Blocking: call from
    /// `spawn_blocking` or after the runtime's work is done.
    pub fn shutdown(&self) {
        let (tx, rx) = std_mpsc::sync_channel(1);
        if self.inner.writer.send(WriterMsg::Shutdown(tx)).is_ok() {
            let _ = rx.recv();
        }
        if let Some(t) = self
            .inner
            .thread
            .lock()
            .expect("log thread poisoned")
            .take()
        {
            let _ = t.join();
        }
    }
}

/// Where the last `n` lines of `file` start, and how long it is now: scans backwards one
/// block at a time counting newlines, so it costs the bytes between the start and the end and
/// one block of memory, whatever `n` is (issue 14, C12: the old tail copied the whole log,
/// block by block, and took minutes on a large one).
pub fn tail_start(file: &mut std::fs::File, n: usize) -> std::io::Result<(u64, u64)> {
    const BLOCK: u64 = 64 * 1024;
    let len = file.metadata()?.len();
    let mut block = vec![0u8; BLOCK as usize];
    let mut pos = len;
    // n lines need n+1 newlines in view (the one ending the line before), unless at start.
    let mut newlines = 0usize;
    while pos > 0 {
        let from = pos.saturating_sub(BLOCK);
        let size = (pos - from) as usize;
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block[..size])?;
        for i in memchr::memrchr_iter(b'\n', &block[..size]) {
            newlines += 1;
            if newlines > n {
                return Ok((from + i as u64 + 1, len));
            }
        }
        pos = from;
    }
    Ok((0, len))
}

/// The last `n` lines of the file at `path` (nothing if it does not exist), for small `n`:
/// the answer is held in memory.
pub fn tail(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let (start, len) = tail_start(&mut file, n)?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    file.seek(SeekFrom::Start(start))?;
    file.take(len - start).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what a [`PipeKeeper`] is told.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl PipeKeeper for Recorder {
        fn keep(&self, name: &ServiceName, stream: Stream, pid: u32, _fd: BorrowedFd<'_>) {
            let mut told = self.0.lock().unwrap();
            told.push(format!("keep {name} {} {pid}", stream.as_str()));
        }
        fn let_go(&self, name: &ServiceName, stream: Stream, pid: u32) {
            let mut told = self.0.lock().unwrap();
            told.push(format!("let go {name} {} {pid}", stream.as_str()));
        }
        fn keep_ready(&self, name: &ServiceName, pid: u32, _fd: BorrowedFd<'_>) {
            let mut told = self.0.lock().unwrap();
            told.push(format!("keep {name} ready {pid}"));
        }
        fn let_go_ready(&self, name: &ServiceName, pid: u32) {
            let mut told = self.0.lock().unwrap();
            told.push(format!("let go {name} ready {pid}"));
        }
    }

    /// `upkeep upgrade`: a reader lets go of its pipe between two reads, with the start of a
    /// line it read no end of; the next reader of that pipe ends the line, and nothing written
    /// in between is lost or doubled. The keeper of pipes (systemd's fd store) lets go of the
    /// pipe only once it is read to its end, not when it is handed on.
    #[tokio::test]
    async fn a_released_pipe_reads_on_from_the_unfinished_line() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (tx, _events) = mpsc::channel(16);
        let hub = LogHub::start(dir.path().to_owned(), tx, Clock::system()).unwrap();
        let keeper = Arc::new(Recorder::default());
        hub.keep_pipes_with(keeper.clone());
        let name = ServiceName::new("s").unwrap();
        hub.configure(
            &name,
            &LogConfig {
                max_size: 1 << 30,
                keep: 1,
                compress: false,
            },
        );
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut out = std::fs::File::from(w);
        let capture = hub.capture(&name, Stream::Stdout, Some(1), (r, Vec::new()), None, None);
        out.write_all(b"one\ntw").unwrap();
        let path = hub.path(&name, Stream::Stdout);
        // The reader has read both (the first line reached the file) before it lets go.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !std::fs::read_to_string(&path)
            .unwrap_or_default()
            .contains("one")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the first line was never written"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let (fd, partial) = capture.release().await.expect("the reader was running");
        assert_eq!(partial, b"tw");
        assert!(keeper.0.lock().unwrap().is_empty(), "handed on, not let go");
        // Written while nobody reads: the pipe keeps it.
        out.write_all(b"o\nthree\n").unwrap();
        drop(out);
        let again = hub.capture(&name, Stream::Stdout, Some(1), (fd, partial), None, None);
        // The pipe is closed: the reader reads to its end and then has nothing to release.
        while again_pending(&path) {
            assert!(
                std::time::Instant::now() < deadline,
                "the rest was never written"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(again.release().await.is_none());
        assert_eq!(*keeper.0.lock().unwrap(), ["let go s stdout 1"]);
        let hub2 = hub.clone();
        tokio::task::spawn_blocking(move || hub2.shutdown())
            .await
            .unwrap();
        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| l[25..].to_owned())
            .collect();
        assert_eq!(lines, ["one", "two", "three"]);

        fn again_pending(path: &Path) -> bool {
            !std::fs::read_to_string(path)
                .unwrap_or_default()
                .contains("three")
        }
    }

    /// Issue 14, F25: a disk slower than the service (here, a log that is a FIFO nobody reads,
    /// so the writer thread hangs opening it, as on a hung disk) never blocks the service:
    /// what does not fit in flight is dropped and counted.
    #[tokio::test]
    async fn a_writer_slower_than_the_service_drops_and_counts_and_never_blocks_it() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("s.out.log");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, mut events) = mpsc::channel(16);
        let hub = LogHub::start(dir.path().to_owned(), tx, Clock::system()).unwrap();
        let name = ServiceName::new("s").unwrap();
        hub.configure(
            &name,
            &LogConfig {
                max_size: 1 << 30,
                keep: 1,
                compress: false,
            },
        );
        let (r, w) = nix::unistd::pipe().unwrap();
        let _capture = hub.capture(&name, Stream::Stdout, Some(1), (r, Vec::new()), None, None);
        // Three times the in-flight limit, then the service exits (its pipe closes).
        let service = std::thread::spawn(move || {
            let mut out = std::fs::File::from(w);
            let line = [b'x'; 99];
            let mut lines = 0u64;
            while lines * 100 < 3 * IN_FLIGHT_LIMIT as u64 {
                out.write_all(&line).unwrap();
                out.write_all(b"\n").unwrap();
                lines += 1;
            }
            lines
        });
        let written = tokio::task::spawn_blocking(move || service.join().unwrap())
            .await
            .unwrap();
        let event = tokio::time::timeout(std::time::Duration::from_secs(20), events.recv())
            .await
            .expect("a report of dropped lines")
            .unwrap();
        let upkeep_core::EventKind::LogLinesDropped { lines, .. } = event.kind else {
            panic!("{event:?}")
        };
        assert!(lines > 0 && lines < written, "{lines} of {written} dropped");
        // Unblock the writer (read the FIFO to its end), then stop it.
        let reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::fs::File::open(&fifo).unwrap(), &mut text)
                .unwrap();
            text.len()
        });
        tokio::task::spawn_blocking(move || hub.shutdown())
            .await
            .unwrap();
        assert!(reader.join().unwrap() > 0);
    }

    /// `ready = { log = ... }`: the first matching line of stdout or stderr is one note, of
    /// the run it was written in, even when the line arrives in pieces; later lines (and the
    /// other stream) say nothing more.
    #[tokio::test]
    async fn the_first_matching_line_says_ready_once() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let (tx, _events) = mpsc::channel(16);
        let hub = LogHub::start(dir.path().to_owned(), tx, Clock::system()).unwrap();
        let name = ServiceName::new("vite").unwrap();
        let toml =
            "[services.vite]\ncommand = \"true\"\nready = { log = \"ready in \\\\d+ ms\" }\n";
        let cfg = upkeep_config::parse(&dir.path().join("u.toml"), toml)
            .unwrap()
            .services
            .into_values()
            .next()
            .unwrap()
            .managed
            .unwrap();
        hub.configure(&name, &cfg.log);
        let mut signals = crate::ready::Signals::new(None);
        let watch = signals.line_watch(&cfg, 77);
        let (out_r, out_w) = nix::unistd::pipe().unwrap();
        let (err_r, err_w) = nix::unistd::pipe().unwrap();
        hub.capture(
            &name,
            Stream::Stdout,
            Some(1),
            (out_r, Vec::new()),
            watch.clone(),
            None,
        );
        hub.capture(
            &name,
            Stream::Stderr,
            Some(1),
            (err_r, Vec::new()),
            watch,
            None,
        );
        let (mut out, mut err) = (std::fs::File::from(out_w), std::fs::File::from(err_w));
        out.write_all(b"  VITE v7.0.0  ready in a moment\n  VITE v7.0.0  rea")
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        out.write_all(b"dy in 312 ms\n").unwrap();
        let note = tokio::time::timeout(std::time::Duration::from_secs(10), signals.notes.recv())
            .await
            .expect("a note")
            .unwrap();
        assert_eq!(
            note,
            crate::ready::Note {
                pgid: 77,
                kind: crate::ready::NoteKind::Ready("log")
            }
        );
        err.write_all(b"ready in 5 ms\n").unwrap();
        out.write_all(b"ready in 6 ms\n").unwrap();
        drop((out, err));
        // Once both files hold the later lines, the captures have looked at them.
        let written = |stream, text: &str| {
            std::fs::read_to_string(hub.path(&name, stream)).is_ok_and(|t| t.contains(text))
        };
        let seen = async {
            while !(written(Stream::Stderr, "ready in 5 ms")
                && written(Stream::Stdout, "ready in 6 ms"))
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), seen)
            .await
            .expect("the later lines in the log files");
        assert!(signals.notes.try_recv().is_err(), "one note only");
        tokio::task::spawn_blocking(move || hub.shutdown())
            .await
            .unwrap();
    }

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, &text).unwrap();
        assert_eq!(tail(&p, 2).unwrap(), b"line 99998\nline 99999\n");
        assert_eq!(tail(&p, 0).unwrap(), b"");
        std::fs::write(&p, "a\nb\n").unwrap();
        assert_eq!(tail(&p, 10).unwrap(), b"a\nb\n");
        assert_eq!(tail(&dir.path().join("missing"), 3).unwrap(), b"");
    }
}
