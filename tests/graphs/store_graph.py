"""store: graphs reach the server's long-term store through their runtime.

Input `{"user": "u1", "note": "text"}`:
- `remember` (async) writes `{"text": note}` under ("notes", user), key "note-<n>", with
  `runtime.store.aput`, n = how many notes the user had;
- `recall` (sync) lists the user's notes with `get_store().search` and returns their
  texts, oldest first, in `notes`.
Without a `note` nothing is written: the graph only recalls.
"""

from __future__ import annotations

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class State(TypedDict, total=False):
    user: str
    note: str
    notes: list[str]


async def remember(state: State, runtime: Runtime) -> dict:
    if state.get("note") and runtime.store is not None:
        namespace = ("notes", state.get("user") or "anonymous")
        existing = await runtime.store.asearch(namespace, limit=1000)
        await runtime.store.aput(namespace, f"note-{len(existing)}", {"text": state["note"]})
    return {}


def recall(state: State) -> dict:
    store = get_store()
    items = store.search(("notes", state.get("user") or "anonymous"), limit=1000)
    items.sort(key=lambda item: int(item.key.removeprefix("note-")))
    return {"notes": [item.value["text"] for item in items]}


builder = StateGraph(State)
builder.add_node("remember", remember)
builder.add_node("recall", recall)
builder.add_edge(START, "remember")
builder.add_edge("remember", "recall")
builder.add_edge("recall", END)
graph = builder.compile()
