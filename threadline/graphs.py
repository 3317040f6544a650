"""Loads the graphs named in langgraph.json and hands out ready-to-run instances.

A graph is named as `./path/to/file.py:attr` (relative to langgraph.json) or
`package.module:attr` (importable from sys.path, which includes `dependencies`). The
attribute may be a compiled graph, an uncompiled StateGraph, or a factory: a sync or async
function (or context manager) taking nothing, a RunnableConfig, or a runtime
(`langgraph_sdk.runtime.ServerRuntime`), called for every use of the graph.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from dotenv import dotenv_values
from langchain_core.runnables import RunnableConfig
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from threadline.settings import ConfigError, LanggraphConfig


class GraphLoadError(ConfigError):
    """A graph named in langgraph.json could not be imported or is not a graph."""


_LOCAL_PREFIXES = (".", "/", "~")


def _is_local_dependency(dep: str) -> bool:
    return dep.startswith(_LOCAL_PREFIXES) or os.sep in dep or "/" in dep


def dependency_paths(config: LanggraphConfig, base_dir: Path) -> list[Path]:
    """The folders `dependencies` puts on sys.path: each local folder, and the `src/` of a
    project (pyproject.toml or setup.py) laid out that way. Package names are skipped."""
    paths: list[Path] = []
    for dep in config.dependencies:
        if not _is_local_dependency(dep):
            continue
        dep_path = (base_dir / dep).expanduser().resolve()
        if not dep_path.is_dir():
            raise ConfigError(
                f"dependency {dep!r} in langgraph.json: directory not found: {dep_path}"
            )
        paths.append(dep_path)
        src = dep_path / "src"
        is_project = (dep_path / "pyproject.toml").is_file() or (dep_path / "setup.py").is_file()
        if is_project and src.is_dir():
            paths.append(src)
    return paths


def prepare_environment(config: LanggraphConfig, base_dir: Path) -> None:
    """Apply `env` and put `dependencies` on sys.path, before any graph is imported.

    Variables already set in the environment win over `env`. Other dependencies than
    local folders (package names) must already be installed.
    """
    env = config.env
    if isinstance(env, str):
        env_path = (base_dir / env).expanduser().resolve()
        if not env_path.is_file():
            raise ConfigError(f"env file not found: {env_path} (named by 'env' in langgraph.json)")
        values = {k: v for k, v in dotenv_values(env_path).items() if v is not None}
    else:
        values = dict(env or {})
    for key, value in values.items():
        os.environ.setdefault(key, value)
    for path in reversed(dependency_paths(config, base_dir)):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


@dataclass
class GraphSpec:
    graph_id: str
    location: str
    description: str | None
    target: Any

    @property
    def is_factory(self) -> bool:
        return not isinstance(self.target, (Pregel, StateGraph))


def _is_file_reference(module_ref: str) -> bool:
    return module_ref.endswith(".py") or "/" in module_ref or os.sep in module_ref


def _dotted_name(file_path: Path, roots: list[Path]) -> str | None:
    """The module name of `file_path` inside a dependency folder, if it is importable.

    Importing by name keeps one module per file (two graphs from one file share it), lets
    the file use relative imports inside its package, and gives its classes a module
    path that can be imported again (as deserialising checkpoints may need).
    """
    if not re.fullmatch(r"[A-Za-z_]\w*\.py", file_path.name):
        return None
    for root in roots:
        try:
            relative = file_path.relative_to(root)
        except ValueError:
            continue
        parts = [*relative.parent.parts, relative.stem]
        if relative.stem == "__init__":
            parts = parts[:-1]
        if not parts or not all(part.isidentifier() for part in parts):
            continue
        package_dirs = [
            root.joinpath(*relative.parent.parts[: i + 1]) for i in range(len(parts) - 1)
        ]
        if all((d / "__init__.py").is_file() for d in package_dirs):
            return ".".join(parts)
    return None


def _cause_location(exc: BaseException, file_path: Path | None, base_dir: Path) -> str:
    """Where the import failed: the deepest frame in the graph file, else in the project."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return ""  # the message already names the file and the line
    frames = traceback.extract_tb(exc.__traceback__)
    if file_path is not None:
        for frame in reversed(frames):
            if Path(frame.filename) == file_path:
                return f" (line {frame.lineno})"
    for frame in reversed(frames):
        path = Path(frame.filename)
        if path.is_absolute() and base_dir in path.parents and ".venv" not in path.parts:
            return f" ({path.relative_to(base_dir)}, line {frame.lineno})"
    return ""


