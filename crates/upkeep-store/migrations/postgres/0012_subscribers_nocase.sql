-- One person, one subscriber (break-it, session 11): `Ann@X.org` and `ann@x.org` were two
-- subscribers and two mails. Addresses are compared without regard to case (subscribers'
-- addresses are ASCII, where lower() is the same on both engines), while the address is kept
-- as first written (its domain in lower case) to mail it. A unique index, not a lookup alone,
-- so that two subscriptions at once cannot both insert.
--
-- Rows already stored that differ in case alone are merged first: the one kept is confirmed
-- if any is, else the oldest. The others' rows still waiting in the outbox go with them
-- where the kept one has a row of the same notice (so nothing is mailed twice, and nothing
-- that only they were to get is lost).
DELETE FROM outbox WHERE state = 'pending' AND attempts = 0 AND idem_key LIKE 'sub-%'
    AND EXISTS (
        SELECT 1 FROM subscribers gone, subscribers kept, outbox other
        WHERE gone.node = outbox.node AND gone.email = outbox.recipient
            AND kept.node = gone.node AND lower(kept.email) = lower(gone.email)
            AND kept.id <> gone.id
            AND (
                (kept.confirmed_ms IS NOT NULL AND gone.confirmed_ms IS NULL)
                OR ((kept.confirmed_ms IS NULL) = (gone.confirmed_ms IS NULL) AND kept.id < gone.id)
            )
            AND other.node = outbox.node AND other.recipient = kept.email
            AND other.subject = outbox.subject AND other.kind = outbox.kind
            AND other.channel = outbox.channel
    );
DELETE FROM subscribers WHERE EXISTS (
    SELECT 1 FROM subscribers kept
    WHERE kept.node = subscribers.node AND lower(kept.email) = lower(subscribers.email)
        AND kept.id <> subscribers.id
        AND (
            (kept.confirmed_ms IS NOT NULL AND subscribers.confirmed_ms IS NULL)
            OR ((kept.confirmed_ms IS NULL) = (subscribers.confirmed_ms IS NULL)
                AND kept.id < subscribers.id)
        )
);
CREATE UNIQUE INDEX subscribers_email_nocase ON subscribers (node, lower(email));
