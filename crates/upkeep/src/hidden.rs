//! What the public never hears of services with `public = false` (issue 17): the feeds and
//! the announcements API leave out their incidents and the updates written to them, and a
//! window shows only its public services (one with none is left out whole).
//!
//! The status page filters its own model (`statuspage.rs`), the subscribers' notices their
//! fan-out (upkeep-outbox's `SubscriberFanout`); operators' routes hear of every service.
//! Input: what the store answered and the public services of the running config
//! (`subscriptions::public_services`, current after each reload). Pure, so tested here.
//!
//! Free text people write (a window's title, reason, ...) is shown as written: naming a
//! hidden service there is found ([`named`]) and told to the operator, never rewritten.

use std::collections::BTreeSet;

use upkeep_core::ServiceName;
use upkeep_core::api::Incident;
use upkeep_core::incident::PublicUpdate;
use upkeep_core::window::Announcement;

/// The windows that affect a public service, each with its public services only.
pub fn announcements(list: Vec<Announcement>, public: &BTreeSet<ServiceName>) -> Vec<Announcement> {
    list.into_iter()
        .filter_map(|mut a| {
            a.services.retain(|s| public.contains(&s.service));
            (!a.services.is_empty()).then_some(a)
        })
        .collect()
}

/// The fields of a window's public text that name one of `hidden` (as a whole word, in any
/// case): `(field, service)`, for the operator to be told.
pub fn named(
    fields: &[(&str, &str)],
    hidden: &BTreeSet<ServiceName>,
) -> Vec<upkeep_core::window::NamesHidden> {
    let mut out = Vec::new();
    for (field, text) in fields {
        let text = text.to_lowercase();
        for service in hidden {
            let name = service.as_ref().to_lowercase();
            let word =
                |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'));
            let found = text.match_indices(&name).any(|(at, _)| {
                word(text[..at].chars().next_back()) && word(text[at + name.len()..].chars().next())
            });
            if found {
                out.push(upkeep_core::window::NamesHidden {
                    field: (*field).to_owned(),
                    service: service.clone(),
                });
            }
        }
    }
    out
}

/// The incidents of public services.
pub fn incidents(list: Vec<Incident>, public: &BTreeSet<ServiceName>) -> Vec<Incident> {
    list.into_iter()
        .filter(|i| public.contains(&i.service))
        .collect()
}

/// The updates written to incidents of public services.
pub fn updates(list: Vec<PublicUpdate>, public: &BTreeSet<ServiceName>) -> Vec<PublicUpdate> {
    list.into_iter()
        .filter(|u| public.contains(&u.service))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::window::{AffectedService, Impact};

    fn name(n: &str) -> ServiceName {
        ServiceName::new(n).unwrap()
    }

    #[test]
    fn text_naming_a_hidden_service_as_a_word_is_found() {
        let hidden: BTreeSet<ServiceName> = [name("vault"), name("db-2")].into();
        let found = named(
            &[
                ("title", "Vault upgrade"),
                ("reason", "vaults and db-20 are not db-2's"),
                ("alternative", "none"),
            ],
            &hidden,
        );
        let found: Vec<(&str, &str)> = found
            .iter()
            .map(|n| (n.field.as_str(), n.service.as_ref()))
            .collect();
        assert_eq!(found, [("title", "vault"), ("reason", "db-2")]);
        assert!(named(&[("title", "web")], &hidden).is_empty());
    }

    #[test]
    fn hidden_services_leave_windows_incidents_and_updates() {
        let public: BTreeSet<ServiceName> = [name("web")].into();
        let t = jiff::Timestamp::UNIX_EPOCH;
        let window = |services: &[&str]| Announcement {
            id: 1,
            kind: upkeep_core::window::WindowKind::Maintenance,
            priority: upkeep_core::window::Priority::Routine,
            title: "t".into(),
            reason: "r".into(),
            start: t,
            end: t,
            tz: "UTC".into(),
            repeat: None,
            services: services
                .iter()
                .map(|s| AffectedService {
                    service: name(s),
                    impact: Impact::Outage,
                })
                .collect(),
            alternative: String::new(),
            follow_up: String::new(),
            status: upkeep_core::window::WindowStatus::Scheduled,
            revision: 1,
            updated: t,
        };
        let kept = announcements(
            vec![window(&["secret"]), window(&["web", "secret"])],
            &public,
        );
        assert_eq!(kept.len(), 1);
        let names: Vec<&str> = kept[0]
            .services
            .iter()
            .map(|s| s.service.as_str())
            .collect();
        assert_eq!(names, ["web"]);
        let update = |s: &str| PublicUpdate {
            incident: 1,
            service: name(s),
            id: 1,
            at: t,
            status: upkeep_core::incident::IncidentStatus::Investigating,
            message: "m".into(),
        };
        let kept = updates(vec![update("secret"), update("web")], &public);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].service, name("web"));
    }
}
