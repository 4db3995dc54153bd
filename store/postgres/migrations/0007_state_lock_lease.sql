-- When a state lock was last taken or renewed: a task's lock is a lease,
-- renewed by its runner while the command holding it runs, that the server
-- lets no one take over until it has gone unrenewed for a while. A lock
-- stored before counts as renewed when it was taken.
ALTER TABLE state_locks ADD COLUMN renewed_at timestamptz;
UPDATE state_locks SET renewed_at = created_at;
ALTER TABLE state_locks ALTER COLUMN renewed_at SET NOT NULL;
