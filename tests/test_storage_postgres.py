"""The PostgreSQL connector: parameters, jsonb, migrations, and the claim under concurrency."""

from __future__ import annotations

import asyncio
import datetime
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests import serverproc
from threadline.ids import new_id
from threadline.serialization import utcnow
from threadline.storage.assistants import AssistantRepository
from threadline.storage.database import UniqueViolation
from threadline.storage.json_match import contains
from threadline.storage.postgres.database import MIGRATIONS, PostgresDatabase, to_pyformat
from threadline.storage.runs import RunRepository
from threadline.storage.threads import ThreadRepository

pytestmark = pytest.mark.skipif(
    serverproc.suite_backends() == ["sqlite"], reason="THREADLINE_TEST_BACKEND=sqlite"
)


@pytest.fixture
async def db() -> AsyncIterator[PostgresDatabase]:
    name = serverproc.create_database()
    database = PostgresDatabase(serverproc.postgres_uri(name), pool_size=25)
    await database.open()
    try:
        yield database
    finally:
        await database.close()
        serverproc.drop_database(name)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT :a, :b_2", "SELECT %(a)s, %(b_2)s"),
        ("SELECT :a::jsonb, x::text", "SELECT %(a)s::jsonb, x::text"),
        ("WHERE name LIKE '%x' || :n", "WHERE name LIKE '%%x' || %(n)s"),
        ("SELECT 'a:b', ':c', 'it''s :d' , :e", "SELECT 'a:b', ':c', 'it''s :d' , %(e)s"),
        (
            'SELECT "values", "a:b" FROM t WHERE x = :x',
            'SELECT "values", "a:b" FROM t WHERE x = %(x)s',
        ),
        ("SELECT 5 % 3, arr[1:2]", "SELECT 5 %% 3, arr[1:2]"),
        ("ESCAPE '\\' AND y = :y", "ESCAPE '\\' AND y = %(y)s"),
    ],
)
def test_parameters_become_pyformat(sql: str, expected: str) -> None:
    assert to_pyformat(sql) == expected


async def test_parameters_and_literals_reach_the_server(db: PostgresDatabase) -> None:
    row = await db.fetch_one(
        "SELECT :a::jsonb -> 'k' AS k, '50%' AS pct, ':notaparam' AS lit, :n + 1 AS n",
        {"a": '{"k": [1, 2]}', "n": 41},
    )
    assert row == {"k": [1, 2], "pct": "50%", "lit": ":notaparam", "n": 42}


