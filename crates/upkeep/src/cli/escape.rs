//! Text from outside (service output, probe reasons, names and reasons users wrote) made safe
//! to print on a terminal: control characters show escaped instead of acting.
//!
//! An escape sequence in a log line or a probe's reason could clear the screen, set the
//! window title, write an OSC 8 link or hide text behind a carriage return (issue 14, D19).
//! Like journalctl and less, the CLI shows such characters as text: `\x1b`, `\r`, `\n`,
//! `\u{9b}`; bytes that are not UTF-8 as `\xNN`. Tab stays a tab. Text output escapes always
//! (on a terminal or not); `logs --raw` and `--json` (which escapes control characters itself)
//! do not go through here. Used by `output.rs` for fields and by the `logs` command for streams.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `c` as it shows on a terminal, or `None` if it shows as itself.
fn escaped(c: char, keep_newline: bool) -> Option<String> {
    match c {
        '\t' => None,
        '\n' if keep_newline => None,
        '\n' => Some(r"\n".into()),
        '\r' => Some(r"\r".into()),
        // C0 controls and DEL.
        c if (c as u32) < 0x20 || c == '\x7f' => Some(format!("\\x{:02x}", c as u32)),
        // C1 controls: some terminals take U+009B as CSI.
        c if c.is_control() => Some(format!("\\u{{{:x}}}", c as u32)),
        // Bidi overrides and invisible formatting: a U+202E turns the rest of a line around
        // (`moc.elpmaxe@` reads as an address it is not), a zero-width space hides a
        // difference between two names.
        c if invisible(c) => Some(format!("\\u{{{:x}}}", c as u32)),
        _ => None,
    }
}

/// Bidi controls and invisible formatting characters (Unicode's Cf that change how text
/// shows, not what it says).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// At most `max` characters of `s`, cut with `…`: a cell of a table (the whole text is in
/// `--json`).
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
    }
}

fn escape(s: &str, keep_newline: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| escaped(c, keep_newline).is_some()) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match escaped(c, keep_newline) {
            Some(e) => out.push_str(&e),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One field of a line (a reason, a name, a command): every control character escaped, a
/// newline too, so a field cannot fake a line of its own.
pub fn field(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Text of several lines (an error message and its causes): newlines kept.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// Escapes a stream of log bytes that may arrive cut anywhere, even inside a UTF-8 character:
/// line ends and tabs stay, other control characters and bytes that are not UTF-8 show escaped.
#[derive(Debug, Default)]
pub struct LogEscaper {
    /// The start of a UTF-8 character whose rest is in the next chunk.
    pending: Vec<u8>,
}

impl LogEscaper {
    /// Escapes `data` into `out`, keeping a character cut at the end for the next call.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(data);
        let mut rest = &bytes[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.extend_from_slice(text(s).as_bytes());
                    return;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    let valid = std::str::from_utf8(valid).expect("checked up to here");
                    out.extend_from_slice(text(valid).as_bytes());
                    let Some(bad) = e.error_len() else {
                        // Cut short by the end of the chunk: the rest may come next.
                        self.pending = after.to_vec();
                        return;
                    };
                    for b in &after[..bad] {
                        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                    }
                    rest = &after[bad..];
                }
            }
        }
    }

    /// The end of the stream: a character still cut short is not UTF-8.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let mut hex = String::new();
        for b in std::mem::take(&mut self.pending) {
            let _ = write!(hex, "\\x{b:02x}");
        }
        out.extend_from_slice(hex.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_show_control_characters_escaped() {
        assert!(matches!(field("plain text, tab\there"), Cow::Borrowed(_)));
        assert_eq!(
            field("a\x1b]0;title\x07b\x1b[2J"),
            r"a\x1b]0;title\x07b\x1b[2J"
        );
        assert_eq!(field("one\r\ntwo\x7f"), r"one\r\ntwo\x7f");
        assert_eq!(field("csi\u{9b}2J é 名"), r"csi\u{9b}2J é 名");
        assert_eq!(
            text("line one\n  line\x1b two"),
            "line one\n  line\\x1b two"
        );
    }

    fn escape_log(chunks: &[&[u8]]) -> String {
        let mut e = LogEscaper::default();
        let mut out = Vec::new();
        for c in chunks {
            e.push(c, &mut out);
        }
        e.finish(&mut out);
        String::from_utf8(out).expect("the escaped log is UTF-8")
    }

    #[test]
    fn logs_keep_lines_and_escape_the_rest() {
        assert_eq!(
            escape_log(&[b"a\x1b[31mred\tx\rcaf\xe9\n", b"next\n"]),
            "a\\x1b[31mred\tx\\rcaf\\xe9\nnext\n"
        );
        // A character cut between two chunks comes out whole.
        let e_acute = "é".as_bytes();
        assert_eq!(
            escape_log(&[&[b'a', e_acute[0]], &[e_acute[1], b'\n']]),
            "aé\n"
        );
        // Cut short at the very end: shown as bytes.
        assert_eq!(escape_log(&[b"x\xe5\x90"]), r"x\xe5\x90");
        assert_eq!(escape_log(&[b"\xff\xfeok"]), r"\xff\xfeok");
    }

    #[test]
    fn bidi_overrides_and_invisible_characters_show_escaped() {
        assert_eq!(field("\u{202e}moc.elpmaxe@nna"), r"\u{202e}moc.elpmaxe@nna");
        assert_eq!(
            field("a\u{200b}b\u{2066}c\u{feff}"),
            r"a\u{200b}b\u{2066}c\u{feff}"
        );
        // Letters of any script are letters.
        assert_eq!(field("数据库 café"), "数据库 café");
    }

    #[test]
    fn a_cell_is_cut_with_an_ellipsis() {
        assert_eq!(cut("short", 80), "short");
        assert_eq!(cut(&"é".repeat(100), 80), format!("{}…", "é".repeat(80)));
    }
}
