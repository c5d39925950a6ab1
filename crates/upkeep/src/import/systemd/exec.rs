//! What systemd does to a value before it runs it: specifiers (`%n`, `%i`, `%t`...),
//! quoting and C-style escapes, `Exec*=` prefixes (`-`, `@`, `+`, `!`, `:`...) and
//! environment references (`$FOO`, `${FOO}`), and the shell line upkeep runs instead when a
//! command needs one.
//!
//! Pure text in, text out: the unit's names and the host's facts come in a [`Specifiers`]
//! (built by `systemd.rs`), so every rule is tested on made-up values.
//! Rules from systemd.unit(5) "Specifiers", systemd.syntax(7) "Quoting" and
//! systemd.service(5) "Command lines".

use std::collections::BTreeMap;

/// The values of the specifiers that can be expanded for one unit.
#[derive(Debug, Clone, Default)]
pub struct Specifiers {
    /// One letter → its value (`'n'` → "nginx.service").
    pub values: BTreeMap<char, String>,
}

impl Specifiers {
    /// The unit-name specifiers of `unit` ("foo@bar.service", or "nginx.service"), the
    /// system manager's (`%t` = /run, `%h` = /root...) and `host`'s facts (letter → value:
    /// `H`, `l`, `m`, `b`, `v`, `a`, `o`, `w`...), for a unit read from `fragment`.
    pub fn for_unit(unit: &str, fragment: &std::path::Path, host: &[(char, String)]) -> Specifiers {
        let stem = unit.rsplit_once('.').map_or(unit, |(s, _)| s);
        let (prefix, instance) = match stem.split_once('@') {
            Some((p, i)) => (p, Some(i)),
            None => (stem, None),
        };
        let last_part = prefix.rsplit_once('-').map_or(prefix, |(_, j)| j);
        let mut v: BTreeMap<char, String> = BTreeMap::new();
        v.insert('n', unit.to_owned());
        v.insert('N', stem.to_owned());
        v.insert('p', prefix.to_owned());
        v.insert('P', unescape(prefix));
        v.insert('j', last_part.to_owned());
        v.insert('J', unescape(last_part));
        v.insert('i', instance.unwrap_or_default().to_owned());
        v.insert('I', unescape(instance.unwrap_or_default()));
        let f = unescape(instance.unwrap_or(prefix));
        v.insert(
            'f',
            if f.starts_with('/') {
                f
            } else {
                format!("/{f}")
            },
        );
        v.insert('y', fragment.display().to_string());
        let dir = fragment.parent().unwrap_or(std::path::Path::new("/"));
        v.insert('Y', dir.display().to_string());
        // The system manager's own: it runs as root (systemd.unit(5)).
        for (c, value) in [
            ('t', "/run"),
            ('S', "/var/lib"),
            ('C', "/var/cache"),
            ('L', "/var/log"),
            ('E', "/etc"),
            ('T', "/tmp"),
            ('V', "/var/tmp"),
            ('h', "/root"),
            ('u', "root"),
            ('U', "0"),
            ('g', "root"),
            ('G', "0"),
            ('s', "/bin/sh"),
        ] {
            v.insert(c, value.to_owned());
        }
        v.extend(host.iter().cloned());
        Specifiers { values: v }
    }

    /// `text` with every specifier replaced; `%%` is `%`. Err: a specifier that cannot be
    /// expanded here (`%d`, credentials, exists only while systemd runs the unit).
    pub fn expand(&self, text: &str) -> Result<String, char> {
        let mut out = String::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => out.push('%'),
                Some(s) => out.push_str(self.values.get(&s).ok_or(s)?),
                None => return Err('%'),
            }
        }
        Ok(out)
    }
}

