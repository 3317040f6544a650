"""extension: `work` reports progress through a named stream channel (an extension).

A stream transformer compiled into the graph turns every custom write of
{"step": i} into a push on the `progress` channel, which the thread-centric protocol
carries as a `custom` event named "progress". `n` (default 3) sets the step count.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.stream import StreamChannel, StreamTransformer
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    n: int
    done: int


class ProgressTransformer(StreamTransformer):
    required_stream_modes = ("custom",)

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._progress: StreamChannel[dict[str, Any]] = StreamChannel("progress")

    def init(self) -> dict[str, Any]:
        return {"progress": self._progress}

    def process(self, event: Any) -> bool:
        data = event["params"]["data"]
        if event["method"] == "custom" and isinstance(data, dict) and "step" in data:
            self._progress.push({"step": data["step"]})
        return True


def work(state: State) -> dict:
    n = state.get("n")
    n = 3 if n is None else int(n)
    write = get_stream_writer()
    for i in range(n):
        write({"step": i})
    return {"done": n}


builder = StateGraph(State)
builder.add_node("work", work)
builder.add_edge(START, "work")
builder.add_edge("work", END)
graph = builder.compile(transformers=[ProgressTransformer])
