"""Cron use cases, and the scheduler that fires them.

A cron is a schedule plus a run request (`payload`). Each firing is an ordinary run
(`core.runs.create_run`): on the cron's thread, with its `multitask_strategy`, or, for a
stateless cron, on a new thread that is deleted after the run unless `on_run_completed`
is `keep`. The run's `config.configurable.cron_id` names the cron.

Schedules are standard 5-field cron expressions (or `@hourly`-style aliases), read in the
cron's `timezone` (UTC by default). Two environment variables exist for tests:

  THREADLINE_CRON_TICK_SECONDS   how often the scheduler looks for due crons (default 5;
                                 it also wakes for the soonest due cron it knows of)
  THREADLINE_CRON_ALLOW_SECONDS  "1" accepts 6-field schedules whose LAST field is the
                                 second (croniter's convention), e.g. `* * * * * */2`.
                                 A testing aid: without it such schedules are refused.

Every process runs a scheduler. A due firing is claimed with a compare-and-set UPDATE of
`next_run_date` (see `storage.crons`), then its run is created: each firing happens at
most once whatever the number of processes; a process that dies between the two loses
that one firing. Missed firings (the server was down) are not caught up: a late cron
fires once and moves on to its next time after now. Crons whose `end_time` has passed are
disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import zoneinfo
from typing import TYPE_CHECKING, Any

from croniter import croniter  # type: ignore[import-untyped,unused-ignore]

from threadline.core.errors import Conflict, InvalidInput, NotFound, ThreadlineError
from threadline.core.runs import RunRequest, create_run, resolve_assistant
from threadline.core.state import thread_not_found
from threadline.core.webhooks import validate_webhook
from threadline.ids import is_uuid, new_id, system_assistant_id
from threadline.serialization import isoformat, utcnow
from threadline.settings import ConfigError
from threadline.storage.database import Outage, Row

if TYPE_CHECKING:
    from threadline.core.services import Services

logger = logging.getLogger("threadline.crons")

TICK_ENV = "THREADLINE_CRON_TICK_SECONDS"
ALLOW_SECONDS_ENV = "THREADLINE_CRON_ALLOW_SECONDS"
DEFAULT_TICK_SECONDS = 5.0
# Crons taken per query; a pass goes on (up to _MAX_PAGES) while a page comes back full.
DUE_PAGE = 100
_MAX_PAGES = 10
_PATCH_ATTEMPTS = 5
# Never look again sooner than this: a due cron nobody can claim must not spin the loop.
_MIN_DELAY = 0.01
_ALIASES = frozenset(
    ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
)
_UTC = datetime.UTC


# --- schedules ------------------------------------------------------------------------


def seconds_allowed() -> bool:
    return os.environ.get(ALLOW_SECONDS_ENV, "").strip().lower() in ("1", "true", "yes")


def tick_seconds() -> float:
    raw = os.environ.get(TICK_ENV)
    if not raw:
        return DEFAULT_TICK_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{TICK_ENV} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{TICK_ENV} must be more than 0, not {raw!r}")
    return value


def _invalid_schedule(schedule: str) -> InvalidInput:
    return InvalidInput(
        f"Invalid cron schedule: '{schedule}'. Reason: Invalid cron schedule. Ensure the "
        "schedule uses the standard cron format (minute hour day_of_month month "
        "day_of_week). Example: '*/5 * * * *' for every 5 minutes."
    )


def zone(timezone: str | None) -> datetime.tzinfo:
    """The cron's time zone; None means UTC."""
    if timezone is None:
        return _UTC
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"Invalid timezone: '{timezone}'. Use IANA timezone format (e.g. 'America/New_York')."
        ) from None


def next_run(schedule: str, timezone: str | None, after: datetime.datetime) -> datetime.datetime:
    """The first time strictly after `after` that `schedule` names, read in `timezone`."""
    start = after.astimezone(zone(timezone))
    moment: datetime.datetime = croniter(schedule, start).get_next(datetime.datetime)
    return moment.astimezone(_UTC)


def first_run(schedule: str, timezone: str | None, now: datetime.datetime) -> datetime.datetime:
    """Check `schedule` (5 fields, or 6 with seconds when allowed) and return its next
    time after `now`."""
    zone(timezone)  # an unknown zone is its own error
    fields = schedule.split()
    if schedule.strip().lower() in _ALIASES:
        pass
    elif len(fields) == 5 or (len(fields) == 6 and seconds_allowed()):
        if not croniter.is_valid(schedule):
            raise _invalid_schedule(schedule)
    else:
        raise _invalid_schedule(schedule)
    try:
        return next_run(schedule, timezone, now)
    except (ValueError, KeyError, ArithmeticError) as exc:  # croniter's errors are ValueErrors
        raise _invalid_schedule(schedule) from exc


# --- use cases ------------------------------------------------------------------------


def _not_found(cron_id: str) -> NotFound:
    return NotFound(f"Cron '{cron_id}' not found")


async def _assistant(services: Services, assistant_id: str) -> Row:
    try:
        return await resolve_assistant(services, assistant_id)
    except (InvalidInput, NotFound):
        raise NotFound(f"Assistant '{assistant_id}' not found") from None


