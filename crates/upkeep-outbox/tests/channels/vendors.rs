//! Each HTTP kind's own rules: signatures checked by Python's hmac as the vendors document
//! them, vendors' rate limits in 200 answers, idempotency keys, Telegram's chats.

use std::time::Duration;

use upkeep_core::i18n::Lang;
use upkeep_outbox::Recipient;

use crate::support::{Helper, build, env, key, rendered, try_build};

#[tokio::test]
async fn the_webhook_is_signed_and_resends_carry_the_same_key() {
    let rx = Helper::start("receiver.py", &[]).await;
    let notice = rendered(Lang::ZhCn);
    let hook = build(
        &format!(
            "kind = \"webhook\"\nurl = \"{}/webhook\"\nsecret_env = \"WEBHOOK_SECRET\"",
            rx.base()
        ),
        env(&[]),
    );
    for _ in 0..2 {
        hook.send(&Recipient::group(), &notice, &key("row-17.attempt"))
            .await
            .unwrap();
    }
    let records = rx.records();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["signature_ok"], true, "{r}");
        assert_eq!(r["headers"]["idempotency-key"], "row-17.attempt");
        assert_eq!(r["json"]["idempotency_key"], "row-17.attempt");
        // Every field, structured, exactly as the notice serializes.
        assert_eq!(
            r["json"]["notice"],
            serde_json::to_value(&notice.notice).unwrap()
        );
        assert_eq!(r["json"]["subject"], notice.subject.as_str());
    }

    // Signed with another secret: the receiver's own check refuses it, and that is final.
    let forged = build(
        &format!(
            "kind = \"webhook\"\nurl = \"{}/webhook\"\nsecret_env = \"OTHER\"",
            rx.base()
        ),
        env(&[("OTHER", "not-the-secret")]),
    );
    let e = forged
        .send(&Recipient::group(), &notice, &key("k"))
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert_eq!(rx.last()["signature_ok"], false);
}

#[tokio::test]
async fn dingtalk_and_feishu_signatures_match_pythons() {
    let rx = Helper::start("receiver.py", &[]).await;
    let notice = rendered(Lang::En);
    let dingtalk = |secret: &str| {
        build(
            "kind = \"dingtalk\"\nurl_env = \"URL\"\nsecret_env = \"S\"",
            env(&[
                ("URL", &format!("{}/dingtalk?access_token=t", rx.base())),
                ("S", secret),
            ]),
        )
    };
    let feishu = |secret: &str| {
        build(
            "kind = \"feishu\"\nurl_env = \"URL\"\nsecret_env = \"S\"",
            env(&[
                ("URL", &format!("{}/feishu/hook/h", rx.base())),
                ("S", secret),
            ]),
        )
    };
    let group = Recipient::group();

    dingtalk(crate::support::secret("DINGTALK_SECRET"))
        .send(&group, &notice, &key("k"))
        .await
        .unwrap();
    let r = rx.last();
    assert_eq!(r["signature_ok"], true, "{r}");
    assert_eq!(r["query"]["access_token"], "t");
    assert_eq!(r["json"]["msgtype"], "markdown");
    assert_eq!(r["json"]["markdown"]["title"], notice.subject.as_str());
    let e = dingtalk("SECwrong")
        .send(&group, &notice, &key("k"))
        .await
        .unwrap_err();
    assert!(e.is_permanent() && e.to_string().contains("310000"), "{e}");
    assert_eq!(rx.last()["signature_ok"], false);

    feishu(crate::support::secret("FEISHU_SECRET"))
        .send(&group, &notice, &key("k"))
        .await
        .unwrap();
    let r = rx.last();
    assert_eq!(r["signature_ok"], true, "{r}");
    assert_eq!(r["json"]["msg_type"], "interactive");
    assert_eq!(
        r["json"]["card"]["header"]["title"]["content"],
        notice.subject.as_str()
    );
    assert_eq!(r["json"]["card"]["header"]["template"], "red");
    let e = feishu("wrong")
        .send(&group, &notice, &key("k"))
        .await
        .unwrap_err();
    assert!(e.is_permanent() && e.to_string().contains("19021"), "{e}");
    assert_eq!(rx.last()["signature_ok"], false);
}

