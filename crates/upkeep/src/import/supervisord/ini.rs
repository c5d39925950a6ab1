//! supervisord's INI dialect: Python's `configparser` as supervisord sets it up, sections and
//! raw values out, each with its line.
//!
//! The rules (Python 3's `RawConfigParser` with `inline_comment_prefixes=(';', '#')` and
//! `strict=False`, as supervisord makes it):
//! - a line whose first non-blank character is `;` or `#` is a comment; so is the rest of a
//!   line from a `;` or `#` that follows whitespace (`a;b` keeps its `;`, `a ;b` does not);
//! - `[name]` starts a section (names keep their case); a section named twice is one section;
//! - `key = value` or `key: value`, split at the first `=` or `:`; keys are lowercased, values
//!   trimmed; a key given twice keeps its last value;
//! - a line indented deeper than its key's line continues the value (joined with a newline);
//!   a blank line inside such a value stays in it, trailing ones do not.
//!
//! Values are raw: `%(name)s` expansions are supervisord's own, done by `supervisord.rs`.
//! Written here because the INI crates looked at split values at any `;` (configparser,
//! rust-ini's `inline-comment`) or have no indented continuation lines, and none gives lines.

/// One `[section]`, with where its header is (the first, if it appears twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// One `key = value`, with the line of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

impl Section {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A line that is none of the above, and why (with its 1-based number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole file into its sections, in the order they first appear, and every line
/// that is none of them (each skipped, so that one file reports all of its bad lines).
pub fn parse(text: &str) -> (Vec<Section>, Vec<SyntaxError>) {
    let mut p = Parser::default();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if let Err(e) = p.line(i + 1, raw) {
            // Nothing after a bad line continues a value before it.
            p.open = None;
            errors.push(e);
        }
    }
    (p.finish(), errors)
}

#[derive(Default)]
struct Parser {
    sections: Vec<Section>,
    /// Index in `sections` of the section lines go to.
    current: Option<usize>,
    /// The key whose value continuation lines extend, and its line's indentation.
    open: Option<(String, usize)>,
    /// Blank lines seen inside the open value, kept only if a continuation follows.
    blanks: usize,
}

impl Parser {
    fn line(&mut self, number: usize, raw: &str) -> Result<(), SyntaxError> {
        let content = strip_comment(raw).trim();
        if content.is_empty() {
            // A comment line ends nothing, but is not a blank line inside a value either.
            if raw.trim().is_empty() && self.open.is_some() {
                self.blanks += 1;
            }
            return Ok(());
        }
        let indent = raw.len() - raw.trim_start().len();
        if let Some((key, key_indent)) = &self.open
            && indent > *key_indent
        {
            let key = key.clone();
            let add = format!("{}{content}", "\n".repeat(self.blanks + 1));
            self.blanks = 0;
            let entry = self.entry_mut(&key);
            entry.value.push_str(&add);
            return Ok(());
        }
        self.blanks = 0;
        if let Some(name) = header(content) {
            self.open = None;
            self.section(name, number);
            return Ok(());
        }
        let Some(current) = self.current else {
            return Err(SyntaxError {
                line: number,
                message: "a setting before any [section]".into(),
            });
        };
        let Some((key, value)) = split_option(content) else {
            return Err(SyntaxError {
                line: number,
                message: "neither a [section], a `key = value` line nor a comment".into(),
            });
        };
        let entries = &mut self.sections[current].entries;
        entries.retain(|e| e.key != key);
        entries.push(Entry {
            key: key.clone(),
            value,
            line: number,
        });
        self.open = Some((key, indent));
        Ok(())
    }

