-- The event log of the PostgreSQL deployment without Redis (threadline/broker/postgres.py).
-- Transient like Redis without persistence: UNLOGGED (a crash empties them; a clean
-- restart keeps them), and the broker deletes a stream 120 s after its end, or a day
-- after its last event if nobody ends it (a thread's stream).

-- One row per stream: the last id handed out (ids are `<ms>-<seq>`, increasing within a
-- stream whichever process publishes) and when the end marker was written.
CREATE UNLOGGED TABLE stream_heads (
    stream TEXT PRIMARY KEY,
    last_ms BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    closed_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX stream_heads_closed_at ON stream_heads (closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX stream_heads_updated_at ON stream_heads (updated_at);

CREATE UNLOGGED TABLE stream_events (
    stream TEXT NOT NULL,
    ms BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (stream, ms, seq)
);

-- Who follows a stream now, from any process (thread streams are fed only when watched);
-- a process refreshes its entries while subscribed, so a dead one's lapse.
CREATE UNLOGGED TABLE stream_watchers (
    stream TEXT NOT NULL,
    watcher TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream, watcher)
);
CREATE INDEX stream_watchers_watcher ON stream_watchers (watcher);
