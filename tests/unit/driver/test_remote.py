"""The node-side wrapper of the user's function, called directly (plain Python, no cluster)."""

from __future__ import annotations

import pytest

from raysched.driver import remote

NODE = "ab" * 28


@pytest.fixture(autouse=True)
def on_a_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wrappers ask Ray for this worker's node once; here the answer is already known."""
    monkeypatch.setattr(remote, "_NODE_ID", NODE)


def scores(n: int, *, label: str = "x") -> dict:
    return {"items": n, "bytes": 2.5 * n, "ok": True, "label": label, "nan": float("nan"), "task_id": 7}


def broken(n: int) -> None:
    raise ValueError(f"bad   input\n{n}")


def test_a_result_dict_gives_its_numeric_fields_as_metrics() -> None:
    out = remote.wrap(scores)(3, label="y")
    assert out.node_ran == NODE and out.error is None
    # Booleans, text and NaN are left out; a name the schema uses is prefixed so it cannot overwrite a column.
    assert out.metrics == {"items": 3, "bytes": 7.5, "metric_task_id": 7}
    assert out.started_at <= out.finished_at


def test_a_plain_return_value_gives_no_metrics() -> None:
    assert remote.wrap(lambda: 42)().metrics == {}


def test_the_users_error_comes_back_as_one_line_of_text() -> None:
    out = remote.wrap(broken)(5)
    assert out.error == "ValueError: bad input 5"
    assert out.metrics == {} and out.node_ran == NODE


def test_a_batch_reports_each_task_in_order_and_an_error_stops_none_of_the_others() -> None:
    def maybe(n: int) -> dict:
        if n == 1:
            raise KeyError("one")
        return {"n": n}

    outs = remote.wrap_batch(maybe)([((0,), None), ((1,), None), ((2,), {})])
    assert [o.error for o in outs] == [None, "KeyError: 'one'", None]
    assert [o.metrics for o in outs] == [{"n": 0}, {}, {"n": 2}]
    assert all(o.node_ran == NODE for o in outs)
    assert outs[0].finished_at <= outs[1].started_at <= outs[1].finished_at <= outs[2].started_at  # one by one


def test_the_wrappers_keep_the_task_functions_name() -> None:
    assert remote.wrap(scores).__name__ == "scores"
    assert remote.wrap_batch(scores).__qualname__ == "scores"
