"""The driver's side of a run: the loop that asks the brain, dispatches to Ray and records each attempt.

`loop` is the run loop; `remote` wraps the user's function for Ray; `pacing` spaces the brain calls.
"""
