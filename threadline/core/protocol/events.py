"""Protocol events: what a run writes to its thread's log.

LangGraph's own v3 event stream (`astream_events(version="v3")`) gives the protocol's
channels (values, messages, tools, lifecycle of subgraphs, extensions); `ProtocolMapper`
puts them in the wire shape the reference serves. The run's own lifecycle (running,
interrupted, completed, failed) and its interrupts (`input.requested`) are written by the
worker around the graph, since they depend on how the run ended.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from langchain_core.messages import BaseMessage
from langgraph.stream import StreamTransformer

from threadline.broker.base import Broker
from threadline.serialization import dumps

LIFECYCLE = "lifecycle"
INPUT_REQUESTED = "input.requested"
CANCELLED = "Run was cancelled"


def log_stream(thread_id: str) -> str:
    return f"protocol:{thread_id}"


def now_ms() -> int:
    return int(time.time() * 1000)


def params(data: Any, namespace: list[str] | None = None) -> bytes:
    return dumps({"namespace": namespace or [], "timestamp": now_ms(), "data": data})


def lifecycle(event: str, graph_name: str, error: str | None = None) -> bytes:
    data: dict[str, Any] = {"event": event, "graph_name": graph_name}
    if error is not None:
        data["error"] = error
    return params(data)


def input_requested(interrupt_id: str, payload: Any) -> bytes:
    # `payload` is the protocol's name; current Python SDKs read `value`, so it is
    # carried under both (the reference sends `payload` only, and those SDKs see None).
    return params({"interrupt_id": interrupt_id, "payload": payload, "value": payload})


def is_protocol_run(run: dict[str, Any]) -> bool:
    return bool(run["kwargs"].get("protocol"))


def graph_name(run: dict[str, Any]) -> str:
    return str(run["kwargs"]["config"]["configurable"]["graph_id"])


async def announce_end(broker: Broker, run: dict[str, Any], event: str, error: str | None) -> None:
    """The end of a protocol run that ended without its worker telling (a queued run
    cancelled, a run whose workers kept dying), so its clients stop waiting."""
    if is_protocol_run(run):
        data = lifecycle(event, graph_name(run), error)
        await broker.append(log_stream(run["thread_id"]), LIFECYCLE, data)


def envelope(seq: int, method: str, params_json: bytes) -> bytes:
    """The wire event; ids are the log's numbers, so a resumed reader dedups by them."""
    head = b'{"type":"event","event_id":"%d","seq":%d,"method":' % (seq, seq)
    return head + orjson.dumps(method) + b',"params":' + params_json + b"}"


class CustomWrites(StreamTransformer):
    """Asks the graph for its `custom` stream, so what nodes write with
    `get_stream_writer()` reaches the `custom` channel. (LangGraph's own transformers only
    ask for it when one of the graph's needs it; the reference then drops those writes.)"""

    required_stream_modes = ("custom",)

    def init(self) -> dict[str, Any]:
        return {}

    def process(self, event: Any) -> bool:
        return True


class ProtocolMapper:
    """Turns LangGraph v3 events into (method, params JSON) pairs for the thread log."""

    def __init__(self) -> None:
        self._graph_names: dict[tuple[str, ...], str] = {}

    def map(self, event: dict[str, Any]) -> tuple[str, bytes]:
        method: str = event["method"]
        raw = event["params"]
        namespace = list(raw.get("namespace") or [])
        data = raw.get("data")
        if method == "messages" and isinstance(data, (tuple, list)) and len(data) == 2:
            data = data[0]  # (payload, metadata): the protocol carries the payload
        elif method == LIFECYCLE and isinstance(data, dict):
            namespace, data = self._subgraph_lifecycle(namespace, data)
        elif method.startswith("custom:"):
            method, data = "custom", {"name": method[len("custom:") :], "payload": data}
        body = {"namespace": namespace, "timestamp": raw.get("timestamp") or now_ms()}
        data_json = compact_messages(data) if method == "values" else dumps(data)
        return method, _with_data(body, data_json)

    def _subgraph_lifecycle(
        self, namespace: list[str], data: dict[str, Any]
    ) -> tuple[list[str], dict[str, Any]]:
        """A subgraph's lifecycle is told in the subgraph's own namespace; its end also
        names the graph, as its start does."""
        child = list(data.get("namespace") or namespace)
        key = tuple(child)
        if data.get("event") == "started":
            if data.get("graph_name"):
                self._graph_names[key] = str(data["graph_name"])
            return child, data
        ended = {k: v for k, v in data.items() if k != "namespace"}
        if key in self._graph_names and "graph_name" not in ended:
            ended = {"event": ended.get("event"), "graph_name": self._graph_names[key], **ended}
        return child, ended


def _with_data(body: dict[str, Any], data_json: bytes) -> bytes:
    return dumps(body)[:-1] + b',"data":' + data_json + b"}"


def compact_messages(value: Any) -> bytes:
    """State values with messages as the reference shows them on this channel: only the
    fields that were set, plus the type."""
    return orjson.dumps(value, default=_compact_default, option=orjson.OPT_NON_STR_KEYS)


def _compact_default(obj: Any) -> Any:
    if isinstance(obj, BaseMessage):
        return {"type": obj.type, **obj.model_dump(exclude_unset=True, exclude={"type"})}
    return orjson.loads(dumps(obj))
