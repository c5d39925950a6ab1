//! A service's incident priority (`priority = "P2"`, issue 16): P1 to P4, routed by the
//! notices (upkeep-outbox maps them onto emergency, important and routine).

use upkeep_core::incident::IncidentPriority;

use super::Validator;

impl Validator<'_> {
    /// `Some(None)` when absent, `Some(Some(p))` when valid; None (and a problem) otherwise.
    pub(super) fn incident_priority(
        &mut self,
        name: &str,
        raw: Option<&str>,
    ) -> Option<Option<IncidentPriority>> {
        let Some(text) = raw else {
            return Some(None);
        };
        match IncidentPriority::parse(text) {
            Some(p) => Some(Some(p)),
            None => {
                self.problem(
                    &["services", name, "priority"],
                    format!("unknown incident priority `{text}`"),
                    Some("use \"P1\" (most urgent), \"P2\", \"P3\" (the default) or \"P4\"".into()),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::tests::check;
    use upkeep_core::ServiceName;
    use upkeep_core::incident::IncidentPriority;

    #[test]
    fn a_priority_is_read_and_an_unknown_one_refused_where_it_is_written() {
        let c = check("[services.web]\ncommand = \"true\"\npriority = \"P2\"\n").unwrap();
        let web = &c.services[&ServiceName::new("web").unwrap()];
        assert_eq!(web.priority, Some(IncidentPriority::P2));
        let e = check("[services.web]\ncommand = \"true\"\npriority = \"P9\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown incident priority `P9`"), "{e}");
        assert!(e.contains(":3:"), "{e}");
    }
}
