-- Threadline's tables on PostgreSQL. The same columns as the SQLite schema, with jsonb
-- for JSON and timestamptz for times. LangGraph's saver creates its own tables
-- (checkpoints, checkpoint_blobs, checkpoint_writes) in the same database.

CREATE TABLE assistants (
    assistant_id TEXT PRIMARY KEY,
    graph_id TEXT NOT NULL,
    config JSONB NOT NULL,
    context JSONB NOT NULL,
    metadata JSONB NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX assistants_graph_id ON assistants (graph_id);
CREATE INDEX assistants_created_at ON assistants (created_at);
-- search by metadata: `metadata @> :filter`
CREATE INDEX assistants_metadata ON assistants USING GIN (metadata jsonb_path_ops);

CREATE TABLE assistant_versions (
    assistant_id TEXT NOT NULL REFERENCES assistants (assistant_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    graph_id TEXT NOT NULL,
    config JSONB NOT NULL,
    context JSONB NOT NULL,
    metadata JSONB NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE threads (
    thread_id TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    state_updated_at TIMESTAMPTZ NOT NULL,
    metadata JSONB NOT NULL,
    status TEXT NOT NULL,
    config JSONB NOT NULL,
    "values" JSONB,
    interrupts JSONB NOT NULL,
    error JSONB,
    ttl JSONB,
    expires_at TIMESTAMPTZ
);
CREATE INDEX threads_created_at ON threads (created_at);
CREATE INDEX threads_updated_at ON threads (updated_at);
CREATE INDEX threads_status ON threads (status);
CREATE INDEX threads_expires_at ON threads (expires_at) WHERE expires_at IS NOT NULL;
-- search by metadata: `metadata @> :filter`
CREATE INDEX threads_metadata ON threads USING GIN (metadata jsonb_path_ops);

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    assistant_id TEXT NOT NULL,
    metadata JSONB NOT NULL,
    status TEXT NOT NULL,
    kwargs JSONB NOT NULL,
    multitask_strategy TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    -- the queue: a run may start once not_before has passed
    not_before TIMESTAMPTZ NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    lease_expires_at TIMESTAMPTZ,
    cancel_action TEXT,
    -- what join and wait return: final values, or __error__ / __interrupt__
    output JSONB,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ
);
CREATE INDEX runs_thread ON runs (thread_id, created_at);
-- the claim scans only pending runs, oldest first
CREATE INDEX runs_pending ON runs (created_at) WHERE status = 'pending';
CREATE INDEX runs_queue ON runs (status, not_before);
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
