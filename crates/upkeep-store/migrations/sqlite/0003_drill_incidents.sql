-- Incidents a drill caused: kept, shown as such, and never to be routed to people.
ALTER TABLE incidents ADD COLUMN drill INTEGER NOT NULL DEFAULT 0;
