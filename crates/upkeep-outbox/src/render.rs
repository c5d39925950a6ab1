//! Templates: a [`Notice`] becomes the words of its language ([`Rendered`]), once per notice,
//! before any channel sees it.
//!
//! Each language has five templates (`subject.txt`, `body.txt`, `body.html`, `chat.md` for
//! the markdown bots, `chat.txt` for Telegram and Slack) and `words.j2`, the macros for the
//! words that depend on the kind, priority and impact, so one file changes them everywhere.
//! The daily digest has three of its own (`digest_subject.txt`, `digest.txt`,
//! `digest.html`: [`Templates::render_digest`]), which list its notices, each with the
//! fields the others show.
//! The built-in ones live in `templates/` and are compiled in; a file of the same name under
//! `templates_dir` (`zh-CN/subject.txt`) replaces one. Loading reports every bad or unknown
//! file at once and renders each template for every kind, so a mistake shows at start-up,
//! not in the middle of an outage. `.html` templates escape what they print (minijinja's
//! auto-escape); the others print text as it is. Times are shown in the reader's zone with
//! the offset: `2026-12-01 02:00 CST (UTC+08:00)`.
//!
//! Start at [`Templates::load`], then [`Templates::render`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use upkeep_core::i18n::Lang;

use crate::notice::{Notice, NoticeKind, lang_tag};

/// A notice in words, ready for any channel. The notice itself comes along for channels that
/// send structured data (the generic webhook).
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub notice: Notice,
    /// One line: newlines and control characters in a title never reach a mail header.
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Short markdown for WeCom, DingTalk and Feishu.
    pub chat_markdown: String,
    /// Short plain text for Telegram and Slack.
    pub chat_text: String,
}

const PARTS: [&str; 5] = [
    "subject.txt",
    "body.txt",
    "body.html",
    "chat.md",
    "chat.txt",
];

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// The daily digest's parts: an email's alone.
const DIGEST_PARTS: [&str; 3] = ["digest_subject.txt", "digest.txt", "digest.html"];

/// Every template name, with its built-in text. A user file must have one of these names.
const BUILTIN: &[(&str, &str)] = builtin![
    "en/words.j2",
    "en/subject.txt",
    "en/body.txt",
    "en/body.html",
    "en/chat.md",
    "en/chat.txt",
    "zh-CN/words.j2",
    "zh-CN/subject.txt",
    "zh-CN/body.txt",
    "zh-CN/body.html",
    "zh-CN/chat.md",
    "zh-CN/chat.txt",
    "en/digest_subject.txt",
    "en/digest.txt",
    "en/digest.html",
    "zh-CN/digest_subject.txt",
    "zh-CN/digest.txt",
    "zh-CN/digest.html",
];

/// A user template bigger than this is a mistake (a log, a dump), not a template.
const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// The compiled templates. Cheap to clone.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
}

/// What is wrong with a templates folder: every problem, each naming its file.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct TemplateError {
    pub problems: Vec<TemplateProblem>,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateProblem {
    #[error("cannot read templates folder {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{} is not a template upkeep knows\n  hint: template files are {}",
        path.display(),
        BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    )]
    Unknown { path: PathBuf },
    #[error("{} is larger than {} KiB", path.display(), MAX_TEMPLATE_BYTES / 1024)]
    TooLarge { path: PathBuf },
    #[error("{}: {}", path.display(), describe(source))]
    Invalid {
        path: PathBuf,
        source: minijinja::Error,
    },
    #[error("{name} fails for a `{kind}` notice: {}", describe(source))]
    FailsToRender {
        name: String,
        kind: &'static str,
        source: minijinja::Error,
    },
}

/// A template error with its line, and the causes minijinja chains (an error inside a
/// macro of `words.j2` is the cause of the one in the template that called it).
fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Rendering a notice failed: only a user template can do that, and loading tries each one,
/// so this means a template that fails for some notices and not others.
#[derive(Debug, thiserror::Error)]
#[error("template {name} failed for a `{kind}` notice: {}", describe(source))]
pub struct RenderError {
    pub name: String,
    pub kind: &'static str,
    #[source]
    pub source: minijinja::Error,
}

