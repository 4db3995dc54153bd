-- The fence of the task attempt that holds a state lock: a later attempt
-- of the task may take over an earlier one's lock, never the reverse.
ALTER TABLE state_locks ADD COLUMN fence bigint NOT NULL DEFAULT 0;
