//! `upkeep import pm2|supervisord|systemd` end to end: real ecosystem files evaluated by real
//! node, a real PM2 daemon read through `pm2 jlist`, supervisord configs with includes, and
//! Debian's own unit files. Every imported config must pass `upkeep check`, and an imported
//! PM2 app must run under the daemon.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use upkeep_testkit::TestDaemon;

use crate::{BIN, LONG, stderr, stdout};

/// A daemon's config (not started) whose file has comments of its own, which imports keep.
fn config() -> TestDaemon {
    let d = TestDaemon::prepare(BIN, "");
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("# my upkeep\n{text}# the end\n")).unwrap();
    d
}

/// `upkeep check` on the daemon's config passes.
fn assert_checks(d: &TestDaemon) {
    let out = d.cli(&["check"]);
    assert!(
        out.status.success(),
        "check: {}\n{}",
        stderr(&out),
        std::fs::read_to_string(&d.config).unwrap()
    );
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}\n{}", stdout(out), stderr(out));
    stdout(out)
}

fn fixture_pm2() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pm2/node_modules/.bin");
    assert!(
        bin.join("pm2").exists(),
        "run `npm ci` in {} (scripts/test does)",
        bin.parent().unwrap().parent().unwrap().display()
    );
    bin
}

/// PATH with `dir` first.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A node HTTP server that answers its GREETING, on PORT.
const APP_JS: &str = "require('http').createServer((q, s) => s.end(process.env.GREETING + '\\n')).listen(+process.env.PORT, '127.0.0.1');\nprocess.on('SIGINT', () => process.exit(0));\n";

#[test]
fn pm2_ecosystem_file_with_several_apps_is_imported_and_runs() {
    let d = config();
    let dir = d.dir.path().join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("server.js"), APP_JS).unwrap();
    std::fs::write(dir.join("job.py"), "import time\ntime.sleep(1000)\n").unwrap();
    std::fs::create_dir(dir.join("lib")).unwrap();
    let port = upkeep_testkit::free_port();
    let eco = dir.join("ecosystem.config.js");
    std::fs::write(
        &eco,
        format!(
            "// three apps, as people write them\nconst port = {port};\nmodule.exports = {{\n  apps: [\n    {{ name: 'web', script: './server.js', env: {{ GREETING: 'dev', PORT: port }},\n      env_production: {{ GREETING: 'production' }}, instances: 4, exec_mode: 'cluster',\n      max_memory_restart: '300M', kill_timeout: 4000, cron_restart: '0 4 * * *' }},\n    {{ name: 'job', script: 'job.py', autorestart: false, out_file: '/var/log/job.log' }},\n    {{ name: 'nap', script: 'sleep', args: '1000', interpreter: 'none', max_restarts: 3, min_uptime: '2s', watch: ['lib'] }},\n  ],\n}};\n"
        ),
    )
    .unwrap();
    let eco = eco.to_str().unwrap();

    // --dry-run prints the TOML and leaves the file alone.
    let before = std::fs::read_to_string(&d.config).unwrap();
    let toml = ok(&d.cli(&["import", "pm2", eco, "--env", "production", "--dry-run"]));
    assert!(toml.contains("[services.web]\n"), "{toml}");
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), before);

    let text = ok(&d.cli(&["import", "pm2", eco, "--env", "production"]));
    assert!(text.starts_with("imported 3 service(s) into "), "{text}");
    for note in [
        "web: instances = 4, cluster mode: upkeep runs one process per service",
        "job: out_file: upkeep captures output itself",
    ] {
        assert!(text.contains(note), "missing {note}:\n{text}");
    }
    // Carried since issue 18 (items 4 and 7), so no longer notes.
    assert!(
        !text.contains("cron_restart") && !text.contains("watch"),
        "{text}"
    );
    let written = std::fs::read_to_string(&d.config).unwrap();
    assert!(written.starts_with("# my upkeep\n[daemon]\n"), "{written}");
    assert!(written.contains("# the end\n"), "{written}");
    for want in [
        "stop_signal = \"SIGINT\"",
        "stop_timeout = \"4s\"",
        "max = \"300MiB\"",
        "restart = \"never\"",
        "max_restarts = 3",
        "min_uptime = \"2s\"",
        "command = [\"sleep\", \"1000\"]",
        "restart_at = \"0 4 * * *\"",
        "watch = [\"lib\"]",
    ] {
        assert!(written.contains(want), "missing {want}:\n{written}");
    }
    assert_checks(&d);

    // A second import of the same names is refused, and changes nothing; --replace replaces.
    let again = d.cli(&["import", "pm2", eco]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("services of these names: web, job, nap")
            && stderr(&again).contains("hint: add --replace"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), written);
    ok(&d.cli(&["import", "pm2", eco, "--env", "production", "--replace"]));
    assert_checks(&d);

    // It runs: the app answers with the profile's greeting on the port from its env.
    let mut d = d;
    d.launch();
    d.wait_state("web", "up", LONG);
    d.wait_state("nap", "up", LONG);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let answer = d.wait_until("the imported app to answer", LONG, || {
        upkeep_testkit::http(addr, "GET", "/", &[], b"").ok()
    });
    assert_eq!(answer.text(), "production\n");
}