impl Templates {
    /// The built-in templates alone.
    pub fn builtin() -> Templates {
        Self::load(None).expect("the built-in templates compile and render (tested)")
    }

    /// The built-in templates, each replaced by a file of the same name under `dir`
    /// (`dir/en/subject.txt`), if `dir` is given.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        // A misspelt variable is an error, not an empty string; `{% if x %}` still works.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        for (name, text) in BUILTIN {
            env.add_template(name, text)
                .expect("the built-in templates compile (tested)");
        }
        let mut problems = Vec::new();
        if let Some(dir) = dir {
            for (name, path, text) in user_files(dir, &mut problems) {
                if let Err(source) = env.add_template_owned(name, text) {
                    problems.push(TemplateProblem::Invalid { path, source });
                }
            }
        }
        let templates = Templates { env: Arc::new(env) };
        if problems.is_empty() {
            templates.try_every_template(&mut problems);
        }
        if problems.is_empty() {
            Ok(templates)
        } else {
            Err(TemplateError { problems })
        }
    }

    /// Renders every part of every language for a sample notice of every kind, and a
    /// digest of one of each.
    fn try_every_template(&self, problems: &mut Vec<TemplateProblem>) {
        for lang in [Lang::En, Lang::ZhCn] {
            let samples: Vec<Notice> = NoticeKind::ALL.map(|k| sample(k, lang)).to_vec();
            let ctx = Value::from(Serde(DigestContext::new(&samples)));
            for part in DIGEST_PARTS {
                let name = format!("{}/{part}", lang_tag(lang));
                if let Err(source) = self.part(&name, &ctx) {
                    problems.push(TemplateProblem::FailsToRender {
                        name,
                        kind: "digest",
                        source,
                    });
                }
            }
            for kind in NoticeKind::ALL {
                let ctx = Value::from(Serde(Context::new(&sample(kind, lang))));
                for part in PARTS {
                    let name = format!("{}/{part}", lang_tag(lang));
                    if let Err(source) = self.part(&name, &ctx) {
                        problems.push(TemplateProblem::FailsToRender {
                            name,
                            kind: kind.as_str(),
                            source,
                        });
                    }
                }
            }
        }
    }

    fn part(&self, name: &str, ctx: &Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(ctx)
    }

    /// The notice in its own language.
    pub fn render(&self, notice: &Notice) -> Result<Rendered, RenderError> {
        let ctx = Value::from(Serde(Context::new(notice)));
        let lang = lang_tag(notice.lang);
        let part = |part: &str| {
            let name = format!("{lang}/{part}");
            self.part(&name, &ctx).map_err(|source| RenderError {
                name,
                kind: notice.kind.as_str(),
                source,
            })
        };
        Ok(Rendered {
            notice: notice.clone(),
            subject: one_line(&part("subject.txt")?),
            text: part("body.txt")?.trim().to_owned() + "\n",
            html: part("body.html")?.trim().to_owned() + "\n",
            chat_markdown: part("chat.md")?.trim().to_owned(),
            chat_text: part("chat.txt")?.trim().to_owned(),
        })
    }
}

impl Templates {
    /// The daily digest of `notices` (at least one, in the order they were planned) as one
    /// email: in the first notice's language, each notice's times in its own zone. The
    /// chat parts are empty: a digest goes by email alone (validation refuses others).
    pub fn render_digest(&self, notices: &[Notice]) -> Result<Rendered, RenderError> {
        let first = notices.first().ok_or_else(|| RenderError {
            name: "digest".into(),
            kind: "digest",
            source: minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "a digest of no notice",
            ),
        })?;
        let ctx = Value::from(Serde(DigestContext::new(notices)));
        let lang = lang_tag(first.lang);
        let part = |part: &str| {
            let name = format!("{lang}/{part}");
            self.part(&name, &ctx).map_err(|source| RenderError {
                name,
                kind: "digest",
                source,
            })
        };
        Ok(Rendered {
            notice: first.clone(),
            subject: one_line(&part("digest_subject.txt")?),
            text: part("digest.txt")?.trim().to_owned() + "\n",
            html: part("digest.html")?.trim().to_owned() + "\n",
            chat_markdown: String::new(),
            chat_text: String::new(),
        })
    }
}

