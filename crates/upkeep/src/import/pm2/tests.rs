//! Tests of the PM2 mapping on apps written as JSON (what node prints for an ecosystem file);
//! reading real files through node and a running PM2 is tested end to end (tests/it/import.rs).

use serde_json::json;

use super::command::{list, split_args};
use super::source::{apply_profile, apps_of, running_env};
use super::*;

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// One app mapped as from a file in `dir`.
fn service(dir: &Path, v: Value) -> Result<Service, ImportError> {
    let mut app = map(v);
    let mut extra = Extra::default();
    apply_profile(&mut app, None, &mut extra);
    let name = app_name(&app, 0)?;
    super::app(&app, &name, "test".into(), dir, &extra)
}

#[test]
fn splits_string_args_as_pm2_does() {
    assert_eq!(
        split_args(r#"--port 80 --name="a b" "c d" 'e f' '' x=y"#),
        ["--port", "80", "--name=\"a b\"", "c d", "e f", "x=y"]
    );
    assert_eq!(split_args("  "), Vec::<String>::new());
    assert_eq!(list(Some(&json!(["a b", 3]))), ["a b", "3"]);
}

#[test]
fn reads_times_and_sizes_as_pm2_does() {
    let app =
        map(json!({"a": 1600, "b": "10s", "c": "2m", "d": "1h", "e": "250", "f": "soon", "g": -5}));
    let t = |k: &str| time(&app, k);
    assert_eq!(t("a"), Ok(Some(Duration::from_millis(1600))));
    assert_eq!(t("b"), Ok(Some(Duration::from_secs(10))));
    assert_eq!(t("c"), Ok(Some(Duration::from_secs(120))));
    assert_eq!(t("d"), Ok(Some(Duration::from_secs(3600))));
    assert_eq!(t("e"), Ok(Some(Duration::from_millis(250))));
    assert_eq!(t("missing"), Ok(None));
    assert!(t("f").unwrap_err().contains("not a time"));
    assert!(t("g").is_err());
    assert_eq!(size(&json!("150M")), Some(150 << 20));
    assert_eq!(size(&json!("1G")), Some(1 << 30));
    assert_eq!(size(&json!("512K")), Some(512 << 10));
    assert_eq!(size(&json!(157286400)), Some(157286400));
    assert_eq!(size(&json!("lots")), None);
}

#[test]
fn finds_apps_in_every_shape_pm2_takes() {
    let one = json!({"script": "a.js"});
    assert_eq!(apps_of(json!({"apps": [one.clone()]})).unwrap().len(), 1);
    assert_eq!(apps_of(json!({"apps": one.clone()})).unwrap().len(), 1);
    assert_eq!(apps_of(json!([one.clone(), one.clone()])).unwrap().len(), 2);
    assert_eq!(apps_of(one).unwrap().len(), 1);
    assert!(apps_of(json!({"deploy": {}})).is_none());
    assert!(apps_of(json!(null)).is_none());
}

#[test]
fn applies_the_chosen_profile_and_notes_the_others() {
    let mut app = map(
        json!({"env": {"A": "1", "B": "2"}, "env_production": {"B": "prod"}, "env_staging": {}}),
    );
    let mut extra = Extra::default();
    assert!(apply_profile(&mut app, Some("production"), &mut extra));
    assert_eq!(app["env"], json!({"A": "1", "B": "prod"}));
    assert_eq!(extra.skipped_profiles, ["env_staging"]);
    assert!(!app.contains_key("env_production"));
    let mut app = map(json!({"env_production": {"B": "prod"}}));
    assert!(!apply_profile(
        &mut app,
        Some("nope"),
        &mut Extra::default()
    ));
}

#[test]
fn maps_an_app() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.js"), "console.log(1)\n").unwrap();
    std::fs::write(dir.path().join("job.py"), "print(1)\n").unwrap();
    let s = service(
        dir.path(),
        json!({
            "name": "api server", "script": "./app.js", "args": "--port 8080",
            "node_args": ["--max-old-space-size=256"], "env": {"N": 3, "B": true, "S": "x"},
            "port": 9000, "instances": "max", "exec_mode": "cluster_mode", "autorestart": false,
            "max_restarts": 0, "min_uptime": "5s", "restart_delay": 1500, "kill_timeout": 3000,
            "max_memory_restart": "200M", "cron_restart": "0 0 * * *", "watch": true,
            "error_file": "/var/log/e.log", "gid": "staff", "vizion": false, "colour": "blue"
        }),
    )
    .unwrap();
    let app_js = dir.path().join("app.js").display().to_string();
    assert_eq!(s.name.as_str(), "api-server");
    assert_eq!(
        s.command,
        Command::Argv(vec![
            "node".into(),
            "--max-old-space-size=256".into(),
            app_js,
            "--port".into(),
            "8080".into()
        ])
    );
    assert_eq!(s.cwd.as_deref(), Some(dir.path().to_str().unwrap()));
    let env: Vec<(&str, &str)> = s
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [("B", "true"), ("N", "3"), ("PORT", "9000"), ("S", "x")]
    );
    assert_eq!(s.restart, Some(RestartPolicy::Never));
    assert_eq!(s.max_restarts, Some(1));
    assert_eq!(s.min_uptime, Some(Duration::from_secs(5)));
    assert_eq!(
        (s.backoff_min, s.backoff_max),
        (
            Some(Duration::from_millis(1500)),
            Some(Duration::from_millis(1500))
        )
    );
    assert_eq!(s.stop_timeout, Some(Duration::from_secs(3)));
    assert_eq!(s.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(s.memory_max, Some(200 << 20));
    assert_eq!(
        s.pending,
        [
            (
                "cron_restart = 0 0 * * *".to_owned(),
                Pending::RestartAt("0 0 * * *".into())
            ),
            ("watch = true".to_owned(), Pending::Watch(Vec::new())),
        ]
    );
    let notes: Vec<&str> = s.notes.iter().map(|n| n.setting.as_str()).collect();
    assert_eq!(
        notes,
        [
            "name = api server",
            "max_restarts = 0",
            "instances = max, cluster mode",
            "error_file",
            "colour = blue",
            "gid = staff"
        ]
    );
    // By extension, without `interpreter`; `none` runs the script itself.
    let py = service(dir.path(), json!({"script": "job.py"})).unwrap();
    let Command::Argv(argv) = &py.command else {
        panic!()
    };
    assert!(argv[0].starts_with("python"), "{argv:?}");
    assert_eq!(py.name.as_str(), "job");
    let direct = service(
        dir.path(),
        json!({"name": "s", "script": "sleep", "args": [5]}),
    )
    .unwrap();
    assert_eq!(
        direct.command,
        Command::Argv(vec!["sleep".into(), "5".into()])
    );
    let none = service(
        dir.path(),
        json!({"name": "n", "script": "app.js", "interpreter": "none"}),
    )
    .unwrap();
    let Command::Argv(argv) = &none.command else {
        panic!()
    };
    assert_eq!(argv.len(), 1);
}

