-- The outbox (issue 16): every notice to a person is first a row, one per notice, channel and
-- recipient, inserted in the transaction that decides the notice (a window's step, an
-- incident event with the planner's cursor). Dispatchers lease rows (`lease_owner`,
-- `lease_until_ms`: a dispatcher that dies or hangs hands its rows on when the lease ends),
-- send with `idem_key` as the idempotency key (the mail's Message-ID) and mark a row `sent`
-- only after the channel confirmed it. `state`: pending (due at `next_ms`), sending (leased),
-- sent, failed (a permanent refusal, or given up). `subject` names what the notice is about
-- (`incident:web:<since>`), so an incident's notices are damped together; `due_ms` is when
-- it was planned to go out (after damping), `takeovers` counts leases taken from another
-- dispatcher (each a possible resend). `notice` is the notice as JSON (nothing queries it).
CREATE TABLE outbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    node           TEXT NOT NULL,
    channel        TEXT NOT NULL,
    recipient      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    notice         TEXT NOT NULL,
    idem_key       TEXT NOT NULL UNIQUE,
    state          TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    takeovers      INTEGER NOT NULL DEFAULT 0,
    due_ms         INTEGER NOT NULL,
    next_ms        INTEGER NOT NULL,
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    last_error     TEXT,
    delivery       TEXT,
    created_ms     INTEGER NOT NULL,
    sent_ms        INTEGER
);
CREATE INDEX outbox_due ON outbox (node, channel, state, next_ms);
CREATE INDEX outbox_subject ON outbox (node, subject);
