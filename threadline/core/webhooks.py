"""Webhook addresses: checked when a run or cron is created, against `webhooks.url` policy."""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
from urllib.parse import urlsplit

from threadline.core.errors import InvalidInput
from threadline.settings import WebhooksConfig, WebhookUrlPolicy

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