#[test]
fn refuses_apps_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let err = |v: Value| service(dir.path(), v).unwrap_err().to_string();
    assert_eq!(err(json!({"name": "a"})), "app `a`: no script");
    assert!(
        err(json!({"name": "a", "script": "./missing.js"}))
            .contains("script `./missing.js` is neither in")
    );
    assert!(
        err(json!({"script": "sleep", "max_memory_restart": "lots"}))
            .contains("max_memory_restart `lots` is not a size")
    );
    assert!(
        err(json!({"script": "sleep", "kill_timeout": "x"}))
            .contains("kill_timeout `x` is not a time")
    );
    assert!(
        app_name(&map(json!({"args": "x"})), 2)
            .unwrap_err()
            .to_string()
            .contains("app 3 has neither")
    );
}

#[test]
fn keeps_only_a_running_apps_own_variables() {
    let (home, path) = (
        std::env::var("HOME").unwrap(),
        std::env::var("PATH").unwrap(),
    );
    let env = map(json!({
        "HOME": home, "PATH": path, "PM2_HOME": "/x", "pm_id": 0, "web": "{}", "unique_id": "u",
        "API_KEY": "k", "PWD": "/srv"
    }));
    let (kept, dropped) = running_env(Some(&env), "web");
    assert_eq!(Value::Object(kept), json!({"API_KEY": "k"}));
    assert_eq!(dropped, 7);
}

/// Break-it, session 12: `env` values node writes as null (null itself, 1e400) were dropped
/// without a word.
#[test]
fn variables_without_a_value_are_noted() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(
        dir.path(),
        json!({"name": "a", "script": "sleep", "env": {"KEPT": "1", "NOTHING": null, "HUGE": null}}),
    )
    .unwrap();
    assert_eq!(s.env.keys().collect::<Vec<_>>(), ["KEPT"]);
    let notes: Vec<String> = s
        .notes
        .iter()
        .map(crate::import::write::note_text)
        .collect();
    assert!(
        notes.contains(&"env.HUGE, env.NOTHING: no value to carry over: null, or a number JSON cannot hold (1e400, NaN), which node writes as null; set them in env by hand".to_owned()),
        "{notes:?}"
    );
}
