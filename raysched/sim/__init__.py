"""The parts of `raysched simulate` (see raysched.sim.replay for the whole): one idea per module.

* ``trace``: one recorded run, read into arrays (bounded memory for millions of rows);
* ``estimate``: the model's defaults, measured from the trace (miss cost, cache size, dispatch);
* ``cluster``: the simulated nodes (``--nodes``, ``--config``, the sidecar) and churn (``--kill-node``, ``--add-node``);
* ``cache``: a node's LRU of keys;
* ``engine``: the virtual-clock driver loop around a real `PlacementBrain`;
* ``record``: the simulated attempts, as results rows and a DataFrame for `raysched.analysis`.
"""


class SimInputError(ValueError):
    """Input the simulator cannot use (trace, cluster, churn, flags); the message is one line saying what to do."""
