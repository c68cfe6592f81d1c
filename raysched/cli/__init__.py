"""The `raysched` command line (`raysched ...` or `python -m raysched.cli ...`)."""

from raysched.cli.main import cli, main

__all__ = ["cli", "main"]
