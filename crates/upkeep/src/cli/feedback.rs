//! `upkeep feedback`: what people wrote in the status page's feedback form, a thin client of
//! `/api/v1/feedback` (a table, or JSON). Every field is text from strangers: the table shows
//! it with control characters escaped (`escape.rs`), so a message cannot drive the terminal.

use anyhow::Result;
use comfy_table::Table;
use comfy_table::presets::NOTHING;
use upkeep_core::feedback::FeedbackItem;
use upkeep_core::i18n::{Msg, tr};

use super::client::{ApiPath, Client};
use super::{escape, print_json};

pub(super) async fn run(client: &Client, limit: u32, json: bool) -> Result<()> {
    let rows: Vec<FeedbackItem> = client
        .get(ApiPath::new("/api/v1/feedback").query("limit", limit))
        .await?;
    if json {
        print_json(&rows);
    } else {
        print!("{}", list(&rows));
    }
    Ok(())
}

/// Characters of a message the table shows (cut with `…`; `--json` has it whole): a long
/// message would push every other column off the screen.
const MESSAGE_CELL: usize = 80;

fn list(rows: &[FeedbackItem]) -> String {
    if rows.is_empty() {
        return format!("{}\n", tr(Msg::NoFeedback, &[]));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(
        [
            Msg::ColId,
            Msg::ColCreated,
            Msg::ColService,
            Msg::ColEmail,
            Msg::ColFrom,
            Msg::ColMessage,
        ]
        .map(|m| tr(m, &[])),
    );
    let or_dash = |v: &Option<String>| {
        v.as_deref()
            .map_or_else(|| "-".to_owned(), |s| escape::field(s).into_owned())
    };
    for r in rows {
        t.add_row(vec![
            r.id.to_string(),
            r.created.to_string(),
            or_dash(&r.service),
            or_dash(&r.email),
            or_dash(&r.address),
            escape::cut(&escape::field(&r.message), MESSAGE_CELL).into_owned(),
        ]);
    }
    format!("{t}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_show_as_text_with_control_characters_escaped() {
        let r = FeedbackItem {
            id: 1,
            message: "<script>alert(1)</script>\x1b[2J\nsecond line".into(),
            email: None,
            service: Some("web".into()),
            lang: "en".into(),
            address: Some("192.0.2.7".into()),
            created: "2026-12-01T00:00:00Z".parse().unwrap(),
        };
        let out = list(&[r]);
        assert!(
            out.contains("<script>alert(1)</script>\\x1b[2J\\nsecond line"),
            "{out}"
        );
        assert!(!out.contains('\x1b'), "{out:?}");
    }
}