def _stamped_config(config: dict[str, Any] | None, cron_id: str) -> dict[str, Any]:
    config = dict(config or {})
    config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron_id}
    return config


def _payload_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return isoformat(value.astimezone(_UTC))
    return value


async def create_cron(services: Services, thread_id: str | None, fields: dict[str, Any]) -> Row:
    """A cron from the fields of a create request (as given: unset fields absent);
    `thread_id` None makes a stateless cron."""
    now = utcnow()
    schedule: str = fields["schedule"]
    timezone: str | None = fields.get("timezone")
    next_run_date = first_run(schedule, timezone, now)
    assistant = await _assistant(services, fields["assistant_id"])
    if fields.get("webhook"):
        await validate_webhook(fields["webhook"], services.settings.config.webhooks)
    cron_id = new_id()
    payload = {
        "assistant_id": assistant["assistant_id"],
        "schedule": schedule,
        **{key: _payload_value(value) for key, value in fields.items()},
    }
    payload["assistant_id"] = assistant["assistant_id"]
    payload["config"] = _stamped_config(fields.get("config"), cron_id)
    end_time: datetime.datetime | None = fields.get("end_time")
    cron = {
        "cron_id": cron_id,
        "assistant_id": assistant["assistant_id"],
        "thread_id": thread_id,
        # Without custom auth nobody is authenticated; the reference reports "".
        "user_id": "",
        "schedule": schedule,
        "timezone": timezone,
        "end_time": end_time,
        "payload": payload,
        "metadata": fields.get("metadata") or {},
        "on_run_completed": None if thread_id else fields.get("on_run_completed", "delete"),
        "enabled": fields.get("enabled", True),
        "next_run_date": next_run_date,
        "created_at": now,
        "updated_at": now,
    }
    async with services.db.transaction() as conn:
        if thread_id is not None and await services.threads.get(thread_id, conn) is None:
            raise thread_not_found(thread_id)
        row = await services.crons.insert(cron, conn)
    _wake(services)
    return row


async def get_cron(services: Services, cron_id: str) -> Row:
    cron = await services.crons.get(cron_id)
    if cron is None:
        raise _not_found(cron_id)
    return cron


async def delete_cron(services: Services, cron_id: str) -> None:
    if not await services.crons.delete(cron_id):
        raise _not_found(cron_id)


async def patch_cron(services: Services, cron_id: str, changes: dict[str, Any]) -> Row:
    """Apply the fields of a patch request (as given: unset fields absent). `metadata` is
    merged; other run fields replace the stored ones. The next run date is recomputed when
    the schedule or time zone changes, or the cron is enabled again."""
    if changes.get("webhook"):
        await validate_webhook(changes["webhook"], services.settings.config.webhooks)
    for _ in range(_PATCH_ATTEMPTS):
        cron = await get_cron(services, cron_id)
        if "on_run_completed" in changes and cron["thread_id"] is not None:
            raise InvalidInput(
                "on_run_completed applies to stateless crons only; a thread cron runs on "
                "its own thread, which is never deleted"
            )
        now = utcnow()
        schedule: str = changes.get("schedule") or cron["schedule"]
        timezone = changes.get("timezone", cron["timezone"])
        enabled = changes.get("enabled", cron["enabled"])
        columns: dict[str, Any] = {"updated_at": now}
        if "schedule" in changes or "timezone" in changes or (enabled and not cron["enabled"]):
            columns["next_run_date"] = first_run(schedule, timezone, now)
        for key in ("schedule", "timezone", "end_time", "enabled", "on_run_completed"):
            if key in changes:
                columns[key] = changes[key]
        metadata = {**(cron["metadata"] or {}), **(changes.get("metadata") or {})}
        columns["metadata"] = metadata
        payload = dict(cron["payload"] or {})
        payload.update({key: _payload_value(value) for key, value in changes.items()})
        if "config" in changes:
            payload["config"] = _stamped_config(changes["config"], cron_id)
        if "metadata" in changes:
            payload["metadata"] = metadata
        columns["payload"] = payload
        row = await services.crons.update_if_unchanged(cron_id, cron["updated_at"], columns)
        if row is not None:
            _wake(services)
            return row
    raise Conflict(f"Cron '{cron_id}' kept changing while being updated; try again")


def _assistant_filter(services: Services, assistant_id: str | None) -> str | None:
    if assistant_id is None or is_uuid(assistant_id):
        return assistant_id.lower() if assistant_id else None
    if assistant_id in services.graphs:  # a graph name means its system assistant
        return system_assistant_id(assistant_id)
    raise InvalidInput("Invalid assistant ID: must be a UUID")


def _thread_filter(thread_id: str | None) -> str | None:
    if thread_id is not None and not is_uuid(thread_id):
        raise InvalidInput("Invalid thread ID: must be a UUID")
    return thread_id.lower() if thread_id else None


