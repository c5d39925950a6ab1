//! `upkeep user ...`: the people who may sign in to the admin pages (`/admin` on `listen`), a
//! thin client of the control socket's `/api/v1/users`: `add NAME`, `ls`, `rm NAME`, `passwd
//! NAME`. A password is never an argument (it would show in `ps` and the shell's history): it
//! is asked on the terminal without echo, twice, or read as the first line of stdin when stdin
//! is not a terminal (`printf '%s\n' "$PW" | upkeep user add ada`). Only the daemon hashes it.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, Result};
use clap::Subcommand;
use comfy_table::Table;
use comfy_table::presets::NOTHING;
use upkeep_core::account::{MAX_PASSWORD, UserInfo, UserRequest};
use upkeep_core::i18n::{Msg, tr};

use super::client::{ApiPath, Client};
use super::{JsonFlag, Usage, print_json};

#[derive(Subcommand, Debug)]
pub(super) enum UserCmd {
    /// Add a user of the admin pages (the password is asked, or read from stdin)
    Add {
        name: String,
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Users, with their open sessions
    Ls {
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a user (their sessions end at once)
    Rm { name: String },
    /// Change a user's password (their sessions end at once)
    Passwd { name: String },
}

pub(super) async fn run(client: &Client, cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::Add { name, json } => {
            upkeep_core::account::check_user_name(&name).map_err(Usage)?;
            let password = read_password(&name)?;
            let req = UserRequest {
                name: Some(name),
                password,
            };
            let user: UserInfo = client.post("/api/v1/users", Some(&req)).await?;
            if json.json {
                print_json(&user);
            } else {
                println!("{}", tr(Msg::UserAdded, &[&user.name]));
            }
        }
        UserCmd::Ls { json } => {
            let users: Vec<UserInfo> = client.get("/api/v1/users").await?;
            if json.json {
                print_json(&users);
            } else {
                print!("{}", list(&users));
            }
        }
        UserCmd::Rm { name } => {
            let path = ApiPath::new("/api/v1/users").segment(&name);
            let _: serde_json::Value = client.delete(path).await?;
            println!("{}", tr(Msg::UserRemoved, &[&name]));
        }
        UserCmd::Passwd { name } => {
            let password = read_password(&name)?;
            let path = ApiPath::new("/api/v1/users")
                .segment(&name)
                .segment("password");
            let req = UserRequest {
                name: None,
                password,
            };
            let _: serde_json::Value = client.put(path, Some(&req)).await?;
            println!("{}", tr(Msg::UserPasswordChanged, &[&name]));
        }
    }
    Ok(())
}

/// The password: asked twice without echo on a terminal, else stdin's first line. Either is
/// refused past [`MAX_PASSWORD`] bytes; stdin is read no further than that (a file or
/// `/dev/zero` on stdin costs a kilobyte, not its size).
fn read_password(name: &str) -> Result<String> {
    let too_long = || Usage(tr(Msg::PasswordTooLong, &[&MAX_PASSWORD]));
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(tr(Msg::PasswordPrompt, &[&name]))?;
        if first.len() > MAX_PASSWORD {
            return Err(too_long().into());
        }
        let again = rpassword::prompt_password(tr(Msg::PasswordAgain, &[]))?;
        if first != again {
            return Err(Usage(tr(Msg::PasswordsDiffer, &[])).into());
        }
        return Ok(first);
    }
    first_line(std::io::stdin().lock())?.ok_or_else(|| too_long().into())
}

/// The first line of `input` without its end, read no further than [`MAX_PASSWORD`] bytes and
/// its end; `None` when the line is longer.
fn first_line(input: impl BufRead) -> Result<Option<String>> {
    let mut line = Vec::new();
    input
        .take(MAX_PASSWORD as u64 + 2)
        .read_until(b'\n', &mut line)
        .context("reading the password from stdin")?;
    if line.ends_with(b"\n") {
        line.pop();
    }
    if line.ends_with(b"\r") {
        line.pop();
    }
    if line.len() > MAX_PASSWORD {
        return Ok(None);
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| Usage("the password on stdin is not UTF-8".into()).into())
}

fn list(users: &[UserInfo]) -> String {
    if users.is_empty() {
        return format!("{}\n", tr(Msg::NoUsers, &[]));
    }
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header([Msg::ColName, Msg::ColCreated, Msg::ColSessions].map(|m| tr(m, &[])));
    for u in users {
        t.add_row([
            u.name.clone(),
            u.created.strftime("%Y-%m-%d %H:%M UTC").to_string(),
            u.sessions.to_string(),
        ]);
    }
    format!("{t}\n")
}