#[test]
fn pm2_file_errors_say_where() {
    let d = config();
    let eco = d.dir.path().join("ecosystem.config.js");
    std::fs::write(
        &eco,
        "module.exports = {\n  apps: [\n    { name: 'a' script: 'x.js' }\n  ]\n};\n",
    )
    .unwrap();
    let out = d.cli(&["import", "pm2", eco.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&format!("node could not evaluate {}", eco.display()))
            && said.contains(&format!("{}:3", eco.display()))
            && said.contains("SyntaxError"),
        "{said}"
    );
    // Without node the import says what to install.
    let out = Command::new(BIN)
        .arg("-c")
        .arg(&d.config)
        .args(["import", "pm2", eco.to_str().unwrap()])
        .env("PATH", "/nonexistent")
        .env("UPKEEP_LANG", "en")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`node` was not found on PATH")
            && stderr(&out).contains("hint: install Node.js"),
        "{}",
        stderr(&out)
    );
}

/// Break-it, session 12: a `console.log` in the file made its output not JSON; a file that
/// exports a function failed inside node ("The \"chunk\" argument must be of type string");
/// an app named `..` was "service name is empty".
#[test]
fn pm2_files_that_print_export_a_function_or_name_an_app_dots() {
    let d = config();
    let eco = d.dir.path().join("ecosystem.config.js");
    let import = |text: &str| {
        std::fs::write(&eco, text).unwrap();
        d.cli(&["import", "pm2", eco.to_str().unwrap(), "--dry-run"])
    };
    let out = import(
        "console.log('HELLO FROM CONFIG');\nprocess.stdout.write('{not json');\nmodule.exports = { apps: [{ name: 'a', script: 'sleep', args: '100' }] };\n",
    );
    let toml = ok(&out);
    assert!(toml.contains("[services.a]"), "{toml}");
    assert!(!toml.contains("HELLO"), "{toml}");

    let out = import("module.exports = () => ({ apps: [{ name: 'a', script: 'a.js' }] });\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{}: the file exports a function, which PM2 does not call: export the object itself (module.exports = {{ apps: [...] }})",
            eco.display()
        )),
        "{}",
        stderr(&out)
    );

    let out = import("module.exports = { apps: [{ name: '..', script: 'b.js' }] };\n");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`..` cannot be a service name: nothing is left of it once characters upkeep does not take and leading dots and dashes are left out"),
        "{}",
        stderr(&out)
    );
}

/// A PM2 daemon of the test's own (PM2_HOME in a temp dir), killed on drop.
struct Pm2 {
    home: tempfile::TempDir,
    bin: PathBuf,
}

impl Pm2 {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.bin.join("pm2"));
        c.args(args)
            .env("PM2_HOME", self.home.path())
            .env("PATH", path_with(&self.bin));
        c
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        let _ = self.command(&["kill"]).output();
    }
}

