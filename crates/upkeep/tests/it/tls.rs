//! HTTPS served by the daemon itself (`[daemon] tls`, issue 17 item 6): a self-signed
//! certificate made by the test, a real daemon on `listen` and `public_listen`, and a real
//! HTTPS client (reqwest on rustls) that trusts that certificate alone. The status page and
//! the API answer over HTTPS and plain HTTP gets nothing; the admin cookie is `Secure`; a key
//! that is not the certificate's is a config error naming the file, at start and at reload
//! (where the running certificate stays); a renewed certificate is served after `upkeep
//! reload` on the same listener; and sockets that never send a ClientHello do not keep a
//! client out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use upkeep_testkit::{TestDaemon, connect_from, free_addr};

use crate::{LONG, stderr, stdout};

/// The name the certificates are for; the client resolves it to the daemon's address.
const HOST: &str = "upkeep.test";

/// A new self-signed certificate for [`HOST`] and its key, as PEM.
fn certificate() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec![HOST.into()]).unwrap();
    (c.cert.pem(), c.key_pair.serialize_pem())
}

/// Writes `cert.pem` and `key.pem` beside the daemon's config.
fn write_pair(d: &TestDaemon, cert: &str, key: &str) {
    std::fs::write(d.dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(d.dir.path().join("key.pem"), key).unwrap();
}

/// A daemon with `listen` and `public_listen` over HTTPS with a fresh certificate, not yet
/// launched: (daemon, listen, public_listen, the certificate's PEM).
fn prepare() -> (TestDaemon, SocketAddr, SocketAddr, String) {
    let (api, public) = (free_addr(), free_addr());
    let d = TestDaemon::prepare(crate::BIN, "[services.web]\ncommand = \"sleep 1000\"\n")
        .with_daemon_keys(&format!(
            "listen = \"{api}\"\npublic_listen = \"{public}\"\n\
             tls = {{ cert = \"cert.pem\", key = \"key.pem\" }}\n"
        ));
    let (cert, key) = certificate();
    write_pair(&d, &cert, &key);
    (d, api, public, cert)
}

/// An HTTPS client that trusts `cert_pem` alone (no system roots), reaching [`HOST`] at
/// `addr`, from the local address `from` if given.
fn client(cert_pem: &str, addr: SocketAddr, from: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve(HOST, addr)
        .local_address(from)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GET `https://HOST:port{path}` trusting `cert_pem`: (status, Set-Cookie values, body).
fn get(
    cert_pem: &str,
    addr: SocketAddr,
    from: Option<IpAddr>,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Vec<String>, String), reqwest::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req =
            client(cert_pem, addr, from).get(format!("https://{HOST}:{}{path}", addr.port()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let cookies = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        Ok((status, cookies, resp.text().await?))
    })
}

fn token(d: &TestDaemon) -> String {
    let out = d.cli(&["token", "create", "dash", "--scope", "read", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["secret"].as_str().unwrap().to_owned()
}

#[test]
fn the_status_page_and_the_api_are_served_over_https_and_plain_http_gets_nothing() {
    let (mut d, api, public, cert) = prepare();
    d.launch();
    d.wait_state("web", "up", LONG);
    let (code, _, page) = get(&cert, public, None, "/", None).unwrap();
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<html") && page.contains("web"), "{page}");
    let (code, _, health) = get(&cert, api, None, "/api/v1/health", None).unwrap();
    assert_eq!(code, 200, "{health}");
    let secret = token(&d);
    let (code, _, list) = get(&cert, api, None, "/api/v1/services", Some(&secret)).unwrap();
    assert_eq!(code, 200, "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "web", "{list}");
    // Without the token, the same route over HTTPS still needs one.
    let (code, _, _) = get(&cert, api, None, "/api/v1/services", None).unwrap();
    assert_eq!(code, 401);
    // A client that does not trust the certificate refuses it.
    let (other, _) = certificate();
    assert!(get(&other, api, None, "/api/v1/health", None).is_err());
    // Plain HTTP to either port is not served.
    for addr in [api, public] {
        let answer = upkeep_testkit::http(addr, "GET", "/api/v1/health", &[], b"");
        assert!(
            answer.as_ref().is_err() || answer.as_ref().is_ok_and(|a| a.code != 200),
            "{addr}: {:?}",
            answer.map(|a| (a.code, a.text()))
        );
    }
}

#[test]
fn the_admin_cookie_is_secure_over_https() {
    let (mut d, api, _, cert) = prepare();
    d.launch();
    let out = d.cli_with_stdin(&["user", "add", "ops"], "correct horse battery\n");
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, cookies, page) = get(&cert, api, None, "/admin/login", None).unwrap();
    assert_eq!(code, 200, "{page}");
    assert!(!cookies.is_empty(), "no cookie with the login form");
    for c in &cookies {
        assert!(c.ends_with("; Secure"), "{c}");
    }
}

/// Whether `path` is named in `text` with the line and column of `tls` in the config.
fn names(text: &str, path: &Path) -> bool {
    text.contains(&path.display().to_string()) && text.contains("upkeep.toml:4:")
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_and_a_renewed_one_is_served_after_reload() {
    let (mut d, api, _, cert) = prepare();
    let key_path = d.dir.path().join("key.pem");
    let good_key = std::fs::read_to_string(&key_path).unwrap();
    let (_, other_key) = certificate();
    // At start: the daemon does not start, and says which file and where.
    std::fs::write(&key_path, &other_key).unwrap();
    let out = std::process::Command::new(crate::BIN)
        .args(["daemon", "-c"])
        .arg(&d.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(names(&stderr(&out), &key_path), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not the key of the certificate"),
        "{}",
        stderr(&out)
    );
    // `check` says the same.
    let out = d.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(names(&stderr(&out), &key_path), "{}", stderr(&out));

    std::fs::write(&key_path, &good_key).unwrap();
    d.launch();
    // At reload: refused, and the running certificate is still served.
    std::fs::write(&key_path, &other_key).unwrap();
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(names(&stderr(&out), &key_path), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("running config stays in force"),
        "{}",
        stderr(&out)
    );
    let cert_path = d.dir.path().join("cert.pem");
    std::fs::remove_file(&cert_path).unwrap();
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(names(&stderr(&out), &cert_path), "{}", stderr(&out));
    let (code, _, _) = get(&cert, api, None, "/api/v1/health", None).unwrap();
    assert_eq!(code, 200);

    // A renewal (certbot rewrites both files), then a reload: the same listener serves the
    // new certificate, and a reload of only the files waits for no restart.
    let (renewed, renewed_key) = certificate();
    write_pair(&d, &renewed, &renewed_key);
    let out = d.cli(&["reload", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let waits = answer.get("restart_needed").and_then(|k| k.as_array());
    assert!(waits.is_none_or(|k| k.is_empty()), "{answer}");
    let (code, _, _) = get(&renewed, api, None, "/api/v1/health", None).unwrap();
    assert_eq!(code, 200);
    assert!(get(&cert, api, None, "/api/v1/health", None).is_err());
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// Sockets that open TCP and never send a ClientHello, from many addresses (each within its
/// cap of 32), more than the listener's 512: a client that does its handshake at once is
/// served all the same, because a connection still in its handshake gives way to a newcomer
/// like any connection yet to send its request.
#[test]
fn sockets_that_never_say_hello_do_not_keep_a_client_out() {
    let limit = upkeep_testkit::raise_open_files();
    assert!(
        limit >= 2000,
        "the open-file limit is {limit}: raise the hard limit to run this"
    );
    let (mut d, api, public, cert) = prepare();
    d.launch();
    for addr in [public, api] {
        let silent: Vec<std::net::TcpStream> = (10..27)
            .flat_map(|host| (0..31).map(move |_| connect_from(loopback(host), addr).unwrap()))
            .collect();
        assert!(silent.len() > 512);
        let path = if addr == public {
            "/"
        } else {
            "/api/v1/health"
        };
        let (code, _, body) = get(&cert, addr, Some(loopback(2)), path, None)
            .unwrap_or_else(|e| panic!("{addr}{path}: {e:?}"));
        assert_eq!(code, 200, "{addr}{path}: {body}");
    }
    let out = d.cli(&["ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Break-it, session 9: `cert = "/dev/zero"` grew `upkeep check` by 1.3 GB a second, and a
/// FIFO as the certificate hung `reload` and `upgrade` for good. Both are refused at once, by
/// `check` and by a reload, and the running certificate stays served.
#[test]
fn a_fifo_or_a_device_as_the_certificate_is_refused_at_once() {
    let (mut d, api, _, cert) = prepare();
    d.launch();
    let fifo = d.dir.path().join("cert.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let config = std::fs::read_to_string(&d.config).unwrap();
    for bad in [fifo.display().to_string(), "/dev/zero".to_owned()] {
        std::fs::write(
            &d.config,
            config.replace("cert = \"cert.pem\"", &format!("cert = \"{bad}\"")),
        )
        .unwrap();
        let out = d.cli(&["check"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("not a regular file"),
            "{bad}: {}",
            stderr(&out)
        );
        let out = d.cli(&["reload"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("not a regular file"),
            "{bad}: {}",
            stderr(&out)
        );
    }
    let (code, _, _) = get(&cert, api, None, "/api/v1/health", None).unwrap();
    assert_eq!(code, 200);
}

/// A certificate for [`HOST`] valid from `from` to `to` and its key, as PEM.
fn dated(from: jiff::civil::Date, to: jiff::civil::Date) -> (String, String) {
    let ymd = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(d.year().into(), d.month() as u8, d.day() as u8)
    };
    let mut params = rcgen::CertificateParams::new(vec![HOST.into()]).unwrap();
    params.not_before = ymd(from);
    params.not_after = ymd(to);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Break-it, session 10: an expired certificate was served without a word. It is still
/// served (refusing would take HTTPS away), but `check`, the start's log and a reload say
/// so, naming the file and the date; and one that ends within 14 days is said too.
#[test]
fn a_certificate_out_of_its_dates_is_warned_about_by_check_start_and_reload() {
    use jiff::civil::date;
    let (mut d, api, _, _) = prepare();
    let cert_path = d.dir.path().join("cert.pem");
    let (expired, key) = dated(date(2020, 1, 1), date(2021, 1, 1));
    write_pair(&d, &expired, &key);
    let said = format!("{} expired on 2021-01-01 00:00:00 UTC", cert_path.display());
    let out = d.cli(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("warning: the certificate in {said}")),
        "{}",
        stderr(&out)
    );
    let out = d.cli(&["check", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(v["warnings"][0].as_str().unwrap().contains(&said), "{v}");

    d.launch();
    assert!(d.daemon_log().contains(&said), "{}", d.daemon_log());
    // Served all the same: the listener answers a handshake.
    assert!(std::net::TcpStream::connect(api).is_ok());

    // A renewal that ends in a few days: the reload applies it and says when it ends.
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::UTC)
        .date();
    let (soon, soon_key) = dated(date(2020, 1, 1), today + jiff::Span::new().days(4));
    write_pair(&d, &soon, &soon_key);
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ends = format!(
        "{} expires on {}",
        cert_path.display(),
        today + jiff::Span::new().days(4)
    );
    assert!(stderr(&out).contains(&ends), "{}", stderr(&out));
    assert!(d.daemon_log().contains(&ends), "{}", d.daemon_log());
    let (code, _, _) = get(&soon, api, None, "/api/v1/health", None).unwrap();
    assert_eq!(code, 200);

    // Well within its dates: nothing said.
    let (fresh, fresh_key) = dated(date(2020, 1, 1), today + jiff::Span::new().days(60));
    write_pair(&d, &fresh, &fresh_key);
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let out = d.cli(&["check"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}