async def test_migrations_are_applied_once(db: PostgresDatabase) -> None:
    await db.migrate()  # again: nothing to do
    rows = await db.fetch_all("SELECT version FROM threadline_migrations ORDER BY version")
    assert [r["version"] for r in rows] == sorted(p.stem for p in MIGRATIONS.glob("*.sql"))
    tables = {
        r["t"]
        for r in await db.fetch_all(
            "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert {"assistants", "threads", "runs", "checkpoints", "checkpoint_blobs"} <= tables
    indexes = {r["i"] for r in await db.fetch_all("SELECT indexname AS i FROM pg_indexes")}
    assert {"threads_metadata", "assistants_metadata", "runs_one_running_per_thread"} <= indexes


async def test_json_and_time_round_trip(db: PostgresDatabase) -> None:
    threads = ThreadRepository(db)
    now = utcnow()
    values = {"messages": [{"content": "héllo", "n": 1.5, "none": None}], "flag": True}
    row = await threads.insert(
        {
            "thread_id": new_id(),
            "created_at": now,
            "updated_at": now,
            "state_updated_at": now,
            "metadata": {"a": 1},
            "values": values,
        }
    )
    assert row is not None
    assert row["values"] == values and row["error"] is None and row["interrupts"] == {}
    assert row["created_at"] == now and row["created_at"].tzinfo == datetime.UTC
    got = await threads.get(row["thread_id"])
    assert got == row


CONTAINMENT_DOCS: list[dict[str, Any]] = [
    {"user": "a", "tags": ["x", "y"], "n": 1},
    {"user": "a", "tags": ["y"], "nested": {"k": {"deep": True}}},
    {"user": "b", "n": 1.0, "flag": False},
    {"user": "b", "tags": [], "nested": {"k": {"deep": False}, "other": 1}},
    {},
]
CONTAINMENT_FILTERS: list[dict[str, Any]] = [
    {"user": "a"},
    {"tags": ["y"]},
    {"tags": ["x", "y"]},
    {"tags": []},
    {"nested": {"k": {"deep": True}}},
    {"nested": {}},
    {"n": 1},
    {"flag": False},
    {"user": "a", "n": 1},
    {"missing": None},
]


async def test_metadata_containment_matches_the_embedded_rule(db: PostgresDatabase) -> None:
    threads = ThreadRepository(db)
    assistants = AssistantRepository(db)
    now = utcnow()
    ids = []
    for i, metadata in enumerate(CONTAINMENT_DOCS):
        thread_id = new_id()
        ids.append(thread_id)
        stamp = now + datetime.timedelta(seconds=i)
        await threads.insert(
            {
                "thread_id": thread_id,
                "created_at": stamp,
                "updated_at": stamp,
                "state_updated_at": stamp,
                "metadata": metadata,
            }
        )
        await assistants.insert(
            {
                "assistant_id": thread_id,
                "graph_id": "g",
                "config": {},
                "context": {},
                "metadata": metadata,
                "name": f"A_{i}%",
                "description": None,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    for wanted in CONTAINMENT_FILTERS:
        expected = {ids[i] for i, doc in enumerate(CONTAINMENT_DOCS) if contains(doc, wanted)}
        found = await threads.search(metadata=wanted, limit=100)
        assert {r["thread_id"] for r in found} == expected, wanted
        assert await threads.count(metadata=wanted) == len(expected)
        found = await assistants.search(
            graph_id=None,
            metadata=wanted,
            name=None,
            limit=100,
            offset=0,
            sort_by="created_at",
            sort_order="asc",
        )
        assert {r["assistant_id"] for r in found} == expected, wanted
    # case-insensitive substring, `%` and `_` taken literally
    assert await assistants.count(graph_id=None, metadata=None, name="a_1%") == 1
    assert await assistants.count(graph_id=None, metadata=None, name="a%") == 0


async def test_metadata_search_uses_the_gin_index(db: PostgresDatabase) -> None:
    async with db.transaction() as conn:
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = await conn.fetch_all(
            "EXPLAIN SELECT * FROM threads WHERE " + db.json_contains("metadata", "m"),
            {"m": db.json_param({"user": "a"})},
        )
    assert "threads_metadata" in " ".join(str(r) for r in plan)


async def test_json_path(db: PostgresDatabase) -> None:
    doc = db.json_param({"a": {"b": [10, {"c": "x"}]}, "n": None})
    for path, expected in [
        (["a", "b", 0], 10),
        (["a", "b", -1, "c"], "x"),
        (["a", "missing"], None),
        (["n"], None),
        ([], {"a": {"b": [10, {"c": "x"}]}, "n": None}),
    ]:
        row = await db.fetch_one(
            f"SELECT {db.json_path(':doc::jsonb', 'path')} AS v",
            {"doc": doc, "path": db.json_param(path)},
        )
        assert row is not None and row["v"] == expected, path


async def test_unique_violations_have_one_name(db: PostgresDatabase) -> None:
    await db.execute("CREATE TABLE u (k TEXT PRIMARY KEY)")
    await db.execute("INSERT INTO u VALUES (:k)", {"k": "x"})
    with pytest.raises(UniqueViolation):
        await db.execute("INSERT INTO u VALUES (:k)", {"k": "x"})
    with pytest.raises(UniqueViolation):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO u VALUES (:k)", {"k": "y"})
            await conn.execute("INSERT INTO u VALUES (:k)", {"k": "x"})
    assert await db.fetch_all("SELECT k FROM u") == [{"k": "x"}]  # rolled back whole


async def _queue(
    db: PostgresDatabase, threads_n: int, runs_per_thread: int
) -> list[dict[str, Any]]:
    threads, runs = ThreadRepository(db), RunRepository(db)
    start = utcnow() - datetime.timedelta(seconds=10)
    queued = []
    thread_ids = [new_id() for _ in range(threads_n)]
    for thread_id in thread_ids:
        await threads.insert(
            {
                "thread_id": thread_id,
                "created_at": start,
                "updated_at": start,
                "state_updated_at": start,
                "metadata": {},
            }
        )
    for i in range(threads_n * runs_per_thread):
        stamp = start + datetime.timedelta(milliseconds=i)
        run = {
            "run_id": new_id(),
            "thread_id": thread_ids[i % threads_n],
            "assistant_id": "a",
            "metadata": {},
            "kwargs": {},
            "multitask_strategy": "enqueue",
            "created_at": stamp,
            "updated_at": stamp,
            "not_before": stamp,
        }
        async with db.transaction() as conn:
            queued.append(await runs.insert(conn, run))
    return queued


async def test_concurrent_claims_never_run_two_runs_of_one_thread(db: PostgresDatabase) -> None:
    """20 claimers on 10 runs of 2 threads: each run once, one at a time per thread, in
    creation order per thread."""
    runs = RunRepository(db)
    queued = await _queue(db, threads_n=2, runs_per_thread=5)
    running: dict[str, str] = {}  # thread -> run
    started: list[dict[str, Any]] = []
    violations: list[str] = []

    async def claimer(n: int) -> None:
        while len(started) < len(queued):
            now = utcnow()
            run = await runs.claim(f"w{n}", now, now + datetime.timedelta(seconds=30))
            if run is None:
                await asyncio.sleep(random.uniform(0, 0.005))
                continue
            if run["thread_id"] in running:
                violations.append(f"{run['run_id']} started beside {running[run['thread_id']]}")
            running[run["thread_id"]] = run["run_id"]
            started.append(run)
            await asyncio.sleep(random.uniform(0, 0.01))
            del running[run["thread_id"]]
            async with db.transaction() as conn:
                await runs.finish(conn, run["run_id"], status="success", output=None, now=utcnow())

    await asyncio.wait_for(asyncio.gather(*(claimer(n) for n in range(20))), 60)
    assert violations == []
    assert sorted(r["run_id"] for r in started) == sorted(r["run_id"] for r in queued)
    for thread_id in {r["thread_id"] for r in queued}:
        assert [r["run_id"] for r in started if r["thread_id"] == thread_id] == [
            r["run_id"] for r in queued if r["thread_id"] == thread_id
        ]
    assert all(r["attempt"] == 1 for r in started)


async def test_simultaneous_claims_take_one_run_per_thread(db: PostgresDatabase) -> None:
    runs = RunRepository(db)
    queued = await _queue(db, threads_n=2, runs_per_thread=5)
    now = utcnow()
    lease = now + datetime.timedelta(seconds=30)
    claimed = await asyncio.gather(*(runs.claim(f"w{n}", now, lease) for n in range(20)))
    taken = [r for r in claimed if r is not None]
    assert sorted(r["thread_id"] for r in taken) == sorted({r["thread_id"] for r in queued})
    firsts = {r["thread_id"]: r["run_id"] for r in reversed(queued)}
    assert {r["run_id"] for r in taken} == set(firsts.values())


async def test_a_lost_race_on_the_unique_index_is_no_claim(db: PostgresDatabase) -> None:
    """Another transaction makes a run of the thread `running` while our claim is under
    way: our snapshot cannot see it, so only the unique index stands in the way, and the
    claim ends as no claim instead of an error."""
    runs = RunRepository(db)
    first, second = await _queue(db, threads_n=1, runs_per_thread=2)
    raised: list[Exception] = []
    fetch_one = db.fetch_one

    async def recording_fetch_one(*args: Any) -> Any:
        try:
            return await fetch_one(*args)
        except UniqueViolation as exc:
            raised.append(exc)
            raise

    db.fetch_one = recording_fetch_one  # type: ignore[method-assign]
    now = utcnow()
    async with db.transaction() as other:
        await other.execute(
            "UPDATE runs SET status = 'running' WHERE run_id = :id", {"id": second["run_id"]}
        )
        claim = asyncio.create_task(runs.claim("w", now, now + datetime.timedelta(seconds=30)))
        await asyncio.sleep(0.3)  # the claim now waits on the index entry `other` holds
        assert not claim.done()
    assert await claim is None
    assert len(raised) == 1
    assert (await runs.get(first["run_id"]))["status"] == "pending"  # type: ignore[index]


def test_migrate_command_creates_every_table() -> None:
    import psycopg

    from tests.fixtures.clirun import FIXTURE_CONFIG, run_cli

    name = serverproc.create_database()
    try:
        uri = serverproc.postgres_uri(name)
        for _ in range(2):  # the second time finds nothing to do
            result = run_cli("migrate", "--config", str(FIXTURE_CONFIG), "--database-uri", uri)
            assert result.returncode == 0, result.stderr
            assert f"database {uri} is up to date" in result.stdout
        with psycopg.connect(uri) as conn:
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
            }
        assert {
            "assistants",
            "threads",
            "runs",
            "threadline_migrations",
            "checkpoints",
            "checkpoint_blobs",
            "checkpoint_writes",
            "checkpoint_migrations",
        } <= tables
    finally:
        serverproc.drop_database(name)
    unreachable = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    result = run_cli("migrate", "--config", str(FIXTURE_CONFIG), "--database-uri", unreachable)
    assert result.returncode == 1
    assert "cannot migrate" in result.stderr and "Traceback" not in result.stderr
