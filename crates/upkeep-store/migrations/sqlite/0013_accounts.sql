-- Admin accounts (issue 17, item 4): the people who sign in to the admin pages at /admin.
-- `password` is an argon2id PHC string (salt and parameters inside it); the password itself is
-- never stored. A session row is one signed-in browser: `hash` is the SHA-256 (hex) of the
-- cookie's random secret, so a copy of the database opens no session; `csrf` is the token its
-- forms carry. Sessions are tied to the user's row id, not its name: a user removed and added
-- again under the same name does not get the old sessions back. Removing a user or changing
-- its password deletes its sessions in the same transaction.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    node       TEXT NOT NULL,
    name       TEXT NOT NULL,
    password   TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (node, name)
);
CREATE TABLE sessions (
    hash       TEXT PRIMARY KEY,
    node       TEXT NOT NULL,
    user_id    INTEGER NOT NULL,
    csrf       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (node, user_id);
