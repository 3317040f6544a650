"""deep_agent: a supervisor agent whose `task` tool runs a `researcher` subagent.

Like deep agents, the subagent is a compiled agent invoked from inside the tool, so
its events carry the tool task's namespace (`tools:<task id>`).
"""

from __future__ import annotations

from fake_model import ScriptedToolModel
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool


@tool
def search(query: str) -> str:
    """Search the web."""
    return f"3 results for {query}."


researcher = create_agent(
    ScriptedToolModel(tool_name="search", tool_args={"query": "otters"}, reply="Found:"),
    tools=[search],
    name="researcher",
)


@tool
async def task(description: str) -> str:
    """Delegate a task to the researcher subagent."""
    result = await researcher.ainvoke({"messages": [HumanMessage(content=description)]})
    return str(result["messages"][-1].content)


graph = create_agent(
    ScriptedToolModel(
        tool_name="task", tool_args={"description": "research otters"}, reply="Report:"
    ),
    tools=[task],
    name="supervisor",
)
