//! User-facing text in English and Simplified Chinese.
//!
//! The language comes from `UPKEEP_LANG`, then `LC_ALL`, `LC_MESSAGES`, `LANG` (anything that
//! starts with `zh` picks Chinese). Each message is one [`Msg`] variant with both texts next to
//! each other, so a missing translation is a compile error, not a blank line. Log lines and
//! API field names stay English: they are read by machines and searched for.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    ZhCn,
}

impl Lang {
    /// Picks the language from an environment lookup (a parameter so tests need no env vars).
    pub fn from_env_with(get: impl Fn(&str) -> Option<String>) -> Lang {
        for var in ["UPKEEP_LANG", "LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Some(v) = get(var).filter(|v| !v.is_empty()) {
                return if v.to_ascii_lowercase().starts_with("zh") {
                    Lang::ZhCn
                } else {
                    Lang::En
                };
            }
        }
        Lang::En
    }

    pub fn current() -> Lang {
        static LANG: OnceLock<Lang> = OnceLock::new();
        *LANG.get_or_init(|| Lang::from_env_with(|k| std::env::var(k).ok()))
    }
}

macro_rules! messages {
    ($($name:ident => $en:literal, $zh:literal;)*) => {
        /// A translatable message. Texts with `{}` are format strings filled by [`fill`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Msg { $($name),* }

        impl Msg {
            pub fn text(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $((Msg::$name, Lang::En) => $en, (Msg::$name, Lang::ZhCn) => $zh,)*
                }
            }
        }
    };
}