    fn section(&mut self, name: &str, line: usize) {
        let at = match self.sections.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.sections.push(Section {
                    name: name.to_owned(),
                    line,
                    entries: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        self.current = Some(at);
    }

    fn entry_mut(&mut self, key: &str) -> &mut Entry {
        let current = self.current.expect("a value is open only inside a section");
        self.sections[current]
            .entries
            .iter_mut()
            .find(|e| e.key == key)
            .expect("the open key is an entry of the current section")
    }

    fn finish(self) -> Vec<Section> {
        self.sections
    }
}

/// The line up to its comment: a `;` or `#` first on the line, or after whitespace.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with([';', '#']) {
        return "";
    }
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        if (c == ';' || c == '#') && prev_space {
            return &line[..i];
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// `[name]` → name (Python's `\[(?P<header>.+)\]`: up to the last `]`).
fn header(content: &str) -> Option<&str> {
    let rest = content.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    let name = &rest[..end];
    (!name.is_empty()).then_some(name)
}

/// `key = value` / `key: value` at the first `=` or `:`; None without one or without a key.
fn split_option(content: &str) -> Option<(String, String)> {
    let at = content.find(['=', ':'])?;
    let key = content[..at].trim();
    if key.is_empty() {
        return None;
    }
    Some((key.to_lowercase(), content[at + 1..].trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sections of a file with no bad line.
    fn ok(text: &str) -> Vec<Section> {
        let (sections, errors) = parse(text);
        assert_eq!(errors, [], "{text}");
        sections
    }

    /// The bad lines of a file.
    fn bad(text: &str) -> Vec<SyntaxError> {
        parse(text).1
    }

    fn value<'a>(sections: &'a [Section], section: &str, key: &str) -> &'a str {
        let s = sections.iter().find(|s| s.name == section).unwrap();
        &s.get(key).unwrap().value
    }

    #[test]
    fn reads_sections_keys_and_comments() {
        let text = "; a comment\n# another\n[program:web]\nCommand = python3 -m http.server ; port\nuser: www-data\ndirectory=/srv/a;b # not a comment? yes\n  # indented comment\n[unix_http_server]\nfile=/tmp/s.sock\n";
        let s = ok(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "program:web");
        assert_eq!(s[0].line, 3);
        assert_eq!(
            value(&s, "program:web", "command"),
            "python3 -m http.server"
        );
        assert_eq!(s[0].get("command").unwrap().line, 4);
        assert_eq!(value(&s, "program:web", "user"), "www-data");
        // `;` without whitespace before it stays; `#` after whitespace starts a comment.
        assert_eq!(value(&s, "program:web", "directory"), "/srv/a;b");
    }

    #[test]
    fn joins_continuation_lines_and_keeps_inner_blank_lines() {
        let text = "[program:x]\nenvironment=\n    A=\"1\",\n\n    B=\"2\" ; two\ncommand = run\n\n[other]\n";
        let s = ok(text);
        assert_eq!(
            value(&s, "program:x", "environment"),
            "\nA=\"1\",\n\nB=\"2\""
        );
        assert_eq!(value(&s, "program:x", "command"), "run");
    }

    #[test]
    fn a_section_named_twice_is_one_and_the_last_value_wins() {
        let s = ok("[a]\nk=1\n[b]\n[a]\nk=2\nj=3\n");
        assert_eq!(s.len(), 2);
        assert_eq!(value(&s, "a", "k"), "2");
        assert_eq!(value(&s, "a", "j"), "3");
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        assert_eq!(
            bad("command=x\n"),
            [SyntaxError {
                line: 1,
                message: "a setting before any [section]".into()
            }]
        );
        let e = bad("[a]\nk=1\n\njust words\n");
        assert_eq!(e[0].line, 4);
        assert!(e[0].message.contains("key = value"), "{e:?}");
        assert_eq!(bad("[a]\n= no key\n")[0].line, 2);
        assert_eq!(bad("[]\n")[0].line, 1);
    }

    #[test]
    fn every_bad_line_is_reported_and_the_rest_is_read() {
        let (s, e) = parse("x=1\n[a]\nk=1\njust words\nj=2\n[]\n[b]\nm=3\n");
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [1, 4, 6], "{e:?}");
        assert_eq!(value(&s, "a", "k"), "1");
        assert_eq!(value(&s, "a", "j"), "2");
        assert_eq!(value(&s, "b", "m"), "3");
    }
}
