"""`python -m raysched.cli`: the same command line as the `raysched` script."""

from raysched.cli.main import main

main()