#[tokio::test]
async fn vendor_rate_limits_in_a_200_are_retried() {
    let rx = Helper::start("receiver.py", &[]).await;
    let notice = rendered(Lang::En);
    let limited = format!("{}/answer/vendor-limit", rx.base());
    let group = Recipient::group();
    let cases = [
        (
            "wecom",
            format!("{limited}/wecom?key=wecom-key"),
            "",
            Some(60),
        ),
        (
            "dingtalk",
            format!("{limited}/dingtalk?access_token=t"),
            "secret_env = \"DINGTALK_SECRET\"",
            Some(600),
        ),
        (
            "feishu",
            format!("{limited}/feishu/hook/h"),
            "secret_env = \"FEISHU_SECRET\"",
            None,
        ),
    ];
    for (kind, url, extra, delay) in cases {
        let ch = build(
            &format!("kind = \"{kind}\"\nurl_env = \"URL\"\n{extra}"),
            env(&[("URL", &url)]),
        );
        let e = ch.send(&group, &notice, &key("k")).await.unwrap_err();
        assert!(!e.is_permanent(), "{kind}: {e}");
        assert_eq!(
            e.retry_delay(),
            delay.map(Duration::from_secs),
            "{kind}: {e}"
        );
    }
    // Telegram says how long to wait in its body, not in a header.
    let tg = build(
        &format!(
            "kind = \"telegram\"\ntoken_env = \"TELEGRAM_TOKEN\"\nchat_id = \"@upkeep_status\"\nbase_url = \"{}/answer/telegram-429/5\"",
            rx.base()
        ),
        env(&[]),
    );
    let e = tg.send(&group, &notice, &key("k")).await.unwrap_err();
    assert_eq!(e.retry_delay(), Some(Duration::from_secs(5)), "{e}");
}

#[tokio::test]
async fn a_wrong_bot_key_is_permanent() {
    let rx = Helper::start("receiver.py", &[]).await;
    let wecom = build(
        "kind = \"wecom\"\nurl_env = \"URL\"",
        env(&[("URL", &format!("{}/wecom?key=revoked", rx.base()))]),
    );
    let e = wecom
        .send(&Recipient::group(), &rendered(Lang::En), &key("k"))
        .await
        .unwrap_err();
    assert!(e.is_permanent() && e.to_string().contains("93000"), "{e}");
    let tg = build(
        &format!(
            "kind = \"telegram\"\ntoken_env = \"T\"\nchat_id = \"1\"\nbase_url = \"{}\"",
            rx.base()
        ),
        env(&[("T", "999:revoked")]),
    );
    let e = tg
        .send(&Recipient::group(), &rendered(Lang::En), &key("k"))
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(!e.to_string().contains("revoked"), "the token leaked: {e}");
}

#[tokio::test]
async fn telegram_sends_to_the_recipients_chat_or_the_configured_one() {
    let rx = Helper::start("receiver.py", &[]).await;
    let notice = rendered(Lang::ZhCn);
    let tg = build(
        &format!(
            "kind = \"telegram\"\ntoken_env = \"TELEGRAM_TOKEN\"\nchat_id = \"-100123\"\nbase_url = \"{}\"",
            rx.base()
        ),
        env(&[]),
    );
    let d = tg
        .send(&Recipient::group(), &notice, &key("k"))
        .await
        .unwrap();
    assert_eq!(d.id.as_deref(), Some("1"));
    assert_eq!(rx.last()["json"]["chat_id"], "-100123");
    assert_eq!(rx.last()["json"]["text"], notice.chat_text.as_str());
    let d = tg
        .send(&Recipient::address("4242"), &notice, &key("k"))
        .await
        .unwrap();
    assert_eq!(d.id.as_deref(), Some("2"));
    assert_eq!(rx.last()["json"]["chat_id"], "4242");
    let e = tg
        .send(&Recipient::address("not a chat"), &notice, &key("k"))
        .await
        .unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert_eq!(
        rx.records().len(),
        2,
        "an invalid chat must not reach Telegram"
    );
}

#[tokio::test]
async fn slack_gets_text_and_blocks() {
    let rx = Helper::start("receiver.py", &[]).await;
    let notice = rendered(Lang::En);
    let slack = build(
        "kind = \"slack\"\nurl_env = \"U\"",
        env(&[("U", &format!("{}/slack/T/B/x", rx.base()))]),
    );
    slack
        .send(&Recipient::group(), &notice, &key("k"))
        .await
        .unwrap();
    let j = &rx.last()["json"];
    assert_eq!(j["text"], notice.chat_text.as_str());
    assert_eq!(j["blocks"][0]["type"], "header");
    assert_eq!(j["blocks"][0]["text"]["text"], notice.subject.as_str());
    assert_eq!(j["blocks"][1]["text"]["type"], "mrkdwn");
}

#[test]
fn bad_bot_configs_report_every_problem() {
    let e = try_build(
        "kind = \"dingtalk\"\nurl_env = \"NOPE\"\nsecret_env = \"S\"\nsecret_file = \"f\"\ntimeout = \"forever\"",
        env(&[]),
    )
    .err()
    .unwrap();
    let text = e.to_string();
    assert_eq!(e.problems.len(), 3, "{text}");
    assert!(
        text.contains("channel test (url_env): the environment variable NOPE is not set"),
        "{text}"
    );
    assert!(
        text.contains("secret_env and secret_file both name the secret"),
        "{text}"
    );
    assert!(text.contains("timeout `forever`"), "{text}");
}
