//! Unit file syntax (systemd.syntax(7)): sections of `Key=Value` assignments, each with the
//! file and line it came from, and the rules for reading a key that is given more than once.
//!
//! - Blank lines, and lines whose first non-blank character is `#` or `;`, are skipped.
//! - A line ending in `\` goes on on the next line (the backslash becomes a space); comment
//!   lines inside such a continuation are skipped, as systemd does.
//! - `[Section]` starts a section; `Key=Value` is split at the first `=`, both sides trimmed.
//! - A key given again adds to a list setting, and an empty value (`Environment=`) empties the
//!   list so far ([`Unit::list`]); a single-value setting takes its last value ([`Unit::last`]),
//!   where an empty one means the default.
//!
//! Drop-ins (`NAME.service.d/*.conf`) are read after the unit with [`Unit::add`], so their
//! assignments come later and win. Nothing here knows what a key means: `systemd.rs` does.
//! Written here because the one crate for this (systemd-parser) is unmaintained since 2017.

use std::path::{Path, PathBuf};

/// One `Key=Value`, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub section: String,
    pub key: String,
    pub value: String,
    pub file: PathBuf,
    pub line: usize,
}

/// A line that is not unit syntax, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Every assignment of a unit and its drop-ins, in the order read.
#[derive(Debug, Clone, Default)]
pub struct Unit {
    pub assignments: Vec<Assignment>,
}

