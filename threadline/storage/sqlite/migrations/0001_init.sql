CREATE TABLE assistants (
    assistant_id TEXT PRIMARY KEY,
    graph_id TEXT NOT NULL,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX assistants_graph_id ON assistants (graph_id);
CREATE INDEX assistants_created_at ON assistants (created_at);

CREATE TABLE assistant_versions (
    assistant_id TEXT NOT NULL REFERENCES assistants (assistant_id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    graph_id TEXT NOT NULL,
    config TEXT NOT NULL,
    context TEXT NOT NULL,
    metadata TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (assistant_id, version)
);

CREATE TABLE threads (
    thread_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state_updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    "values" TEXT,
    interrupts TEXT NOT NULL,
    error TEXT,
    ttl TEXT,
    expires_at TEXT
);
CREATE INDEX threads_created_at ON threads (created_at);
CREATE INDEX threads_updated_at ON threads (updated_at);
CREATE INDEX threads_status ON threads (status);
CREATE INDEX threads_expires_at ON threads (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads (thread_id) ON DELETE CASCADE,
    assistant_id TEXT NOT NULL,
    metadata TEXT NOT NULL,
    status TEXT NOT NULL,
    kwargs TEXT NOT NULL,
    multitask_strategy TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- the queue: a run may start once not_before has passed
    not_before TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    worker_id TEXT,
    lease_expires_at TEXT,
    cancel_action TEXT,
    -- what join and wait return: final values, or __error__ / __interrupt__
    output TEXT,
    started_at TEXT,
    ended_at TEXT
);
CREATE INDEX runs_thread ON runs (thread_id, created_at);
CREATE INDEX runs_queue ON runs (status, not_before);
CREATE UNIQUE INDEX runs_one_running_per_thread ON runs (thread_id) WHERE status = 'running';
