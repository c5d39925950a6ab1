//! The status page's words in English and Simplified Chinese, side by side (as in
//! `upkeep_core::i18n`), so a missing translation is a compile error. Templates get the table
//! of the page's language as `t`; the page's script gets the state labels from the page.

use serde::Serialize;
use upkeep_core::State;
use upkeep_core::i18n::Lang;

use super::model::{Overall, Step};

macro_rules! words {
    ($($name:ident => $en:literal, $zh:literal;)*) => {
        /// Every fixed text of the page, in one language.
        #[derive(Debug, Clone, Serialize)]
        pub struct Words { $(pub $name: &'static str),* }

        pub const EN: Words = Words { $($name: $en),* };
        pub const ZH: Words = Words { $($name: $zh),* };
    };
}

words! {
    html_lang => "en", "zh-CN";
    title => "Service status", "服务状态";
    all_up => "All systems operational", "所有服务运行正常";
    degraded => "Some services are degraded", "部分服务性能下降";
    outage => "Some services are down", "部分服务中断";
    maintenance_on => "Maintenance in progress", "正在维护";
    starting_on => "Some services are still starting", "部分服务仍在启动中";
    services => "Services", "服务";
    uptime_90 => "90-day uptime", "90 天可用率";
    days_ago => "90 days ago", "90 天前";
    today => "Today", "今天";
    no_data => "no data", "无数据";
    incidents_word => "incidents", "次故障";
    maintenance_word => "maintenance", "维护";
    response_24h => "Response time, last 24 h", "最近 24 小时响应时间";
    active_incidents => "Active incidents", "当前故障";
    incident_on => "Incident on", "故障：";
    since => "since", "开始于";
    maintenance => "Maintenance", "维护计划";
    ongoing => "In progress", "进行中";
    upcoming => "Upcoming", "即将进行";
    starts_in => "starts in", "距开始";
    ends_in => "ends in", "距结束";
    from => "From", "开始";
    until => "until", "结束";
    affected => "Affected", "受影响的服务";
    meanwhile => "Meanwhile", "替代方案";
    follow_up => "Follow-up", "后续联系";
    history => "History", "历史记录";
    past_incidents => "Past incidents and maintenance", "过往故障与维护";
    no_history => "Nothing to report.", "暂无记录。";
    newer => "Newer", "较新";
    older => "Older", "较早";
    resolved => "resolved", "已恢复";
    lasted => "lasted", "持续";
    cancelled => "cancelled", "已取消";
    completed => "completed", "已完成";
    feeds => "Feeds", "订阅";
    atom => "Atom feed", "Atom 订阅";
    ical => "Maintenance calendar", "维护日历";
    language => "Language", "语言";
    status_page => "Status page", "状态页";
    back => "Current status", "当前状态";
    utc_note => "Times in UTC", "时间为 UTC";
    local_note => "Times in your time zone:", "时间为您所在的时区：";
    step_opened => "Incident opened", "故障开始";
    step_healed => "Restarted automatically", "已自动重启";
    step_reopened => "Went down again", "再次中断";
    step_resolved => "Resolved", "已恢复";
    step_became => "Now", "状态变为";
    impact_down => "unavailable", "不可用";
    impact_degraded => "degraded", "性能下降";
    minutes => "min", "分钟";
    hours => "h", "小时";
    days_unit => "d", "天";
    subscribe_title => "Get notified", "订阅通知";
    subscribe_note => "Maintenance and incidents by mail. Tick none to hear about every service. You confirm by a link we mail you.", "通过邮件接收维护与故障通知。不勾选则订阅全部服务。我们会发送确认链接。";
    email => "Email", "邮箱";
    subscribe_button => "Subscribe", "订阅";
    feedback_title => "Tell us", "意见反馈";
    feedback_note => "Something not working, or a question? The operators read every message.", "遇到问题或有疑问？运维人员会阅读每一条留言。";
    message => "Message", "留言";
    email_optional => "Email (optional, for an answer)", "邮箱（可选，用于回复）";
    about_service => "About", "相关服务";
    no_service => "no service in particular", "不限";
    send => "Send", "发送";
    there => "Local time there", "当地时间";
    repeats => "Repeats", "重复";
    scheduled => "Scheduled", "已计划";
    overrun => "Running late", "超时进行中";
    window_heading => "Maintenance", "维护";
    st_starting => "Starting", "启动中";
    st_up => "Operational", "正常";
    st_degraded => "Degraded", "性能下降";
    st_down => "Down", "中断";
    st_recovering => "Recovering", "恢复中";
    st_stopping => "Stopping", "停止中";
    st_stopped => "Stopped", "已停止";
    st_exited => "Not running", "未运行";
    st_failed => "Failed", "故障";
    st_maintenance => "Maintenance", "维护中";
    st_unknown => "Unknown", "未知";
}

pub fn of(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::ZhCn => &ZH,
    }
}

impl Words {
    pub fn state(&self, s: State) -> &'static str {
        match s {
            State::Starting => self.st_starting,
            State::Up => self.st_up,
            State::Degraded => self.st_degraded,
            State::Down => self.st_down,
            State::Recovering => self.st_recovering,
            State::Stopping => self.st_stopping,
            State::Stopped => self.st_stopped,
            State::Exited => self.st_exited,
            State::Failed => self.st_failed,
            State::Maintenance => self.st_maintenance,
            State::Unknown => self.st_unknown,
        }
    }

    pub fn overall(&self, o: Overall) -> &'static str {
        match o {
            Overall::Up => self.all_up,
            Overall::Degraded => self.degraded,
            Overall::Outage => self.outage,
            Overall::Maintenance => self.maintenance_on,
            Overall::Starting => self.starting_on,
        }
    }

    pub fn step(&self, s: Step) -> String {
        match s {
            Step::Opened => self.step_opened.into(),
            Step::Healed => self.step_healed.into(),
            Step::Reopened => self.step_reopened.into(),
            Step::Resolved => self.step_resolved.into(),
            Step::Became(state) => format!("{}: {}", self.step_became, self.state(state)),
        }
    }

    pub fn impact(&self, i: upkeep_core::window::Impact) -> &'static str {
        use upkeep_core::window::Impact;
        match i {
            Impact::Outage => self.impact_down,
            Impact::Degraded => self.impact_degraded,
        }
    }

    /// A span as people say it: "2 h 5 min", "3 d 4 h", "45 min" (at least 1 min).
    pub fn span(&self, ms: i64) -> String {
        let min = (ms.max(0) + 59_999) / 60_000;
        let (d, h, m) = (min / 1440, (min % 1440) / 60, min % 60);
        let sep = if self.html_lang == "en" { " " } else { "" };
        let part = |n: i64, u: &str| format!("{n}{sep}{u}");
        match (d, h, m) {
            (0, 0, m) => part(m.max(1), self.minutes),
            (0, h, 0) => part(h, self.hours),
            (0, h, m) => format!("{} {}", part(h, self.hours), part(m, self.minutes)),
            (d, 0, _) => part(d, self.days_unit),
            (d, h, _) => format!("{} {}", part(d, self.days_unit), part(h, self.hours)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(EN.span(0), "1 min");
        assert_eq!(EN.span(45 * 60_000), "45 min");
        assert_eq!(EN.span(2 * 3_600_000), "2 h");
        assert_eq!(EN.span(2 * 3_600_000 + 5 * 60_000), "2 h 5 min");
        assert_eq!(EN.span(3 * 86_400_000 + 4 * 3_600_000), "3 d 4 h");
        assert_eq!(ZH.span(90 * 60_000), "1小时 30分钟");
    }

    #[test]
    fn every_state_has_a_label_in_both_languages() {
        for s in [State::Up, State::Down, State::Maintenance, State::Unknown] {
            assert!(!EN.state(s).is_empty() && !ZH.state(s).is_empty());
            assert_ne!(EN.state(s), ZH.state(s));
        }
    }
}
