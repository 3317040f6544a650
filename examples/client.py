"""Talk to the example agent through langgraph_sdk, printing the reply as it streams.

    make dev                                   # in one terminal
    .venv/bin/python examples/client.py "what is 12 * (3 + 4)?"

Options: --url (default http://127.0.0.1:2024). Each call starts a new thread; pass
--thread ID to continue one.
"""

from __future__ import annotations

import argparse
import asyncio

from langgraph_sdk import get_client


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("message", nargs="?", default="What is the weather in Paris?")
    parser.add_argument("--url", default="http://127.0.0.1:2024")
    parser.add_argument("--thread", default=None, help="continue this thread")
    args = parser.parse_args()

    client = get_client(url=args.url)
    thread_id = args.thread or (await client.threads.create())["thread_id"]
    async for part in client.runs.stream(
        thread_id,
        "agent",
        input={"messages": [{"role": "user", "content": args.message}]},
        stream_mode="messages-tuple",
    ):
        if part.event != "messages":
            continue
        message, _metadata = part.data
        if message["type"] == "AIMessageChunk":
            for call in message.get("tool_call_chunks") or []:
                print(f"[calling {call['name']}({call['args']})]", flush=True)
            print(message["content"], end="", flush=True)
        elif message["type"] == "tool":
            print(f"[{message['name']} -> {message['content']}]", flush=True)
    print(f"\n(thread {thread_id})")


if __name__ == "__main__":
    asyncio.run(main())
