"""The driver's side of a run: the loop that asks the brain, dispatches to Ray and records each attempt.

`loop` is the run loop; `attempts` what it holds per try of a task; `dispatch`
sends placed attempts to Ray and gets results back; `accounting` turns them
into rows and totals; `stall` spots nodes that stopped finishing work;
`interrupts` turns Ctrl-C into an orderly stop; `rules` holds the rules the
simulator shares (no Ray); `remote` wraps the user's function for Ray;
`pacing` spaces the brain calls. Calls to services: `replicas` creates, watches and re-creates a
run's replicas; `calls` routes calls over them (an in-process brain); `service_calls` ties the two
to the loop.
"""
