//! Every limit on a config value, in one place: what validation accepts, and why.
//!
//! This file only states numbers; `validate.rs` and its modules (`validate/probes/`) enforce
//! them. Two reasons make a limit:
//! - Upper bounds keep every value far inside what the daemon does with it: `Instant::now() + d`
//!   panics past a few hundred years, `Duration::mul_f64` panics on overflow, `as_millis() as
//!   u64` silently truncates, and a loop runs `keep` times per log rotation. Each maximum is
//!   well beyond any real use, so no working config meets it.
//! - Lower bounds exist only where a tiny value turns the daemon against its host (a probe every
//!   nanosecond burns a core) or makes the setting meaningless (a crash-loop window of 1ns never
//!   sees a loop). Zero stays allowed wherever it has a clear meaning (`backoff_min = "0"`
//!   restarts at once, `stop_timeout = "0s"` kills at once, `keep = 0` keeps no old logs).
//!
//! Durations are written in hours at most ("24h", "720h") because that is the largest unit the
//! duration parser accepts: days are calendar units.

use std::time::Duration;

/// The smallest and largest value a key accepts, both inclusive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits<T> {
    pub min: T,
    pub max: T,
}

const fn between<T>(min: T, max: T) -> Limits<T> {
    Limits { min, max }
}

const MILLI: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const DAYS_30: Duration = Duration::from_secs(30 * 24 * 3600);

// --- [daemon] ---

/// `daemon.shutdown_timeout`: at least 1s, or the daemon exits before it has signalled its
/// services and leaves them running without a supervisor. Every service's `stop_timeout` must
/// also be shorter (checked in `validate.rs`).
pub(crate) const SHUTDOWN_TIMEOUT: Limits<Duration> = between(SECOND, HOUR);

/// `daemon.retain`: raw events are kept at least a day (the partial hours at a report's edges,
/// incident timelines and the live stream's catch-up read them) and at most a hundred years.
pub(crate) const RETAIN: Limits<Duration> = between(DAY, Duration::from_secs(36_500 * 24 * 3600));

/// `daemon.max_connections_per_address`: at least one connection (a page and its stream want
/// two), at most the 512 a TCP listener holds in all (more would mean nothing).
pub(crate) const CONNECTIONS_PER_ADDRESS: Limits<u32> = between(1, 512);

/// `daemon.request_timeout`: at least 1s (a request sent at once over a slow link takes a few
/// hundred milliseconds), at most 5 min: a request is at most 64 KiB, and each second more is a
/// second a stalled client holds its connection.
pub(crate) const REQUEST_TIMEOUT: Limits<Duration> = between(SECOND, Duration::from_secs(300));

// --- [maintenance] ---

/// `maintenance.short_max`: what counts as a short window (at most a window's longest, 31 d).
pub(crate) const WINDOW_SHORT_MAX: Limits<Duration> =
    between(Duration::from_secs(60), Duration::from_secs(31 * 24 * 3600));
/// `maintenance.short_notice`, `long_notice` and each of `reminders`: up to a year ahead.
pub(crate) const WINDOW_NOTICE: Limits<Duration> =
    between(Duration::ZERO, Duration::from_secs(366 * 24 * 3600));
/// `maintenance.reminders`: at most this many (each is a notice to every subscriber).
pub(crate) const WINDOW_REMINDERS: usize = 10;

// --- [services.NAME] ---

/// `stop_timeout`: how long a stop waits before SIGKILL. 0 kills at once.
pub(crate) const STOP_TIMEOUT: Limits<Duration> = between(Duration::ZERO, HOUR);
/// `backoff_min` and `backoff_max`: the delay between restarts. 0 restarts at once.
pub(crate) const BACKOFF: Limits<Duration> = between(Duration::ZERO, DAY);
/// `min_uptime`: a run this long resets the backoff.
pub(crate) const MIN_UPTIME: Limits<Duration> = between(Duration::ZERO, DAY);
/// `window`: the crash-loop window. Below 1s no two restarts ever share it, so a crash loop
/// would never be detected.
pub(crate) const WINDOW: Limits<Duration> = between(SECOND, DAYS_30);
/// `max_restarts`: restarts within `window` before the service is marked failed. 0 would mark
/// it failed at its first exit (that is `restart = "never"`); the supervisor remembers one
/// timestamp per restart in the window, so the maximum also bounds that memory (16 MB).
pub(crate) const MAX_RESTARTS: Limits<u32> = between(1, 1_000_000);
/// `incident_after`: how long a service is down before an incident opens.
pub(crate) const INCIDENT_AFTER: Limits<Duration> = between(Duration::ZERO, DAYS_30);

