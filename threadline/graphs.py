"""Loads the graphs named in langgraph.json and hands out ready-to-run instances."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from threadline.settings import ConfigError, LanggraphConfig


class GraphLoadError(ConfigError):
    """A graph named in langgraph.json could not be imported or is not a graph."""


def prepare_environment(config: LanggraphConfig, base_dir: Path) -> None:
    """Apply `env` and put `dependencies` on sys.path, before any graph is imported."""
    env = config.env
    if isinstance(env, str):
        env_path = (base_dir / env).resolve()
        if not env_path.is_file():
            raise ConfigError(f"env file not found: {env_path}")
        values = {k: v for k, v in dotenv_values(env_path).items() if v is not None}
    else:
        values = dict(env or {})
    for key, value in values.items():
        os.environ.setdefault(key, value)
    for dep in config.dependencies:
        dep_path = (base_dir / dep).resolve()
        if dep_path.is_dir() and str(dep_path) not in sys.path:
            sys.path.insert(0, str(dep_path))


@dataclass
class GraphSpec:
    graph_id: str
    location: str
    description: str | None
    target: Any

    @property
    def is_factory(self) -> bool:
        return not isinstance(self.target, (Pregel, StateGraph))


def _import_target(graph_id: str, location: str, base_dir: Path) -> Any:
    module_ref, _, attr = location.rpartition(":")
    is_file = module_ref.endswith(".py") or "/" in module_ref
    try:
        if is_file:
            file_path = (base_dir / module_ref).resolve()
            if not file_path.is_file():
                raise GraphLoadError(f"graph {graph_id!r}: file not found: {file_path}")
            module_name = f"threadline_graphs.{graph_id}"
            spec = importlib.util.spec_from_file_location(module_name, file_path)
            if spec is None or spec.loader is None:
                raise GraphLoadError(f"graph {graph_id!r}: cannot import {file_path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_ref)
    except GraphLoadError:
        raise
    except BaseException as exc:
        raise GraphLoadError(
            f"graph {graph_id!r} failed to load from {module_ref}: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise GraphLoadError(f"graph {graph_id!r}: {module_ref} has no attribute {attr!r}") from exc


def _check_target(graph_id: str, location: str, target: Any) -> Any:
    if isinstance(target, StateGraph):
        return target.compile()
    if isinstance(target, Pregel) or callable(target):
        return target
    raise GraphLoadError(
        f"graph {graph_id!r} ({location}) is a {type(target).__name__}, "
        "not a compiled graph, a StateGraph or a factory"
    )


def _call_factory(factory: Any, config: RunnableConfig, runtime: Any) -> Any:
    params = list(inspect.signature(factory).parameters.values())
    if not params:
        return factory()
    kwargs: dict[str, Any] = {}
    args: list[Any] = []
    for param in params:
        annotation = str(param.annotation)
        wants_runtime = param.name == "runtime" or "Runtime" in annotation
        value = runtime if wants_runtime else config
        if param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = value
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            args.append(value)
    return factory(*args, **kwargs)


class GraphRegistry:
    """Every graph of the deployment, keyed by graph id."""

    def __init__(self, config: LanggraphConfig, base_dir: Path) -> None:
        self._config = config
        self._base_dir = base_dir
        self._specs: dict[str, GraphSpec] = {}

    def load_all(self) -> None:
        prepare_environment(self._config, self._base_dir)
        for graph_id, entry in self._config.graphs.items():
            target = _import_target(graph_id, entry.path, self._base_dir)
            target = _check_target(graph_id, entry.path, target)
            self._specs[graph_id] = GraphSpec(graph_id, entry.path, entry.description, target)

    @property
    def graph_ids(self) -> list[str]:
        return list(self._specs)

    def __contains__(self, graph_id: object) -> bool:
        return graph_id in self._specs

    def spec(self, graph_id: str) -> GraphSpec:
        return self._specs[graph_id]

    @contextlib.asynccontextmanager
    async def graph(
        self,
        graph_id: str,
        config: RunnableConfig,
        *,
        checkpointer: Any = None,
        store: Any = None,
        runtime: Any = None,
    ) -> AsyncIterator[Pregel]:
        """A graph instance bound to `checkpointer` and `store`, built by its factory if any."""
        spec = self._specs[graph_id]
        async with contextlib.AsyncExitStack() as stack:
            target = spec.target
            if spec.is_factory:
                target = await self._build(spec, config, runtime, stack)
            yield target.copy(update={"checkpointer": checkpointer, "store": store})

    async def _build(
        self,
        spec: GraphSpec,
        config: RunnableConfig,
        runtime: Any,
        stack: contextlib.AsyncExitStack,
    ) -> Pregel:
        made = _call_factory(spec.target, config, runtime)
        if inspect.isawaitable(made):
            made = await made
        if isinstance(made, contextlib.AbstractAsyncContextManager):
            made = await stack.enter_async_context(made)
        elif isinstance(made, contextlib.AbstractContextManager):
            made = stack.enter_context(made)
        if isinstance(made, StateGraph):
            made = made.compile()
        if not isinstance(made, Pregel):
            raise TypeError(
                f"factory of graph {spec.graph_id!r} returned {type(made).__name__}, not a graph"
            )
        return made
