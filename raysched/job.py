"""Job files: the `Task` record, the `task` decorator, loading and validating job files.

A job file is ordinary Python that defines `tasks()`, an iterable (often a
generator) of `Task`. It is loaded once in the driver. How its code reaches the
workers is decided here: a job that imports no module of its own folder is
sent by value with its functions (no runtime env at all, so no start-up cost);
one that imports sibling modules or packages needs its folder staged as the
Ray job's ``working_dir`` (see `raysched.cluster.staged_working_dir`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from raysched.core.view import check_demand

DEFAULT_DEMAND: Mapping[str, float] = {"CPU": 1.0}
DEMAND_ATTR = "__raysched_demand__"
KEYS_PER_NODE_ATTR = "__raysched_keys_per_node__"


class JobFileError(ValueError):
    """A job file that cannot be loaded or used; the message is one line for the user."""


def task(
    num_cpus: float = 1,
    num_gpus: float = 0,
    memory: float = 0,
    resources: Mapping[str, float] | None = None,
    keys_per_node: int | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a function's resource demand, in Ray's own terms.

    The function stays a plain function (callable locally, testable); raysched
    checks the demand when it loads the job file and reads it when it
    dispatches the function with node affinity. ``keys_per_node``: how many
    keys' warm state a node keeps (its cache's size in keys); hash then gives no
    node more distinct keys while another has room (``--keys-per-node`` wins).
    """
    raw = raw_demand(num_cpus, num_gpus, memory, resources)
    if keys_per_node is not None and (
        isinstance(keys_per_node, bool) or not isinstance(keys_per_node, int) or keys_per_node < 1
    ):
        raise ValueError(f"@raysched.task keys_per_node must be a whole number of keys >= 1, got {keys_per_node!r}")

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError("@raysched.task decorates a function")
        setattr(fn, DEMAND_ATTR, raw)
        if keys_per_node is not None:
            setattr(fn, KEYS_PER_NODE_ATTR, keys_per_node)
        return fn

    return mark


def raw_demand(
    num_cpus: float, num_gpus: float, memory: float, resources: Mapping[str, float] | None
) -> dict[Any, Any]:
    """A declared demand as written (`task` and `service`), checked when the job file is loaded."""
    raw: dict[Any, Any] = {"CPU": num_cpus, "GPU": num_gpus, "memory": memory}
    if isinstance(resources, Mapping):
        raw.update(resources)
    elif resources is not None:
        raw["resources"] = resources  # reported as a bad demand when the job is loaded
    return raw


def task_demand(fn: Callable[..., Any], job_name: str = "job") -> Mapping[str, float]:
    """The validated resources one call of `fn` needs: its `@task` demand, else one CPU.

    The one place a declared demand is checked (inf, nan, negative, non-number,
    empty resource name): a bad one is a JobFileError naming the function.
    """
    raw = getattr(fn, DEMAND_ATTR, None)
    if raw is None:
        return DEFAULT_DEMAND
    try:
        if "resources" in raw:
            raise ValueError(
                f"resources must be a mapping of resource name to amount, got {type(raw['resources']).__name__}"
            )
        demand = check_demand(raw)
    except (TypeError, ValueError) as err:
        name = getattr(fn, "__qualname__", None) or getattr(fn, "name", repr(fn))
        kind = getattr(fn, "kind", "task function")
        shown = ", ".join(f"{k}={v!r}" for k, v in raw.items() if k == "resources" or v != 0)
        raise JobFileError(
            f"{job_name}: {kind} {name} has a bad resource demand ({shown}): {str(err).removeprefix('demand: ')}"
        ) from None
    return {name: amount for name, amount in demand.items() if amount > 0}


@dataclass(frozen=True)
class Task:
    """One unit of work: a function, its arguments, and the key hash placement uses."""

    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"Task.fn must be callable, got {type(self.fn).__name__}")
        if not isinstance(self.args, (tuple, list)):
            raise TypeError(f"Task.args must be a tuple, got {type(self.args).__name__}")
        if self.kwargs is not None and not isinstance(self.kwargs, Mapping):
            raise TypeError(f"Task.kwargs must be a dict, got {type(self.kwargs).__name__}")