/// `watch_debounce`: quiet time after a file change before the restart. Below 10ms an editor's
/// save (write, rename, chmod) is several restarts; past a minute nobody waits for it.
pub(crate) const WATCH_DEBOUNCE: Limits<Duration> =
    between(Duration::from_millis(10), Duration::from_secs(60));

/// `ready_timeout`: how long a start may take to become ready. Below 10ms no program could
/// be ready in time; a day is far past any start.
pub(crate) const READY_TIMEOUT: Limits<Duration> = between(Duration::from_millis(10), DAY);
/// `pid_file_timeout`: how long a forking service's PID file may take after its command
/// exits. At least 10ms (a file is not written faster), at most an hour.
pub(crate) const PID_FILE_TIMEOUT: Limits<Duration> = between(Duration::from_millis(10), HOUR);
/// `watchdog`: the most time between two `WATCHDOG=1` pings. At least 100ms (systemd's
/// programs ping at half the interval, so less would keep them busy pinging), at most a day.
pub(crate) const WATCHDOG: Limits<Duration> = between(Duration::from_millis(100), DAY);
/// `ready = { fd = N }`: the notification fd in the child. 0 to 2 are stdin, stdout and
/// stderr; the kernel's default limit of open files is 1024.
pub(crate) const READY_FD: Limits<i64> = between(3, 1023);

/// `log.max_size` in bytes. Small files rotate often, and each rotation renames up to `keep`
/// files: 64KiB keeps a chatty service from spending its time renaming.
pub(crate) const LOG_MAX_SIZE: Limits<u64> = between(64 * 1024, 1 << 40);
/// `log.keep`: old files kept; rotation renames each of them once, so this bounds that loop.
pub(crate) const LOG_KEEP: Limits<u32> = between(0, 1000);

/// `env_file`: read whole at validation; a bigger file is a mistake (a log, a device, a dump).
pub(crate) const ENV_FILE_MAX_BYTES: u64 = 1024 * 1024;

/// The largest config file read. A config of thousands of services is a few hundred KiB; a
/// file past this is a mistake (a log named by accident), and reading it whole would take the
/// daemon's memory (a 1.5 GB file made the TOML parser ask for 10 GB).
pub(crate) const CONFIG_MAX_BYTES: u64 = 16 * 1024 * 1024;

// --- [[services.NAME.probes]] ---

/// `every`: 50ms matches the probe runner's fastest pace (its `FAST_FLOOR`); a probe every
/// nanosecond costs most of a core and tells nothing more. Tests use 50ms and 100ms.
pub(crate) const PROBE_EVERY: Limits<Duration> = between(Duration::from_millis(50), DAY);
/// `timeout`: below 10ms even a loopback check times out under load, so the probe would only
/// report its own impatience. It may exceed `every` (see `ProbeConfig::timeout`).
pub(crate) const PROBE_TIMEOUT: Limits<Duration> = between(Duration::from_millis(10), HOUR);
/// `grace`: failures within this time after a (re)start do not count.
pub(crate) const PROBE_GRACE: Limits<Duration> = between(Duration::ZERO, DAY);
/// `degraded_after`: must also be shorter than the probe's `timeout` (checked in
/// `validate/probes/http.rs`), since no healthy answer can be slower than the timeout.
pub(crate) const DEGRADED_AFTER: Limits<Duration> = between(MILLI, HOUR);
/// `failures` and `successes`: consecutive results before the verdict changes. 0 would decide
/// without a single check.
pub(crate) const CONSECUTIVE: Limits<u32> = between(1, 1000);
/// `name` of a probe: shown in tables, metrics labels and events.
pub(crate) const PROBE_NAME_MAX_CHARS: usize = 64;
/// Memory probe `max`: no process group fits in less than 1MiB, so a smaller limit always
/// fails and restarts the service forever.
pub(crate) const MEMORY_MAX_MIN_BYTES: u64 = 1024 * 1024;
/// Cpu probe `max_percent`, in percent of one core: above 0 (or every check fails), at most a
/// thousand cores' worth, and a finite number (TOML allows `inf` and `nan`).
pub(crate) const CPU_MAX_PERCENT: Limits<f64> = between(0.0, 100_000.0);
