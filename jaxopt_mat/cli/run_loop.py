"""``run``: the closed loop on an executor, each evaluation a command (see :mod:`jaxopt_mat.runner`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from jaxopt_mat.cli.common import app, guard, open_campaign
from jaxopt_mat.errors import DataError


def _executor(spec: str, parallel: int):
    """The executor named on the command line, and what to close when done."""
    if spec == "local":
        import concurrent.futures

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel)  # each evaluation is its own process
        return pool, lambda: pool.shutdown(wait=False, cancel_futures=True)
    if spec == "dask" or spec.startswith("dask://"):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise DataError("--executor dask needs Dask's distributed package: pip install \"jaxopt-mat[dask]\"") from None
        if spec == "dask":
            cluster = LocalCluster(n_workers=parallel, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
            return client, lambda: (client.close(), cluster.close())
        client = Client(spec[len("dask://"):])
        return client, client.close
    raise DataError(f"--executor {spec!r}: use local, dask, or dask://HOST:PORT")


def _reporter(budget):
    """Progress: a rich bar on a terminal, one plain line per event otherwise."""
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       TextColumn("{task.fields[info]}"), transient=False)
        task = bar.add_task("run", total=budget, info="")
        bar.start()

        def show(e):
            best = "" if e.best is None else f", best {e.best:.4g}"
            bar.update(task, completed=e.done, info=f"{e.running} running, {e.failed} failed{best}")
        return show, bar.stop

    def line(e):
        if e.kind == "submitted":
            return
        best = "" if e.best is None else f", best {e.best:.6g}"
        took = "" if e.seconds is None else f" in {e.seconds:.1f} s"
        print(f"{e.kind} {e.suggestion}{took}: {e.done} done, {e.running} running, {e.failed} failed{best}",
              file=sys.stderr, flush=True)
    return line, lambda: None


@app.command("run")
@guard
def run_command(
    directory: Path = typer.Argument(..., help="Campaign folder."),
    command: str = typer.Option(..., "--command", help="Evaluation command; {name} placeholders take the inputs "
                                "(pool campaigns also {id}; {suggestion} the row's id). Never run through a shell."),
    parallel: int = typer.Option(4, "--parallel", "-p", help="Evaluations running at once."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Stop when the campaign holds this many "
                                         "measurements (failed runs included)."),
    executor: str = typer.Option("local", "--executor", help="local (processes on this machine), dask (a local Dask "
                                 "cluster of --parallel workers) or dask://HOST:PORT (a running scheduler)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds an evaluation may take; then it failed."),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="suggest's method (default: the campaign's)."),
):
    """Keep N evaluations running: suggest, run the command, observe each result as it arrives.

    The command's last line on stdout must be one JSON object with the measured
    columns (optionally "status": "failed"); a non-zero exit, no JSON or a
    timeout is a failed run (stderr kept in DIR/runs/). Interrupted or killed,
    the same command resumes: nothing is observed twice, evaluations in flight
    are picked up or run again.
    """
    from jaxopt_mat.command import CommandEvaluation, split_template
    from jaxopt_mat.runner import RUNS_DIR, run

    camp = open_campaign(directory)
    names = list(camp.config.input_names) + (["id"] if camp.config.is_pool else [])
    evaluate = CommandEvaluation(tuple(split_template(command, names)), str(camp.directory / RUNS_DIR), timeout)
    if parallel < 1:
        raise DataError(f"--parallel must be at least 1, got {parallel}")
    pool, close = _executor(executor, parallel)
    show, stop = _reporter(budget)
    try:
        summary = run(camp, evaluate, executor=pool, parallel=parallel, budget=budget, method=method, on_event=show,
                      timeout=None if timeout is None else timeout + 5.0)  # the command's own timeout comes first
    finally:
        stop()
        close()
    extra = "".join([f", {summary.picked_up} results picked up" if summary.picked_up else "",
                     f", {summary.redispatched} pending rows run again" if summary.redispatched else ""])
    typer.echo(f"observed {summary.observed} evaluations ({summary.failed} failed{extra}); "
               f"{summary.total} measurements in the campaign; stopped: {summary.reason}")