/// What the digest templates see: the notices, each as a notice's template sees it.
#[derive(Serialize)]
struct DigestContext<'a> {
    count: usize,
    lang: &'static str,
    time_zone: &'a str,
    notices: Vec<Context<'a>>,
}

impl<'a> DigestContext<'a> {
    fn new(notices: &'a [Notice]) -> Self {
        DigestContext {
            count: notices.len(),
            lang: notices.first().map_or("en", |n| lang_tag(n.lang)),
            time_zone: notices.first().map_or("UTC", |n| n.time_zone.name()),
            notices: notices.iter().map(Context::new).collect(),
        }
    }
}

/// The files under `dir/<lang>/`, named as templates (`en/subject.txt`). Anything else there
/// is reported: a misspelt name would otherwise be ignored silently.
fn user_files(dir: &Path, problems: &mut Vec<TemplateProblem>) -> Vec<(String, PathBuf, String)> {
    let mut found = Vec::new();
    let entries = |path: &Path, problems: &mut Vec<TemplateProblem>| match std::fs::read_dir(path) {
        Ok(rd) => {
            let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            paths
        }
        Err(source) => {
            problems.push(TemplateProblem::Unreadable {
                path: path.to_owned(),
                source,
            });
            Vec::new()
        }
    };
    for sub in entries(dir, problems) {
        let lang = sub.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !sub.is_dir() || !["en", "zh-CN"].contains(&lang) {
            problems.push(TemplateProblem::Unknown { path: sub });
            continue;
        }
        for path in entries(&sub, problems) {
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let name = format!("{lang}/{file}");
            if !path.is_file() || !BUILTIN.iter().any(|(n, _)| *n == name) {
                problems.push(TemplateProblem::Unknown { path });
                continue;
            }
            if path.metadata().is_ok_and(|m| m.len() > MAX_TEMPLATE_BYTES) {
                problems.push(TemplateProblem::TooLarge { path });
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => found.push((name, path, text)),
                Err(source) => problems.push(TemplateProblem::Unreadable { path, source }),
            }
        }
    }
    found
}

/// What templates see. Times and durations arrive formatted for the reader.
#[derive(Serialize)]
struct Context<'a> {
    kind: &'static str,
    is_incident: bool,
    title: &'a str,
    reason: &'a str,
    priority: &'static str,
    start: String,
    end: Option<String>,
    actual_end: Option<String>,
    services: Vec<ServiceContext<'a>>,
    alternatives: Option<&'a str>,
    follow_up: Option<&'a str>,
    link: Option<&'a str>,
    duration: Option<String>,
    runbook: Option<&'a str>,
    time_zone: &'a str,
    lang: &'static str,
    unsubscribe: Option<&'a str>,
}

#[derive(Serialize)]
struct ServiceContext<'a> {
    name: &'a str,
    impact: &'static str,
}

impl<'a> Context<'a> {
    fn new(n: &'a Notice) -> Self {
        let time = |t: Timestamp| format_time(t, n.time_zone.tz());
        Context {
            kind: n.kind.as_str(),
            is_incident: n.kind.is_incident(),
            title: &n.title,
            reason: &n.reason,
            priority: n.priority.as_str(),
            start: time(n.start),
            end: n.expected_end.map(time),
            actual_end: n.actual_end.map(time),
            services: n
                .services
                .iter()
                .map(|s| ServiceContext {
                    name: s.name.as_str(),
                    impact: s.impact.as_str(),
                })
                .collect(),
            alternatives: n.alternatives.as_deref(),
            follow_up: n.follow_up.as_deref(),
            link: n.link.as_ref().map(|u| u.as_str()),
            duration: n.duration.map(|d| format_duration(d, n.lang)),
            runbook: n.runbook.as_deref(),
            time_zone: n.time_zone.name(),
            lang: lang_tag(n.lang),
            unsubscribe: n.unsubscribe.as_ref().map(|u| u.as_str()),
        }
    }
}

