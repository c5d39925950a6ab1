//! Email against aiosmtpd: the headers and parts a mail client reads, the Message-ID that
//! makes a resend the same message, RFC 8058 unsubscribe headers, a Chinese subject, and
//! STARTTLS, TLS and AUTH against a certificate from a throwaway CA.

use std::path::Path;
use std::process::Command;

use upkeep_core::i18n::Lang;
use upkeep_outbox::Recipient;

use crate::support::{Helper, build, env, key, rendered};

fn smtp_config(url: &str, extra: &str) -> String {
    format!(
        "kind = \"smtp\"\nurl = \"{url}\"\nfrom = \"upkeep <noreply@example.com>\"\nreply_to = \"ops@example.com\"\ntimeout = \"20s\"\n{extra}"
    )
}

fn subscriber() -> Recipient {
    Recipient {
        address: "Li Lei <li@example.net>".into(),
        unsubscribe: Some(
            "https://status.example.com/unsubscribe?token=abc"
                .parse()
                .unwrap(),
        ),
    }
}

#[tokio::test]
async fn a_mail_has_both_parts_its_headers_and_a_message_id_from_the_key() {
    let sink = Helper::start("smtp_sink.py", &[]).await;
    let mail = build(
        &smtp_config(&format!("smtp://127.0.0.1:{}", sink.port), ""),
        env(&[]),
    );
    let notice = rendered(Lang::En);
    for _ in 0..2 {
        let d = mail
            .send(&subscriber(), &notice, &key("row-9.email"))
            .await
            .unwrap();
        assert_eq!(d.id.as_deref(), Some("<row-9.email@example.com>"));
    }
    let mails = sink.records();
    assert_eq!(mails.len(), 2);
    for m in &mails {
        // A resend after a crash is the same message.
        assert_eq!(m["message_id"], "<row-9.email@example.com>");
        assert_eq!(m["mail_from"], "noreply@example.com");
        assert_eq!(m["rcpt_tos"][0], "li@example.net");
        assert_eq!(m["from"], "upkeep <noreply@example.com>");
        assert_eq!(m["to"], "Li Lei <li@example.net>");
        assert_eq!(m["subject"], notice.subject.as_str());
        assert_eq!(
            m["list_unsubscribe"],
            "<https://status.example.com/unsubscribe?token=abc>"
        );
        assert_eq!(m["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
        assert_eq!(m["content_type"], "multipart/alternative");
        let names: Vec<&str> = m["raw_headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h[0].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"Date") && names.contains(&"Reply-To"),
            "{names:?}"
        );
        let parts = m["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2, "{m}");
        assert_eq!(parts[0]["content_type"], "text/plain");
        assert_eq!(parts[1]["content_type"], "text/html");
        assert_eq!(
            parts[0]["text"].as_str().unwrap().replace("\r\n", "\n"),
            notice.text
        );
        assert_eq!(
            parts[1]["text"].as_str().unwrap().replace("\r\n", "\n"),
            notice.html
        );
    }
    // Another row is another message.
    mail.send(&subscriber(), &notice, &key("row-10.email"))
        .await
        .unwrap();
    assert_eq!(sink.last()["message_id"], "<row-10.email@example.com>");
}

#[tokio::test]
async fn no_unsubscribe_url_no_list_headers() {
    let sink = Helper::start("smtp_sink.py", &[]).await;
    let mail = build(
        &smtp_config(&format!("smtp://127.0.0.1:{}", sink.port), ""),
        env(&[]),
    );
    mail.send(
        &Recipient::address("ops@example.net"),
        &rendered(Lang::En),
        &key("k"),
    )
    .await
    .unwrap();
    let m = sink.last();
    assert!(
        m["list_unsubscribe"].is_null() && m["list_unsubscribe_post"].is_null(),
        "{m}"
    );
}

#[tokio::test]
async fn a_chinese_subject_is_encoded_and_reads_back() {
    let sink = Helper::start("smtp_sink.py", &[]).await;
    let mail = build(
        &smtp_config(&format!("smtp://127.0.0.1:{}", sink.port), ""),
        env(&[]),
    );
    let notice = rendered(Lang::ZhCn);
    assert!(
        notice.subject.starts_with("【紧急】故障已恢复："),
        "{}",
        notice.subject
    );
    let to = Recipient::address("李雷 <li@example.net>");
    mail.send(&to, &notice, &key("k")).await.unwrap();
    let m = sink.last();
    assert_eq!(m["subject"], notice.subject.as_str());
    assert_eq!(m["to"], "李雷 <li@example.net>");
    let raw = m["raw_headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "Subject")
        .unwrap()[1]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        raw.is_ascii() && raw.to_ascii_lowercase().contains("=?utf-8?"),
        "raw Subject: {raw}"
    );
    let text = m["parts"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("受影响的服务") && text.contains("2026-12-01 02:00 CST (UTC+08:00)"),
        "{text}"
    );
    assert_eq!(m["parts"][0]["charset"], "utf-8");
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with openssl.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (scripts/test installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=upkeep test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

async fn tls_sink(mode: &str, dir: &Path) -> Helper {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    Helper::start(
        "smtp_sink.py",
        &[
            mode,
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "upkeep:correct horse",
        ],
    )
    .await
}

#[tokio::test]
async fn starttls_and_tls_with_a_password_from_the_environment() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let ca = certs.path().join("ca.pem");
    let auth = format!(
        "username = \"upkeep\"\npassword_env = \"SMTP_PW\"\nca_file = \"{}\"",
        ca.display()
    );
    let pw = [("SMTP_PW", "correct horse")];
    for (mode, scheme) in [
        ("--starttls", "smtp+starttls"),
        ("--starttls", "submission"),
        ("--tls", "smtps"),
    ] {
        let sink = tls_sink(mode, certs.path()).await;
        let mail = build(
            &smtp_config(&format!("{scheme}://127.0.0.1:{}", sink.port), &auth),
            env(&pw),
        );
        let sent = mail
            .send(&subscriber(), &rendered(Lang::En), &key("k"))
            .await;
        assert!(
            sent.is_ok(),
            "{scheme}: {sent:?}\n{}",
            std::fs::read_to_string(sink.dir.path().join("stderr.log")).unwrap()
        );
        let m = sink.last();
        assert_eq!(m["tls"], true, "{scheme}: {m}");
        assert_eq!(m["authenticated"], true, "{scheme}: {m}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_an_unknown_ca_is_retried() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let sink = tls_sink("--starttls", certs.path()).await;
    let url = format!("smtp+starttls://127.0.0.1:{}", sink.port);
    let ca = certs.path().join("ca.pem");

    let wrong = format!(
        "username = \"upkeep\"\npassword_env = \"SMTP_PW\"\nca_file = \"{}\"",
        ca.display()
    );
    let mail = build(
        &smtp_config(&url, &wrong),
        env(&[("SMTP_PW", "Tr0ub4dor&3")]),
    );
    let e = mail
        .send(&subscriber(), &rendered(Lang::En), &key("k"))
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(
        !format!("{e:?}").contains("Tr0ub4dor"),
        "the password leaked: {e:?}"
    );

    // Without the CA the certificate is not trusted: nothing is sent, and the notice waits.
    let untrusted = "username = \"upkeep\"\npassword_env = \"SMTP_PW\"";
    let mail = build(
        &smtp_config(&url, untrusted),
        env(&[("SMTP_PW", "correct horse")]),
    );
    let e = mail
        .send(&subscriber(), &rendered(Lang::En), &key("k"))
        .await
        .unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert!(sink.records().is_empty());
}
