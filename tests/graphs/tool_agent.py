"""tool_agent: `langchain.agents.create_agent` with a scripted model calling `get_weather`."""

from __future__ import annotations

from fake_model import ScriptedToolModel
from langchain.agents import create_agent
from langchain_core.tools import tool


@tool
def get_weather(city: str) -> str:
    """Return the weather for a city."""
    return f"It is sunny in {city}."


model = ScriptedToolModel(
    tool_name="get_weather", tool_args={"city": "Paris"}, reply="The forecast:"
)
graph = create_agent(model, tools=[get_weather], name="tool_agent")