/// `2026-12-01 02:00 CST (UTC+08:00)`: the abbreviation people know, and the offset that
/// removes any doubt about it.
pub fn format_time(t: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z (UTC%:z)")
        .to_string()
}

/// `2d 3h 5m` / `2天3小时5分钟`; under a minute, seconds.
pub fn format_duration(d: SignedDuration, lang: Lang) -> String {
    let secs = d.as_secs().unsigned_abs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    let units = match lang {
        Lang::En => ["d", "h", "m", "s"],
        Lang::ZhCn => ["天", "小时", "分钟", "秒"],
    };
    if secs < 60 {
        return format!("{secs}{}", units[3]);
    }
    let sep = if lang == Lang::En { " " } else { "" };
    [(days, units[0]), (hours, units[1]), (mins, units[2])]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A notice with every field set, for trying templates at load time.
fn sample(kind: NoticeKind, lang: Lang) -> Notice {
    use crate::notice::{AffectedService, Impact, Priority, ReaderZone};
    let start: Timestamp = "2026-12-01T00:00:00Z".parse().expect("a valid timestamp");
    Notice {
        kind,
        title: "Database upgrade".into(),
        reason: "PostgreSQL 17".into(),
        start,
        expected_end: Some(start + SignedDuration::from_hours(2)),
        actual_end: Some(start + SignedDuration::from_hours(3)),
        services: vec![AffectedService {
            name: upkeep_core::ServiceName::new("api").expect("a valid name"),
            impact: Impact::Outage,
        }],
        alternatives: Some("the read-only mirror".into()),
        follow_up: Some("https://status.example.com".into()),
        priority: Priority::Important,
        link: Some(
            "https://status.example.com/w/1"
                .parse()
                .expect("a valid URL"),
        ),
        duration: Some(SignedDuration::from_hours(3)),
        runbook: Some("docs/runbooks/api.md".into()),
        unsubscribe: Some(
            "https://status.example.com/api/v1/unsubscribe?token=t"
                .parse()
                .expect("a valid URL"),
        ),
        lang,
        time_zone: ReaderZone::utc(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notice::{AffectedService, Impact, Priority, ReaderZone};

    fn notice(kind: NoticeKind, lang: Lang) -> Notice {
        Notice {
            title: "Database <upgrade> & \"more\"".into(),
            time_zone: ReaderZone::new("Asia/Shanghai").unwrap(),
            services: vec![
                AffectedService {
                    name: upkeep_core::ServiceName::new("api").unwrap(),
                    impact: Impact::Outage,
                },
                AffectedService {
                    name: upkeep_core::ServiceName::new("web").unwrap(),
                    impact: Impact::Degraded,
                },
            ],
            priority: Priority::Emergency,
            ..sample(kind, lang)
        }
    }

    #[test]
    fn times_show_the_readers_zone_and_offset() {
        let t: Timestamp = "2026-11-30T18:00:00Z".parse().unwrap();
        let shanghai = ReaderZone::new("Asia/Shanghai").unwrap();
        assert_eq!(
            format_time(t, shanghai.tz()),
            "2026-12-01 02:00 CST (UTC+08:00)"
        );
        let ny = ReaderZone::new("America/New_York").unwrap();
        assert_eq!(format_time(t, ny.tz()), "2026-11-30 13:00 EST (UTC-05:00)");
    }

    #[test]
    fn durations_read_naturally_in_both_languages() {
        let d = SignedDuration::from_secs(2 * 86_400 + 3 * 3_600 + 5 * 60 + 9);
        assert_eq!(format_duration(d, Lang::En), "2d 3h 5m");
        assert_eq!(format_duration(d, Lang::ZhCn), "2天3小时5分钟");
        assert_eq!(
            format_duration(SignedDuration::from_secs(42), Lang::En),
            "42s"
        );
        assert_eq!(
            format_duration(SignedDuration::from_mins(90), Lang::ZhCn),
            "1小时30分钟"
        );
    }

    #[test]
    fn every_kind_renders_in_both_languages_with_every_field() {
        let t = Templates::builtin();
        for lang in [Lang::En, Lang::ZhCn] {
            // The confirmation mail is its own short text (see `a_confirmation_...`).
            for kind in NoticeKind::ALL
                .into_iter()
                .filter(|k| *k != NoticeKind::ConfirmSubscription)
            {
                let r = t.render(&notice(kind, lang)).unwrap();
                for part in [&r.text, &r.chat_markdown, &r.chat_text] {
                    for want in [
                        "Database <upgrade> & \"more\"",
                        "PostgreSQL 17",
                        "2026-12-01 08:00 CST (UTC+08:00)",
                        "2026-12-01 10:00 CST (UTC+08:00)",
                        "2026-12-01 11:00 CST (UTC+08:00)",
                        "api",
                        "web",
                        "the read-only mirror",
                        "https://status.example.com",
                        "https://status.example.com/w/1",
                        "docs/runbooks/api.md",
                    ] {
                        assert!(
                            part.contains(want),
                            "{kind:?} {lang:?}: {want:?} in\n{part}"
                        );
                    }
                    assert!(!part.contains("none"), "{kind:?} {lang:?}: {part}");
                }
                assert!(!r.subject.is_empty() && !r.subject.contains('\n'));
                assert!(
                    r.html
                        .contains("Database &lt;upgrade&gt; &amp; &quot;more&quot;")
                );
                assert!(!r.html.contains("<upgrade>"), "HTML not escaped");
            }
        }
    }

    #[test]
    fn words_follow_the_language_kind_priority_and_impact() {
        let t = Templates::builtin();
        let en = t.render(&notice(NoticeKind::Overrun, Lang::En)).unwrap();
        assert_eq!(
            en.subject,
            "[Emergency] Maintenance overrunning: Database <upgrade> & \"more\""
        );
        assert!(en.text.contains("api: outage"), "{}", en.text);
        assert!(en.text.contains("web: degraded"), "{}", en.text);
        assert!(en.text.contains("Duration: 3h"), "{}", en.text);
        let zh = t
            .render(&notice(NoticeKind::IncidentResolved, Lang::ZhCn))
            .unwrap();
        assert_eq!(
            zh.subject,
            "【紧急】故障已恢复：Database <upgrade> & \"more\""
        );
        assert!(zh.text.contains("api：不可用"), "{}", zh.text);
        assert!(zh.text.contains("持续时间：3小时"), "{}", zh.text);
        assert!(zh.text.contains("发生时间："), "{}", zh.text);
    }

    #[test]
    fn optional_fields_leave_no_empty_lines_behind() {
        let t = Templates::builtin();
        let n = Notice {
            expected_end: None,
            actual_end: None,
            services: vec![],
            alternatives: None,
            follow_up: None,
            link: None,
            duration: None,
            runbook: None,
            ..notice(NoticeKind::Announced, Lang::En)
        };
        let r = t.render(&n).unwrap();
        assert!(!r.text.contains("Expected recovery"), "{}", r.text);
        assert!(!r.chat_text.contains("\n\n"), "{}", r.chat_text);
        assert!(!r.html.contains("Details"), "{}", r.html);
    }

    #[test]
    fn a_users_file_replaces_the_builtin_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("en")).unwrap();
        std::fs::write(
            dir.path().join("en/subject.txt"),
            "{{ title }} ({{ kind }}, {{ priority }})",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t.render(&notice(NoticeKind::Started, Lang::En)).unwrap();
        assert_eq!(
            r.subject,
            "Database <upgrade> & \"more\" (started, emergency)"
        );
        let zh = t.render(&notice(NoticeKind::Started, Lang::ZhCn)).unwrap();
        assert!(
            zh.subject.starts_with("【紧急】维护已开始"),
            "{}",
            zh.subject
        );
    }

    #[test]
    fn a_digest_lists_every_notice_in_order_with_its_fields_in_both_languages() {
        let notices = [
            Notice {
                title: "PostgreSQL 17".into(),
                ..notice(NoticeKind::Announced, Lang::En)
            },
            Notice {
                title: "Disk swap".into(),
                ..notice(NoticeKind::Cancelled, Lang::En)
            },
            Notice {
                title: "api <slow>".into(),
                ..notice(NoticeKind::IncidentResolved, Lang::En)
            },
        ];
        let t = Templates::builtin();
        let r = t.render_digest(&notices).unwrap();
        assert_eq!(
            r.subject,
            "3 routine notices: PostgreSQL 17, Disk swap, api <slow>"
        );
        let first = r.text.find("1. Scheduled maintenance: PostgreSQL 17");
        let second = r.text.find("2. Maintenance cancelled: Disk swap");
        let third = r.text.find("3. Incident resolved: api <slow>");
        assert!(
            first.is_some() && first < second && second < third,
            "{}",
            r.text
        );
        for field in [
            "Reason: PostgreSQL 17",
            ": 2026-12-01 08:00 CST (UTC+08:00)",
            "Affected services: api (outage), web (degraded)",
            "Meanwhile: the read-only mirror",
            "Runbook: docs/runbooks/api.md",
            "Details: https://status.example.com/w/1",
        ] {
            assert_eq!(r.text.matches(field).count(), 3, "{field}: {}", r.text);
        }
        assert!(r.html.contains("api &lt;slow&gt;"), "{}", r.html);
        let zh: Vec<Notice> = notices
            .iter()
            .map(|n| Notice {
                lang: Lang::ZhCn,
                ..n.clone()
            })
            .collect();
        let r = t.render_digest(&zh).unwrap();
        assert!(
            r.subject.starts_with("3 条常规通知：PostgreSQL 17、"),
            "{}",
            r.subject
        );
        assert!(r.text.contains("1. 计划维护：PostgreSQL 17"), "{}", r.text);
        assert!(
            t.render_digest(&[]).is_err(),
            "a digest of nothing is never sent"
        );
    }

    #[test]
    fn bad_user_files_are_all_reported_with_their_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("en")).unwrap();
        std::fs::create_dir(dir.path().join("fr")).unwrap();
        std::fs::write(dir.path().join("en/subjet.txt"), "x").unwrap();
        std::fs::write(dir.path().join("en/body.txt"), "{% if %}").unwrap();
        std::fs::write(dir.path().join("en/chat.txt"), "{{ titel }}").unwrap();
        let e = Templates::load(Some(dir.path())).err().unwrap();
        let text = e.to_string();
        assert!(text.contains("subjet.txt is not a template"), "{text}");
        assert!(
            text.contains("hint: template files are en/words.j2"),
            "{text}"
        );
        assert!(text.contains("fr is not a template"), "{text}");
        assert!(text.contains("en/body.txt:"), "{text}");
        assert_eq!(e.problems.len(), 3, "{text}");
        // Once the syntax is right, the misspelt variable fails the trial render.
        std::fs::remove_file(dir.path().join("en/subjet.txt")).unwrap();
        std::fs::remove_dir(dir.path().join("fr")).unwrap();
        std::fs::write(dir.path().join("en/body.txt"), "ok").unwrap();
        let e = Templates::load(Some(dir.path())).err().unwrap();
        let text = e.to_string();
        assert!(text.contains("en/chat.txt fails"), "{text}");
        assert!(text.contains("undefined"), "{text}");
    }
}
