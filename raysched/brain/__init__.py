"""The placement brain: one named Ray actor per cluster that decides where every task runs.

`actor` composes the brain (`PlacementBrain`) from one module per idea: `state` (the data they share),
`queues` (where waiting tasks wait), `admission` (how deep a node's queue may be), `rounds` (delay
scheduling), `lifecycle` (submissions and their calls), `membership` (live nodes and node health) and
`replicas` (where each service replica runs, its demand held for the run).
`client` is the driver's side of the brain;
`metrics` exports its gauges to Ray's metrics; `node_health` reads which raylets Ray itself has lost.
"""