@dataclass
class JobFile:
    """A loaded job file: its path, its module, and the `tasks` callable."""

    path: Path
    module: ModuleType
    tasks_fn: Callable[[], Iterable[Task]] = field(repr=False)
    total: int | None = None  # known once iteration starts, when tasks() returns a sized collection
    sibling_imports: tuple[str, ...] = ()  # modules or packages of its own folder that the job imports
    services: tuple[Any, ...] = ()  # the `raysched.services.Service`s it declares, whose replicas the run creates
    keys_per_node: int | None = None  # the smallest keys_per_node its task functions declare

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def needs_working_dir(self) -> bool:
        """True when the job imports modules of its own folder, which must travel as a working_dir."""
        return bool(self.sibling_imports)

    def ship_by_value(self) -> None:
        """Send the job module's code with its functions, for workers that cannot import it by name."""
        _pickle_by_value(self.module)

    def iter_tasks(self) -> Iterator[Task]:
        """Yield the job's tasks lazily, checking each is a `Task`."""
        try:
            produced = self.tasks_fn()
        except Exception as err:
            raise JobFileError(f"{self.name}: tasks() raised {type(err).__name__}: {err}") from None
        self.total = len(produced) if isinstance(produced, Sized) else None
        try:
            iterator = iter(produced)
        except TypeError:
            raise JobFileError(
                f"{self.name}: tasks() must return an iterable of raysched.Task, got {type(produced).__name__}"
            ) from None
        position = 0
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as err:  # the user's generator failed part-way
                raise JobFileError(
                    f"{self.name}: tasks() raised {type(err).__name__}: {err} after {position} tasks"
                ) from None
            if not isinstance(item, Task):
                raise JobFileError(
                    f"{self.name}: tasks() item {position} is a {type(item).__name__}, not a raysched.Task; "
                    "yield raysched.Task(fn, args=(...), key=...)"
                )
            yield item
            position += 1


def load_job(path: str | Path) -> JobFile:
    """Import a job file as a module and find its `tasks()`.

    The module is registered under its file stem so that workers, which get the
    job's folder as their working directory, import the same module by name.
    When the stem would clash with an existing module (or is no identifier), it is
    loaded under a private name and pickled by value instead.
    """
    job_path = Path(path).expanduser()
    if not job_path.exists():
        raise JobFileError(f"job file not found: {path}")
    if not job_path.is_file() or job_path.suffix != ".py":
        raise JobFileError(f"job file must be a .py file: {path}")
    job_path = job_path.resolve()
    name = job_path.stem
    by_value = not name.isidentifier() or _clashes(name, job_path)
    if by_value:
        name = "_raysched_job_" + hashlib.blake2b(str(job_path).encode(), digest_size=6).hexdigest()
    spec = importlib.util.spec_from_file_location(name, job_path)
    if spec is None or spec.loader is None:
        raise JobFileError(f"cannot import job file: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(job_path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(name, None)
        raise JobFileError(f"syntax error in {err.filename}, line {err.lineno}: {err.msg}") from None
    except Exception as err:  # the user's module-level code failed
        sys.modules.pop(name, None)
        raise JobFileError(f"{job_path.name} failed while loading: {type(err).__name__}: {err}") from None
    if by_value:
        _pickle_by_value(module)
    tasks_fn = getattr(module, "tasks", None)
    if tasks_fn is None or not callable(tasks_fn):
        raise JobFileError(f"{job_path.name} defines no tasks() function; add `def tasks(): yield raysched.Task(...)`")
    from raysched.services import Service  # it builds on this module

    services: dict[int, Service] = {}
    hints: list[int] = []
    for value in list(vars(module).values()):  # check every declared demand now, not mid-run
        if callable(value) and hasattr(value, DEMAND_ATTR):
            task_demand(value, job_path.name)
            hint = getattr(value, KEYS_PER_NODE_ATTR, None)
            if hint is not None:
                hints.append(hint)
        if isinstance(value, Service):
            services.setdefault(id(value), value)
    return JobFile(
        path=job_path,
        module=module,
        tasks_fn=tasks_fn,
        sibling_imports=sibling_imports(job_path),
        services=tuple(services.values()),
        keys_per_node=min(hints) if hints else None,
    )


def sibling_imports(job_path: Path) -> tuple[str, ...]:
    """Modules and packages of the job's folder that its source imports (anywhere, even inside functions).

    Relative imports count as "." (the folder itself). Read from the source, so an
    import inside a task function is seen although the driver never runs it.
    """
    try:
        tree = ast.parse(job_path.read_text(encoding="utf-8"), filename=str(job_path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return ()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                imported.add(".")
            elif node.module:
                imported.add(node.module.split(".")[0])
    folder = job_path.parent
    mine = {entry.stem for entry in folder.glob("*.py") if entry != job_path}
    mine |= {entry.name for entry in folder.iterdir() if entry.is_dir() and (entry / "__init__.py").exists()}
    return tuple(sorted(name for name in imported if name in mine or name == "."))


def _clashes(name: str, job_path: Path) -> bool:
    """True when `name` already means another module (stdlib, installed, or loaded)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        loaded_file = getattr(loaded, "__file__", None)
        return loaded_file is None or Path(loaded_file).resolve() != job_path
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return False
    return spec is not None and (spec.origin is None or Path(spec.origin).resolve() != job_path)


def _pickle_by_value(module: ModuleType) -> None:
    """Send a module's code with its functions. Ray pickles with its own copy of cloudpickle, so register with
    that one; imported here, so that `import raysched` (and its Ray-free layers) does not start Ray's import."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)
