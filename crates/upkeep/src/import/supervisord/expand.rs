//! supervisord's expansions: Python %-formatting with names (`%(program_name)s`,
//! `%(process_num)02d`, `%(here)s`, `%(ENV_HOME)s`, `%%`), over the names supervisord defines
//! for a section ([`Vars`]). One process is imported, so `process_num` is 0 and `numprocs` 1.

use std::path::Path;

/// What `%(name)s` expansions see in one section.
pub(super) struct Vars {
    program: String,
    here: String,
}

impl Vars {
    /// For a section of `program` (or another section's name) in `file`.
    pub fn new(file: &Path, program: &str) -> Vars {
        let here = file.parent().unwrap_or(Path::new("/"));
        Vars {
            program: program.to_owned(),
            here: here.display().to_string(),
        }
    }

    /// A string or a number (process_num and numprocs format as numbers).
    fn get(&self, name: &str) -> Option<Var> {
        Some(match name {
            "program_name" | "group_name" => Var::Text(self.program.clone()),
            "here" => Var::Text(self.here.clone()),
            "host_node_name" => Var::Text(
                nix::unistd::gethostname()
                    .ok()?
                    .to_string_lossy()
                    .into_owned(),
            ),
            // One process is imported: the first, numbered from numprocs_start's default.
            "process_num" => Var::Number(0),
            "numprocs" => Var::Number(1),
            _ => Var::Text(std::env::var(name.strip_prefix("ENV_")?).ok()?),
        })
    }
}

enum Var {
    Text(String),
    Number(i64),
}

/// Python %-formatting with names, as supervisord expands values: `%(name)s`, `%(name)02d`,
/// `%%`. A name supervisord does not define (or an `ENV_X` that is not set) is an error, as
/// it is for supervisord.
pub(super) fn expand(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('%') {
            out.push('%');
            rest = after;
            continue;
        }
        let Some(inner) = rest.strip_prefix('(') else {
            return Err(
                "a `%` that starts no %(name)s expansion (write %% for a percent sign)".into(),
            );
        };
        let close = inner.find(')').ok_or("an expansion `%(` with no `)`")?;
        let name = &inner[..close];
        let spec_len = inner[close + 1..]
            .find(|c: char| !(c.is_ascii_digit() || "#0- +.".contains(c)))
            .ok_or_else(|| format!("`%({name})` has no conversion (e.g. %({name})s)"))?;
        let spec = &inner[close + 1..close + 1 + spec_len];
        let conv = inner[close + 1 + spec_len..].chars().next().unwrap_or('s');
        let var = vars.get(name).ok_or_else(|| {
            format!("`%({name})` names nothing supervisord defines here (program_name, group_name, process_num, numprocs, here, host_node_name, ENV_<variable that is set>)")
        })?;
        out.push_str(&format_var(&var, spec, conv)?);
        rest = &inner[close + 1 + spec_len + conv.len_utf8()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One `%` conversion: `s`, or `d`/`i` with an optional zero-padded width.
fn format_var(var: &Var, spec: &str, conv: char) -> Result<String, String> {
    let width: usize = spec
        .trim_start_matches(['0', '-', '+', ' ', '#'])
        .parse()
        .unwrap_or(0);
    let zero = spec.starts_with('0');
    let text = match (var, conv) {
        (Var::Text(t), 's' | 'r') => t.clone(),
        (Var::Number(n), 's' | 'r') => n.to_string(),
        (Var::Number(n), 'd' | 'i') if zero => return Ok(format!("{n:0width$}")),
        (Var::Number(n), 'd' | 'i') => n.to_string(),
        (Var::Text(t), 'd' | 'i') => return Err(format!("`{t}` is not a number for %d")),
        (_, c) => {
            return Err(format!(
                "the conversion %{c} is not one supervisord configs use (s or d)"
            ));
        }
    };
    Ok(format!("{text:>width$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            program: "web".into(),
            here: "/etc/supervisor".into(),
        }
    }

    #[test]
    fn expands_as_supervisord_does() {
        let v = vars();
        assert_eq!(
            expand("%(program_name)s_%(process_num)02d in %(here)s 100%%", &v).unwrap(),
            "web_00 in /etc/supervisor 100%"
        );
        let home = std::env::var("HOME").unwrap();
        assert_eq!(expand("%(ENV_HOME)s/x", &v).unwrap(), format!("{home}/x"));
        assert_eq!(expand("%(numprocs)d", &v).unwrap(), "1");
        assert!(
            expand("%(nope)s", &v)
                .unwrap_err()
                .contains("names nothing")
        );
        assert!(expand("%(ENV_UPKEEP_SURELY_UNSET_42)s", &v).is_err());
        assert!(expand("50% off", &v).unwrap_err().contains("%%"));
        assert!(expand("%(program_name", &v).is_err());
        assert!(expand("%(program_name)d", &v).is_err());
    }
}
