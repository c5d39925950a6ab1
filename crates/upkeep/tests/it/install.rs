//! What the Debian package installs beside the binary, checked with the real programs that
//! read it: the completions sourced into bash and fish and asked to complete, zsh's compiled,
//! and the manual page rendered by man-db. (The package itself: `scripts/test-deb`.)

use std::process::Command;

use crate::{BIN, stderr, stdout};

fn written(args: &[&str]) -> tempfile::NamedTempFile {
    let o = Command::new(BIN).args(args).output().unwrap();
    assert!(o.status.success(), "upkeep {args:?}: {}", stderr(&o));
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), &o.stdout).unwrap();
    f
}

/// What bash offers after `line` (completing its last word), with the completion loaded.
fn bash_completes(script: &std::path::Path, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let program = format!(
        "source {}; COMP_LINE='{line}'; COMP_POINT={}; COMP_WORDS=({}); COMP_CWORD={}; \
         _upkeep upkeep '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        line.len(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len().saturating_sub(2)],
    );
    let o = Command::new("bash")
        .args(["-c", &program])
        .output()
        .unwrap();
    assert!(o.status.success(), "{program}: {}", stderr(&o));
    stdout(&o).lines().map(|l| l.trim().to_owned()).collect()
}

#[test]
fn bash_completes_commands_and_flags() {
    let script = written(&["completions", "bash"]);
    let offered = bash_completes(script.path(), "upkeep res");
    assert!(offered.contains(&"restart".to_owned()), "{offered:?}");
    assert!(!offered.contains(&"stop".to_owned()), "{offered:?}");
    let offered = bash_completes(script.path(), "upkeep logs --fo");
    assert_eq!(offered, ["--follow"]);
    let offered = bash_completes(script.path(), "upkeep drill web --fault ");
    for f in ["crash", "hang", "close-port"] {
        assert!(offered.contains(&f.to_owned()), "{offered:?}");
    }
}

#[test]
fn fish_completes_commands() {
    let script = written(&["completions", "fish"]);
    let o = Command::new("fish")
        .args([
            "--no-config",
            "-c",
            &format!(
                "source {}; complete -C'upkeep res'",
                script.path().display()
            ),
        ])
        .output()
        .expect("run fish (apt install fish)");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let offered: Vec<&str> = text.lines().filter_map(|l| l.split('\t').next()).collect();
    assert!(offered.contains(&"restart"), "{text}");
    assert!(!offered.contains(&"stop"), "{text}");
}

#[test]
fn zsh_compiles_its_completion() {
    let script = written(&["completions", "zsh"]);
    let compiled = script.path().with_extension("zwc");
    let o = Command::new("zsh")
        .args([
            "-f",
            "-c",
            &format!(
                "zcompile {} {}",
                compiled.display(),
                script.path().display()
            ),
        ])
        .output()
        .expect("run zsh (apt install zsh)");
    let _ = std::fs::remove_file(&compiled);
    assert!(o.status.success(), "zcompile: {}", stderr(&o));
    let text = std::fs::read_to_string(script.path()).unwrap();
    assert!(text.starts_with("#compdef upkeep"), "{text}");
    assert!(
        text.contains("'--follow[Keep printing new lines]'"),
        "{text}"
    );
}

#[test]
fn completions_for_an_unknown_shell_are_a_usage_error() {
    let o = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bash, zsh, fish"), "{}", stderr(&o));
}

/// `man -l` renders the page as `man upkeep` would, with groff's warnings on.
fn render(page: &std::path::Path) -> (String, String) {
    let o = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LANG", "C.UTF-8")
        .output()
        .expect("run man (apt install man-db)");
    assert!(o.status.success(), "{}", stderr(&o));
    (stdout(&o), stderr(&o))
}

#[test]
fn the_man_page_renders_without_warnings() {
    let page = written(&["man"]);
    let (text, warnings) = render(page.path());
    assert_eq!(warnings, "", "groff warned");
    assert!(
        text.contains("Keep services running, watch them, tell people."),
        "{text}"
    );
    for command in ["restart", "top", "completions", "maint"] {
        assert!(text.contains(command), "{command} missing:\n{text}");
    }
    assert!(text.contains("--config"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (text, warnings) = render(&dir.path().join("upkeep-maint-add.1"));
    assert_eq!(warnings, "", "groff warned");
    assert!(text.contains("--title"), "{text}");
}