messages! {
    ColName => "name", "名称";
    ColState => "state", "状态";
    ColPid => "pid", "进程号";
    ColUptime => "uptime", "运行时长";
    ColRestarts => "restarts", "重启次数";
    ColCpu => "cpu", "CPU";
    ColMemory => "memory", "内存";
    NoServices => "no services are configured", "没有配置任何服务";
    NoDaemon => "no upkeep daemon is running for data dir {}", "数据目录 {} 没有正在运行的 upkeep 守护进程";
    DaemonSilent => "the upkeep daemon at {} does not answer (nothing for {} s, and a second connection got no answer either)", "{} 处的 upkeep 守护进程没有应答（{} 秒无回应，另开的连接也没有应答）";
    DaemonSilentHint => "it may be stopped (SIGSTOP), swapping or stuck: `ps -o pid,stat,wchan -C upkeep` shows its state; `kill -CONT PID` resumes a stopped one", "它可能被暂停（SIGSTOP）、在换页或卡住：`ps -o pid,stat,wchan -C upkeep` 显示其状态；`kill -CONT PID` 可恢复被暂停的进程";
    NoDaemonHint => "start it with `upkeep up` (background) or `upkeep daemon` (foreground)", "用 `upkeep up`（后台）或 `upkeep daemon`（前台）启动";
    DaemonStarted => "upkeep daemon started (pid {}), data dir {}", "upkeep 守护进程已启动（进程号 {}），数据目录 {}";
    ConfigAlreadyRun => "another upkeep daemon (pid {}) already runs the config file {}: a second would run every service twice", "另一个 upkeep 守护进程（进程号 {}）已在运行配置文件 {}：再启动一个会让每个服务运行两次";
    DaemonAlready => "an upkeep daemon is already running (pid {}) for data dir {}", "数据目录 {1} 已有 upkeep 守护进程在运行（进程号 {0}）";
    DaemonStopped => "upkeep daemon stopped", "upkeep 守护进程已停止";
    Upgraded => "upkeep daemon upgraded from {} to {} (pid {} unchanged, {} service(s) kept running)", "upkeep 守护进程已从 {} 升级到 {}（进程号 {} 不变，{} 个服务保持运行）";
    UpgradeFailed => "upgrade failed: {}; the daemon still runs upkeep {} (pid {})", "升级失败：{}；守护进程仍在运行 upkeep {}（进程号 {}）";
    ConfigOk => "{}: valid, {} service(s)", "{}：有效，{} 个服务";
    Started => "started", "已启动";
    Stopped => "stopped", "已停止";
    Restarted => "restarted", "已重启";
    ReloadNeedsRestart => "not applied until the daemon restarts (the running daemon keeps them as they were): {}", "守护进程重启后才生效（运行中的守护进程保持原值）：{}";
    Reloaded => "config revision {} applied: {} added, {} removed, {} changed, {} unchanged", "已应用配置版本 {}：新增 {}，删除 {}，变更 {}，未变 {}";
    Added => "service {} added to {} and started", "服务 {} 已加入 {} 并启动";
    Imported => "imported {} service(s) into {}: {}", "已导入 {} 个服务到 {}：{}";
    NotCarriedOver => "not carried over:", "未能迁移：";
    ImportNext => "next: `upkeep check`, then `upkeep reload` (or `upkeep up`) to run them", "下一步：`upkeep check`，然后 `upkeep reload`（或 `upkeep up`）运行它们";
    LastEvents => "last events", "最近事件";
    Waiting => "waiting", "等待";
    ReadyNotify => "for READY=1 on its notify socket", "等待其通知套接字上的 READY=1";
    ReadyFd => "for a newline on its fd {}", "等待其文件描述符 {} 上的换行";
    ReadyLog => "for a line of its output matching {}", "等待其输出中匹配 {} 的一行";
    ReadyProbe => "for its probes to pass", "等待其探针通过";
    ReadyLeft => "{} s left of its ready_timeout", "距 ready_timeout 还剩 {} 秒";
    NotifyStatus => "says", "自述状态";
    DependsOn => "depends on", "依赖";
    SeeAbove => "(see above)", "（见上）";
    TopKeys => "↑/↓ select  r restart  x stop  s start  f follow/pause log  e stdout/stderr  q quit", "↑/↓ 选择  r 重启  x 停止  s 启动  f 跟随/暂停日志  e 标准输出/错误  q 退出";
    TopPaused => "paused", "已暂停";
    TopNeedsTerminal => "`upkeep top` needs a terminal (for a list, `upkeep ls`; for events as they happen, `upkeep events -f`)", "`upkeep top` 需要终端（列表请用 `upkeep ls`；实时事件请用 `upkeep events -f`）";
    TopStreamEnded => "the daemon ended the live view (it stopped?)", "守护进程结束了实时视图（已停止？）";
    TopReconnecting => "reconnecting...", "正在重新连接……";
    TopReconnected => "connected to the daemon again", "已重新连接到守护进程";
    Command => "command", "命令";
    Logs => "logs", "日志";
    Probes => "probes", "探针";
    Incidents => "incidents", "故障";
    Lasted => "lasted {}", "持续 {}";
    LastCheck => "last check {} ago: {} in {} ms", "上次检查于 {} 前：{}，耗时 {} 毫秒";
    OpenFor => "OPEN for {}", "未恢复，已持续 {}";
    Availability => "availability", "可用性";
    Mttr => "MTTR", "平均恢复时间 (MTTR)";
    Mtbf => "MTBF", "平均故障间隔 (MTBF)";
    AutomaticHeals => "automatic heals", "自动恢复";
    ManualInterventions => "manual interventions", "人工干预";
    InMaintenance => "in maintenance", "维护时长";
    ColMaintenance => "maintenance", "维护";
    Drill => "drill", "演练";
    NoIncidents => "no incidents", "没有故障记录";
    NoJobs => "no jobs (a job is a service with `schedule`)", "没有定时任务（带 `schedule` 的服务即为定时任务）";
    ColSchedule => "schedule", "计划";
    ColNext => "next", "下次运行";
    ColLastRun => "last run", "上次运行";
    ColResult => "result", "结果";
    ColTook => "took", "耗时";
    ColSkipped => "skipped", "已跳过";
    ColStarted => "started", "开始时间";
    ColTrigger => "trigger", "触发";
    JobOk => "ok", "成功";
    JobFailed => "failed ({})", "失败（{}）";
    StartWaits => "waiting: {}", "等待中：{}";
    StartWaitsStopped => "{} stopped by an operator: nothing starts it but `upkeep start {}`", "{} 已被操作员停止：只有 `upkeep start {}` 会启动它";
    JobUnknown => "unknown: the daemon was restarted while it ran", "未知：运行期间守护进程曾重启";
    JobStillRunning => "not started: its last run is still going (since {})", "未启动：上次运行尚未结束（始于 {}）";
    JobInterrupted => "interrupted: the daemon was killed", "已中断：守护进程被杀死";
    JobRunningSince => "running since {}", "运行中，始于 {}";
    JobDue => "due {}", "计划于 {}";
    JobNoRuns => "no runs yet", "尚无运行记录";
    JobSkippedList => "skipped (the last run was still going): {}", "已跳过（上次运行尚未结束）：{}";
    JobOutputOf => "output of the run of {}:", "{} 那次运行的输出：";
    JobOutputDropped => "({} earlier lines not kept)", "（更早的 {} 行未保留）";
    JobNoHistory => "no history: {}", "无历史记录：{}";
    JobNext => "next {}", "下次 {}";
    Timeline => "timeline", "时间线";
    InDrills => "drills (time in them)", "演练（时长）";
    Unwatched => "unwatched (no daemon ran)", "无人监视（守护进程未运行）";
    ProbeLatency => "probe latency p50 / p99", "探测响应时间 p50 / p99";
    ColId => "id", "编号";
    ColStatus => "status", "状态";
    ColKind => "kind", "类型";
    ColTitle => "title", "标题";
    ColStart => "start", "开始";
    ColEnd => "end", "预计结束";
    ColServices => "services", "受影响服务";
    NoWindows => "no maintenance windows", "没有维护窗口";
    WindowScheduled => "maintenance window {} scheduled: {}", "已安排维护窗口 {}：{}";
    WindowDone => "maintenance window {}: {}", "维护窗口 {}：{}";
    WindowNamesHidden => "warning: the {} names `{}`, a service hidden from the status page (public = false); the page, the feeds and subscribers' mails show it as written", "警告：{}提到了 `{}`，这是不在状态页显示的服务（public = false）；状态页、订阅源和订阅者邮件会原样显示这段文字";
    WindowReason => "reason", "原因";
    WindowImpact => "impact", "影响";
    WindowAlternative => "meanwhile", "替代方案";
    WindowFollowUp => "follow-up", "后续跟进";
    WindowPriority => "priority", "优先级";
    WindowRepeat => "repeats", "重复";
    WindowForced => "scheduled against the lead-time policy by {}: {}", "由 {} 不顾提前通知规定安排：{}";
    WindowSteps => "steps", "进度";
    WindowCreated => "scheduled {} by {}", "由 {1} 于 {0} 安排";
    ColChannel => "channel", "渠道";
    ColRecipient => "to", "收件人";
    ColAttempts => "tries", "尝试";
    ColError => "last error", "最近错误";
    NoNotices => "no notices", "没有通知";
    NoticeDigestAt => "waiting for the digest at {}", "等待 {} 的每日摘要";
    NoticeRetried => "notice {} is pending again", "通知 {} 已重新排队";
    NoticeTestPlanned => "test notice {} planned through {} (see `upkeep notify ls`)", "测试通知 {} 已通过 {} 排队（见 `upkeep notify ls`）";
    NoticesTakenOver => "{} of these notices were taken over from a dispatcher that died or hung: each may have reached its receiver twice, as the same message (same Message-ID)", "其中 {} 条通知接管自已退出或卡住的发送者：每条可能送达两次，但为同一封消息（Message-ID 相同）";
    NoSubscribers => "no subscribers", "没有订阅者";
    SubscriberRemoved => "subscriber {} deleted", "订阅者 {} 已删除";
    ColEmail => "email", "邮箱";
    NoFeedback => "no feedback", "没有留言";
    ColMessage => "message", "留言";
    ColFrom => "from", "来源";
    ColConfirmed => "confirmed", "确认时间";
    ColLang => "language", "语言";
    AllServices => "all", "全部";
    InMaintenanceUntil => "{} is in maintenance until {}", "{} 处于维护中，直到 {}";
    InMaintenanceNow => "{} is in maintenance until `upkeep maintenance {} --end`", "{} 处于维护中，直到执行 `upkeep maintenance {} --end`";
    MaintWindowEnd => "{} (the end of window {}; later if it overruns)", "{}（维护窗口 {} 的结束时间；如超时则延后）";
    MaintWindowEndUnknown => "the end of window {}", "维护窗口 {} 结束时";
    MaintByHandEnd => "until ended by hand (`upkeep maintenance {} --end`)", "直到手动结束（`upkeep maintenance {} --end`）";
    StoreCopied => "copied {} events, {} incidents with {} updates, {} config revisions, {} services, {} maintenance windows, {} rollup rows, {} subscribers, {} feedback messages, {} admin users and {} outbox rows to {}\nnow set `store = \"{}\"` in [daemon] (its password in store_password_env or store_password_file) and start the daemon (admins sign in again)", "已将 {} 条事件、{} 个事故及其 {} 条更新、{} 个配置版本、{} 个服务、{} 个维护窗口、{} 行汇总数据、{} 位订阅者、{} 条反馈、{} 个管理员账号和 {} 条发件箱记录复制到 {}\n现在请在 [daemon] 中设置 `store = \"{}\"`（密码放在 store_password_env 或 store_password_file 中），然后启动守护进程（管理员需重新登录）";
    HistoryUnavailable => "(history unavailable: {})", "（历史记录不可用：{}）";
    StoreUnreachable => "warning: the store ({}) is unreachable since {}; supervision goes on and {} events wait in the journal until it is back: {}", "警告：存储（{}）自 {} 起无法访问；监管照常进行，{} 条事件暂存在日志文件中，待其恢复后写入：{}";
    MaintenanceEnded => "maintenance of {} ended", "{} 的维护已结束";
    PreviousPeriod => "previous ({})", "上一周期（{}）";
    ThisPeriod => "this period ({})", "本周期（{}）";
    ColService => "service", "服务";
    ColRun => "run", "次序";
    ColFault => "fault", "故障";
    ColDetected => "detected", "发现用时";
    ColRecovered => "recovered (MTTR)", "恢复用时 (MTTR)";
    ColDetectedBy => "detected by", "发现途径";
    ByWhom => "by {}", "由 {} 执行";
    SignalSent => "sent {} to {} (pid {})", "已发送 {} 给 {}（进程号 {}）";
    SignalSentGroup => "sent {} to the whole tree of {} (led by pid {})", "已发送 {} 给 {} 的整个进程树（主进程号 {}）";
    ReloadSent => "asked {} to reload its config: sent {} (pid {}), no restart", "已请 {} 重新加载配置：发送 {}（进程号 {}），未重启";
    NoConfigFile => "no config file: looked for {}", "没有配置文件：已查找 {}";
    NoConfigHint => "`upkeep add NAME -- COMMAND...` makes ./upkeep.toml here and starts the daemon with it; or write one (see the README's Configuration) and run `upkeep check`", "`upkeep add 名称 -- 命令...` 会在此处创建 ./upkeep.toml 并用它启动守护进程；或自己编写一个（见 README 的 Configuration 一节）后运行 `upkeep check`";
    ConfigCreated => "made {}, with its data dir {}", "已创建 {}，数据目录为 {}";
    ByOperator => "by an operator", "由操作员执行";
    NoEvents => "no events", "没有事件";
    NoTokens => "no tokens (make one with `upkeep token create NAME --scope read`)", "没有令牌（用 `upkeep token create 名称 --scope read` 创建）";
    ColScope => "scope", "权限";
    ColCreated => "created", "创建时间";
    TokenCreated => "token {} created (scope {}). Its secret, shown this once only (upkeep keeps only its hash):", "令牌 {} 已创建（权限 {}）。其密钥仅显示这一次（upkeep 只保存其哈希）：";
    TokenUse => "send it as `Authorization: Bearer <secret>` to the daemon's `listen` address", "请求守护进程的 `listen` 地址时以 `Authorization: Bearer <密钥>` 发送";
    TokenRevoked => "token {} revoked: the daemon refuses it from its next request on", "令牌 {} 已吊销：守护进程从下一个请求起拒绝它";
    UserAdded => "user {} added: they can sign in at /admin on the daemon's `listen` address", "用户 {} 已添加：可在守护进程 `listen` 地址的 /admin 登录";
    UserRemoved => "user {} removed: their sessions ended", "用户 {} 已删除：其会话已结束";
    UserPasswordChanged => "password of {} changed: their sessions ended", "{} 的密码已更改：其会话已结束";
    NoUsers => "no admin users (add one with `upkeep user add NAME`)", "没有管理员用户（用 `upkeep user add 名称` 添加）";
    PasswordPrompt => "password for {}: ", "{} 的密码：";
    PasswordAgain => "the same password again: ", "再次输入密码：";
    PasswordsDiffer => "the two passwords differ", "两次输入的密码不一致";
    PasswordTooLong => "the password is longer than {} bytes", "密码长于 {} 字节";
    PostmortemTooBig => "the post-mortem {} is larger than {} bytes", "事后复盘文件 {} 大于 {} 字节";
    PostmortemNotFile => "the post-mortem {} is not a regular file", "事后复盘 {} 不是普通文件";
    ColSessions => "sessions", "会话数";
    DrillSummary => "recovery: mean {} ms, worst {} ms over {} run(s)", "恢复：{2} 次中平均 {0} 毫秒，最长 {1} 毫秒";
}