/// Undoes unit-name escaping (systemd-escape): `-` is `/`, `\xNN` is that byte.
fn unescape(s: &str) -> String {
    let mut bytes = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'-' => bytes.push(b'/'),
            b'\\' if rest.len() >= 3 && rest[0] == b'x' => {
                match u8::from_str_radix(&String::from_utf8_lossy(&rest[1..3]), 16) {
                    Ok(n) => {
                        bytes.push(n);
                        rest = &rest[3..];
                    }
                    Err(_) => bytes.push(b),
                }
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What the prefixes of an `Exec*=` line asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prefixes {
    /// `-`: a failing exit counts as success.
    pub ignore_failure: bool,
    /// `@`: the second word is argv[0].
    pub argv0: bool,
    /// `:`: no environment substitution.
    pub no_env: bool,
    /// `+`: full privileges (no `User=`, no sandbox).
    pub full_privileges: bool,
    /// `!` or `!!`: raised privileges (`User=` not applied by setuid).
    pub raised_privileges: bool,
    /// `|`: run through the user's shell.
    pub shell: bool,
}

impl Prefixes {
    /// What each prefix meant under systemd, for the notes.
    pub fn meanings(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.ignore_failure {
            out.push("`-` made systemd count a failing exit as a success");
        }
        if self.argv0 {
            out.push("`@` gave the program another argv[0]; upkeep passes the program as argv[0]");
        }
        if self.full_privileges {
            out.push("`+` ran it with full privileges, ignoring User= and the sandbox");
        }
        if self.raised_privileges {
            out.push("`!` ran it with raised privileges, ignoring User= switching");
        }
        if self.shell {
            out.push("`|` ran it through the user's login shell");
        }
        out
    }
}

/// One piece of a word after environment references are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// `$NAME` as a whole word: the value split at whitespace (zero or more words).
    Split(String),
    /// `${NAME}`: the value as is, inside its word.
    Value(String),
}

/// One command line of `ExecStart=` and the like, split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecLine {
    pub prefixes: Prefixes,
    pub words: Vec<Vec<Part>>,
    /// With `@`: the argv[0] that was asked for (not carried over).
    pub argv0: Option<String>,
}

impl ExecLine {
    /// The words as plain text, if no word refers to the environment.
    pub fn argv(&self) -> Option<Vec<String>> {
        self.words
            .iter()
            .map(|w| match w.as_slice() {
                [] => Some(String::new()),
                [Part::Text(t)] => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// The line for `/bin/sh -c` that runs it as systemd would: words quoted, `$NAME` left to
    /// split, `${NAME}` inside double quotes. Err: a NUL byte, which no shell line can carry.
    pub fn shell(&self) -> Result<String, String> {
        let mut words = Vec::with_capacity(self.words.len());
        for word in &self.words {
            let mut w = String::new();
            for part in word {
                match part {
                    Part::Text(t) if t.is_empty() => {}
                    Part::Text(t) => w.push_str(
                        &shlex::try_quote(t).map_err(|_| "a NUL byte in the command".to_owned())?,
                    ),
                    Part::Split(name) => w.push_str(&format!("${name}")),
                    Part::Value(name) => w.push_str(&format!("\"${{{name}}}\"")),
                }
            }
            if w.is_empty() {
                w.push_str("''");
            }
            words.push(w);
        }
        Ok(words.join(" "))
    }
}

/// Parses one `Exec*=` value (specifiers already expanded): its prefixes, then its words.
pub fn exec_line(value: &str) -> Result<ExecLine, String> {
    let mut prefixes = Prefixes::default();
    let mut rest = value.trim_start();
    while let Some(c) = rest.chars().next() {
        match c {
            '-' => prefixes.ignore_failure = true,
            '@' => prefixes.argv0 = true,
            ':' => prefixes.no_env = true,
            '+' => prefixes.full_privileges = true,
            '!' => prefixes.raised_privileges = true,
            '|' => prefixes.shell = true,
            _ => break,
        }
        rest = &rest[1..];
    }
    let mut words = split_words(rest)?;
    if words.iter().any(|w| w == ";") {
        return Err("several commands on one line (`;`) are not carried over".into());
    }
    let argv0 = if prefixes.argv0 && words.len() >= 2 {
        Some(words.remove(1))
    } else {
        None
    };
    if words.is_empty() {
        return Err("the command line is empty".into());
    }
    let words = words
        .into_iter()
        .map(|w| {
            if prefixes.no_env {
                vec![Part::Text(w)]
            } else {
                env_parts(&w)
            }
        })
        .collect();
    Ok(ExecLine {
        prefixes,
        words,
        argv0,
    })
}

/// Finds environment references in an unquoted word: the whole word `$NAME`, `${NAME}`
/// anywhere, `$$` for a dollar sign; any other `$` is itself.
fn env_parts(word: &str) -> Vec<Part> {
    if let Some(name) = word.strip_prefix('$')
        && is_env_name(name)
    {
        return vec![Part::Split(name.to_owned())];
    }
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        text.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$$") {
            text.push('$');
            rest = after;
        } else if let Some((name, after)) = rest
            .strip_prefix("${")
            .and_then(|r| r.split_once('}'))
            .filter(|(n, _)| is_env_name(n))
        {
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Value(name.to_owned()));
            rest = after;
        } else {
            text.push('$');
            rest = &rest[1..];
        }
    }
    text.push_str(rest);
    if !text.is_empty() || parts.is_empty() {
        parts.push(Part::Text(text));
    }
    parts
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits `text` into words: whitespace separates them, `"..."` and `'...'` quote (anywhere in
/// a word), and C-style escapes (`\n`, `\t`, `\x41`, `\101`, `\u00e9`, `\\`, `\"`, `\ `) work
/// inside and outside quotes.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => word.push(escape(&mut chars)?),
                (q @ ('"' | '\''), None) => quote = Some(q),
                (q, Some(open)) if q == open => quote = None,
                (c, None) if c.is_whitespace() => break,
                (c, _) => word.push(c),
            }
        }
        if let Some(q) = quote {
            return Err(format!("a {q} quote is never closed"));
        }
        words.push(word);
    }
}

