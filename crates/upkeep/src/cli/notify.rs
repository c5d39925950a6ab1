//! `upkeep notify ...`: the outbox from the command line, a thin client of `/api/v1/notify`:
//! `ls` (newest first, of one state with `--state`), `retry ID` (a failed notice goes back to
//! pending) and `test CHANNEL [--to RECIPIENT]` (a test notice through the outbox).

use anyhow::Result;
use clap::Subcommand;
use comfy_table::Table;
use comfy_table::presets::NOTHING;
use upkeep_core::api::{NotifyTestRequest, OutboxNotice};
use upkeep_core::i18n::{Msg, tr};

use super::client::{ApiPath, Client};
use super::{JsonFlag, escape, print_json};

#[derive(Subcommand, Debug)]
pub(super) enum NotifyCmd {
    /// Notices in the outbox, newest first
    Ls {
        /// Only those in this state
        #[arg(long, value_parser = ["pending", "sending", "sent", "failed"])]
        state: Option<String>,
        /// At most this many
        #[arg(short = 'n', long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Send a failed notice again
    Retry {
        id: i64,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Send a test notice through CHANNEL, by way of the outbox
    Test {
        channel: String,
        /// The recipient (an email address, a chat id); default: the channel's own
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        json: JsonFlag,
    },
}

pub(super) async fn run(client: &Client, cmd: NotifyCmd) -> Result<()> {
    match cmd {
        NotifyCmd::Ls { state, limit, json } => {
            let mut path = ApiPath::new("/api/v1/notify").query("limit", limit);
            if let Some(s) = &state {
                path = path.query("state", s);
            }
            let rows: Vec<OutboxNotice> = client.get(path).await?;
            if json.json {
                print_json(&rows);
            } else {
                print!("{}", list(&rows));
            }
        }
        NotifyCmd::Retry { id, json } => {
            let path = ApiPath::new("/api/v1/notify")
                .segment(id.to_string())
                .segment("retry");
            let row: OutboxNotice = client.post(path, None::<&()>).await?;
            if json.json {
                print_json(&row);
            } else {
                println!("{}", tr(Msg::NoticeRetried, &[&row.id]));
            }
        }
        NotifyCmd::Test { channel, to, json } => {
            let req = NotifyTestRequest {
                channel: channel.clone(),
                to,
            };
            let rows: Vec<OutboxNotice> = client.post("/api/v1/notify/test", Some(&req)).await?;
            if json.json {
                print_json(&rows);
            } else {
                for r in &rows {
                    println!(
                        "{}",
                        tr(Msg::NoticeTestPlanned, &[&r.id, &escape::field(&channel)])
                    );
                }
            }
        }
    }
    Ok(())
}

fn list(rows: &[OutboxNotice]) -> String {
    if rows.is_empty() {
        return format!("{}\n", tr(Msg::NoNotices, &[]));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(
        [
            Msg::ColId,
            Msg::ColState,
            Msg::ColKind,
            Msg::ColChannel,
            Msg::ColRecipient,
            Msg::ColAttempts,
            Msg::ColTitle,
            Msg::ColError,
        ]
        .map(|m| tr(m, &[])),
    );
    for r in rows {
        t.add_row(vec![
            r.id.to_string(),
            // A digest row not yet tried waits for its digest: say when (in this zone).
            if r.digest && r.state == "pending" && r.attempts == 0 {
                let at = r.next.to_zoned(jiff::tz::TimeZone::system());
                tr(
                    Msg::NoticeDigestAt,
                    &[&at.strftime("%Y-%m-%d %H:%M %Z").to_string()],
                )
            } else {
                r.state.clone()
            },
            r.kind.clone(),
            escape::field(&r.channel).into_owned(),
            escape::field(&r.recipient).into_owned(),
            if r.takeovers > 0 {
                format!("{} ({} taken over)", r.attempts, r.takeovers)
            } else {
                r.attempts.to_string()
            },
            escape::field(&r.title).into_owned(),
            r.last_error
                .as_deref()
                .map(|e| escape::field(e).chars().take(80).collect())
                .unwrap_or_default(),
        ]);
    }
    // What a crash mid-send can cost, said once for the list (`takeovers` counts them).
    let taken = rows.iter().filter(|r| r.takeovers > 0).count();
    if taken > 0 {
        format!("{t}\n{}\n", tr(Msg::NoticesTakenOver, &[&taken]))
    } else {
        format!("{t}\n")
    }
}
