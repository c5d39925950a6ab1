//! `upkeep completions SHELL` and `upkeep man`: shell completions and manual pages made from
//! the CLI's own clap definition, so they can never describe another set of commands or flags
//! than the binary has. The Debian package ships what these print (`scripts/deb`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

/// The shells completions are written for.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl From<Shell> for clap_complete::Shell {
    fn from(s: Shell) -> Self {
        match s {
            Shell::Bash => Self::Bash,
            Shell::Zsh => Self::Zsh,
            Shell::Fish => Self::Fish,
        }
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(shell),
        &mut cmd,
        "upkeep",
        &mut out,
    );
    out
}

/// The page `man upkeep` shows: every command, with its one-line summary.
pub fn man_page() -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(super::Cli::command())
        .render(&mut out)
        .context("rendering the manual page")?;
    Ok(out)
}

/// Writes `upkeep.1` and a page for each subcommand (`upkeep-ls.1`, `upkeep-maint-add.1`, ...)
/// into `dir`; returns the paths written.
pub fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Built, subcommands carry their parents' names (`upkeep-maint-add`): each page's name.
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_page(cmd: &clap::Command, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let man =
        clap_mangen::Man::new(cmd.clone()).source(concat!("upkeep ", env!("CARGO_PKG_VERSION")));
    let path = dir.join(man.get_filename());
    let mut text = Vec::new();
    man.render(&mut text)
        .with_context(|| format!("rendering {}", path.display()))?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    out.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub, dir, out)?;
    }
    Ok(())
}

pub fn run_completions(shell: Shell) -> Result<ExitCode> {
    print_bytes(&completions(shell))
}

pub fn run_man(dir: Option<PathBuf>) -> Result<ExitCode> {
    match dir {
        None => print_bytes(&man_page()?),
        Some(dir) => {
            for path in write_man_pages(&dir)? {
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to standard output; a closed pipe (`upkeep man | head`) ends quietly.
fn print_bytes(bytes: &[u8]) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes).and_then(|()| out.flush());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn completions_know_every_command_and_flag() {
        let bash = text(completions(Shell::Bash));
        for word in ["restart", "maint", "--config", "--follow", "completions"] {
            assert!(bash.contains(word), "bash completions lack {word}");
        }
        let fish = text(completions(Shell::Fish));
        assert!(fish.contains("complete -c upkeep"), "{fish}");
        assert!(fish.contains("-a \"restart\""), "{fish}");
        let zsh = text(completions(Shell::Zsh));
        assert!(zsh.starts_with("#compdef upkeep"), "{zsh}");
    }

    #[test]
    fn the_man_page_lists_the_commands() {
        let page = text(man_page().unwrap());
        assert!(page.contains(".TH upkeep 1"), "{page}");
        for word in ["restart", "logs", "completions", "\\-\\-config"] {
            assert!(page.contains(word), "the man page lacks {word}");
        }
    }

    #[test]
    fn a_page_for_each_subcommand_named_after_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for name in [
            "upkeep.1",
            "upkeep-ls.1",
            "upkeep-maint-add.1",
            "upkeep-top.1",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let add = std::fs::read_to_string(dir.path().join("upkeep-maint-add.1")).unwrap();
        let title = format!(
            ".TH upkeep-maint-add 1  \"upkeep {}\"",
            env!("CARGO_PKG_VERSION")
        );
        assert!(add.contains(&title), "{add}");
    }
}
