"""`raysched.submit` from Python: every `raysched submit` flag is a keyword, checked as the flag is.

No cluster here: every bad input is refused before one would start (the runs themselves are in
tests/cluster/test_doc_examples.py, through the docs' own example).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import click
import pytest
from bad_input import GOOD_JOB, write

import raysched
from raysched import submission
from raysched.cli.main import cli
from raysched.config import Settings
from raysched.submission import SubmitError, resolve_settings

HOOKS = {"progress", "announce", "interrupt", "command_line"}  # the command line's own, not flags


def python_name(param: click.Parameter) -> str:
    """A flag's Python name: the long flag without dashes, `-` as `_` (`--load-factor` -> load_factor)."""
    if isinstance(param, click.Argument):
        return str(param.name)
    long = next(opt for opt in param.opts if opt.startswith("--"))
    return long[2:].replace("-", "_")


def submit_flags() -> list[str]:
    command = cli.commands["submit"]
    ctx = click.Context(command, info_name="submit")
    return [python_name(p) for p in command.get_params(ctx) if isinstance(p, click.Option) and p.name != "help"]


def test_raysched_submit_is_the_submission_function() -> None:
    from raysched import submit

    assert submit is submission.submit is raysched.submit


def test_every_submit_flag_is_a_keyword_of_submit() -> None:
    """A new `raysched submit` flag fails here until `raysched.submit` takes it by its Python name."""
    parameters = inspect.signature(submission.submit).parameters
    flags = submit_flags()
    assert {"policy", "address", "out", "seed", "quiet", "load_factor", "resume", "config"} <= set(flags)
    missing = [name for name in flags if name not in parameters]
    assert not missing, f"raysched.submit lacks keywords for: {missing}"
    keywords = {n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords - HOOKS == set(flags), sorted((keywords - HOOKS) ^ set(flags))


def test_options_land_in_the_settings_parsed_as_the_flags_are() -> None:
    settings = resolve_settings(
        None, None, policy="p2c", seed=7, load_factor="off", batch="off", locality_wait="auto", overcommit=2
    )
    assert (settings.policy, settings.seed, settings.load_factor, settings.batch) == ("p2c", 7, None, 1)
    assert settings.locality_wait is None and settings.overcommit == 2
    assert resolve_settings(None, None, load_factor=1.5).load_factor == 1.5


def test_options_left_at_none_keep_the_settings_or_the_config(tmp_path: Path) -> None:
    base = Settings(policy="greedy", retries=3)
    assert resolve_settings(base, None) == base
    assert resolve_settings(base, None, seed=1) == Settings(policy="greedy", retries=3, seed=1)
    config = write(tmp_path / "c.yaml", "policy: pack\nvnodes: 10\n")
    from_file = resolve_settings(None, config, vnodes=20)
    assert (from_file.policy, from_file.vnodes) == ("pack", 20)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"load_factor": 0.5}, ["load factor", ">= 1", "off"]),
        ({"batch": "many"}, ["batch", "'auto', 'off'"]),
        ({"seed": -1}, ["seed", ">= 0"]),
        ({"overcommit": "lots"}, ["overcommit", "auto"]),
        ({"policy": 3}, ["policy", "string"]),
    ],
)
def test_a_bad_option_is_a_submit_error_naming_it(options: dict, words: list[str]) -> None:
    with pytest.raises(SubmitError) as caught:
        resolve_settings(None, None, **options)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word.lower() in message.lower(), (word, message)


def test_settings_and_config_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SubmitError, match="either settings or config"):
        resolve_settings(Settings(), tmp_path / "c.yaml")


def test_bad_input_is_refused_before_any_cluster_starts(tmp_path: Path) -> None:
    job = write(tmp_path / "job.py", GOOD_JOB)
    with pytest.raises(SubmitError, match=r"fastest.*hash"):
        raysched.submit(job, policy="fastest", quiet=True)
    with pytest.raises(SubmitError, match="load factor"):
        raysched.submit(job, load_factor=0.2, quiet=True)
    (tmp_path / "taken.csv").write_text("x\n")
    with pytest.raises(SubmitError, match="already exists"):
        raysched.submit(job, out=tmp_path / "taken.csv", quiet=True)
    with pytest.raises(TypeError, match="polcy"):
        raysched.submit(job, polcy="p2c")  # type: ignore[call-arg]
