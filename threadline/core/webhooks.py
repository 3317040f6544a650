"""Webhooks: addresses checked when a run or cron is created (against the `webhooks.url`
policy), and the delivery of a run's webhook once it ends (an outbox, sent with retries)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import fnmatch
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from threadline.core.errors import InvalidInput
from threadline.ids import new_id
from threadline.serialization import dumps, to_jsonable, utcnow
from threadline.settings import WebhooksConfig, WebhookUrlPolicy
from threadline.storage.database import Connection, Database, Outage, Row
from threadline.storage.webhooks import WebhookRepository

RELATIVE_URL = (
    "Webhook URL must be absolute (scheme://host/path); relative webhook URLs are refused "
    "so that a run cannot make the server call itself"
)


def _ip_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_private or address.is_reserved or address.is_unspecified:
        return "private"
    return None


async def _resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        return []
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def validate_webhook(url: str, config: WebhooksConfig | None) -> str:
    policy = (config.url if config else None) or WebhookUrlPolicy()
    if len(url) > policy.max_url_length:
        raise InvalidInput(f"Webhook URL is longer than {policy.max_url_length} characters")
    parts = urlsplit(url)
    if not parts.scheme and not parts.netloc:
        raise InvalidInput(RELATIVE_URL)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"Webhook must use http or https, not {parts.scheme!r}")
    host = parts.hostname or ""
    if not host:
        raise InvalidInput(f"Invalid webhook hostname '{host}'")
    if policy.require_https and parts.scheme != "https":
        raise InvalidInput("Webhook must use https")
    if policy.allowed_domains and not any(
        fnmatch.fnmatch(host, pattern) for pattern in policy.allowed_domains
    ):
        raise InvalidInput(f"Webhook host {host!r} is not in the allowed domains")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if policy.allowed_ports and port not in policy.allowed_ports:
        raise InvalidInput(f"Webhook port {port} is not allowed")
    for address in await _resolve(host):
        kind = _ip_kind(address)
        if kind == "loopback" and policy.disable_loopback:
            raise InvalidInput("Webhook host blocked: loopback IP range")
        if kind in ("private", "link-local") and policy.disable_private_ips:
            raise InvalidInput(f"Webhook host blocked: {kind} IP range")
    return url


# --- delivery -------------------------------------------------------------------------
# A run's webhook is written to the outbox (storage/webhooks.py) in the transaction that
# records the run's end, with its payload complete but for `webhook_sent_at`; the deliverer
# of every process claims due deliveries and POSTs them, retrying with exponential backoff,
# so a restart loses none.

ENV_SECRET = "THREADLINE_WEBHOOK_SECRET"
ENV_BACKOFF = "THREADLINE_WEBHOOK_BACKOFF_SECONDS"
SIGNATURE_HEADER = "X-Threadline-Signature"
MAX_ATTEMPTS = 6
REQUEST_TIMEOUT_SECONDS = 10.0
# a claimed delivery is another process's again after this long (its sender died)
CLAIM_LEASE_SECONDS = REQUEST_TIMEOUT_SECONDS + 20.0
IDLE_POLL_SECONDS = 5.0
KEEP_SETTLED = datetime.timedelta(days=7)
PURGE_EVERY_SECONDS = 3600.0
_TEMPLATE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RUN_FIELDS = (
    "run_id",
    "thread_id",
    "assistant_id",
    "metadata",
    "kwargs",
    "multitask_strategy",
    "created_at",
    "updated_at",
)

logger = logging.getLogger("threadline.webhooks")


def _iso(value: Any) -> Any:
    return (
        value.isoformat(timespec="microseconds") if isinstance(value, datetime.datetime) else value
    )


def build_payload(run: Row, *, values: Any, error: dict[str, Any] | None) -> dict[str, Any]:
    """The body the reference sends: the Run object plus the end of the run; built when the
    end is recorded, so a stateless run's values survive the deletion of its thread."""
    payload: dict[str, Any] = {field: _iso(run.get(field)) for field in _RUN_FIELDS}
    kwargs = payload.get("kwargs")
    if isinstance(kwargs, dict):
        payload["kwargs"] = {k: v for k, v in kwargs.items() if k != "on_completion"}
    payload.update(
        status=run.get("status"),
        langsmith_session_name=None,
        run_started_at=_iso(run.get("started_at")),
        run_ended_at=_iso(run.get("ended_at")),
        webhook_sent_at=None,
        values=to_jsonable(values),
    )
    if error is not None:
        payload["error"] = {"error": error.get("error"), "message": error.get("message")}
    return payload