/// The character a backslash escape stands for (the backslash is already read).
fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    let c = chars
        .next()
        .ok_or("a backslash at the end of the line escapes nothing")?;
    let mut digits = |n: usize, radix: u32| -> Result<char, String> {
        let s: String = (0..n).filter_map(|_| chars.next()).collect();
        u32::from_str_radix(&s, radix)
            .ok()
            .filter(|_| s.len() == n)
            .and_then(char::from_u32)
            .filter(|c| *c != '\0')
            .ok_or_else(|| format!("`{s}` is not a valid escape"))
    };
    Ok(match c {
        'a' => '\x07',
        'b' => '\x08',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\x0b',
        's' => ' ',
        'x' => digits(2, 16)?,
        'u' => digits(4, 16)?,
        'U' => digits(8, 16)?,
        '0'..='7' => {
            let rest: String = (0..2).filter_map(|_| chars.next()).collect();
            let s = format!("{c}{rest}");
            u32::from_str_radix(&s, 8)
                .ok()
                .filter(|_| s.len() == 3)
                .and_then(char::from_u32)
                .filter(|c| *c != '\0')
                .ok_or_else(|| format!("`\\{s}` is not a valid escape"))?
        }
        // `\\`, `\"`, `\'`, `\ ` and any other character stand for themselves.
        other => other,
    })
}

