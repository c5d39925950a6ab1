//! [`ConfigError`]: every problem of a config file, each with where it is and what to do.

use std::fmt;
use std::path::PathBuf;

/// One problem, located in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// The key path, e.g. `services.web.stop_timeout` (empty for syntax errors).
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

fn render(path: &std::path::Path, problems: &[Problem]) -> String {
    let mut out = format!(
        "{} has {} problem{}",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str(&format!(
            "\n  --> {}:{}:{}",
            path.display(),
            p.line,
            p.column
        ));
        if !p.key.is_empty() {
            out.push_str(&format!(" ({})", p.key));
        }
        out.push_str(&format!(": {}", p.message));
        if let Some(h) = &p.hint {
            out.push_str(&format!("\n      hint: {h}"));
        }
    }
    out
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}
