"""What a run leaves behind: the results CSV (`schema`), its sidecar, the outcome and the summary.

Nothing here imports the placement stack: results are read by `analyze` and `simulate` as much as
they are written by `submit`.
"""