async def enqueue_webhook(
    conn: Connection,
    db: Database,
    run: Row,
    *,
    values: Any,
    error: dict[str, Any] | None = None,
) -> bool:
    """Write the delivery of `run`'s webhook (if it has one) in the caller's transaction."""
    url = (run.get("kwargs") or {}).get("webhook")
    if not url:
        return False
    await WebhookRepository(db).insert(
        conn,
        delivery_id=new_id(),
        run_id=run["run_id"],
        url=url,
        payload=build_payload(run, values=values, error=error),
        now=utcnow(),
    )
    return True


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def configured_headers(config: WebhooksConfig | None) -> dict[str, str]:
    """`webhooks.headers`, with `${VAR}` taken from the environment (only variables named
    with `webhooks.env_prefix`, when it is set)."""
    if config is None or not config.headers:
        return {}
    prefix = config.env_prefix

    def resolve(match: re.Match[str]) -> str:
        name = match.group(1)
        if prefix and not name.startswith(prefix):
            logger.warning("webhook header: ${%s} does not start with %r; left empty", name, prefix)
            return ""
        return os.environ.get(name, "")

    return {key: _TEMPLATE.sub(resolve, value) for key, value in config.headers.items()}


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


class WebhookDeliverer:
    """Sends due deliveries from the outbox, one at a time per process, until stopped."""

    def __init__(self, db: Database, config: WebhooksConfig | None) -> None:
        self.repo = WebhookRepository(db)
        self.headers = configured_headers(config)
        self.secret = os.environ.get(ENV_SECRET) or None
        self.backoff = float(os.environ.get(ENV_BACKOFF) or 1.0)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS)
        self._task = asyncio.create_task(self._deliver_forever(), name="webhook-deliverer")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def _deliver_forever(self) -> None:
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        outage = Outage(logger, "delivering webhooks", longest=IDLE_POLL_SECONDS)
        while True:
            self._wake.clear()
            try:
                while await self.deliver_one():
                    pass
                if loop.time() - last_purge > PURGE_EVERY_SECONDS:
                    last_purge = loop.time()
                    await self.repo.purge(utcnow() - KEEP_SETTLED)
                due = await self.repo.next_due_at()
            except Exception as exc:
                timeout = outage.failed(exc)
            else:
                outage.succeeded()
                timeout = IDLE_POLL_SECONDS
                if due is not None:
                    timeout = max(0.0, min(timeout, (due - utcnow()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def deliver_one(self) -> bool:
        """Claim and send one due delivery; False when none is due."""
        now = utcnow()
        row = await self.repo.claim(now, now + datetime.timedelta(seconds=CLAIM_LEASE_SECONDS))
        if row is None:
            return False
        error = await self._post(row)
        attempts = int(row["attempts"])
        if error is None:
            await self.repo.settle(
                row["delivery_id"], delivered_at=utcnow(), next_attempt_at=None, error=None
            )
            return True
        message, retry = error
        if retry and attempts < MAX_ATTEMPTS:
            delay = self.backoff * 2 ** (attempts - 1)
            logger.warning(
                "webhook of run %s (attempt %d) failed: %s; retrying in %gs",
                row["run_id"],
                attempts,
                message,
                delay,
            )
            next_at = utcnow() + datetime.timedelta(seconds=delay)
            await self.repo.settle(
                row["delivery_id"], delivered_at=None, next_attempt_at=next_at, error=message
            )
        else:
            logger.error(
                "webhook of run %s failed after %d attempts: %s; giving up",
                row["run_id"],
                attempts,
                message,
            )
            await self.repo.settle(
                row["delivery_id"], delivered_at=None, next_attempt_at=None, error=message
            )
        return True

    async def _post(self, row: Row) -> tuple[str, bool] | None:
        """Send one attempt: None once delivered, else (why, whether to retry)."""
        assert self._client is not None
        payload = {**row["payload"], "webhook_sent_at": _iso(utcnow())}
        body = dumps(payload)
        headers = {**self.headers, "Content-Type": "application/json"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, int(time.time()), body)
        try:
            response = await self._client.post(row["url"], content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}", True
        if response.is_success:
            return None
        return f"HTTP {response.status_code}", _retryable(response.status_code)
