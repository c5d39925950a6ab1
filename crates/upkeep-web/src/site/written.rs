//! What people wrote about an incident, on the status page (issue 16): the updates in an open
//! incident's timeline, in the words of the reader's language, and the post-mortem in the
//! history of a resolved one. The texts are people's: they reach the page through
//! minijinja's HTML escaping like every other text (`render.rs`), so a `<script>` in a
//! message is text.

use serde::Serialize;
use upkeep_core::i18n::Lang;
use upkeep_core::incident::IncidentStatus;

use super::model::Written;

/// An update's status in the reader's words.
pub(super) fn status_word(s: IncidentStatus, lang: Lang) -> &'static str {
    match (s, lang) {
        (IncidentStatus::Investigating, Lang::En) => "Investigating",
        (IncidentStatus::Identified, Lang::En) => "Identified",
        (IncidentStatus::Monitoring, Lang::En) => "Monitoring",
        (IncidentStatus::Resolved, Lang::En) => "Resolved",
        (IncidentStatus::Investigating, Lang::ZhCn) => "调查中",
        (IncidentStatus::Identified, Lang::ZhCn) => "已查明原因",
        (IncidentStatus::Monitoring, Lang::ZhCn) => "观察中",
        (IncidentStatus::Resolved, Lang::ZhCn) => "已解决",
    }
}

/// A post-mortem's headings.
#[derive(Serialize)]
pub(super) struct PmWords {
    heading: &'static str,
    summary: &'static str,
    root_cause: &'static str,
    whys: &'static str,
    actions: &'static str,
}

const EN: PmWords = PmWords {
    heading: "Post-mortem",
    summary: "Summary",
    root_cause: "Root cause",
    whys: "Five whys",
    actions: "Actions",
};

const ZH: PmWords = PmWords {
    heading: "事后复盘",
    summary: "概要",
    root_cause: "根本原因",
    whys: "五个为什么",
    actions: "改进措施",
};

/// A post-mortem as the page shows it.
#[derive(Serialize)]
pub(super) struct PmView {
    words: &'static PmWords,
    summary: String,
    root_cause: String,
    whys: Vec<String>,
    actions: Vec<String>,
}

pub(super) fn postmortem(w: &Written, lang: Lang) -> Option<PmView> {
    let pm = w.postmortem.as_ref()?;
    Some(PmView {
        words: match lang {
            Lang::En => &EN,
            Lang::ZhCn => &ZH,
        },
        summary: pm.summary.clone(),
        root_cause: pm.root_cause.clone(),
        whys: pm.whys.clone(),
        actions: pm.actions.clone(),
    })
}

/// An update as a timeline line: `Identified: a bad deploy`.
pub(super) fn update_text(status: IncidentStatus, message: &str, lang: Lang) -> String {
    let colon = match lang {
        Lang::En => ": ",
        Lang::ZhCn => "：",
    };
    format!("{}{colon}{message}", status_word(status, lang))
}