#[test]
fn running_pm2_is_imported_through_jlist() {
    let pm2 = Pm2 {
        home: tempfile::tempdir().unwrap(),
        bin: fixture_pm2(),
    };
    let d = config();
    let dir = d.dir.path().join("app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("server.js"), APP_JS).unwrap();
    let port = upkeep_testkit::free_port();
    let eco = dir.join("ecosystem.config.js");
    std::fs::write(
        &eco,
        format!("module.exports = {{ apps: [\n  {{ name: 'api', script: 'server.js', env: {{ GREETING: 'from pm2', PORT: {port} }}, max_memory_restart: '200M' }},\n  {{ name: 'ticker', script: 'sleep', args: '1000', cron_restart: '*/5 * * * *' }},\n] }};\n"),
    )
    .unwrap();
    let started = pm2
        .command(&["start", eco.to_str().unwrap()])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        started.status.success(),
        "pm2 start: {}{}",
        stdout(&started),
        stderr(&started)
    );

    let out = Command::new(BIN)
        .arg("-c")
        .arg(&d.config)
        .args(["import", "pm2"])
        .env("PM2_HOME", pm2.home.path())
        .env("PATH", path_with(&pm2.bin))
        .env("UPKEEP_LANG", "en")
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.starts_with("imported 2 service(s) into "), "{text}");
    assert!(!text.contains("cron_restart"), "{text}");
    assert!(text.contains("inherited variables: left out"), "{text}");
    let written = std::fs::read_to_string(&d.config).unwrap();
    for want in [
        "# pm2 app `api` (running, from pm2 jlist)",
        &format!(
            "command = [\"node\", \"{}\"]",
            dir.join("server.js").display()
        ),
        &format!("env = {{ GREETING = \"from pm2\", PORT = \"{port}\" }}"),
        "max = \"200MiB\"",
        // PM2 found sleep on PATH and says where.
        "sleep\", \"1000\"]",
        "restart_at = \"*/5 * * * *\"",
    ] {
        assert!(written.contains(want), "missing {want}:\n{written}");
    }
    assert_checks(&d);
    drop(pm2);

    // Without a PM2 running, nothing starts one.
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("-c")
        .arg(&d.config)
        .args(["import", "pm2"])
        .env("PM2_HOME", home.path())
        .env("UPKEEP_LANG", "en")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no PM2 daemon runs"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_dir(home.path()).unwrap().count(), 0);
}

#[test]
fn supervisord_config_with_includes_is_imported_and_runs() {
    let d = config();
    let dir = d.dir.path().join("supervisor");
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::write(
        dir.join("supervisord.conf"),
        "; supervisor config file\n[unix_http_server]\nfile=/var/run/supervisor.sock   ; (the path to the socket file)\n\n[supervisord]\nlogfile=/var/log/supervisor/supervisord.log\nenvironment=SHARED=\"yes\"\n\n[include]\nfiles = conf.d/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/nap.conf"),
        "[program:nap]\ncommand=/bin/sh -c \"exec sleep 1000\"  ; the program\ndirectory=%(here)s\nenvironment=NAME=\"%(program_name)s\",\n    N=\"%(process_num)02d\"\nautorestart=true\nstopsignal=INT\nstopwaitsecs=3\nstdout_logfile=/var/log/nap.log\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)02d\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("conf.d/web.conf"),
        "[program:web]\ncommand=python3 -m http.server 0 --bind 127.0.0.1\nautostart=false\n",
    )
    .unwrap();
    let text = ok(&d.cli(&[
        "import",
        "supervisord",
        dir.join("supervisord.conf").to_str().unwrap(),
    ]));
    assert!(text.starts_with("imported 2 service(s) into "), "{text}");
    assert!(
        text.contains("nap: numprocs = 2: upkeep runs one process per service"),
        "{text}"
    );
    assert!(
        text.contains("nap: stdout_logfile: upkeep captures output itself"),
        "{text}"
    );
    let written = std::fs::read_to_string(&d.config).unwrap();
    for want in [
        "command = [\"/bin/sh\", \"-c\", \"exec sleep 1000\"]",
        &format!("cwd = \"{}\"", dir.join("conf.d").display()),
        "env = { N = \"00\", NAME = \"nap\", SHARED = \"yes\" }",
        "stop_signal = \"SIGINT\"",
        "restart = \"always\"",
        "restart = \"on-failure\"",
        "autostart = false",
    ] {
        assert!(written.contains(want), "missing {want}:\n{written}");
    }
    assert_checks(&d);
    let mut d = d;
    d.launch();
    d.wait_state("nap", "up", LONG);
    assert_eq!(d.state("web"), "stopped");
}

