-- Thread search by status in the default order (newest first): this index hands the page
-- over in order, where threads_status left SQLite sorting every thread with that status
-- (bench/scaleout.py, 100,000 threads, 70% of them idle: 33 ms for a page of 10, 0.1 ms
-- with this index). It serves `status = :status` alone as well, counts included, so it
-- replaces threads_status.
CREATE INDEX threads_status_created_at ON threads (status, created_at, thread_id);
DROP INDEX threads_status;
