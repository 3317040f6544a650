"""Crons, driven through `langgraph_sdk` (`client.crons.*`, raw HTTP for what the SDK hides)
against real `threadline serve` processes, on each backend.

The cron servers here tick every 0.2 s and accept 6-field schedules whose last field is
the second (THREADLINE_CRON_ALLOW_SECONDS=1, a testing aid), so firings take seconds, not
minutes. Every test makes an assistant of its own and filters on it.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError, UnprocessableEntityError

from tests.serverproc import ServerProcess
from threadline.ids import system_assistant_id

CRON_ENV = {"THREADLINE_CRON_TICK_SECONDS": "0.2", "THREADLINE_CRON_ALLOW_SECONDS": "1"}
CRON_KEYS = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "user_id",
    "end_time",
    "schedule",
    "timezone",
    "payload",
    "next_run_date",
    "metadata",
    "on_run_completed",
    "enabled",
    "created_at",
    "updated_at",
}
FAR = "0 0 1 1 *"  # once a year: never fires during a test
UTC = datetime.UTC


@pytest.fixture(scope="module")
def cron_server(backend: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(backend=backend, env=CRON_ENV).start()
    yield proc
    proc.stop()


@pytest.fixture
async def crons(cron_server: ServerProcess) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=cron_server.url, api_key=None)
    yield sdk
    await sdk.http.client.aclose()


@pytest.fixture
async def raw(cron_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cron_server.url, timeout=30) as http:
        yield http


async def own_assistant(client: LangGraphClient, graph_id: str = "echo") -> str:
    assistant = await client.assistants.create(graph_id=graph_id)
    return str(assistant["assistant_id"])


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value)


def once_at(moment: datetime.datetime) -> str:
    """A 6-field schedule (seconds last) that fires once, at `moment` (UTC)."""
    m = moment.astimezone(UTC)
    return f"{m.minute} {m.hour} {m.day} {m.month} * {m.second}"


def soon(seconds: float = 2.0) -> datetime.datetime:
    return (datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds)).replace(
        microsecond=0
    ) + datetime.timedelta(seconds=1)


async def eventually(check: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {check.__name__}")
        await asyncio.sleep(interval)


# --- create / read ----------------------------------------------------------------------


async def test_info_says_crons(crons: LangGraphClient, raw: httpx.AsyncClient) -> None:
    info = (await raw.get("/info")).json()
    assert info["flags"]["crons"] is True


async def test_create_stateless_cron(crons: LangGraphClient, raw: httpx.AsyncClient) -> None:
    assistant_id = await own_assistant(crons)
    before = datetime.datetime.now(UTC)
    cron = await crons.crons.create(
        assistant_id,
        schedule="*/5 * * * *",
        input={"messages": [{"role": "user", "content": "hi"}]},
        metadata={"owner": "t"},
        config={"tags": ["x"], "configurable": {"k": "v"}},
        context={"c": 1},
        interrupt_before=["echo"],
        stream_mode="updates",
        durability="sync",
    )
    assert set(cron) == CRON_KEYS
    cron_id = cron["cron_id"]
    assert cron["assistant_id"] == assistant_id
    assert cron["thread_id"] is None
    assert cron["user_id"] == ""
    assert cron["on_run_completed"] == "delete"
    assert cron["enabled"] is True
    assert cron["end_time"] is None
    assert cron["timezone"] is None
    assert cron["schedule"] == "*/5 * * * *"
    assert cron["metadata"] == {"owner": "t"}
    assert cron["created_at"] == cron["updated_at"]
    next_run = parse_time(cron["next_run_date"])
    assert next_run > before
    assert next_run - before <= datetime.timedelta(minutes=5)
    assert next_run.minute % 5 == 0 and next_run.second == 0
    payload = cron["payload"]
    assert payload["assistant_id"] == assistant_id
    assert payload["schedule"] == "*/5 * * * *"
    assert payload["input"] == {"messages": [{"role": "user", "content": "hi"}]}
    assert payload["config"] == {"tags": ["x"], "configurable": {"k": "v", "cron_id": cron_id}}
    assert payload["context"] == {"c": 1}
    assert payload["metadata"] == {"owner": "t"}
    assert payload["interrupt_before"] == ["echo"]
    assert payload["stream_mode"] == "updates"
    assert payload["durability"] == "sync"

    got = await raw.get(f"/runs/crons/{cron_id}")
    assert got.status_code == 200
    assert got.json() == cron
    await crons.crons.delete(cron_id)


async def test_create_with_graph_name_end_time_and_keep(crons: LangGraphClient) -> None:
    end = datetime.datetime(2099, 1, 1, 12, tzinfo=UTC)
    cron = await crons.crons.create(
        "echo", schedule=FAR, end_time=end, on_run_completed="keep", enabled=False
    )
    try:
        assert cron["assistant_id"] == system_assistant_id("echo")
        assert cron["end_time"] == "2099-01-01T12:00:00+00:00"
        assert cron["on_run_completed"] == "keep"
        assert cron["enabled"] is False
        # the next run date is known even while disabled
        assert cron["next_run_date"].endswith("-01-01T00:00:00+00:00")
    finally:
        await crons.crons.delete(cron["cron_id"])


async def test_create_thread_cron(crons: LangGraphClient) -> None:
    assistant_id = await own_assistant(crons)
    thread = await crons.threads.create()
    cron = await crons.crons.create_for_thread(
        thread["thread_id"], assistant_id, schedule=FAR, multitask_strategy="reject"
    )
    assert set(cron) == CRON_KEYS
    assert cron["thread_id"] == thread["thread_id"]
    assert cron["on_run_completed"] is None
    assert cron["payload"]["multitask_strategy"] == "reject"
    assert cron["payload"]["config"] == {"configurable": {"cron_id": cron["cron_id"]}}
    await crons.crons.delete(cron["cron_id"])


def _next_weekly_local(
    now: datetime.datetime, tz: str, weekday: int, hour: int, minute: int = 0
) -> datetime.datetime:
    """The next `weekday` at hour:minute local time in `tz`, after `now`, in UTC; worked
    out without any cron library."""
    local_now = now.astimezone(zoneinfo.ZoneInfo(tz))
    for days in range(0, 15):
        day = (local_now + datetime.timedelta(days=days)).date()
        if day.weekday() != weekday:
            continue
        candidate = datetime.datetime(
            day.year, day.month, day.day, hour, minute, tzinfo=zoneinfo.ZoneInfo(tz)
        )
        if candidate > now:
            return candidate.astimezone(UTC)
    raise AssertionError("no candidate")


@pytest.mark.parametrize(
    ("tz", "schedule", "weekday", "hour", "minute"),
    [
        ("Europe/Paris", "0 9 * * 1", 0, 9, 0),
        ("America/New_York", "30 17 * * 5", 4, 17, 30),
        ("Asia/Kolkata", "15 6 * * 3", 2, 6, 15),
    ],
)
async def test_next_run_date_honours_timezone(
    crons: LangGraphClient, tz: str, schedule: str, weekday: int, hour: int, minute: int
) -> None:
    now = datetime.datetime.now(UTC)
    cron = await crons.crons.create("echo", schedule=schedule, timezone=tz)
    try:
        assert cron["timezone"] == tz
        expected = _next_weekly_local(now, tz, weekday, hour, minute)
        assert parse_time(cron["next_run_date"]) == expected
    finally:
        await crons.crons.delete(cron["cron_id"])


async def test_paris_in_winter_is_utc_plus_one(crons: LangGraphClient) -> None:
    """`0 9 * * 1` in Europe/Paris is 08:00 UTC in winter, 07:00 UTC in summer."""
    cron = await crons.crons.create("echo", schedule="0 9 * * 1", timezone="Europe/Paris")
    try:
        moment = parse_time(cron["next_run_date"])
        assert moment.weekday() == 0
        paris = moment.astimezone(zoneinfo.ZoneInfo("Europe/Paris"))
        winter = paris.utcoffset() == datetime.timedelta(hours=1)
        assert (moment.hour, moment.minute) == ((8, 0) if winter else (7, 0))
        assert (paris.hour, paris.minute) == (9, 0)
    finally:
        await crons.crons.delete(cron["cron_id"])


async def test_utc_is_the_default_zone(crons: LangGraphClient) -> None:
    cron = await crons.crons.create("echo", schedule="45 13 * * *")
    try:
        moment = parse_time(cron["next_run_date"])
        assert (moment.hour, moment.minute, moment.second) == (13, 45, 0)
        assert moment.utcoffset() == datetime.timedelta(0)
        assert moment - datetime.datetime.now(UTC) <= datetime.timedelta(days=1)
    finally:
        await crons.crons.delete(cron["cron_id"])


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["every minute", "* * * *", "61 * * * *", "* * * * * * *"])
async def test_bad_schedule_is_422(crons: LangGraphClient, schedule: str) -> None:
    with pytest.raises(UnprocessableEntityError) as exc:
        await crons.crons.create("echo", schedule=schedule)
    detail = exc.value.body["detail"]  # type: ignore[index]
    assert detail.startswith(f"Invalid cron schedule: '{schedule}'. Reason: ")
    assert "Example: '*/5 * * * *'" in detail


async def test_seconds_need_the_testing_flag(client: LangGraphClient) -> None:
    """The shared server runs without THREADLINE_CRON_ALLOW_SECONDS: 5 fields only."""
    with pytest.raises(UnprocessableEntityError) as exc:
        await client.crons.create("echo", schedule="* * * * * */5")
    assert "Invalid cron schedule" in exc.value.body["detail"]  # type: ignore[index]
    cron = await client.crons.create("echo", schedule="@hourly")
    await client.crons.delete(cron["cron_id"])


async def test_validation_and_missing_things(
    crons: LangGraphClient, raw: httpx.AsyncClient
) -> None:
    with pytest.raises(UnprocessableEntityError) as exc:
        await crons.crons.create("echo", schedule=FAR, timezone="Mars/Olympus")
    assert exc.value.body["detail"].startswith("Invalid timezone: 'Mars/Olympus'")  # type: ignore[index]
    with pytest.raises(NotFoundError):
        await crons.crons.create("00000000-0000-0000-0000-000000000000", schedule=FAR)
    with pytest.raises(NotFoundError):
        await crons.crons.create("no-such-graph", schedule=FAR)
    with pytest.raises(NotFoundError):
        await crons.crons.create_for_thread(
            "00000000-0000-0000-0000-000000000000", "echo", schedule=FAR
        )
    r = await raw.post("/threads/nope/runs/crons", json={"assistant_id": "echo", "schedule": FAR})
    assert r.status_code == 422
    r = await raw.post("/runs/crons", json={"schedule": FAR})
    assert r.status_code == 422
    r = await raw.post(
        "/runs/crons", json={"assistant_id": "echo", "schedule": FAR, "on_run_completed": "x"}
    )
    assert r.status_code == 422
    r = await raw.post(
        "/runs/crons", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json() == {"detail": "Invalid JSON in request body"}

    r = await raw.get("/runs/crons/nope")
    assert (r.status_code, r.json()) == (422, {"detail": "Invalid cron ID: must be a UUID"})
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await raw.get(f"/runs/crons/{missing}")).status_code == 404
    assert (await raw.patch(f"/runs/crons/{missing}", json={"enabled": True})).status_code == 404
    assert (await raw.delete(f"/runs/crons/{missing}")).status_code == 404
    r = await raw.post("/runs/crons/search", json={"limit": 0})
    assert r.status_code == 422
    r = await raw.post("/runs/crons/search", json={"select": ["bogus"]})
    assert r.status_code == 422
    r = await raw.post("/runs/crons/search", json={"sort_by": "schedule"})
    assert r.status_code == 422
    r = await raw.post("/runs/crons/search", json={"thread_id": "nope"})
    assert r.status_code == 422


# --- search / count ---------------------------------------------------------------------


async def test_search_and_count(crons: LangGraphClient, raw: httpx.AsyncClient) -> None:
    assistant_id = await own_assistant(crons)
    thread = await crons.threads.create()
    made = [
        await crons.crons.create(assistant_id, schedule="0 1 * * *", metadata={"n": 1}),
        await crons.crons.create(
            assistant_id, schedule="0 2 * * *", metadata={"n": 2, "odd": False}, enabled=False
        ),
        await crons.crons.create(assistant_id, schedule="0 3 * * *", metadata={"n": 3}),
        await crons.crons.create_for_thread(
            thread["thread_id"], assistant_id, schedule="0 4 * * *", metadata={"n": 4}
        ),
    ]
    ids = [c["cron_id"] for c in made]

    found = await crons.crons.search(assistant_id=assistant_id, limit=10)
    assert [c["cron_id"] for c in found] == ids[::-1]  # newest first
    assert await crons.crons.count(assistant_id=assistant_id) == 4
    assert await crons.crons.count(assistant_id=assistant_id, metadata={"n": 2}) == 1
    assert await crons.crons.count(thread_id=thread["thread_id"]) == 1

    by_thread = await crons.crons.search(thread_id=thread["thread_id"])
    assert [c["cron_id"] for c in by_thread] == [ids[3]]
    disabled = await crons.crons.search(assistant_id=assistant_id, enabled=False)
    assert [c["cron_id"] for c in disabled] == [ids[1]]
    enabled = await crons.crons.search(assistant_id=assistant_id, enabled=True)
    assert len(enabled) == 3
    by_meta = await crons.crons.search(assistant_id=assistant_id, metadata={"odd": False})
    assert [c["cron_id"] for c in by_meta] == [ids[1]]

    ascending = await crons.crons.search(
        assistant_id=assistant_id, sort_by="cron_id", sort_order="asc"
    )
    assert [c["cron_id"] for c in ascending] == sorted(ids)
    selected = await crons.crons.search(
        assistant_id=assistant_id, select=["cron_id", "enabled"], limit=1
    )
    assert selected == [{"cron_id": ids[3], "enabled": True}]

    r = await raw.post(
        "/runs/crons/search", json={"assistant_id": assistant_id, "limit": 3, "offset": 0}
    )
    assert r.headers["X-Pagination-Total"] == "4"
    assert r.headers["X-Pagination-Next"] == "3"
    r = await raw.post(
        "/runs/crons/search", json={"assistant_id": assistant_id, "limit": 3, "offset": 3}
    )
    assert len(r.json()) == 1
    assert r.headers["X-Pagination-Total"] == "4"
    assert "X-Pagination-Next" not in r.headers

    for cron_id in ids:
        await crons.crons.delete(cron_id)
    assert await crons.crons.count(assistant_id=assistant_id) == 0


async def test_search_by_graph_name(crons: LangGraphClient) -> None:
    cron = await crons.crons.create("config_echo", schedule=FAR, metadata={"tag": "by-graph"})
    try:
        found = await crons.crons.search(assistant_id="config_echo", metadata={"tag": "by-graph"})
        assert [c["cron_id"] for c in found] == [cron["cron_id"]]
    finally:
        await crons.crons.delete(cron["cron_id"])


# --- patch / delete ---------------------------------------------------------------------


async def test_patch(crons: LangGraphClient, raw: httpx.AsyncClient) -> None:
    assistant_id = await own_assistant(crons)
    cron = await crons.crons.create(
        assistant_id,
        schedule="0 12 * * *",
        input={"a": 1},
        metadata={"keep": 1},
        config={"configurable": {"old": True}},
        end_time=datetime.datetime(2099, 1, 1, tzinfo=UTC),
    )
    cron_id = cron["cron_id"]
    await asyncio.sleep(0.01)
    now = datetime.datetime.now(UTC)
    patched = await crons.crons.update(
        cron_id,
        schedule="30 7 * * *",
        timezone="America/New_York",
        metadata={"added": 2},
        input={"b": 2},
        config={"configurable": {"new": True}},
        end_time=None,
    )
    assert patched["schedule"] == "30 7 * * *"
    assert patched["timezone"] == "America/New_York"
    assert patched["metadata"] == {"keep": 1, "added": 2}
    assert patched["end_time"] is None
    assert patched["created_at"] == cron["created_at"]
    assert patched["updated_at"] > cron["updated_at"]
    moment = parse_time(patched["next_run_date"])
    local = moment.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (7, 30)
    assert now < moment <= now + datetime.timedelta(days=1)
    payload = patched["payload"]
    assert payload["input"] == {"b": 2}
    assert payload["config"] == {"configurable": {"new": True, "cron_id": cron_id}}
    assert payload["metadata"] == {"keep": 1, "added": 2}
    assert payload["schedule"] == "30 7 * * *"

    off = await crons.crons.update(cron_id, enabled=False)
    assert off["enabled"] is False
    assert off["next_run_date"] == patched["next_run_date"]
    on = await crons.crons.update(cron_id, enabled=True, on_run_completed="keep")
    assert on["enabled"] is True
    assert on["on_run_completed"] == "keep"

    with pytest.raises(UnprocessableEntityError):
        await crons.crons.update(cron_id, schedule="nope")
    with pytest.raises(UnprocessableEntityError):
        await crons.crons.update(cron_id, timezone="Nowhere/Land")
    r = await raw.patch(f"/runs/crons/{cron_id}", json={"enabled": None})
    assert r.status_code == 422
    assert (await raw.get(f"/runs/crons/{cron_id}")).json() == on

    thread = await crons.threads.create()
    thread_cron = await crons.crons.create_for_thread(
        thread["thread_id"], assistant_id, schedule=FAR
    )
    with pytest.raises(UnprocessableEntityError):
        await crons.crons.update(thread_cron["cron_id"], on_run_completed="delete")
    await crons.crons.delete(thread_cron["cron_id"])
    await crons.crons.delete(cron_id)


async def test_delete_and_cascades(crons: LangGraphClient, raw: httpx.AsyncClient) -> None:
    assistant_id = await own_assistant(crons)
    cron = await crons.crons.create(assistant_id, schedule=FAR)
    r = await raw.delete(f"/runs/crons/{cron['cron_id']}")
    assert (r.status_code, r.content) == (204, b"")
    assert (await raw.get(f"/runs/crons/{cron['cron_id']}")).status_code == 404
    with pytest.raises(NotFoundError):
        await crons.crons.delete(cron["cron_id"])

    # a thread's crons go with the thread, an assistant's with the assistant
    thread = await crons.threads.create()
    on_thread = await crons.crons.create_for_thread(thread["thread_id"], "echo", schedule=FAR)
    of_assistant = await crons.crons.create(assistant_id, schedule=FAR)
    await crons.threads.delete(thread["thread_id"])
    assert (await raw.get(f"/runs/crons/{on_thread['cron_id']}")).status_code == 404
    await crons.assistants.delete(assistant_id)
    assert (await raw.get(f"/runs/crons/{of_assistant['cron_id']}")).status_code == 404


# --- firing -----------------------------------------------------------------------------


async def _runs_of(client: LangGraphClient, thread_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await client.runs.list(thread_id, limit=100)]


async def test_thread_cron_fires_with_its_payload(crons: LangGraphClient) -> None:
    assistant_id = await own_assistant(crons, "config_echo")
    thread = await crons.threads.create()
    thread_id = thread["thread_id"]
    cron = await crons.crons.create_for_thread(
        thread_id,
        assistant_id,
        schedule="* * * * * *",  # every second
        input={},
        metadata={"from": "cron"},
        config={"tags": ["cron-tag"], "configurable": {"knob": "on"}},
        context={"ctx": 1},
        stream_mode=["values", "updates"],
        durability="sync",
        multitask_strategy="enqueue",
    )
    cron_id = cron["cron_id"]

    async def fired() -> list[dict[str, Any]]:
        return [r for r in await _runs_of(crons, thread_id) if r["status"] == "success"]

    try:
        runs = await eventually(fired)
    finally:
        await crons.crons.delete(cron_id)
    run = runs[-1]
    assert run["assistant_id"] == assistant_id
    assert run["metadata"]["from"] == "cron"
    assert run["multitask_strategy"] == "enqueue"
    kwargs = run["kwargs"]
    assert kwargs["config"]["configurable"]["cron_id"] == cron_id
    assert kwargs["config"]["configurable"]["knob"] == "on"
    assert "cron-tag" in kwargs["config"]["tags"]
    assert kwargs["stream_mode"] == ["values", "updates"]
    assert kwargs["durability"] == "sync"
    assert kwargs["input"] == {}

    state = await crons.threads.get_state(thread_id)
    values = state["values"]
    assert isinstance(values, dict)
    assert values["conf"]["cron_id"] == cron_id
    assert values["conf"]["knob"] == "on"
    assert values["conf"]["thread_id"] == thread_id
    assert values["ctx"]["ctx"] == 1
    assert "cron-tag" in values["tags"]


async def test_end_time_stops_and_disables(crons: LangGraphClient, raw: httpx.AsyncClient) -> None:
    assistant_id = await own_assistant(crons)
    thread = await crons.threads.create()
    end = soon(2.0)
    cron = await crons.crons.create_for_thread(
        thread["thread_id"], assistant_id, schedule="* * * * * *", input={}, end_time=end
    )
    cron_id = cron["cron_id"]

    async def disabled() -> bool:
        return (await raw.get(f"/runs/crons/{cron_id}")).json()["enabled"] is False

    await eventually(disabled, timeout=15)
    runs = await _runs_of(crons, thread["thread_id"])
    assert 1 <= len(runs) <= 4
    for run in runs:
        assert parse_time(run["created_at"]) < end + datetime.timedelta(seconds=1)
    await asyncio.sleep(1.5)
    assert len(await _runs_of(crons, thread["thread_id"])) == len(runs)
    await crons.crons.delete(cron_id)


async def test_disabled_cron_does_not_fire(crons: LangGraphClient) -> None:
    assistant_id = await own_assistant(crons)
    thread = await crons.threads.create()
    cron = await crons.crons.create_for_thread(
        thread["thread_id"], assistant_id, schedule="* * * * * *", input={}, enabled=False
    )
    await asyncio.sleep(2.5)
    assert await _runs_of(crons, thread["thread_id"]) == []
    # enabled again, it fires
    await crons.crons.update(cron["cron_id"], enabled=True)
    await eventually(lambda: _runs_of(crons, thread["thread_id"]), timeout=10)
    await crons.crons.delete(cron["cron_id"])


async def _threads_of(client: LangGraphClient, assistant_id: str) -> list[dict[str, Any]]:
    found = await client.threads.search(metadata={"assistant_id": assistant_id}, limit=100)
    return [dict(t) for t in found]


async def test_stateless_cron_keeps_its_thread(crons: LangGraphClient) -> None:
    assistant_id = await own_assistant(crons)
    cron = await crons.crons.create(
        assistant_id,
        schedule=once_at(soon()),
        input={"messages": [{"role": "user", "content": "from cron"}]},
        on_run_completed="keep",
        metadata={"kind": "keep"},
    )

    async def finished() -> list[dict[str, Any]]:
        return [t for t in await _threads_of(crons, assistant_id) if t["status"] == "idle"]

    threads = await eventually(finished)
    assert len(threads) == 1
    thread = threads[0]
    assert thread["values"]["messages"][-1]["content"] == "echo: from cron"
    runs = await _runs_of(crons, thread["thread_id"])
    assert len(runs) == 1
    assert runs[0]["status"] == "success"
    assert runs[0]["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    assert runs[0]["metadata"]["kind"] == "keep"
    await asyncio.sleep(1.0)  # kept, and fired once only
    assert [t["thread_id"] for t in await _threads_of(crons, assistant_id)] == [thread["thread_id"]]
    await crons.crons.delete(cron["cron_id"])


async def test_stateless_cron_deletes_its_thread(crons: LangGraphClient) -> None:
    assistant_id = await own_assistant(crons, "slow")
    cron = await crons.crons.create(
        assistant_id,
        schedule=once_at(soon()),
        input={},
        context={"steps": 10, "delay": 0.1},  # about a second: long enough to be seen
    )
    assert cron["on_run_completed"] == "delete"

    async def appeared() -> list[dict[str, Any]]:
        return await _threads_of(crons, assistant_id)

    threads = await eventually(appeared, interval=0.02)
    assert len(threads) == 1
    thread_id = threads[0]["thread_id"]

    async def gone() -> bool:
        try:
            await crons.threads.get(thread_id)
        except NotFoundError:
            return True
        return False

    await eventually(gone)
    await asyncio.sleep(1.0)
    assert await _threads_of(crons, assistant_id) == []
    await crons.crons.delete(cron["cron_id"])


# --- many processes ---------------------------------------------------------------------

_FIRED = re.compile(r"cron (\S+) fired for (\S+): run (\S+)")


def _firings(log: str, cron_id: str) -> list[tuple[str, str]]:
    """(scheduled time, run id) of each firing of `cron_id` a server logged."""
    return [(m[2], m[3]) for m in _FIRED.finditer(log) if m[1] == cron_id]


async def test_each_firing_happens_once_across_processes(backend: str) -> None:
    first = ServerProcess(backend=backend, env=CRON_ENV).start()
    second: ServerProcess | None = None
    try:
        second = ServerProcess(
            backend=backend, database_uri=first.database_uri, env=CRON_ENV
        ).start()
        one = get_client(url=first.url, api_key=None)
        two = get_client(url=second.url, api_key=None)
        try:
            assistant_id = await own_assistant(one)
            thread = await one.threads.create()
            end = soon(5.0)
            cron = await two.crons.create_for_thread(
                thread["thread_id"], assistant_id, schedule="* * * * * *", input={}, end_time=end
            )

            async def disabled() -> bool:
                return (await one.crons.search(assistant_id=assistant_id, enabled=False)) != []

            await eventually(disabled, timeout=20)
            await asyncio.sleep(0.5)
            runs = await _runs_of(one, thread["thread_id"])
        finally:
            await one.http.client.aclose()
            await two.http.client.aclose()
        firings = _firings(first.log(), cron["cron_id"]) + _firings(second.log(), cron["cron_id"])
        scheduled = [when for when, _ in firings]
        assert len(scheduled) == len(set(scheduled)), f"a firing happened twice: {firings}"
        assert sorted(run_id for _, run_id in firings) == sorted(r["run_id"] for r in runs)
        assert 3 <= len(runs) <= 7
        for run in runs:
            assert run["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    finally:
        if second is not None:
            second.stop()
        first.stop()