/// Break-it, session 12: `[eventlistener:x]` and `[group:x]` were in no dry run, so nothing
/// told the user the listener was left behind.
#[test]
fn supervisord_listeners_and_groups_are_listed_as_not_carried_over() {
    let d = config();
    let conf = d.dir.path().join("supervisord.conf");
    std::fs::write(
        &conf,
        "[program:a]\ncommand=sleep 100\n[eventlistener:ev]\ncommand=python3 ev.py\nevents=PROCESS_STATE\n[group:g]\nprograms=a\n",
    )
    .unwrap();
    let listener = "event listener ev: [eventlistener:ev]: its command (python3 ev.py) is not run: it reads supervisord's own events on stdin, which upkeep does not send";
    let group = "group g: [group:g]: upkeep starts and stops each service on its own (nothing like `supervisorctl start g:*`): its programs (a) are services of their own; upkeep's `group` key only heads services on the status page";
    let toml = ok(&d.cli(&["import", "supervisord", conf.to_str().unwrap(), "--dry-run"]));
    assert!(toml.starts_with("# Not carried over:\n#   "), "{toml}");
    for want in [listener, group] {
        assert!(
            toml.contains(&format!("#   {want}")),
            "missing {want}:\n{toml}"
        );
    }
    let text = ok(&d.cli(&["import", "supervisord", conf.to_str().unwrap()]));
    for want in [listener, group] {
        assert!(
            text.contains(&format!("  {want}")),
            "missing {want}:\n{text}"
        );
    }
    assert_checks(&d);
}

#[test]
fn debian_nginx_and_ssh_units_are_imported_and_pass_check() {
    for unit in [
        "/lib/systemd/system/nginx.service",
        "/lib/systemd/system/ssh.service",
    ] {
        assert!(
            Path::new(unit).exists(),
            "{unit} is missing: install nginx-light and openssh-server (scripts/test does)"
        );
    }
    let d = config();
    let text = ok(&d.cli(&["import", "systemd", "nginx", "ssh.service"]));
    assert!(text.starts_with("imported 2 service(s) into "), "{text}");
    for note in [
        "nginx: ExecReload=/usr/sbin/nginx -g 'daemon on; master_process on;' -s reload: not carried over: upkeep does not run reload commands; set reload_signal",
        "nginx: KillMode=mixed: ",
        "ssh: KillMode=process: upkeep stops the whole process group",
        "ssh: ConditionPathExists=!/etc/ssh/sshd_not_to_be_run: ",
    ] {
        assert!(text.contains(note), "missing {note}:\n{text}");
    }
    let written = std::fs::read_to_string(&d.config).unwrap();
    for want in [
        "# systemd unit nginx.service (",
        ": A high performance web server and a reverse proxy server\n",
        "command = \"/usr/sbin/nginx -t -q -g 'daemon on; master_process on;' && exec /usr/sbin/nginx -g 'daemon on; master_process on;'\"",
        "stop_timeout = \"5s\"",
        "command = \"mkdir -p -m 0755 /run/sshd && /usr/sbin/sshd -t && exec /usr/sbin/sshd -D $SSHD_OPTS\"",
        "env_file = \"/etc/default/ssh\"",
        "restart = \"on-failure\"",
        // Since issue 18 item 3: a forking daemon is followed through its PID file, and
        // ssh's `ExecReload=/bin/kill -HUP $MAINPID` is its reload signal.
        "type = \"forking\"\npid_file = \"/run/nginx.pid\"",
        "reload_signal = \"SIGHUP\"",
        // ssh.service is Type=notify: Debian's sshd sends READY=1.
        "ready = \"notify\"",
    ] {
        assert!(written.contains(want), "missing {want}:\n{written}");
    }
    assert!(!text.contains("Type=forking"), "{text}");
    assert!(!text.contains("Type=notify"), "{text}");
    assert!(!written.contains("autostart = false"), "{written}");
    assert_checks(&d);
}

