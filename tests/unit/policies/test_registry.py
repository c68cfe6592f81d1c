"""Policy registry: names, unknown names, and module:Name user policies."""

from __future__ import annotations

import textwrap

import pytest

from raysched.core.view import ResourceView
from raysched.policies import (
    POLICY_NAMES,
    FunctionPolicy,
    Policy,
    PolicyOptions,
    TaskDemand,
    build_policy,
)


def test_names_and_builders():
    assert POLICY_NAMES == ("hash", "random", "p2c", "greedy", "pack")
    for name in POLICY_NAMES:
        assert build_policy(name, PolicyOptions()).name == name
    assert build_policy("hash").name == "hash"  # options default


def test_unknown_name_lists_valid_ones_and_the_module_form():
    with pytest.raises(ValueError) as err:
        build_policy("roundrobin", PolicyOptions())
    msg = str(err.value)
    assert "unknown policy 'roundrobin'" in msg
    assert "hash, random, p2c, greedy, pack" in msg and "module:Name" in msg


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(module: str, source: str) -> str:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        return module

    return write


def one_node_view() -> ResourceView:
    v = ResourceView()
    v.set_node("only", {"CPU": 1})
    return v


def test_class_taking_options(in_tmp):
    mod = in_tmp(
        "rs_user_cls_opts",
        """
        class Sticky:
            name = "sticky"
            def __init__(self, options):
                self.seed = options.seed
            def choose(self, task, view):
                return view.nodes[0]
    """,
    )
    p = build_policy(f"{mod}:Sticky", PolicyOptions(seed=9))
    assert p.seed == 9 and p.name == "sticky" and isinstance(p, Policy)
    assert p.choose(TaskDemand({"CPU": 1}, "k"), one_node_view()) == "only"


def test_class_without_arguments_gets_the_spec_as_name(in_tmp):
    mod = in_tmp(
        "rs_user_cls_noargs",
        """
        class First:
            def choose(self, task, view):
                return view.nodes[0]
    """,
    )
    p = build_policy(f"{mod}:First", PolicyOptions())
    assert p.name == f"{mod}:First"


def test_factory_instance_and_plain_function(in_tmp):
    mod = in_tmp(
        "rs_user_misc",
        """
        class _P:
            name = "p"
            def __init__(self, options=None):
                self.options = options
            def choose(self, task, view):
                return None
        def make(options):
            return _P(options)
        ready = _P()
        def pick(task, view):
            return view.nodes[-1]
    """,
    )
    opts = PolicyOptions(seed=1)
    assert build_policy(f"{mod}:make", opts).options is opts
    assert build_policy(f"{mod}:ready", opts).options is None
    fn = build_policy(f"{mod}:pick", opts)
    assert isinstance(fn, FunctionPolicy) and fn.name == f"{mod}:pick"
    assert fn.choose(TaskDemand({}, "k"), one_node_view()) == "only"


def test_object_without_choose_is_rejected(in_tmp):
    mod = in_tmp(
        "rs_user_nochoose",
        """
        class NoChoose:
            def pick(self, task, view):
                return None
        VALUE = 3
    """,
    )
    with pytest.raises(ValueError, match="no callable choose"):
        build_policy(f"{mod}:NoChoose", PolicyOptions())
    with pytest.raises(ValueError, match="no callable choose"):
        build_policy(f"{mod}:VALUE", PolicyOptions())


def test_import_errors_are_value_errors_with_the_reason(in_tmp):
    in_tmp("rs_user_broken", "raise RuntimeError('boom at import')\n")
    with pytest.raises(ValueError, match="cannot import 'rs_user_broken': RuntimeError: boom at import"):
        build_policy("rs_user_broken:X", PolicyOptions())
    with pytest.raises(ValueError, match="cannot import 'rs_user_missing_mod': ModuleNotFoundError"):
        build_policy("rs_user_missing_mod:X", PolicyOptions())


def test_missing_attribute_and_malformed_spec(in_tmp):
    mod = in_tmp("rs_user_empty", "x = 1\n")
    with pytest.raises(ValueError, match="has no attribute 'Nope'"):
        build_policy(f"{mod}:Nope", PolicyOptions())
    for spec in (":Name", "module:"):
        with pytest.raises(ValueError, match="expected module:Name"):
            build_policy(spec, PolicyOptions())


def test_constructor_failure_is_reported(in_tmp):
    mod = in_tmp(
        "rs_user_ctor",
        """
        class Bad:
            def __init__(self, options):
                raise RuntimeError("needs a GPU")
            def choose(self, task, view):
                return None
    """,
    )
    with pytest.raises(ValueError, match="building it failed: RuntimeError: needs a GPU"):
        build_policy(f"{mod}:Bad", PolicyOptions())


def test_cwd_is_not_left_on_sys_path(in_tmp, tmp_path):
    import sys

    mod = in_tmp("rs_user_path", "def pick(task, view):\n    return None\n")
    build_policy(f"{mod}:pick", PolicyOptions())
    assert str(tmp_path) not in sys.path