async def search_crons(
    services: Services,
    *,
    assistant_id: str | None = None,
    thread_id: str | None = None,
    enabled: bool | None = None,
    metadata: dict[str, Any] | None = None,
    limit: int = 10,
    offset: int = 0,
    sort_by: str | None = None,
    sort_order: str | None = None,
) -> tuple[list[Row], int]:
    """One page of crons, and how many match in all."""
    filters: dict[str, Any] = {
        "assistant_id": _assistant_filter(services, assistant_id),
        "thread_id": _thread_filter(thread_id),
        "enabled": enabled,
        "metadata": metadata,
    }
    rows = await services.crons.search(
        **filters,
        limit=limit,
        offset=offset,
        sort_by=sort_by or "created_at",
        sort_order=sort_order or "desc",
    )
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)
    return rows, await services.crons.count(**filters)


async def count_crons(
    services: Services,
    *,
    assistant_id: str | None = None,
    thread_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> int:
    return await services.crons.count(
        assistant_id=_assistant_filter(services, assistant_id),
        thread_id=_thread_filter(thread_id),
        metadata=metadata,
    )


# --- firing ---------------------------------------------------------------------------


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def run_request(cron: Row) -> RunRequest:
    """The run one firing of `cron` asks for."""
    payload: dict[str, Any] = cron["payload"] or {}
    stateless = cron["thread_id"] is None
    return RunRequest(
        assistant_id=cron["assistant_id"],
        input=payload.get("input"),
        config=_stamped_config(payload.get("config"), cron["cron_id"]),
        context=payload.get("context"),
        metadata=cron["metadata"] or None,
        stream_mode=_as_list(payload.get("stream_mode")),
        stream_subgraphs=bool(payload.get("stream_subgraphs", False)),
        stream_resumable=bool(payload.get("stream_resumable", False)),
        interrupt_before=payload.get("interrupt_before"),
        interrupt_after=payload.get("interrupt_after"),
        webhook=payload.get("webhook"),
        multitask_strategy=(
            "enqueue" if stateless else payload.get("multitask_strategy") or "enqueue"
        ),
        durability=payload.get("durability"),
        checkpoint_during=payload.get("checkpoint_during"),
        on_completion=(cron["on_run_completed"] or "delete") if stateless else None,
    )


async def fire(services: Services, cron: Row) -> Row:
    """Create the run of one firing."""
    return await create_run(services, cron["thread_id"], run_request(cron))


def _wake(services: Services) -> None:
    scheduler = services.cron_scheduler
    if scheduler is not None:
        scheduler.wake()


class CronScheduler:
    """Fires due crons; one per process, all of them safe together."""

    def __init__(self, services: Services, tick: float | None = None) -> None:
        self.services = services
        self.tick = tick if tick is not None else tick_seconds()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        logger.info("starting the cron scheduler (tick %.3g s)", self.tick)
        self._task = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Look again now (a cron was created or changed in this process)."""
        self._wake.set()

    async def _run_forever(self) -> None:
        outage = Outage(logger, "the cron scheduler's pass", longest=self.tick)
        while True:
            self._wake.clear()
            try:
                await self.run_once()
                delay = await self._delay()
            except Exception as exc:
                delay = min(self.tick, outage.failed(exc))
            else:
                outage.succeeded()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _delay(self) -> float:
        """Until the next tick, or the soonest due cron if that comes first."""
        due = await self.services.crons.next_due_at()
        if due is None:
            return self.tick
        return max(_MIN_DELAY, min(self.tick, (due - utcnow()).total_seconds()))

    async def run_once(self) -> int:
        """Fire every due cron this process manages to claim; returns how many it fired."""
        fired = 0
        for _ in range(_MAX_PAGES):
            now = utcnow()
            due = await self.services.crons.due(now, DUE_PAGE)
            for cron in due:
                if await self._claim_and_fire(cron, now):
                    fired += 1
            if len(due) < DUE_PAGE:
                break
        for cron_id in await self.services.crons.disable_ended(utcnow()):
            logger.info("cron %s reached its end time and is now disabled", cron_id)
        return fired

    async def _claim_and_fire(self, cron: Row, now: datetime.datetime) -> bool:
        cron_id = cron["cron_id"]
        try:
            following: datetime.datetime | None = next_run(
                cron["schedule"], cron["timezone"], max(now, cron["next_run_date"])
            )
        except Exception:
            logger.exception("cron %s has a schedule that cannot be computed; stopping it", cron_id)
            following = None
        claimed = await self.services.crons.claim(cron_id, cron["next_run_date"], following)
        if claimed is None or following is None:
            return False  # another process took this firing (or the cron cannot fire)
        try:
            run = await fire(self.services, claimed)
        except ThreadlineError as exc:
            # e.g. the thread is busy and the cron's strategy is `reject`
            logger.warning("cron %s did not fire: %s", cron_id, exc.detail)
            return False
        except Exception:
            logger.exception("cron %s failed to create its run", cron_id)
            return False
        logger.info(
            "cron %s fired for %s: run %s on thread %s (next at %s)",
            cron_id,
            isoformat(cron["next_run_date"]),
            run["run_id"],
            run["thread_id"],
            isoformat(following),
        )
        return True
