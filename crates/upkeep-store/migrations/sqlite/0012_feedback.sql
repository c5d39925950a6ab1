-- Feedback (issue 17): what people wrote in the status page's feedback form. `email` and
-- `service` are optional (NULL when not given); `address` is the client address the form came
-- from, kept for the operators who read it (rate limits are in memory, not here).
CREATE TABLE feedback (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node        TEXT NOT NULL,
    message     TEXT NOT NULL,
    email       TEXT,
    service     TEXT,
    lang        TEXT NOT NULL,
    address     TEXT,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX feedback_created ON feedback (node, created_ms);
