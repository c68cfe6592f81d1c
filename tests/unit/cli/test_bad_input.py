"""Bad input and failing tasks, driven through `raysched submit` as a user would.

Every bad input must end with exit 2, exactly one line on stderr that starts with
"Error:" and names the problem (and what to do), no traceback, and no hang.
A job whose tasks fail exits 1 and records each attempt in the CSV.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_input import GOOD_JOB, assert_bad_input, submit, write


@pytest.fixture
def good_job(tmp_path: Path) -> Path:
    return write(tmp_path / "good.py", GOOD_JOB)


def test_missing_job_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    assert_bad_input(submit(str(missing)), "not found", str(missing))


def test_directory_as_job_file(tmp_path: Path) -> None:
    assert_bad_input(submit(str(tmp_path)), str(tmp_path), "directory")


def test_job_file_that_is_not_python(tmp_path: Path) -> None:
    notes = write(tmp_path / "notes.txt", GOOD_JOB)
    assert_bad_input(submit(str(notes)), "notes.txt", ".py")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    job = write(tmp_path / "broken.py", "import raysched\n\n\ndef tasks(:\n    pass\n")
    line = assert_bad_input(submit(str(job)), "syntax error", "broken.py", "line 4")
    assert "line 4" in line


def test_job_file_without_tasks(tmp_path: Path) -> None:
    job = write(tmp_path / "notasks.py", "import raysched\ndef work(i):\n    return i\n")
    assert_bad_input(submit(str(job)), "notasks.py", "tasks()", "raysched.Task")


def test_module_level_code_raising(tmp_path: Path) -> None:
    job = write(
        tmp_path / "explodes.py",
        "import raysched\nraise RuntimeError('no database here')\ndef tasks():\n    return []\n",
    )
    assert_bad_input(submit(str(job)), "explodes.py", "RuntimeError", "no database here")


# -- flags --------------------------------------------------------------------------------------


def test_unknown_policy_lists_the_valid_ones(good_job: Path) -> None:
    assert_bad_input(
        submit(str(good_job), "--policy", "fastest"),
        "fastest",
        "hash",
        "random",
        "p2c",
        "greedy",
        "pack",
        "module:Name",
    )


def test_user_policy_module_that_does_not_exist(good_job: Path) -> None:
    assert_bad_input(submit(str(good_job), "--policy", "nosuchmodule:Thing"), "nosuchmodule:Thing", "import")


def test_load_factor_below_one(good_job: Path) -> None:
    assert_bad_input(submit(str(good_job), "--load-factor", "0.5"), "load factor", ">= 1", "0.5", "off")


def test_load_factor_not_a_number(good_job: Path) -> None:
    assert_bad_input(submit(str(good_job), "--load-factor", "abc"), "--load-factor", "abc", "off")


def test_executors_takes_auto_on_or_off(good_job: Path) -> None:
    assert_bad_input(submit(str(good_job), "--executors", "sometimes"), "--executors", "sometimes", "auto", "off")


def test_executor_idle_must_be_positive(good_job: Path) -> None:
    assert_bad_input(submit(str(good_job), "--executor-idle", "0"), "--executor-idle", "0")


def test_zero_vnodes(good_job: Path) -> None:
    assert_bad_input(submit(str(good_job), "--vnodes", "0"), "--vnodes", "0")


def test_keys_per_node_must_be_a_whole_number_of_keys(good_job: Path) -> None:
    assert_bad_input(submit(str(good_job), "--keys-per-node", "0"), "--keys-per-node", "0")
    assert_bad_input(submit(str(good_job), "--keys-per-node", "many"), "--keys-per-node", "many")


def test_a_job_whose_keys_per_node_is_bad_is_refused_when_loaded(tmp_path: Path) -> None:
    job = write(
        tmp_path / "capped.py",
        "import raysched\n"
        "@raysched.task(num_cpus=1, keys_per_node=0)\n"
        "def work(i):\n    return {'items': 1}\n"
        "def tasks():\n    yield raysched.Task(work, args=(1,))\n",
    )
    assert_bad_input(submit(str(job)), "capped.py", "keys_per_node", "0")


# -- config files -------------------------------------------------------------------------------


def test_config_that_cannot_be_read(good_job: Path, tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    assert_bad_input(submit(str(good_job), "--config", str(missing)), "config", str(missing))


def test_config_that_is_not_yaml(good_job: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "bad.yaml", "policy: hash\nlocal_nodes: [ {num_cpus: 1\nseed: 3\n")
    assert_bad_input(submit(str(good_job), "--config", str(config)), "bad.yaml", "YAML")


def test_config_with_an_unknown_key(good_job: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "typo.yaml", "policy: hash\nretires: 3\n")
    line = assert_bad_input(submit(str(good_job), "--config", str(config)), "typo.yaml", "unknown", "retires")
    assert "retries" in line  # the known keys are listed, so the typo is easy to fix


def test_config_with_a_wrong_type(good_job: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "types.yaml", "vnodes: many\n")
    assert_bad_input(submit(str(good_job), "--config", str(config)), "types.yaml", "vnodes", "integer", "many")


# -- outputs never lost -------------------------------------------------------------------------


def test_out_refuses_an_existing_file(good_job: Path, tmp_path: Path) -> None:
    out = write(tmp_path / "precious.csv", "hours of results\n")
    assert_bad_input(submit(str(good_job), "--out", str(out)), "precious.csv", "already exists", "--resume")
    assert out.read_text() == "hours of results\n"


def test_resume_refuses_a_csv_of_another_job_or_policy(good_job: Path, tmp_path: Path) -> None:
    header = (
        "run_id,job,policy,task_id,key,attempt,status,error,node_chosen,node_ran,"
        "submitted_at,started_at,finished_at,wait_s,run_s\n"
    )
    other_job = header + "r1,other.py,hash,0,0,1,ok,,aa,aa,1.0,1.1,1.2,0.1,0.1\n"
    other_policy = header + "r1,good.py,p2c,0,0,1,ok,,aa,aa,1.0,1.1,1.2,0.1,0.1\n"
    for name, text, words in (
        ("job.csv", other_job, ("other.py", "good.py")),
        ("policy.csv", other_policy, ("p2c", "hash")),
    ):
        csv = write(tmp_path / name, text)
        assert_bad_input(submit(str(good_job), "--resume", str(csv), "--policy", "hash"), name, *words)
        assert csv.read_text() == text


# -- clusters -----------------------------------------------------------------------------------


def test_address_where_no_cluster_answers(good_job: Path, tmp_path: Path) -> None:
    result = submit(str(good_job), "--address", "127.0.0.1:1", "--out", str(tmp_path / "out.csv"), timeout=45)
    assert_bad_input(result, "no Ray cluster answers", "127.0.0.1:1")
    assert result.elapsed < 30  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "decorator, shown",
    [
        ("num_cpus=float('inf')", "CPU=inf"),
        ("num_gpus=float('nan')", "GPU=nan"),
        ("num_cpus=-2", "CPU=-2"),
        ("num_cpus='two'", "CPU='two'"),
        ("resources={'': 1}", "resource names must be non-empty"),
    ],
)
def test_a_bad_demand_is_refused_before_anything_runs(tmp_path: Path, decorator: str, shown: str) -> None:
    """Regression: num_cpus=inf reached the brain and came back as "policy hash raised ValueError"."""
    job = write(
        tmp_path / "baddemand.py",
        "import raysched\n"
        f"@raysched.task({decorator})\ndef crunch(i):\n    return i\n"
        "def tasks():\n    yield raysched.Task(crunch, args=(1,))\n",
    )
    out = tmp_path / "out.csv"
    line = assert_bad_input(
        submit(str(job), "--address", "127.0.0.1:1", "--out", str(out)),
        "baddemand.py",
        "task function crunch",
        "bad resource demand",
        shown,
    )
    assert "policy" not in line
    assert not out.exists()  # refused while loading the job: no cluster contacted, nothing written
