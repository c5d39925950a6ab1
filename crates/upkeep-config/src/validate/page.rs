//! How a service shows on the public status page: `group`, `public`, `display_name` and
//! `description` (issue 17).
//!
//! Owns [`OnPage`] and the checks of the four keys: texts people read on a public page, so
//! single lines of printable text of a bounded length (a description may be a short
//! paragraph). It does not render anything: `upkeep-web/src/site/` does, escaping every text.
//!
//! Input: the service's raw keys, from `Validator::service`. Output: an [`OnPage`], or
//! problems recorded on the `Validator`, each located at its key.

use super::Validator;
use crate::raw::RawService;

/// How the status page lists a service. By default: shown, under its own name, in no group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnPage {
    /// The heading it is listed under; None: the page's ungrouped list.
    pub group: Option<String>,
    /// False (`public = false`): left off the page, its badges and its stream.
    pub hidden: bool,
    /// The name people read; None: the service's name.
    pub display_name: Option<String>,
    /// A line or two about what it is, under its name.
    pub description: Option<String>,
}

/// Longest group and display name, in characters: a heading and a row's name.
const NAME_MAX: usize = 80;
/// Longest description, in characters.
const DESCRIPTION_MAX: usize = 500;

impl Validator<'_> {
    pub(super) fn on_page(&mut self, name: &str, raw: &RawService) -> Option<OnPage> {
        let before = self.problems.len();
        let group = self.page_text(name, "group", raw.group.as_deref(), NAME_MAX, false);
        let display_name = self.page_text(
            name,
            "display_name",
            raw.display_name.as_deref(),
            NAME_MAX,
            false,
        );
        let description = self.page_text(
            name,
            "description",
            raw.description.as_deref(),
            DESCRIPTION_MAX,
            true,
        );
        if self.problems.len() > before {
            return None;
        }
        Some(OnPage {
            group,
            hidden: raw.public == Some(false),
            display_name,
            description,
        })
    }

    /// A text of the page, trimmed: not blank, at most `max` characters, and no control
    /// characters (newlines only where `lines`).
    fn page_text(
        &mut self,
        name: &str,
        field: &'static str,
        text: Option<&str>,
        max: usize,
        lines: bool,
    ) -> Option<String> {
        let text = text?.trim();
        let key = ["services", name, field];
        if text.is_empty() {
            self.problem(
                &key,
                format!("`{field}` is blank"),
                Some("write the text, or remove the key".into()),
            );
            return None;
        }
        let count = text.chars().count();
        if count > max {
            self.problem(
                &key,
                format!("`{field}` is {count} characters long; at most {max} are shown"),
                None,
            );
            return None;
        }
        if let Some(c) = text
            .chars()
            .find(|c| c.is_control() && !(lines && *c == '\n'))
        {
            self.problem(
                &key,
                format!("`{field}` holds the control character {c:?}"),
                Some(if lines {
                    "keep to printable text and newlines".into()
                } else {
                    "keep to one line of printable text".into()
                }),
            );
            return None;
        }
        Some(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, located, one_problem};
    use super::*;

    const BASE: &str = "[services.web]\ncommand = \"sleep 1\"\n";

    #[test]
    fn a_service_is_shown_under_its_name_by_default() {
        let c = check(BASE).unwrap();
        let s = &c.services[&upkeep_core::ServiceName::new("web").unwrap()];
        assert_eq!(s.page, OnPage::default());
    }

    #[test]
    fn group_name_description_and_public_are_read_trimmed() {
        let c = check(&format!(
            "{BASE}group = \" Shop \"\npublic = false\ndisplay_name = \"Web shop\"\ndescription = \"\"\"\nWhere people buy.\nAnd pay.\n\"\"\"\n"
        ))
        .unwrap();
        let s = &c.services[&upkeep_core::ServiceName::new("web").unwrap()];
        assert_eq!(
            s.page,
            OnPage {
                group: Some("Shop".into()),
                hidden: true,
                display_name: Some("Web shop".into()),
                description: Some("Where people buy.\nAnd pay.".into()),
            }
        );
    }

    #[test]
    fn a_blank_group_is_refused_where_it_is_written() {
        let (p, text) = one_problem(&format!("{BASE}group = \"  \"\n"));
        located(&p, &text, "services.web.group", 3, 9);
        assert!(text.contains("blank"), "{text}");
    }

    #[test]
    fn a_display_name_with_a_newline_or_too_long_is_refused() {
        let (p, text) = one_problem(&format!("{BASE}display_name = \"a\\nb\"\n"));
        located(&p, &text, "services.web.display_name", 3, 16);
        assert!(text.contains("control character"), "{text}");
        let long = "x".repeat(81);
        let (p, text) = one_problem(&format!("{BASE}display_name = \"{long}\"\n"));
        located(&p, &text, "services.web.display_name", 3, 16);
        assert!(text.contains("81 characters"), "{text}");
    }

    #[test]
    fn public_must_be_a_boolean() {
        let err = check(&format!("{BASE}public = \"no\"\n")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(":3:"), "{text}");
    }
}
