-- The webhook outbox: a row is written in the transaction that records a run's end, and
-- the deliverer of any process claims it when due (by moving next_attempt_at past a short
-- lease), POSTs it, then marks it delivered or schedules a retry. next_attempt_at NULL:
-- nothing more to do (delivered, or given up). No foreign key to runs: a stateless run
-- and its thread may be deleted before the delivery happens.
CREATE TABLE webhook_deliveries (
    delivery_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    delivered_at TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at);
