"""The placement brain: one named Ray actor per cluster that decides where every task runs.

`placement` holds the brain itself; `client` is the driver's side of it; `metrics` exports its
gauges to Ray's metrics; `node_health` reads which raylets Ray itself has lost.
"""
