//! The admin pages' words in English and Simplified Chinese, one row a word, so a missing
//! translation is a row with an empty column (the test below finds it) and the templates use
//! one name for both (`{{ t.services }}`; minijinja's strict mode fails on a name not here).

use upkeep_core::i18n::Lang;

/// (name, English, Chinese).
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "upkeep admin", "upkeep 管理"),
    ("services", "Services", "服务"),
    ("windows", "Maintenance", "维护窗口"),
    ("outbox", "Outbox", "发件箱"),
    ("subscribers", "Subscribers", "订阅者"),
    ("audit", "Who did what", "操作记录"),
    ("signed_in_as", "Signed in as", "当前用户"),
    ("logout", "Sign out", "退出登录"),
    ("login", "Sign in", "登录"),
    ("user", "User", "用户名"),
    ("password", "Password", "密码"),
    (
        "wrong_password",
        "Wrong user name or password.",
        "用户名或密码错误。",
    ),
    (
        "throttled",
        "Too many attempts: try again in {s} s.",
        "尝试次数过多：请在 {s} 秒后重试。",
    ),
    (
        "unavailable",
        "Signing in is not possible right now: try again in a few seconds.",
        "暂时无法登录：请几秒后重试。",
    ),
    ("name", "Name", "名称"),
    ("state", "State", "状态"),
    ("since", "Since", "开始于"),
    ("pid", "PID", "进程号"),
    ("restarts", "Restarts", "重启次数"),
    ("actions", "Actions", "操作"),
    ("start", "Start", "启动"),
    ("stop", "Stop", "停止"),
    ("restart", "Restart", "重启"),
    ("logs", "Logs", "日志"),
    (
        "stdout",
        "Standard output (last 100 lines)",
        "标准输出（最后 100 行）",
    ),
    (
        "stderr",
        "Standard error (last 100 lines)",
        "标准错误（最后 100 行）",
    ),
    ("back", "Back", "返回"),
    (
        "no_windows",
        "No maintenance scheduled.",
        "暂无计划中的维护。",
    ),
    ("new_window", "Schedule a window", "安排维护窗口"),
    ("edit_window", "Edit window", "编辑维护窗口"),
    ("kind", "Kind", "类型"),
    ("window_title", "Title", "标题"),
    ("reason", "Reason", "原因"),
    (
        "start_at",
        "Start (wall time in the zone below)",
        "开始时间（下方时区的当地时间）",
    ),
    ("tz", "Time zone", "时区"),
    (
        "offset",
        "Offset, only when the zone's clocks change at that time (such as -04:00)",
        "时差（仅当该时区在此时调整时钟时填写，如 -04:00）",
    ),
    ("duration", "Duration (2h, 90m)", "时长（如 2h、90m）"),
    ("affected", "Affected services", "受影响的服务"),
    ("impact", "Impact", "影响"),
    ("outage", "Outage", "中断"),
    ("degraded", "Degraded", "降级"),
    ("alternative", "Alternative for users", "替代方案"),
    (
        "follow_up",
        "Follow-up (link or contact)",
        "后续联系（链接或联系方式）",
    ),
    ("priority", "Priority", "优先级"),
    ("priority_default", "By kind", "按类型"),
    (
        "force_why",
        "Announce late anyway, because… (recorded with your name)",
        "仍然提前不足地发布，原因是……（将与您的名字一并记录）",
    ),
    ("save", "Save", "保存"),
    ("schedule", "Schedule", "安排"),
    ("cancel", "Cancel window", "取消窗口"),
    ("edit", "Edit", "编辑"),
    ("status", "Status", "状态"),
    ("when", "When", "时间"),
    ("created_by", "By", "创建者"),
    ("rule", "Lead-time rule", "提前通知规则"),
    (
        "rule_text",
        "A window of {short_max} or less must be announced {short_notice} before it starts; a longer one {long_notice} before; an emergency may start at once.",
        "时长不超过 {short_max} 的窗口须提前 {short_notice} 发布；更长的须提前 {long_notice}；紧急维护可立即开始。",
    ),
    (
        "rule_live_needs",
        "This window needs notice of",
        "此窗口需要提前通知",
    ),
    ("rule_live_earliest", "earliest start", "最早开始时间"),
    ("rule_live_ok", "It gives enough notice.", "通知时间充足。"),
    (
        "rule_live_late",
        "It starts too soon: announce it later or give a reason below.",
        "开始得太早：请推迟，或在下方说明原因。",
    ),
    ("channel", "Channel", "渠道"),
    ("recipient", "Recipient", "收件人"),
    ("attempts", "Attempts", "尝试次数"),
    ("error", "Error", "错误"),
    ("retry", "Retry", "重试"),
    ("no_notices", "The outbox is empty.", "发件箱为空。"),
    ("email", "Email", "邮箱"),
    ("lang", "Language", "语言"),
    ("confirmed", "Confirmed", "已确认"),
    ("all_services", "all", "全部"),
    ("no_subscribers", "No subscribers.", "暂无订阅者。"),
    (
        "subscribers_off",
        "Subscriptions are not configured ([notify.subscribers]).",
        "未配置订阅（[notify.subscribers]）。",
    ),
    ("event", "Event", "事件"),
    ("service", "Service", "服务"),
    ("who", "Who", "操作者"),
    ("via", "Via", "途径"),
    ("from", "From", "来源"),
    (
        "no_actions",
        "No operator actions recorded yet.",
        "尚无操作记录。",
    ),
    ("incidents", "Incidents", "事件"),
    ("feedback", "Feedback", "用户反馈"),
    ("open_incidents", "Open incidents", "未解决的事件"),
    (
        "no_open_incidents",
        "No incident is open.",
        "当前没有未解决的事件。",
    ),
    ("recent_incidents", "Recent incidents", "近期事件"),
    ("no_incidents", "No incidents.", "暂无事件。"),
    ("page", "page", "页码"),
    ("newer", "← Newer", "← 较新"),
    ("older", "Older →", "较早 →"),
    ("open_incident", "Open an incident", "手动创建事件"),
    ("priority_of_service", "The service's", "沿用服务的设置"),
    (
        "first_update",
        "First update (optional)",
        "第一条进展（可选）",
    ),
    ("drill", "drill", "演练"),
    ("started", "Started", "开始于"),
    ("resolved", "Resolved", "已解决"),
    ("open", "Open", "未解决"),
    ("opened_by", "opened by", "创建者"),
    ("resolved_by", "resolved by", "解决者"),
    ("updates", "Updates", "进展"),
    ("message", "Message", "内容"),
    ("no_updates", "No updates written yet.", "尚无进展记录。"),
    ("post_update", "Post an update", "发布进展"),
    (
        "update_goes_out",
        "The update goes out as a notice to the incident's channels and subscribers, with your name recorded.",
        "进展将作为通知发送到该事件的渠道和订阅者，并记录您的名字。",
    ),
    ("resolve", "Resolve", "标记为已解决"),
    ("last_word", "Last word (optional)", "结束说明（可选）"),
    ("postmortem", "Post-mortem", "事后复盘"),
    ("written_by", "Written by", "撰写者"),
    ("summary", "Summary", "概要"),
    ("root_cause", "Root cause", "根本原因"),
    ("why", "Why", "为什么"),
    (
        "pm_actions",
        "Actions (one per line)",
        "改进措施（每行一条）",
    ),
    ("timeline", "Timeline", "时间线"),
    ("st_investigating", "Investigating", "调查中"),
    ("st_identified", "Identified", "已定位"),
    ("st_monitoring", "Monitoring", "观察中"),
    ("st_resolved", "Resolved", "已解决"),
    (
        "feedback_off",
        "This upkeep keeps no feedback.",
        "此 upkeep 不收集反馈。",
    ),
    ("no_feedback", "No feedback yet.", "暂无反馈。"),
    ("problem", "That did not work", "操作未成功"),
    ("yes", "yes", "是"),
    ("no", "no", "否"),
];

/// Every word in `lang`, by name.
pub(super) fn all(lang: Lang) -> std::collections::BTreeMap<&'static str, &'static str> {
    WORDS
        .iter()
        .map(|(k, en, zh)| (*k, if lang == Lang::ZhCn { *zh } else { *en }))
        .collect()
}

/// One word in `lang`; the name itself if there is no such word (a slip shows, never panics).
pub(super) fn one(lang: Lang, name: &'static str) -> &'static str {
    WORDS
        .iter()
        .find(|(k, _, _)| *k == name)
        .map_or(name, |(_, en, zh)| if lang == Lang::ZhCn { zh } else { en })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_has_both_languages_and_one_name() {
        let mut seen = std::collections::BTreeSet::new();
        for (k, en, zh) in WORDS {
            assert!(!en.is_empty() && !zh.is_empty(), "{k}");
            assert!(seen.insert(k), "{k} twice");
        }
    }
}
