"""`raysched analyze`: the thin click layer over `raysched.analysis` (load, figures, render) and its plots."""

from __future__ import annotations

from pathlib import Path

import click

from raysched.analysis.errors import AnalysisInputError
from raysched.analysis.figures import per_node, per_replica, summarize
from raysched.analysis.loading import load
from raysched.analysis.render import (
    calls_only,
    render_node_table,
    render_replica_table,
    render_table,
    summary_to_json,
    summary_to_tidy,
)
from raysched.results.outcome import ExitCode

__all__ = ["AnalyzeInputError", "analyze_command"]


class AnalyzeInputError(click.ClickException):
    """Bad input shown as one `Error: ...` line on stderr; exit 2 as DESIGN.md asks for bad input."""

    exit_code = ExitCode.BAD_INPUT


def _warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)


@click.command("analyze")
@click.argument("csv_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the figures (and per-node, per-replica counts) as JSON instead of tables.",
)
@click.option(
    "--csv",
    "csv_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the summary as a tidy CSV (run, run_id, metric, value).",
)
@click.option(
    "--plot",
    "plot_out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a PNG: tasks per node per run, throughput over time, run_s CDF.",
)
def analyze_command(csv_files: tuple[Path, ...], as_json: bool, csv_out: Path | None, plot_out: Path | None) -> None:
    """Compare runs from results CSVs written by `raysched submit`.

    Prints throughput, latency and balance figures side by side, one column per
    run (run_id), labelled by policy. Several CSVs may be given, and one CSV may
    hold several runs.
    """
    try:
        df = load(csv_files, on_warning=_warn)
        summary = summarize(df)
        nodes = per_node(df)
        replicas = per_replica(df)  # empty unless some run has calls to a service
    except AnalysisInputError as exc:
        raise AnalyzeInputError(str(exc)) from None
    if csv_out is not None:
        try:
            csv_out.parent.mkdir(parents=True, exist_ok=True)
            summary_to_tidy(summary).to_csv(csv_out, index=False)
        except OSError as exc:
            raise AnalyzeInputError(f"cannot write {csv_out}: {exc.strerror or exc}") from None
        click.echo(f"Wrote the summary to {csv_out}", err=True)
    if plot_out is not None:
        from raysched.analysis.plots import write_plot  # matplotlib only when a plot is asked for

        try:
            written = write_plot(df, plot_out)
        except AnalysisInputError as exc:
            raise AnalyzeInputError(str(exc)) from None
        click.echo(f"Wrote the plot to {written}", err=True)
    # files first: a failed write exits 2 before anything reaches stdout (safe for --json pipes)
    if as_json:
        click.echo(summary_to_json(summary, nodes, replicas=replicas))
    else:
        click.echo(render_table(summary))
        if not calls_only(summary):  # a call's place is its replica: runs of calls only show the replica table
            click.echo()
            click.echo(render_node_table(nodes))
        if len(replicas):
            click.echo()
            click.echo(render_replica_table(replicas))
