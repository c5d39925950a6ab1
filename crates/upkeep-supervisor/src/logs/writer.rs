//! The writer thread: appends chunks to files and rotates them by size.
//!
//! A thread rather than a task because file writes block. Rotation keeps `keep` old files,
//! `name.out.log.1` (newest) to `name.out.log.N`, gzipped in a helper thread when `compress`
//! is set; the next rotation first waits for that helper, so it never renames a file that is
//! still being compressed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use bytes::Bytes;
use upkeep_config::LogConfig;

use super::{Stream, StreamShared};
use upkeep_core::ServiceName;

pub(crate) enum WriterMsg {
    Configure {
        shared: Arc<StreamShared>,
        path: PathBuf,
        cfg: LogConfig,
    },
    Write {
        shared: Arc<StreamShared>,
        data: Bytes,
    },
    Shutdown(std_mpsc::SyncSender<()>),
}

struct LogFile {
    path: PathBuf,
    cfg: LogConfig,
    file: Option<File>,
    size: u64,
    gzip: Option<JoinHandle<()>>,
}

pub(crate) fn run(rx: std_mpsc::Receiver<WriterMsg>) {
    let mut files: HashMap<(ServiceName, Stream), LogFile> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            WriterMsg::Configure { shared, path, cfg } => {
                let key = (shared.name.clone(), shared.stream);
                match files.get_mut(&key) {
                    Some(f) if f.path == path => f.cfg = cfg,
                    _ => {
                        files.insert(
                            key,
                            LogFile {
                                path,
                                cfg,
                                file: None,
                                size: 0,
                                gzip: None,
                            },
                        );
                    }
                }
            }
            WriterMsg::Write { shared, data } => {
                if let Some(f) = files.get_mut(&(shared.name.clone(), shared.stream))
                    && let Err(e) = f.write(&data)
                {
                    tracing::warn!(service = %shared.name, stream = shared.stream.as_str(), error = %e, "cannot write log");
                    f.file = None;
                }
                shared.in_flight.fetch_sub(data.len(), Ordering::AcqRel);
                if let Some(follow) = shared.follow.get()
                    && follow.receiver_count() > 0
                {
                    let _ = follow.send(data);
                }
            }
            WriterMsg::Shutdown(done) => {
                for f in files.values_mut() {
                    if let Some(g) = f.gzip.take() {
                        let _ = g.join();
                    }
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

impl LogFile {
    fn open(&mut self) -> std::io::Result<&mut File> {
        if self.file.is_none() {
            // Never through a symlink: a root daemon would append service output to wherever
            // it points (issue 14, D15).
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }

    /// Appends `data` (whole lines), rotating whenever the next lines would pass `max_size`.
    /// A file only exceeds `max_size` when a single line is longer than it.
    fn write(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            self.open()?;
            let room = self.cfg.max_size.saturating_sub(self.size) as usize;
            let take = if data.len() <= room {
                data.len()
            } else {
                match data[..room].iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None if self.size == 0 => data
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(data.len(), |i| i + 1),
                    None => 0,
                }
            };
            if take > 0 {
                self.file
                    .as_mut()
                    .expect("opened above")
                    .write_all(&data[..take])?;
                self.size += take as u64;
                data = &data[take..];
            }
            if !data.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        self.size = 0;
        if let Some(g) = self.gzip.take() {
            let _ = g.join();
        }
        let keep = self.cfg.keep;
        let numbered = |i: u32, gz: bool| -> PathBuf {
            let mut s = self.path.clone().into_os_string();
            s.push(format!(".{i}{}", if gz { ".gz" } else { "" }));
            PathBuf::from(s)
        };
        if keep == 0 {
            return remove_if_exists(&self.path);
        }
        for gz in [false, true] {
            // Only the files that exist move: the chain .1, .2, ... up to its first gap. (Every
            // number up to `keep` was tried before, and `keep = 4000000000` spun a core at
            // four billion renames per rotation: issue 14, B8.)
            let mut top = 0;
            while top < keep && numbered(top + 1, gz).exists() {
                top += 1;
            }
            if top == keep {
                remove_if_exists(&numbered(keep, gz))?;
                top -= 1;
            }
            for i in (1..=top).rev() {
                rename_if_exists(&numbered(i, gz), &numbered(i + 1, gz))?;
            }
        }
        let first = numbered(1, false);
        std::fs::rename(&self.path, &first)?;
        if self.cfg.compress {
            let gz = numbered(1, true);
            self.gzip = Some(std::thread::spawn(move || {
                if let Err(e) = gzip(&first, &gz) {
                    tracing::warn!(file = %first.display(), error = %e, "cannot compress rotated log");
                }
            }));
        }
        Ok(())
    }
}

fn gzip(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut input = File::open(from)?;
    // As private as the log it comes from.
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    std::io::copy(&mut input, &mut enc)?;
    enc.finish()?.sync_all()?;
    std::fs::remove_file(from)
}

fn remove_if_exists(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logfile(dir: &Path, max_size: u64, keep: u32, compress: bool) -> LogFile {
        LogFile {
            path: dir.join("s.out.log"),
            cfg: LogConfig {
                max_size,
                keep,
                compress,
            },
            file: None,
            size: 0,
            gzip: None,
        }
    }

    #[test]
    fn rotates_at_line_boundaries_within_the_limit_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = logfile(dir.path(), 100, 2, false);
        let line = b"0123456789012345678\n"; // 20 bytes
        for _ in 0..30 {
            f.write(line).unwrap();
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["s.out.log", "s.out.log.1", "s.out.log.2"]);
        for n in &names {
            let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(len <= 100 && len.is_multiple_of(20), "{n}: {len}");
        }
        // A chunk of many lines is split across files at line ends too.
        f.write(&line.repeat(12)).unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("s.out.log.1"))
                .unwrap()
                .len(),
            100
        );
    }

    #[test]
    fn a_huge_keep_costs_only_the_files_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        // Bounded by the config now, but the writer must not depend on it.
        let mut f = logfile(dir.path(), 100, u32::MAX, false);
        let line = b"0123456789012345678\n";
        for _ in 0..50 {
            f.write(line).unwrap();
        }
        let rotated = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(rotated, 10, "the current file and 9 rotated ones");
        assert!(dir.path().join("s.out.log.9").exists());
    }

    #[test]
    fn a_symlinked_log_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "precious\n").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join("s.out.log")).unwrap();
        let mut f = logfile(dir.path(), 1 << 20, 2, false);
        assert!(f.write(b"service output\n").is_err());
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "precious\n");
    }

    #[test]
    fn compresses_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = logfile(dir.path(), 4096, 3, true);
        for i in 0..1000 {
            f.write(format!("line number {i:06}\n").as_bytes()).unwrap();
        }
        f.gzip.take().unwrap().join().unwrap();
        assert!(dir.path().join("s.out.log.1.gz").exists());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("s.out.log.1.gz"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o640, "as private as the log");
        assert!(!dir.path().join("s.out.log.1").exists());
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(
                File::open(dir.path().join("s.out.log.1.gz")).unwrap(),
            ),
            &mut text,
        )
        .unwrap();
        assert!(text.starts_with("line number") && text.ends_with('\n'));
    }
}