/// Fills `{}` placeholders in order, and `{0}`, `{1}`... by position (Chinese word order often
/// differs from English).
pub fn fill(template: &str, args: &[&dyn std::fmt::Display]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut next = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &after[..close];
        let index = if inner.is_empty() {
            next += 1;
            Some(next - 1)
        } else {
            inner.parse::<usize>().ok()
        };
        match index.and_then(|i| args.get(i)) {
            Some(arg) => out.push_str(&arg.to_string()),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The text of `msg` in the current language, filled with `args`.
pub fn tr(msg: Msg, args: &[&dyn std::fmt::Display]) -> String {
    fill(msg.text(Lang::current()), args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_chinese_from_locale() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            Lang::from_env_with(env(&[("LANG", "zh_CN.UTF-8")])),
            Lang::ZhCn
        );
        assert_eq!(
            Lang::from_env_with(env(&[("LANG", "en_US.UTF-8")])),
            Lang::En
        );
        assert_eq!(
            Lang::from_env_with(env(&[("LANG", "zh_CN.UTF-8"), ("UPKEEP_LANG", "en")])),
            Lang::En
        );
        assert_eq!(Lang::from_env_with(env(&[])), Lang::En);
    }

    #[test]
    fn fills_in_order_and_by_position() {
        assert_eq!(fill("a {} b {}", &[&1, &"x"]), "a 1 b x");
        assert_eq!(
            fill("{1} then {0}", &[&"first", &"second"]),
            "second then first"
        );
        assert_eq!(fill("left {} alone {9}", &[&"x"]), "left x alone {9}");
    }

    #[test]
    fn both_languages_have_the_same_placeholders() {
        let count = |s: &str| s.matches('{').count();
        for m in [
            Msg::NoDaemon,
            Msg::DaemonSilent,
            Msg::ReadyFd,
            Msg::ReadyLog,
            Msg::ReadyLeft,
            Msg::StartWaits,
            Msg::StartWaitsStopped,
            Msg::DaemonStarted,
            Msg::DaemonAlready,
            Msg::ConfigAlreadyRun,
            Msg::ConfigOk,
            Msg::Reloaded,
            Msg::Added,
            Msg::Imported,
            Msg::ByWhom,
            Msg::SignalSent,
            Msg::SignalSentGroup,
            Msg::ReloadSent,
            Msg::NoConfigFile,
            Msg::ConfigCreated,
            Msg::TokenCreated,
            Msg::TokenRevoked,
            Msg::UserAdded,
            Msg::UserRemoved,
            Msg::UserPasswordChanged,
            Msg::PasswordPrompt,
        ] {
            assert_eq!(count(m.text(Lang::En)), count(m.text(Lang::ZhCn)), "{m:?}");
        }
    }
}
