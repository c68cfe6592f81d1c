"""Run records in a frame's attrs are shared by derived frames, not deep-copied by each pandas operation."""

from __future__ import annotations

import copy

import pandas as pd

from raysched.results.shared import SharedRecords


def test_derived_frames_share_the_records_instead_of_copying_them() -> None:
    nodes = {f"node-{i}": {"CPU": 16.0} for i in range(10_000)}
    df = pd.DataFrame({"x": range(100)})
    df.attrs["run_records"] = SharedRecords({"run": {"nodes": nodes}})
    derived = df[df["x"] > 10].assign(y=1).copy()
    assert derived.attrs["run_records"] is df.attrs["run_records"]  # one object, not 10,000 nodes per operation
    assert derived.attrs["run_records"]["run"]["nodes"]["node-9999"] == {"CPU": 16.0}
    assert copy.deepcopy(df.attrs["run_records"]) is df.attrs["run_records"]
    plain = pd.DataFrame({"x": range(3)})
    plain.attrs["run_records"] = {"run": {"nodes": {"n": {"CPU": 1.0}}}}
    assert plain.copy().attrs["run_records"] is not plain.attrs["run_records"]  # what pandas does otherwise
