-- Crons: schedules that create ordinary runs. `payload` is the run request as given
-- (with `config.configurable.cron_id` stamped); the scheduler claims a due cron by moving
-- `next_run_date` forward with a compare-and-set UPDATE, so each firing happens once.
CREATE TABLE crons (
    cron_id TEXT PRIMARY KEY,
    assistant_id TEXT NOT NULL REFERENCES assistants (assistant_id) ON DELETE CASCADE,
    -- NULL: a stateless cron (a new thread per firing)
    thread_id TEXT REFERENCES threads (thread_id) ON DELETE CASCADE,
    user_id TEXT,
    schedule TEXT NOT NULL,
    timezone TEXT,
    end_time TIMESTAMPTZ,
    payload JSONB NOT NULL,
    metadata JSONB NOT NULL,
    on_run_completed TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    next_run_date TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX crons_due ON crons (next_run_date) WHERE enabled;
CREATE INDEX crons_assistant ON crons (assistant_id);
CREATE INDEX crons_thread ON crons (thread_id);
CREATE INDEX crons_created_at ON crons (created_at);
-- search by metadata: `metadata @> :filter`
CREATE INDEX crons_metadata ON crons USING GIN (metadata jsonb_path_ops);
