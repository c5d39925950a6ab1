//! Reading a service's `env_file` into (line, key, value) entries, with errors that never show
//! the file's content.
//!
//! An env file is where secrets live, and `env_file` may name any file the daemon can read
//! (`/etc/shadow` once printed root's password hash in an error). So every error here names the
//! file and a line number, never a line. The syntax is dotenvy's (quotes, `export`, `$VAR`);
//! dotenvy reports a bad line by its content and has no line numbers, so we feed it one line per
//! read and count where it stands. The file must be a regular file of at most
//! [`ENV_FILE_MAX_BYTES`](crate::bounds::ENV_FILE_MAX_BYTES): a FIFO or `/dev/stdin` would block
//! `upkeep check` forever, and `/dev/zero` would fill memory.
//! Called by `validate.rs`, which checks the entries and locates errors in upkeep.toml.

use std::cell::Cell;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use crate::bounds::ENV_FILE_MAX_BYTES;

/// One `KEY=value` of the file, with the 1-based line where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// Why an env file cannot be used. The text names the line, never its content.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvFileError {
    // The io error's text goes into the message: a config problem is one line of text, with no
    // cause chain to print it. It never holds file content.
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it is larger than {} KiB", ENV_FILE_MAX_BYTES / 1024)]
    TooLarge,
    #[error("line {line}, column {column}: the file is not UTF-8")]
    NotUtf8 { line: usize, column: usize },
    #[error("line {line}: not a KEY=value line (its content is not shown: it may be a secret)")]
    Syntax { line: usize },
}

/// Reads and parses the env file at `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<Entry>, EnvFileError> {
    // Before opening: opening a FIFO for reading blocks until someone writes to it.
    let meta = std::fs::metadata(path).map_err(EnvFileError::Read)?;
    if !meta.is_file() {
        return Err(EnvFileError::NotAFile);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(ENV_FILE_MAX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(EnvFileError::Read)?;
    if bytes.len() as u64 > ENV_FILE_MAX_BYTES {
        return Err(EnvFileError::TooLarge);
    }
    parse(&bytes)
}

/// Parses the bytes of an env file.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Entry>, EnvFileError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()])
                .expect("valid_up_to marks the end of valid UTF-8");
            let (line, column) = crate::locate::line_col(valid, valid.len());
            return Err(EnvFileError::NotUtf8 { line, column });
        }
    };
    // dotenvy does not skip a byte order mark; editors on Windows write one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let fed = Rc::new(Cell::new(0));
    let mut iter = dotenvy::from_read_iter(LineByLine {
        rest: text.as_bytes(),
        fed: fed.clone(),
    });
    let mut entries = Vec::new();
    loop {
        // Where the next entry can start: dotenvy has consumed exactly what was fed, since
        // each read hands it at most one line.
        let from = fed.get();
        let Some(item) = iter.next() else { break };
        let line = entry_line(text, from);
        match item {
            Ok((key, value)) => entries.push(Entry { line, key, value }),
            // Deliberately not `{e}`: dotenvy's message quotes the line.
            Err(_) => return Err(EnvFileError::Syntax { line }),
        }
    }
    Ok(entries)
}

/// The 1-based line of the first line at or after byte `from` that holds an entry: dotenvy
/// skips blank lines and comments before it.
fn entry_line(text: &str, from: usize) -> usize {
    let mut line = crate::locate::line_col(text, from).0;
    for l in text.get(from..).unwrap_or("").split('\n') {
        let t = l.trim();
        if !t.is_empty() && !t.starts_with('#') {
            break;
        }
        line += 1;
    }
    line
}

/// A reader that hands out at most one line per `read`, counting the bytes handed out.
struct LineByLine<'a> {
    rest: &'a [u8],
    fed: Rc<Cell<usize>>,
}

impl Read for LineByLine<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let line_end = self
            .rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.rest.len(), |i| i + 1);
        let n = line_end.min(buf.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        self.fed.set(self.fed.get() + n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, String, String)> {
        parse(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|e| (e.line, e.key, e.value))
            .collect()
    }

    #[test]
    fn entries_carry_their_line() {
        let text = "# comment\n\nA=1\nexport B=\"two words\"\n  # indented comment\nC='multi\nline'\nD=4\n";
        assert_eq!(
            lines(text),
            [
                (3, "A".into(), "1".into()),
                (4, "B".into(), "two words".into()),
                (6, "C".into(), "multi\nline".into()),
                (8, "D".into(), "4".into()),
            ]
        );
        assert_eq!(lines("\u{feff}A=1"), [(1, "A".into(), "1".into())]);
    }

    #[test]
    fn a_bad_line_is_named_by_number_and_never_shown() {
        let secret = "root:$y$j9T$SECRETHASH:19000:0:99999:7:::";
        let text = format!("A=1\n# note\n\n{secret}\nB=2\n");
        let err = parse(text.as_bytes()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EnvFileError::Syntax { line: 4 }), "{msg}");
        assert!(!msg.contains("SECRET") && !msg.contains("root"), "{msg}");
        // An unclosed quote is reported where its entry starts.
        let err = parse(b"A=1\nB=\"never closed\nmore\n").unwrap_err();
        assert!(matches!(err, EnvFileError::Syntax { line: 2 }), "{err}");
        // A line longer than dotenvy's buffer still counts as one line.
        let long = format!("A={}\nbad line here\n", "x".repeat(20_000));
        let err = parse(long.as_bytes()).unwrap_err();
        assert!(matches!(err, EnvFileError::Syntax { line: 2 }), "{err}");
    }

    #[test]
    fn non_utf8_is_located() {
        let err = parse(b"A=1\nB=caf\xe9\n").unwrap_err();
        assert!(
            matches!(err, EnvFileError::NotUtf8 { line: 2, column: 6 }),
            "{err}"
        );
    }

    #[test]
    fn only_small_regular_files_are_read() {
        let err = read(Path::new("/dev/null")).unwrap_err();
        assert!(matches!(err, EnvFileError::NotAFile), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.env");
        std::fs::write(&big, "A=1\n".repeat(300_000)).unwrap();
        assert!(matches!(read(&big), Err(EnvFileError::TooLarge)));
        let err = read(&dir.path().join("missing.env")).unwrap_err();
        assert!(matches!(err, EnvFileError::Read(_)), "{err}");
    }
}
