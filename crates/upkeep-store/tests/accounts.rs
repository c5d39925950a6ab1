//! Admin users and sessions on every engine: a name is taken once per node, a session is found
//! only by its hash, before it expires and while its user exists, and a password change or a
//! removal ends the user's sessions (a user added again under the same name gets none back).

use upkeep_store::{Accounts, NewSession};

mod engines;

use engines::*;

fn session<'a>(user: &'a str, hash: &'a str, now: i64, expires: i64) -> NewSession<'a> {
    NewSession {
        user,
        hash,
        csrf: "csrf-token",
        now: t(now),
        expires: t(expires),
    }
}

#[tokio::test]
async fn users_and_sessions_live_and_end_together() {
    on_every_engine(async |at, node| {
        let store = upkeep_store::open(&at, &node).await.unwrap();
        assert!(store.add_user("ada", "$argon2id$one", t(0)).await.unwrap());
        assert!(!store.add_user("ada", "$argon2id$two", t(1)).await.unwrap());
        assert!(store.add_user("bob", "$argon2id$bob", t(2)).await.unwrap());
        assert_eq!(
            store.password_hash("ada").await.unwrap().as_deref(),
            Some("$argon2id$one")
        );
        assert_eq!(store.password_hash("eve").await.unwrap(), None);

        assert!(
            store
                .open_session(session("ada", "h1", 10, 1000))
                .await
                .unwrap()
        );
        assert!(
            store
                .open_session(session("bob", "h2", 10, 1000))
                .await
                .unwrap()
        );
        assert!(
            !store
                .open_session(session("eve", "h3", 10, 1000))
                .await
                .unwrap()
        );
        let found = store.session("h1", t(20)).await.unwrap().unwrap();
        assert_eq!(
            (found.user.as_str(), found.csrf.as_str()),
            ("ada", "csrf-token")
        );
        assert_eq!(store.session("h1", t(1000)).await.unwrap(), None, "expired");
        assert_eq!(store.session("nope", t(20)).await.unwrap(), None);
        let users = store.users(t(20)).await.unwrap();
        let listed: Vec<_> = users
            .iter()
            .map(|u| (u.name.as_str(), u.sessions))
            .collect();
        assert_eq!(listed, [("ada", 1), ("bob", 1)]);

        // A new password ends ada's sessions, not bob's.
        assert!(store.set_password("ada", "$argon2id$new").await.unwrap());
        assert!(!store.set_password("eve", "$argon2id$x").await.unwrap());
        assert_eq!(store.session("h1", t(20)).await.unwrap(), None);
        assert!(store.session("h2", t(20)).await.unwrap().is_some());

        // A logout ends one session.
        assert!(
            store
                .open_session(session("ada", "h4", 30, 1000))
                .await
                .unwrap()
        );
        store.close_session("h4").await.unwrap();
        assert_eq!(store.session("h4", t(40)).await.unwrap(), None);

        // Removing bob ends his session; bob added again does not get it back.
        assert!(store.remove_user("bob").await.unwrap());
        assert!(!store.remove_user("bob").await.unwrap());
        assert_eq!(store.session("h2", t(20)).await.unwrap(), None);
        assert!(
            store
                .add_user("bob", "$argon2id$bob2", t(50))
                .await
                .unwrap()
        );
        assert_eq!(store.session("h2", t(60)).await.unwrap(), None);

        // Another node sharing the database sees none of it.
        let other = upkeep_store::open(&at, &engines::node()).await.unwrap();
        assert_eq!(other.users(t(60)).await.unwrap(), []);
        assert_eq!(other.password_hash("ada").await.unwrap(), None);
    })
    .await;
}
