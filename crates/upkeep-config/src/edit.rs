//! Editing the config file in place for `upkeep add` and `upkeep import`, keeping its comments
//! and layout.
//!
//! toml_edit keeps every comment and blank line of the document; we only append tables (or, for
//! `import --replace`, put one in the place of the service it replaces). Validating the result
//! is the caller's job (`parse`), before it writes anything.

use upkeep_core::ServiceName;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the config file is not valid TOML: {0}")]
    Parse(String),
    #[error("service `{0}` already exists in the config")]
    Exists(ServiceName),
    #[error("the config already has {}: {}", if .0.len() == 1 { "a service of this name" } else { "services of these names" }, names(.0))]
    ExistAlready(Vec<ServiceName>),
    #[error("`services` in the config is not a table")]
    ServicesNotTable,
    #[error("command is empty")]
    EmptyCommand,
}

fn names(list: &[ServiceName]) -> String {
    list.iter()
        .map(ServiceName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The document and its `services` table (made if missing).
fn services_of(doc: &mut toml_edit::DocumentMut) -> Result<&mut toml_edit::Table, EditError> {
    doc.entry("services")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or(EditError::ServicesNotTable)
}

fn parse_doc(source: &str) -> Result<toml_edit::DocumentMut, EditError> {
    source
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse(e.to_string()))
}

/// Returns `source` with each of `tables` as `[services.NAME]`, appended in order. A name the
/// config has already is refused (all such names at once, and nothing changes) unless
/// `replace`: then the new table takes the old one's place in the file, and the comments above
/// it (which may be about more than the service), instead of its own.
pub fn put_services(
    source: &str,
    tables: Vec<(ServiceName, toml_edit::Table)>,
    replace: bool,
) -> Result<String, EditError> {
    let mut doc = parse_doc(source)?;
    let services = services_of(&mut doc)?;
    let taken: Vec<ServiceName> = tables
        .iter()
        .filter(|(name, _)| services.contains_key(name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    if !taken.is_empty() && !replace {
        return Err(EditError::ExistAlready(taken));
    }
    // What ends the file (a last comment) stays where it was: above the first new table.
    let mut trailing = doc.trailing().as_str().unwrap_or_default().to_owned();
    doc.set_trailing("");
    let services = services_of(&mut doc)?;
    for (name, mut table) in tables {
        if let Some(old) = services
            .get(name.as_str())
            .and_then(toml_edit::Item::as_table)
        {
            if let Some(at) = old.position() {
                table.set_position(at);
            }
            *table.decor_mut() = old.decor().clone();
        } else if !trailing.is_empty() {
            let own = table
                .decor()
                .prefix()
                .and_then(|p| p.as_str())
                .unwrap_or_default();
            let prefix = format!("{}{own}", std::mem::take(&mut trailing));
            table.decor_mut().set_prefix(prefix);
        }
        services.insert(name.as_str(), toml_edit::Item::Table(table));
    }
    doc.set_trailing(trailing);
    Ok(doc.to_string())
}

/// Returns `source` with a `[services.NAME]` table appended.
pub fn add_service(
    source: &str,
    name: &ServiceName,
    argv: &[String],
    cwd: Option<&str>,
    restart: Option<&str>,
) -> Result<String, EditError> {
    if argv.is_empty() || argv[0].is_empty() {
        return Err(EditError::EmptyCommand);
    }
    let mut doc = parse_doc(source)?;
    let services = services_of(&mut doc)?;
    if services.contains_key(name.as_str()) {
        return Err(EditError::Exists(name.clone()));
    }
    let mut table = toml_edit::Table::new();
    let command = if argv.len() == 1 {
        toml_edit::value(argv[0].as_str())
    } else {
        toml_edit::value(
            argv.iter()
                .map(String::as_str)
                .collect::<toml_edit::Array>(),
        )
    };
    table.insert("command", command);
    if let Some(cwd) = cwd {
        table.insert("cwd", toml_edit::value(cwd));
    }
    if let Some(restart) = restart {
        table.insert("restart", toml_edit::value(restart));
    }
    services.insert(name.as_str(), toml_edit::Item::Table(table));
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_keeps_comments() {
        let src = "# my services\n[daemon]\ndata_dir = \"d\" # here\n\n[services.a]\n# a comment\ncommand = \"sleep 1\"\n";
        let name = ServiceName::new("b").unwrap();
        let out = add_service(
            src,
            &name,
            &["sleep".into(), "5".into()],
            Some("/tmp"),
            None,
        )
        .unwrap();
        assert!(out.starts_with(src.trim_end()), "{out}");
        assert!(
            out.contains("[services.b]\ncommand = [\"sleep\", \"5\"]\ncwd = \"/tmp\"\n"),
            "{out}"
        );
        let err = add_service(&out, &name, &["x".into()], None, None).unwrap_err();
        assert!(matches!(err, EditError::Exists(_)));
    }

    fn table(command: &str) -> toml_edit::Table {
        let mut t = toml_edit::Table::new();
        t.insert("command", toml_edit::value(command));
        t
    }

    #[test]
    fn puts_services_and_replaces_in_place_only_when_asked() {
        let src = "# head\n[services.a]\ncommand = \"old\" # keep?\n\n# about b\n[services.b]\ncommand = \"b\"\n";
        let a = ServiceName::new("a").unwrap();
        let c = ServiceName::new("c").unwrap();
        let err = put_services(
            src,
            vec![(c.clone(), table("c")), (a.clone(), table("new"))],
            false,
        )
        .unwrap_err();
        assert!(matches!(&err, EditError::ExistAlready(n) if n == std::slice::from_ref(&a)));
        assert_eq!(
            err.to_string(),
            "the config already has a service of this name: a"
        );
        let out = put_services(src, vec![(c, table("c")), (a, table("new"))], true).unwrap();
        // `a` stays first, `b` keeps its comment, `c` comes last.
        assert_eq!(
            out,
            "# head\n[services.a]\ncommand = \"new\"\n\n# about b\n[services.b]\ncommand = \"b\"\n\n[services.c]\ncommand = \"c\"\n"
        );
    }

    #[test]
    fn a_last_comment_stays_above_the_new_services() {
        let src = "[daemon]\ndata_dir = \"d\"\n# about the daemon\n\n";
        let name = ServiceName::new("a").unwrap();
        let out = put_services(src, vec![(name, table("x"))], false).unwrap();
        assert_eq!(
            out,
            "[daemon]\ndata_dir = \"d\"\n# about the daemon\n\n[services.a]\ncommand = \"x\"\n"
        );
    }

    #[test]
    fn works_on_an_empty_file() {
        let name = ServiceName::new("x").unwrap();
        let out = add_service("", &name, &["sleep 1".into()], None, Some("never")).unwrap();
        assert_eq!(
            out.trim(),
            "[services.x]\ncommand = \"sleep 1\"\nrestart = \"never\""
        );
    }
}
