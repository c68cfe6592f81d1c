"""Placement policies: a name registry plus ``module:Name`` user policies.

``build_policy("p2c", PolicyOptions(seed=1))`` gives a built-in;
``build_policy("mypolicies:Sticky", options)`` imports ``mypolicies`` (from
the current directory as with ``python -m``, the job file's folder, or what is
installed) and uses its
``Sticky``: a class or factory (called with the options if it takes one
argument, else with none), an object with a ``choose`` method, or a plain
function ``choose(task, view)``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from raysched.policies.base import (
    DEFAULT_LOAD_FACTOR,
    DEFAULT_VNODES_PER_CPU,
    Decision,
    InfeasibleError,
    Policy,
    PolicyOptions,
    TaskDemand,
    check_feasible,
)
from raysched.policies.hash import HashPolicy
from raysched.policies.noderesources import LEAST_ALLOCATED, MOST_ALLOCATED, NodeResourcesPolicy
from raysched.policies.p2c import P2CPolicy
from raysched.policies.random_policy import RandomPolicy

__all__ = [
    "DEFAULT_LOAD_FACTOR",
    "DEFAULT_VNODES_PER_CPU",
    "POLICY_NAMES",
    "Decision",
    "FunctionPolicy",
    "HashPolicy",
    "InfeasibleError",
    "NodeResourcesPolicy",
    "P2CPolicy",
    "Policy",
    "PolicyOptions",
    "RandomPolicy",
    "TaskDemand",
    "build_policy",
    "check_feasible",
    "ship_by_value",
]

_BUILDERS: dict[str, Callable[[PolicyOptions], Any]] = {
    "hash": HashPolicy,
    "random": RandomPolicy,
    "p2c": P2CPolicy,
    "greedy": lambda options: NodeResourcesPolicy(options, LEAST_ALLOCATED),
    "pack": lambda options: NodeResourcesPolicy(options, MOST_ALLOCATED),
}
POLICY_NAMES: tuple[str, ...] = tuple(_BUILDERS)


class FunctionPolicy:
    """Wraps a plain ``choose(task, view)`` function as a policy."""

    def __init__(self, fn: Callable[[TaskDemand, Any], str | None], name: str) -> None:
        self.fn = fn
        self.name = name

    def choose(self, task: TaskDemand, view: Any) -> str | None:
        return self.fn(task, view)


def build_policy(name: str, options: PolicyOptions | None = None, search: Sequence[str | os.PathLike] = ()) -> Policy:
    """A policy by registry name or ``module:Name``; ValueError says what is wrong.

    ``module`` is looked for in the current directory, then in ``search`` (the
    job file's folder), then among what is installed.
    """
    options = options if options is not None else PolicyOptions()
    if not isinstance(name, str):
        raise ValueError(f"policy must be a name, got {name!r}")
    builder = _BUILDERS.get(name)
    if builder is not None:
        return builder(options)
    if ":" in name:
        return _load_user_policy(name, options, search)
    raise ValueError(
        f"unknown policy {name!r}: choose one of {', '.join(POLICY_NAMES)}, "
        "or give your own as module:Name (e.g. mypolicies:Sticky)"
    )


def _load_user_policy(spec: str, options: PolicyOptions, search: Sequence[str | os.PathLike] = ()) -> Policy:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"policy {spec!r}: expected module:Name, e.g. mypolicies:Sticky")
    folders = [os.getcwd(), *(os.fspath(f) for f in search)]
    added = [f for f in dict.fromkeys(folders) if f not in sys.path]
    sys.path[:0] = added
    try:
        importlib.invalidate_caches()
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is the user's input
        raise ValueError(f"policy {spec!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    finally:
        for folder in added:
            if folder in sys.path:
                sys.path.remove(folder)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"policy {spec!r}: module {module_name!r} has no attribute {attr!r}") from None
    policy = _instantiate(obj, spec, options)
    if not callable(getattr(policy, "choose", None)):
        raise ValueError(
            f"policy {spec!r}: {type(policy).__name__} has no callable choose(task, view) method; "
            "a policy needs choose(task, view) -> node_id | None"
        )
    if not isinstance(getattr(policy, "name", None), str):
        with contextlib.suppress(Exception):  # read-only objects keep their lack of a name
            policy.name = spec
    return policy


def _instantiate(obj: Any, spec: str, options: PolicyOptions) -> Any:
    if not inspect.isclass(obj) and callable(getattr(obj, "choose", None)):
        return obj  # a ready policy object
    if not callable(obj):
        return obj  # reported by the caller as lacking choose
    try:
        params = [
            p
            for p in inspect.signature(obj).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):
        params = []
    required = [p for p in params if p.kind != p.VAR_POSITIONAL and p.default is p.empty]
    if not inspect.isclass(obj) and len(required) == 2:
        return FunctionPolicy(obj, spec)  # a plain choose(task, view) function
    try:
        if params:
            return obj(options)
        return obj()
    except Exception as exc:
        raise ValueError(f"policy {spec!r}: building it failed: {type(exc).__name__}: {exc}") from exc


def ship_by_value(policy: Policy) -> None:
    """Send a user policy's code along with it, so the brain actor need not import its module.

    The brain is a long-lived actor that may run elsewhere (and was started by
    another submission); pickling the user's module by value makes
    `--policy mymodule:Name` work wherever the brain lives.
    """
    module_name = getattr(type(policy), "__module__", "") or ""
    if isinstance(policy, FunctionPolicy):
        module_name = getattr(policy.fn, "__module__", "") or ""
    if not module_name or module_name.split(".")[0] in ("raysched", "builtins"):
        return
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, "__file__", None):
        from ray import cloudpickle  # Ray pickles with its own copy; imported here: policies run without Ray

        cloudpickle.register_pickle_by_value(module)
