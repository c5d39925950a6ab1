-- Subscribers (issue 16): people who asked, through the public API, to hear about all services
-- (`services` = '[]') or some (a JSON array of names). A row is made unconfirmed
-- (`confirmed_ms` NULL) and confirmed by the link of the double opt-in mail; an unconfirmed
-- row older than the link's lifetime is deleted at the next subscription. Unsubscribing
-- deletes the row (no flag is kept). A confirmed subscriber gets one outbox row per notice
-- of its services, inserted in the transaction that decides the notice.
CREATE TABLE subscribers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    node         TEXT NOT NULL,
    email        TEXT NOT NULL,
    services     TEXT NOT NULL,
    lang         TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    confirmed_ms INTEGER,
    UNIQUE (node, email)
);
CREATE INDEX subscribers_confirmed ON subscribers (node, confirmed_ms);
CREATE INDEX outbox_recipient ON outbox (node, recipient, state);
