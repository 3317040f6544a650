"""Record golden stream/wait outputs from an Agent Server (reference or Threadline).

    python tests/golden/capture.py --url http://127.0.0.1:PORT --out tests/golden/reference/
        [--raw-out DIR] [--only CASE ...]

Needs the graphs of tests/graphs/langgraph.json. For every case in CASES a new thread is
created (unless the case is stateless), the steps are run in order with
``langgraph_sdk.get_client`` and one JSON file ``<case>.json`` is written:

    {"case": name, "description": ..., "steps": [
        {"kind": "stream", "call": {...sdk kwargs...}, "events": [[event, data], ...]},
        {"kind": "wait",   "call": {...}, "output": {...}},
        {"kind": "state" | "thread", "output": {...}}]}

Events/outputs are normalised with tests.golden.normalize (each step on its own), and
keys are sorted, so the files of two servers can be compared with plain ``diff``.
The module is importable: CASES and run_case(client, case) can be reused by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from langgraph_sdk import get_client

from tests.golden.normalize import normalize, normalize_value

HUMAN = {"messages": [{"role": "user", "content": "hi"}]}
SLOW_CTX = {"steps": 2, "delay": 0.05}

# A case: name -> {"description", "stateless": bool, "steps": [(kind, kwargs), ...]}
# kinds: "stream" (runs.stream), "wait" (runs.wait, raise_error=False), "state"
# (threads.get_state), "thread" (threads.get).
CASES: dict[str, dict[str, Any]] = {}


def case(
    name: str, description: str, *steps: tuple[str, dict[str, Any]], stateless: bool = False
) -> None:
    CASES[name] = {"description": description, "stateless": stateless, "steps": list(steps)}


def S(**kw: Any) -> tuple[str, dict[str, Any]]:
    return ("stream", kw)


def W(**kw: Any) -> tuple[str, dict[str, Any]]:
    return ("wait", kw)


STATE = ("state", {})
THREAD = ("thread", {})

# --- one stream mode at a time --------------------------------------------------
case("values_echo", "values on echo", S(assistant_id="echo", input=HUMAN, stream_mode="values"))
case(
    "values_slow",
    "values on slow, 2 steps via context",
    S(assistant_id="slow", input={}, context=SLOW_CTX, stream_mode="values"),
)
case("updates_echo", "updates on echo", S(assistant_id="echo", input=HUMAN, stream_mode="updates"))
case(
    "updates_slow_configurable",
    "updates on slow, knobs via configurable",
    S(assistant_id="slow", input={}, config={"configurable": SLOW_CTX}, stream_mode="updates"),
)
case(
    "messages_chat",
    "messages on chat (streamed LLM -> metadata + partial)",
    S(assistant_id="chat", input=HUMAN, stream_mode="messages"),
)
case(
    "messages_echo",
    "messages on echo (node-returned message -> complete?)",
    S(assistant_id="echo", input=HUMAN, stream_mode="messages"),
)
case(
    "messages_tuple_chat",
    "messages-tuple on chat",
    S(assistant_id="chat", input=HUMAN, stream_mode="messages-tuple"),
)
case(
    "messages_tuple_echo",
    "messages-tuple on echo",
    S(assistant_id="echo", input=HUMAN, stream_mode="messages-tuple"),
)
case("events_echo", "events on echo", S(assistant_id="echo", input=HUMAN, stream_mode="events"))
case("events_chat", "events on chat", S(assistant_id="chat", input=HUMAN, stream_mode="events"))
case("debug_echo", "debug on echo", S(assistant_id="echo", input=HUMAN, stream_mode="debug"))
case(
    "custom_custom",
    "custom on custom n=3",
    S(assistant_id="custom", input={"n": 3}, stream_mode="custom"),
)
case(
    "custom_chat_empty",
    "custom on chat (emits nothing)",
    S(assistant_id="chat", input=HUMAN, stream_mode="custom"),
)
case("tasks_echo", "tasks on echo", S(assistant_id="echo", input=HUMAN, stream_mode="tasks"))
case(
    "checkpoints_echo",
    "checkpoints on echo",
    S(assistant_id="echo", input=HUMAN, stream_mode="checkpoints"),
)
case(
    "default_mode_echo",
    "no stream_mode given (SDK default values)",
    S(assistant_id="echo", input=HUMAN),
)

# --- combinations ------------------------------------------------------------
case(
    "multi_chat",
    "messages-tuple+updates+custom on chat",
    S(assistant_id="chat", input=HUMAN, stream_mode=["messages-tuple", "updates", "custom"]),
)
case(
    "multi_custom",
    "values+updates+custom on custom n=2",
    S(assistant_id="custom", input={"n": 2}, stream_mode=["values", "updates", "custom"]),
)

# --- subgraphs ---------------------------------------------------------------
case(
    "subgraphs_sub",
    "values+updates+custom on sub with stream_subgraphs",
    S(
        assistant_id="sub",
        input={"trail": []},
        stream_mode=["values", "updates", "custom"],
        stream_subgraphs=True,
    ),
)
case(
    "subgraphs_off_sub",
    "values+updates+custom on sub without stream_subgraphs",
    S(assistant_id="sub", input={"trail": []}, stream_mode=["values", "updates", "custom"]),
)
case(
    "subgraphs_debug_sub",
    "debug+tasks on sub with stream_subgraphs",
    S(
        assistant_id="sub",
        input={"trail": []},
        stream_mode=["tasks", "checkpoints"],
        stream_subgraphs=True,
    ),
)

# --- interrupts --------------------------------------------------------------
case(
    "interrupt_resume_hitl",
    "hitl: interrupt (values+updates), state, resume, state",
    S(assistant_id="hitl", input={"question": "Ship it?"}, stream_mode=["values", "updates"]),
    STATE,
    THREAD,
    S(assistant_id="hitl", command={"resume": "yes"}, stream_mode=["values", "updates"]),
    STATE,
    THREAD,
)
case(
    "interrupt_tasks_hitl",
    "hitl: tasks+checkpoints across interrupt",
    S(assistant_id="hitl", input={}, stream_mode=["tasks", "checkpoints"]),
    S(assistant_id="hitl", command={"resume": 42}, stream_mode=["tasks"]),
)
case(
    "interrupt_debug_hitl",
    "hitl: debug across interrupt",
    S(assistant_id="hitl", input={}, stream_mode="debug"),
)
case(
    "interrupt_before_echo",
    "echo with interrupt_before=[echo], then continue with input None",
    S(
        assistant_id="echo",
        input=HUMAN,
        stream_mode=["values", "updates"],
        interrupt_before=["echo"],
    ),
    STATE,
    THREAD,
    S(assistant_id="echo", input=None, stream_mode=["values", "updates"]),
    STATE,
)

# --- failures ----------------------------------------------------------------
case(
    "fail_stream",
    "fail with values+updates",
    S(assistant_id="fail", input={}, stream_mode=["values", "updates"]),
    THREAD,
)
case("fail_events", "fail with events", S(assistant_id="fail", input={}, stream_mode="events"))

# --- stateless ---------------------------------------------------------------
case(
    "stateless_stream_echo",
    "POST /runs/stream echo values+updates",
    S(assistant_id="echo", input=HUMAN, stream_mode=["values", "updates"]),
    stateless=True,
)
case(
    "stateless_wait_echo",
    "POST /runs/wait echo",
    W(assistant_id="echo", input=HUMAN),
    stateless=True,
)
case(
    "stateless_stream_fail",
    "POST /runs/stream fail",
    S(assistant_id="fail", input={}, stream_mode="updates"),
    stateless=True,
)

# --- wait outputs ------------------------------------------------------------
case("wait_echo", "runs.wait echo", W(assistant_id="echo", input=HUMAN))
case(
    "wait_hitl",
    "runs.wait hitl: interrupt then resume",
    W(assistant_id="hitl", input={}),
    W(assistant_id="hitl", command={"resume": "yes"}),
)
case("wait_fail", "runs.wait fail (raise_error=False)", W(assistant_id="fail", input={}), THREAD)
case("wait_factory", "runs.wait on sync factory graph", W(assistant_id="factory", input=HUMAN))
case(
    "wait_factory_async",
    "runs.wait on async factory graph",
    W(assistant_id="factory_async", input=HUMAN),
)
case("wait_custom", "runs.wait custom n=4", W(assistant_id="custom", input={"n": 4}))
case("wait_sub", "runs.wait sub", W(assistant_id="sub", input={"trail": []}))
case(
    "wait_blocking",
    "runs.wait blocking (sync time.sleep 0.1)",
    W(assistant_id="blocking", input={"seconds": 0.1}),
)


async def run_case(
    client: Any, spec: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run one case; return (normalised steps, raw steps)."""
    thread_id = None
    if not spec["stateless"]:
        thread_id = (await client.threads.create())["thread_id"]
    norm_steps: list[dict[str, Any]] = []
    raw_steps: list[dict[str, Any]] = []
    for kind, kw in spec["steps"]:
        kw = copy.deepcopy(kw)
        if kind == "stream":
            events = []
            async for part in client.runs.stream(thread_id, **kw):
                events.append([part.event, part.data])
            raw_steps.append({"kind": kind, "call": kw, "events": events})
            norm_steps.append({"kind": kind, "call": kw, "events": normalize(events)})
        elif kind == "wait":
            out = await client.runs.wait(thread_id, raise_error=False, **kw)
            raw_steps.append({"kind": kind, "call": kw, "output": out})
            norm_steps.append({"kind": kind, "call": kw, "output": normalize_value(out)})
        elif kind == "state":
            out = await client.threads.get_state(thread_id)
            raw_steps.append({"kind": kind, "output": out})
            norm_steps.append({"kind": kind, "output": normalize_value(out)})
        elif kind == "thread":
            out = await client.threads.get(thread_id)
            raw_steps.append({"kind": kind, "output": out})
            norm_steps.append({"kind": kind, "output": normalize_value(out)})
        else:  # pragma: no cover
            raise ValueError(kind)
    return norm_steps, raw_steps


def _dump(path: Path, obj: Any) -> None:
    path.write_text(
        json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    )


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument(
        "--raw-out", type=Path, default=None, help="also write un-normalised events here"
    )
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    client = get_client(url=args.url)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.raw_out:
        args.raw_out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for name, spec in CASES.items():
        if args.only and name not in args.only:
            continue
        try:
            norm_steps, raw_steps = await asyncio.wait_for(run_case(client, spec), 60)
        except Exception as exc:  # keep going; report at the end
            failures += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        _dump(
            args.out / f"{name}.json",
            {
                "case": name,
                "description": spec["description"],
                "stateless": spec["stateless"],
                "steps": norm_steps,
            },
        )
        if args.raw_out:
            _dump(args.raw_out / f"{name}.json", {"case": name, "steps": raw_steps})
        n = sum(len(s.get("events", [])) for s in norm_steps)
        print(f"ok   {name}: {len(norm_steps)} steps, {n} events")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
