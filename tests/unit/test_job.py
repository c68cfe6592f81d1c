"""Job files: the Task record, the task decorator, loading and its clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ray import cloudpickle

import raysched
from raysched.job import DEFAULT_DEMAND, JobFileError, load_job, sibling_imports, task_demand


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_task_decorator_records_ray_style_demand() -> None:
    @raysched.task(num_cpus=2, num_gpus=1, memory=1e9, resources={"ssd": 1})
    def work() -> None: ...

    assert task_demand(work) == {"CPU": 2.0, "GPU": 1.0, "memory": 1e9, "ssd": 1.0}
    assert work() is None  # still a plain function


def test_plain_function_demands_one_cpu() -> None:
    def work() -> None: ...

    assert task_demand(work) == DEFAULT_DEMAND == {"CPU": 1.0}


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"num_cpus": -1}, "CPU must be a finite amount >= 0, got -1"),
        ({"num_cpus": float("inf")}, "CPU must be a finite amount >= 0, got inf"),
        ({"num_gpus": float("nan")}, "GPU must be a finite amount >= 0, got nan"),
        ({"resources": {"ssd": "two"}}, "ssd must be a number, got 'two'"),
        ({"num_gpus": True}, "GPU must be a number, got True"),
        ({"resources": {"": 1}}, "resource names must be non-empty strings"),
        ({"resources": [("ssd", 1)]}, "must be a mapping"),
    ],
)
def test_a_bad_demand_names_the_function_and_the_demand(bad: dict, reason: str) -> None:
    @raysched.task(**bad)
    def crunch() -> None: ...

    with pytest.raises(JobFileError) as err:
        task_demand(crunch, "job.py")
    message = str(err.value)
    assert message.startswith("job.py: task function ") and "crunch has a bad resource demand" in message
    assert reason in message


def test_a_bad_demand_is_refused_when_the_job_file_loads(tmp_path: Path) -> None:
    job = write(
        tmp_path,
        "badjob.py",
        "import raysched\n@raysched.task(num_cpus=float('inf'))\n"
        "def crunch(i):\n    return i\n"
        "def tasks():\n    yield raysched.Task(crunch, args=(1,))\n",
    )
    with pytest.raises(JobFileError, match=r"badjob\.py: task function crunch has a bad resource demand.*CPU=inf"):
        load_job(job)


def test_task_validates_its_fields() -> None:
    with pytest.raises(TypeError, match="callable"):
        raysched.Task(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="args must be a tuple"):
        raysched.Task(print, args="abc")  # type: ignore[arg-type]


def test_load_job_consumes_tasks_lazily(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "lazyjob.py",
        """
import raysched
drawn = []
def f(i):
    return i
def tasks():
    for i in range(10**9):
        drawn.append(i)
        yield raysched.Task(f, args=(i,), key=str(i))
""",
    )
    job = load_job(path)
    it = job.iter_tasks()
    first = [next(it) for _ in range(3)]
    assert [t.args for t in first] == [(0,), (1,), (2,)]
    assert job.module.drawn == [0, 1, 2]
    assert job.total is None


def test_sized_tasks_give_a_total(tmp_path: Path) -> None:
    path = write(tmp_path, "sizedjob.py", "import raysched\ndef tasks():\n    return [raysched.Task(print)] * 7\n")
    job = load_job(path)
    assert len(list(job.iter_tasks())) == 7 and job.total == 7


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(JobFileError, match="job file not found"):
        load_job(tmp_path / "nope.py")


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "import raysched\n\ndef tasks(:\n    pass\n")
    with pytest.raises(JobFileError, match=r"syntax error in .*broken\.py, line 3"):
        load_job(path)


def test_no_tasks_function(tmp_path: Path) -> None:
    path = write(tmp_path, "notasks.py", "x = 1\n")
    with pytest.raises(JobFileError, match=r"defines no tasks\(\)"):
        load_job(path)


def test_tasks_yielding_something_else(tmp_path: Path) -> None:
    path = write(tmp_path, "wrongitems.py", "def tasks():\n    yield 'not a task'\n")
    with pytest.raises(JobFileError, match=r"item 0 is a str, not a raysched.Task"):
        list(load_job(path).iter_tasks())


def test_module_level_error_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "boom.py", "raise RuntimeError('no config')\n")
    with pytest.raises(JobFileError, match="RuntimeError: no config"):
        load_job(path)


def test_job_named_like_a_stdlib_module_is_pickled_by_value(tmp_path: Path) -> None:
    """Regression: a job file called json.py must not shadow the json module."""
    path = write(
        tmp_path, "json.py", "import raysched\ndef f():\n    return 41 + 1\ndef tasks():\n    yield raysched.Task(f)\n"
    )
    job = load_job(path)
    import json

    assert hasattr(json, "dumps")
    fn = next(job.iter_tasks()).fn
    payload = cloudpickle.dumps(fn)
    # Another process, without the job folder on its path, can still run the function.
    code = "import pickle, sys; print(pickle.loads(sys.stdin.buffer.read())())"
    out = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, cwd="/")
    assert out.stdout.strip() == b"42", out.stderr


def test_tasks_generator_failing_part_way_is_a_clear_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "halfway.py",
        "import raysched\ndef tasks():\n    yield raysched.Task(print)\n"
        "    raise RuntimeError('input file vanished')\n",
    )
    it = load_job(path).iter_tasks()
    next(it)
    with pytest.raises(JobFileError, match=r"tasks\(\) raised RuntimeError: input file vanished after 1 tasks"):
        next(it)


def test_sibling_imports_are_found_in_the_source(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "notapkg").mkdir()
    plain = write(tmp_path, "plain.py", "import os, json\nimport raysched\ndef tasks():\n    return []\n")
    assert sibling_imports(plain) == ()  # only the standard library and installed packages
    lazy = write(
        tmp_path,
        "lazy.py",
        "def work():\n    import helpers\n    from pkg.sub import y\n    import notapkg\ndef tasks():\n    return []\n",
    )
    assert sibling_imports(lazy) == ("helpers", "pkg")  # imports inside functions count too
    relative = write(tmp_path, "rel.py", "from . import helpers\ndef tasks():\n    return []\n")
    assert sibling_imports(relative) == (".",)
    assert load_job(plain).needs_working_dir is False and load_job(lazy).needs_working_dir is True