/// `Environment=` values: words (quoted as above), each `NAME=value`. Err: a word without `=`
/// or with a name systemd does not take.
pub fn environment(value: &str) -> Result<Vec<(String, String)>, String> {
    split_words(value)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if is_env_name(k) => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("`{w}` is not NAME=value")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(unit: &str) -> Specifiers {
        Specifiers::for_unit(
            unit,
            std::path::Path::new("/lib/systemd/system/getty@.service"),
            &[('H', "host1".into())],
        )
    }

    #[test]
    fn expands_specifiers() {
        let s = specs("getty@tty1.service");
        assert_eq!(
            s.expand("%n %N %p %i %I %t/%p %h %H 100%%").unwrap(),
            "getty@tty1.service getty@tty1 getty tty1 tty1 /run/getty /root host1 100%"
        );
        assert_eq!(s.expand("%Y/%f").unwrap(), "/lib/systemd/system//tty1");
        let s = specs("systemd-fsck@dev-disk-by\\x2duuid-1.service");
        assert_eq!(s.expand("%I").unwrap(), "dev/disk/by-uuid/1");
        assert_eq!(s.expand("%f").unwrap(), "/dev/disk/by-uuid/1");
        assert_eq!(s.expand("%j").unwrap(), "fsck");
        let s = specs("nginx.service");
        assert_eq!(s.expand("%i|%N").unwrap(), "|nginx");
        assert_eq!(s.expand("/run/%d/x"), Err('d'));
        assert_eq!(s.expand("trailing %"), Err('%'));
    }

    #[test]
    fn splits_words_with_quotes_and_escapes() {
        let w = |t: &str| split_words(t).unwrap();
        assert_eq!(
            w(r#"/usr/sbin/nginx -g 'daemon on; master_process on;'"#),
            ["/usr/sbin/nginx", "-g", "daemon on; master_process on;"]
        );
        assert_eq!(
            w(r#"a"b c"'d' "x\"y" \x41\101\u00e9 a\ b"#),
            ["ab cd", "x\"y", "AAé", "a b"]
        );
        assert_eq!(w(r#"echo "tab\there" '\n'"#), ["echo", "tab\there", "\n"]);
        assert_eq!(w("  "), Vec::<String>::new());
        assert_eq!(w(r#"echo """#), ["echo", ""]);
        assert!(
            split_words("echo \"open")
                .unwrap_err()
                .contains("never closed")
        );
        assert!(
            split_words(r"bad \xZZ")
                .unwrap_err()
                .contains("not a valid escape")
        );
        assert!(split_words(r"nul \x00").is_err());
        assert!(split_words("end \\").is_err());
    }

    #[test]
    fn reads_prefixes_and_environment_references() {
        let l = exec_line("-/usr/sbin/sshd -D $SSHD_OPTS --x=${A}b $$HOME $1").unwrap();
        assert!(l.prefixes.ignore_failure && !l.prefixes.argv0);
        assert_eq!(l.argv(), None);
        assert_eq!(
            l.words,
            vec![
                vec![Part::Text("/usr/sbin/sshd".into())],
                vec![Part::Text("-D".into())],
                vec![Part::Split("SSHD_OPTS".into())],
                vec![
                    Part::Text("--x=".into()),
                    Part::Value("A".into()),
                    Part::Text("b".into())
                ],
                vec![Part::Text("$HOME".into())],
                vec![Part::Text("$1".into())],
            ]
        );
        assert_eq!(
            l.shell().unwrap(),
            r#"/usr/sbin/sshd -D $SSHD_OPTS '--x='"${A}"b '$HOME' '$1'"#
        );
        let l = exec_line("@+/bin/busybox httpd -f").unwrap();
        assert!(l.prefixes.argv0 && l.prefixes.full_privileges);
        assert_eq!(l.argv0.as_deref(), Some("httpd"));
        assert_eq!(l.argv().unwrap(), ["/bin/busybox", "-f"]);
        assert_eq!(l.prefixes.meanings().len(), 2);
        let l = exec_line(":/bin/echo $HOME").unwrap();
        assert_eq!(l.argv().unwrap(), ["/bin/echo", "$HOME"]);
        assert!(exec_line("!!/bin/true").unwrap().prefixes.raised_privileges);
        assert!(exec_line("-").unwrap_err().contains("empty"));
        assert!(
            exec_line("/bin/a ; /bin/b")
                .unwrap_err()
                .contains("several commands")
        );
    }

    #[test]
    fn reads_environment_assignments() {
        assert_eq!(
            environment(r#""A=one two" B=3 C= "D=x\"y""#).unwrap(),
            [
                ("A".into(), "one two".into()),
                ("B".into(), "3".into()),
                ("C".into(), "".into()),
                ("D".into(), "x\"y".into())
            ]
        );
        assert!(environment("NOEQUALS").is_err());
        assert!(environment("1A=x").is_err());
    }
}
