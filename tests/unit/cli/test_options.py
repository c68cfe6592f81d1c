"""The placement flags: each parsed into `Settings` by the config file's own parser, over the file's values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from raysched.cli.bench import PASS_THROUGH
from raysched.cli.main import submit_command
from raysched.cli.options import placement_options, settings_from_flags
from raysched.config import RUN_OPTIONS, Settings
from raysched.results.outcome import ExitCode

seen: list[Settings] = []


@click.command()
@placement_options
def show(config_path: str | None, local_nodes: int | None, **flags: Any) -> None:
    seen.append(settings_from_flags(config_path, **flags))


def parse(*args: str) -> Settings:
    seen.clear()
    result = CliRunner().invoke(show, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return seen[-1]


def refuse(*args: str) -> str:
    """The one error line a bad flag gives (exit 2, no traceback)."""
    result = CliRunner().invoke(show, list(args))
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_no_flags_and_no_config_give_the_defaults():
    assert parse() == Settings()


def test_every_flag_lands_in_its_setting():
    settings = parse(
        *("--policy", "p2c", "--address", "10.0.0.1:6379", "--seed", "3", "--vnodes", "50"),
        *("--load-factor", "1.5", "--locality-wait", "2", "--max-inflight", "10"),
        *("--overcommit", "3", "--batch", "4"),
    )
    assert settings == Settings(
        policy="p2c",
        address="10.0.0.1:6379",
        seed=3,
        vnodes=50,
        load_factor=1.5,
        locality_wait=2.0,
        max_inflight=10,
        overcommit=3.0,
        batch=4,
    )


def test_flags_override_the_config_file_and_words_override_numbers(tmp_path: Path):
    config = tmp_path / "run.yaml"
    config.write_text("policy: greedy\nseed: 7\nload_factor: 2\novercommit: 4\nlocality_wait: 1\nbatch: 8\n")
    from_file = parse("--config", str(config))
    assert (from_file.policy, from_file.seed, from_file.load_factor, from_file.overcommit) == ("greedy", 7, 2.0, 4.0)
    assert (from_file.locality_wait, from_file.batch) == (1.0, 8)
    flagged = parse(
        *("--config", str(config), "--seed", "9"),
        *("--load-factor", "off", "--overcommit", "auto", "--locality-wait", "auto", "--batch", "off"),
    )
    assert flagged.policy == "greedy" and flagged.seed == 9  # the file's, and the flag's over the file's
    # A word that parses to None still overrides the file: None there means "given", not "absent".
    assert (flagged.load_factor, flagged.overcommit, flagged.locality_wait, flagged.batch) == (None, None, None, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--overcommit", "0.5"), "overcommit must be a finite number >= 1 (1.0 = strict), got 0.5 (or 'auto')"),
        (("--overcommit", "lots"), "overcommit must be a finite number >= 1 (1.0 = strict), got 'lots' (or 'auto')"),
        (("--overcommit", "inf"), "overcommit must be a finite number >= 1"),
        (("--load-factor", "0.9"), "load factor must be >= 1"),
        (("--load-factor", "many"), "load factor must be a number >= 1"),
        (("--locality-wait", "-1"), "locality_wait must be 'auto' or a number >= 0, got '-1'"),
        (("--batch", "0"), "batch must be 'auto', 'off' or a whole number of tasks from 1 to 100,000"),
        (("--vnodes", "0"), "--vnodes"),
        (("--seed", "-1"), "--seed"),
    ],
)
def test_bad_values_are_one_clear_error_line(args: tuple[str, ...], message: str):
    line = refuse(*args)
    assert message in line, line
    assert args[0] in line, line  # names the flag


def test_a_bad_config_file_is_bad_input_naming_the_file_and_key(tmp_path: Path):
    config = tmp_path / "run.yaml"
    config.write_text("overcommit: 0.5\n")
    line = refuse("--config", str(config))
    assert str(config) in line and "overcommit must be a finite number >= 1" in line
    config.write_text("overcomit: 2\n")
    assert "unknown config key(s): overcomit" in refuse("--config", str(config))


def test_every_run_option_is_a_flag_of_submit():
    flags = {param.name for param in submit_command.params}
    assert set(RUN_OPTIONS) <= flags, set(RUN_OPTIONS) - flags
    assert set(PASS_THROUGH) <= set(RUN_OPTIONS)  # what bench passes on to each run is a run option
