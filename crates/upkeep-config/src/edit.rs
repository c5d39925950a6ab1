//! Editing the config file in place for `upkeep add`, keeping its comments and layout.
//!
//! toml_edit keeps every comment and blank line of the document; we only append a table.

use upkeep_core::ServiceName;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the config file is not valid TOML: {0}")]
    Parse(String),
    #[error("service `{0}` already exists in the config")]
    Exists(ServiceName),
    #[error("`services` in the config is not a table")]
    ServicesNotTable,
    #[error("command is empty")]
    EmptyCommand,
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
    let mut doc: toml_edit::DocumentMut = source
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse(e.to_string()))?;
    let services = doc
        .entry("services")
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or(EditError::ServicesNotTable)?;
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