impl Unit {
    /// Reads `text` (from `file`) after what the unit holds already. Every line that is not
    /// unit syntax is an error, each skipped so that all of them are found (the settings
    /// under a bad section header are skipped with it, unreported).
    pub fn add(&mut self, file: &Path, text: &str) -> Result<(), Vec<SyntaxError>> {
        let mut errors = Vec::new();
        let mut err = |line: usize, message: &str| {
            errors.push(SyntaxError {
                file: file.to_owned(),
                line,
                message: message.to_owned(),
            })
        };
        // None before the first header; Some(None) under a bad one.
        let mut section: Option<Option<String>> = None;
        for (line, content) in logical_lines(text) {
            if let Some(rest) = content.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .filter(|n| !n.is_empty() && !n.contains(['[', ']']));
                if name.is_none() {
                    err(line, "a section header must be `[Name]`");
                }
                section = Some(name.map(str::to_owned));
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                err(line, "neither a [Section] nor a `Key=Value` line");
                continue;
            };
            let key = key.trim();
            if key.is_empty() || key.contains(char::is_whitespace) {
                err(line, "a setting needs a name before its `=`");
                continue;
            }
            let section = match &section {
                None => {
                    err(line, "a setting before any [Section]");
                    continue;
                }
                Some(None) => continue,
                Some(Some(s)) => s,
            };
            self.assignments.push(Assignment {
                section: section.clone(),
                key: key.to_owned(),
                value: value.trim().to_owned(),
                file: file.to_owned(),
                line,
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The values of list setting `key` in `section`, each empty assignment emptying the list.
    pub fn list(&self, section: &str, key: &str) -> Vec<&Assignment> {
        let mut out = Vec::new();
        for a in self
            .assignments
            .iter()
            .filter(|a| a.section == section && a.key == key)
        {
            if a.value.is_empty() {
                out.clear();
            } else {
                out.push(a);
            }
        }
        out
    }

    /// The value of single setting `key`: the last one, if it is not empty (the default).
    pub fn last(&self, section: &str, key: &str) -> Option<&Assignment> {
        self.assignments
            .iter()
            .rfind(|a| a.section == section && a.key == key)
            .filter(|a| !a.value.is_empty())
    }
}

/// The lines that carry something, continuations joined, each with the number of its first
/// line. As systemd reads them: a continuation keeps its lines' leading whitespace, a comment
/// line inside one is skipped, and a blank line ends it.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let start = raw.trim_start();
        if start.starts_with(['#', ';']) || (start.is_empty() && pending.is_none()) {
            continue;
        }
        let (first, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        joined.push_str(raw);
        if ends_in_backslash(&joined) {
            joined.pop();
            joined.push(' ');
            pending = Some((first, joined));
        } else {
            out.push((first, joined.trim().to_owned()));
        }
    }
    if let Some((first, joined)) = pending {
        out.push((first, joined.trim().to_owned()));
    }
    out.retain(|(_, l)| !l.is_empty());
    out
}

/// Whether `line` ends in a backslash that no backslash escapes (`a\\` ends in an escaped one).
fn ends_in_backslash(line: &str) -> bool {
    line.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(text: &str) -> Unit {
        let mut u = Unit::default();
        u.add(Path::new("/x.service"), text).unwrap();
        u
    }

    fn values(u: &Unit, key: &str) -> Vec<String> {
        u.list("Service", key)
            .iter()
            .map(|a| a.value.clone())
            .collect()
    }

    #[test]
    fn reads_sections_comments_and_continuations() {
        let u = unit(
            "# head\n[Unit]\nDescription = My  thing \n\n[Service]\n; note\nExecStart=/bin/echo a \\\n  # skipped inside\n  b \\\n  c\nUser=www-data\n",
        );
        assert_eq!(u.last("Unit", "Description").unwrap().value, "My  thing");
        let exec = u.last("Service", "ExecStart").unwrap();
        assert_eq!(exec.value, "/bin/echo a    b    c");
        assert_eq!(exec.line, 7);
        assert_eq!(u.last("Service", "User").unwrap().line, 11);
        assert!(u.last("Unit", "User").is_none());
    }

    #[test]
    fn repeated_keys_add_up_and_an_empty_one_resets() {
        let u = unit(
            "[Service]\nEnvironment=A=1\nEnvironment=B=2\nEnvironment=\nEnvironment=C=3\nEnvironment=D=4\nType=notify\nType=\n",
        );
        assert_eq!(values(&u, "Environment"), ["C=3", "D=4"]);
        // An empty single setting means its default.
        assert!(u.last("Service", "Type").is_none());
    }

    #[test]
    fn drop_ins_come_after_the_unit() {
        let mut u = unit("[Service]\nUser=a\nEnvironment=A=1\n");
        u.add(
            Path::new("/x.service.d/o.conf"),
            "[Service]\nUser=b\nEnvironment=\nEnvironment=B=2\n",
        )
        .unwrap();
        let user = u.last("Service", "User").unwrap();
        assert_eq!(
            (user.value.as_str(), user.file.as_path()),
            ("b", Path::new("/x.service.d/o.conf"))
        );
        assert_eq!(values(&u, "Environment"), ["B=2"]);
    }

    #[test]
    fn a_continuation_ends_at_a_blank_line_or_the_end_of_the_file() {
        let u = unit("[Service]\nExecStart=/bin/true \\\n\nUser=a \\");
        assert_eq!(u.last("Service", "ExecStart").unwrap().value, "/bin/true");
        assert_eq!(u.last("Service", "User").unwrap().value, "a");
        // An escaped backslash at the end is a backslash, not a continuation.
        let u = unit("[Service]\nExecStart=/bin/echo \\\\\nUser=b\n");
        assert_eq!(
            u.last("Service", "ExecStart").unwrap().value,
            "/bin/echo \\\\"
        );
        assert_eq!(u.last("Service", "User").unwrap().value, "b");
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line() {
        let err = |text: &str| {
            let mut u = Unit::default();
            let mut all = u.add(Path::new("/bad.service"), text).unwrap_err();
            assert_eq!(all.len(), 1, "{all:?}");
            all.remove(0)
        };
        let e = err("[Service]\nExecStart=/bin/true\nthis is not a setting\n");
        assert_eq!(
            (e.line, e.message.as_str()),
            (3, "neither a [Section] nor a `Key=Value` line")
        );
        assert_eq!(err("[Service\nA=1\n").line, 1);
        assert_eq!(err("A=1\n").message, "a setting before any [Section]");
        assert_eq!(err("[Service]\n=1\n").line, 2);
        assert_eq!(err("[Service]\nExec Start=1\n").line, 2);
    }

    #[test]
    fn every_malformed_line_is_reported_and_the_rest_is_read() {
        let mut u = Unit::default();
        let e = u
            .add(
                Path::new("/bad.service"),
                "A=1\n[Service]\nUser=a\nnot a line\nExec Start=1\n[Bad\nB=2\n[Unit]\nC=3\n",
            )
            .unwrap_err();
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 4, 5, 6], "{e:?}");
        assert_eq!(u.last("Service", "User").unwrap().value, "a");
        assert_eq!(u.last("Unit", "C").unwrap().value, "3");
        assert!(u.assignments.iter().all(|a| a.key != "B"));
    }
}