/// Dependencies between units come over as `depends_on` when both ends are in the config
/// (imported together, or there already); one on a unit that is not stays a note.
#[test]
fn unit_dependencies_become_depends_on_and_the_services_start_in_order() {
    let d = config();
    let dir = d.dir.path();
    let token = upkeep_testkit::unique();
    std::fs::write(
        dir.join("db.service"),
        format!("[Service]\nExecStart=/bin/sleep {token}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("app.service"),
        format!(
            "[Unit]\nRequires=db.service elsewhere.service\nAfter=db.service network.target\n[Service]\nExecStart=/bin/sleep {token}\n"
        ),
    )
    .unwrap();
    let text = ok(&d.cli(&[
        "import",
        "systemd",
        dir.join("app.service").to_str().unwrap(),
        dir.join("db.service").to_str().unwrap(),
    ]));
    assert!(
        text.contains("app: Requires=db.service Requires=elsewhere.service After=db.service: not in this config: add `depends_on = [\"elsewhere\"]` once those services are"),
        "{text}"
    );
    let written = std::fs::read_to_string(&d.config).unwrap();
    assert!(written.contains("depends_on = [\"db\"]"), "{written}");
    assert_checks(&d);
    let mut d = d;
    d.launch();
    d.wait_state("app", "up", LONG);
    // app waited for db: db's start came first (the list is newest first).
    let all = d.api_get("/api/v1/events?limit=1000");
    let order: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter(|e| e["kind"] == "started")
        .filter_map(|e| e["service"].as_str())
        .collect();
    assert_eq!(order, ["db", "app"], "{all}");
}

#[test]
fn a_malformed_unit_is_refused_with_its_line() {
    let d = config();
    let unit = d.dir.path().join("broken.service");
    std::fs::write(
        &unit,
        "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/sleep 1\nthis line is wrong\n",
    )
    .unwrap();
    let before = std::fs::read_to_string(&d.config).unwrap();
    let out = d.cli(&["import", "systemd", unit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "error: {}:5: neither a [Section] nor a `Key=Value` line",
            unit.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), before);

    // A unit that parses but would not validate here is not written either.
    std::fs::write(&unit, "[Service]\nExecStart=/nonexistent/prog --flag\n").unwrap();
    let out = d.cli(&["import", "systemd", unit.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(
        said.contains("nothing was written")
            && said
                .contains("(services.broken.command): program `/nonexistent/prog` was not found"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), before);
}

/// Imports running at once take turns on the config file: none is lost, the file stays valid
/// and keeps its comments (found by a fresh-eyes tester: writers shared one temporary file).
#[test]
fn imports_at_once_lose_nothing() {
    let d = config();
    let units: Vec<String> = (0..8)
        .map(|i| {
            let unit = d.dir.path().join(format!("c{i}.service"));
            std::fs::write(&unit, format!("[Service]\nExecStart=/bin/sleep 100{i}\n")).unwrap();
            unit.to_str().unwrap().to_owned()
        })
        .collect();
    let running: Vec<_> = units
        .iter()
        .map(|u| d.cli_spawn(&["import", "systemd", u]))
        .collect();
    for child in running {
        ok(&child.wait_with_output().unwrap());
    }
    let text = std::fs::read_to_string(&d.config).unwrap();
    for i in 0..8 {
        assert!(
            text.contains(&format!("[services.c{i}]")),
            "c{i} lost:\n{text}"
        );
    }
    assert!(
        text.starts_with("# my upkeep") && text.contains("# the end"),
        "{text}"
    );
    assert_checks(&d);
}

/// Only the first problem of a supervisord file or a systemd unit was reported: fixed one at
/// a time, each import found the next. Every problem now, each at its file and line (as
/// `upkeep check` reports a config's), exit 2, and the config file is left as it was.
#[test]
fn import_reports_every_problem_with_its_line_and_writes_nothing() {
    let d = config();
    let before = std::fs::read_to_string(&d.config).unwrap();
    let dir = d.dir.path();
    let conf = dir.join("s.conf");
    std::fs::write(
        &conf,
        "[program:a]\ncommand=echo \"open\nstopwaitsecs=soon\n[program:b]\ndirectory=/x\njust words\n",
    )
    .unwrap();
    let unit = dir.join("bad.service");
    std::fs::write(
        &unit,
        "[Service]\nExecStart=/bin/true\nRestart=sometimes\nnot a line\nRestartSec=soon\n",
    )
    .unwrap();
    let cases = [
        (
            ["supervisord", conf.to_str().unwrap()],
            vec![
                format!(
                    "{}:2: command: the command has an unclosed quote",
                    conf.display()
                ),
                format!("{}:3: stopwaitsecs: `soon`", conf.display()),
                format!("{}:4: [program:b] has no command", conf.display()),
                format!("{}:6: neither a [section]", conf.display()),
            ],
        ),
        (
            ["systemd", unit.to_str().unwrap()],
            vec![
                format!("{}:3: Restart: `sometimes`", unit.display()),
                format!("{}:4: neither a [Section]", unit.display()),
                format!("{}:5: RestartSec: `soon`", unit.display()),
            ],
        ),
    ];
    for (args, want) in cases {
        let out = d.cli(&["import", args[0], args[1]]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("{} problems, nothing was imported", want.len())),
            "{args:?}: {err}"
        );
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("  --> ")).collect();
        assert_eq!(lines.len(), want.len(), "{args:?}: {err}");
        for (line, want) in lines.iter().zip(&want) {
            assert!(
                line.contains(want.as_str()),
                "{args:?}: {line} is not {want}"
            );
        }
        assert_eq!(std::fs::read_to_string(&d.config).unwrap(), before);
    }
}