class _Importer:
    """Imports the modules graphs live in, once per file."""

    def __init__(self, base_dir: Path, roots: list[Path]) -> None:
        self.base_dir = base_dir
        self.roots = roots
        self.modules: dict[Path, ModuleType] = {}

    def load(self, graph_id: str, location: str) -> Any:
        module_ref, _, attr = location.rpartition(":")
        file_path: Path | None = None
        shown = module_ref
        try:
            if _is_file_reference(module_ref):
                file_path = (self.base_dir / module_ref).resolve()
                if not file_path.is_file():
                    raise GraphLoadError(
                        f"graph {graph_id!r}: file not found: {module_ref} (looked at {file_path})"
                    )
                module = self._import_file(file_path)
            else:
                module = importlib.import_module(module_ref)
        except GraphLoadError:
            raise
        except BaseException as exc:
            missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
            if missing and (module_ref == missing or module_ref.startswith(f"{missing}.")):
                raise GraphLoadError(
                    f"graph {graph_id!r}: module {module_ref!r} not found; is it installed, "
                    "or is its folder listed in 'dependencies'?"
                ) from exc
            where = _cause_location(exc, file_path, self.base_dir)
            raise GraphLoadError(
                f"graph {graph_id!r} failed to load from {shown}{where}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            return getattr(module, attr)
        except AttributeError as exc:
            candidates = sorted(
                name
                for name, value in vars(module).items()
                if not name.startswith("_") and isinstance(value, (Pregel, StateGraph))
            )
            hint = f"; graphs defined there: {', '.join(candidates)}" if candidates else ""
            raise GraphLoadError(
                f"graph {graph_id!r}: {module_ref} has no attribute {attr!r}{hint}"
            ) from exc

    def _import_file(self, file_path: Path) -> ModuleType:
        if file_path in self.modules:
            return self.modules[file_path]
        dotted = _dotted_name(file_path, self.roots)
        if dotted is not None:
            module = importlib.import_module(dotted)
            if module.__file__ and Path(module.__file__).resolve() == file_path:
                self.modules[file_path] = module
                return module
        digest = hashlib.sha1(str(file_path).encode()).hexdigest()[:8]
        stem = re.sub(r"\W", "_", file_path.stem)
        module_name = f"threadline_graph_{stem}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, file_path)
        if spec is None or spec.loader is None:
            raise GraphLoadError(f"cannot import {file_path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        self.modules[file_path] = module
        return module


def _check_target(graph_id: str, location: str, target: Any) -> Any:
    if isinstance(target, StateGraph):
        try:
            return target.compile()
        except Exception as exc:
            raise GraphLoadError(
                f"graph {graph_id!r} ({location}): the StateGraph does not compile: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    if isinstance(target, Pregel):
        return target
    if callable(target) and not isinstance(target, type):
        try:
            params = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):
            return target
        required = [
            p
            for p in params
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if len(required) > 2:
            raise GraphLoadError(
                f"graph {graph_id!r} ({location}): a graph factory takes a config or a "
                f"runtime, but {getattr(target, '__name__', 'it')} requires "
                f"{len(required)} arguments"
            )
        return target
    raise GraphLoadError(
        f"graph {graph_id!r} ({location}) is not a graph: got {type(target).__name__}, "
        "expected a compiled graph, a StateGraph or a factory function"
    )


def _wants_runtime(param: inspect.Parameter) -> bool:
    annotation = param.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = text or str(annotation)
    if "RunnableConfig" in text:
        return False
    return param.name == "runtime" or "Runtime" in text


def _call_factory(factory: Any, config: RunnableConfig, runtime: Any) -> Any:
    params = list(inspect.signature(factory).parameters.values())
    kwargs: dict[str, Any] = {}
    args: list[Any] = []
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        value = runtime if _wants_runtime(param) else config
        if param.kind is param.KEYWORD_ONLY:
            kwargs[param.name] = value
        else:
            args.append(value)
    return factory(*args, **kwargs)


def _server_runtime(access_context: str, store: Any, context: Any) -> Any:
    """A `langgraph_sdk.runtime.ServerRuntime` for factories that ask for one."""
    from langgraph_sdk import runtime as sdk_runtime

    if access_context == "threads.create_run":
        return sdk_runtime._ExecutionRuntime(
            access_context="threads.create_run", store=store, context=context
        )
    return sdk_runtime._ReadRuntime(access_context=cast(Any, access_context), store=store)


class GraphRegistry:
    """Every graph of the deployment, keyed by graph id."""

    def __init__(self, config: LanggraphConfig, base_dir: Path) -> None:
        self._config = config
        self._base_dir = base_dir
        self._specs: dict[str, GraphSpec] = {}

    def load_all(self) -> None:
        """Import every graph; raises GraphLoadError naming the graph, file and cause."""
        prepare_environment(self._config, self._base_dir)
        importer = _Importer(self._base_dir, dependency_paths(self._config, self._base_dir))
        for graph_id, entry in self._config.graphs.items():
            target = importer.load(graph_id, entry.path)
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
        config: RunnableConfig | Mapping[str, Any],
        *,
        checkpointer: Any = None,
        store: Any = None,
        runtime: Any = None,
        access_context: str | None = None,
        context: Any = None,
    ) -> AsyncIterator[Pregel]:
        """A graph instance bound to `checkpointer` and `store`, built by its factory if any.

        A factory that asks for a runtime gets `runtime`, or else a ServerRuntime whose
        `access_context` is the one given, or guessed: a run's config carries `run_id`
        (threads.create_run); otherwise a checkpointer means a state read (threads.read)
        and no checkpointer means introspection (assistants.read).
        """
        spec = self._specs[graph_id]
        async with contextlib.AsyncExitStack() as stack:
            target = spec.target
            if spec.is_factory:
                if runtime is None:
                    if access_context is None:
                        if (config or {}).get("run_id") is not None:
                            access_context = "threads.create_run"
                        elif checkpointer is not None:
                            access_context = "threads.read"
                        else:
                            access_context = "assistants.read"
                    runtime = _server_runtime(access_context, store, context)
                target = await self._build(spec, cast(RunnableConfig, config), runtime, stack)
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
