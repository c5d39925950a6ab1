//! `upkeep subscribers ...`: the people who subscribed through the public API, a thin client
//! of `/api/v1/subscribers`: `ls` (a table, or JSON), `rm EMAIL` (deletes the address and what
//! still waits for it in the outbox) and `export` (CSV or JSON lines, for a mailing tool or a
//! backup).

use anyhow::Result;
use clap::Subcommand;
use comfy_table::Table;
use comfy_table::presets::NOTHING;
use upkeep_core::i18n::{Msg, tr};
use upkeep_core::subscription::SubscriberInfo;

use super::client::{ApiPath, Client};
use super::{JsonFlag, escape, print_json};

#[derive(Subcommand, Debug)]
pub(super) enum SubscribersCmd {
    /// Subscribers, oldest first, confirmed or not
    Ls {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Delete a subscriber (and its notices still waiting)
    Rm {
        email: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Every subscriber, as CSV (default) or JSON lines
    Export {
        #[arg(long, value_parser = ["csv", "jsonl"], default_value = "csv")]
        format: String,
    },
}

pub(super) async fn run(client: &Client, cmd: SubscribersCmd) -> Result<()> {
    match cmd {
        SubscribersCmd::Ls { json } => {
            let rows: Vec<SubscriberInfo> = client.get("/api/v1/subscribers").await?;
            if json.json {
                print_json(&rows);
            } else {
                print!("{}", list(&rows));
            }
        }
        SubscribersCmd::Rm { email, json } => {
            let path = ApiPath::new("/api/v1/subscribers").segment(email);
            let gone: SubscriberInfo = client.delete(path).await?;
            if json.json {
                print_json(&gone);
            } else {
                println!(
                    "{}",
                    tr(Msg::SubscriberRemoved, &[&escape::field(&gone.email)])
                );
            }
        }
        SubscribersCmd::Export { format } => {
            let rows: Vec<SubscriberInfo> = client.get("/api/v1/subscribers").await?;
            print!("{}", export(&rows, &format));
        }
    }
    Ok(())
}

fn list(rows: &[SubscriberInfo]) -> String {
    if rows.is_empty() {
        return format!("{}\n", tr(Msg::NoSubscribers, &[]));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(
        [
            Msg::ColId,
            Msg::ColEmail,
            Msg::ColServices,
            Msg::ColLang,
            Msg::ColConfirmed,
        ]
        .map(|m| tr(m, &[])),
    );
    for r in rows {
        t.add_row(vec![
            r.id.to_string(),
            escape::field(&r.email).into_owned(),
            services(r),
            r.lang.clone(),
            r.confirmed
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    format!("{t}\n")
}

fn services(r: &SubscriberInfo) -> String {
    if r.services.is_empty() {
        tr(Msg::AllServices, &[])
    } else {
        escape::field(&r.services.join(",")).into_owned()
    }
}

/// A CSV field: quoted, quotes doubled (RFC 4180), and a leading `'` before a field a
/// spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or a carriage return
/// first: OWASP's advice), since an address such as `=HYPERLINK(...)@example.com` is valid.
fn csv_field(s: &str) -> String {
    let guard = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        "'"
    } else {
        ""
    };
    format!("\"{guard}{}\"", s.replace('"', "\"\""))
}

/// CSV (RFC 4180: fields quoted, quotes doubled; formulas neutralised) with a header, or one
/// JSON object a line.
fn export(rows: &[SubscriberInfo], format: &str) -> String {
    let mut out = String::new();
    if format == "jsonl" {
        for r in rows {
            out.push_str(&serde_json::to_string(r).expect("a subscriber serialises"));
            out.push('\n');
        }
        return out;
    }
    let q = csv_field;
    out.push_str("id,email,services,lang,created,confirmed\r\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{}\r\n",
            r.id,
            q(&r.email),
            q(&r.services.join(" ")),
            q(&r.lang),
            r.created,
            r.confirmed.map(|c| c.to_string()).unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_quotes_fields() {
        let r = SubscriberInfo {
            id: 3,
            email: "a\"b@example.com".into(),
            services: vec!["db".into(), "web".into()],
            lang: "zh-CN".into(),
            created: "2026-12-01T00:00:00Z".parse().unwrap(),
            confirmed: None,
        };
        assert_eq!(
            export(std::slice::from_ref(&r), "csv"),
            "id,email,services,lang,created,confirmed\r\n3,\"a\"\"b@example.com\",\"db web\",\"zh-CN\",2026-12-01T00:00:00Z,\r\n"
        );
        assert!(export(&[r], "jsonl").starts_with("{\"id\":3,"));
    }

    #[test]
    fn export_neutralises_formulas() {
        assert_eq!(
            csv_field("=cmd|' /C calc'!A0@example.com"),
            "\"'=cmd|' /C calc'!A0@example.com\""
        );
        for s in ["+1@example.com", "-1@example.com", "@x", "\tx", "\rx"] {
            assert!(csv_field(s).starts_with("\"'"), "{s:?}");
        }
        assert_eq!(csv_field("ann@example.com"), "\"ann@example.com\"");
    }
}
