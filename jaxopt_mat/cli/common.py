"""The typer application, the guard that maps errors to exit codes, and what every command shares."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import typer

from jaxopt_mat.errors import JaxOptMatError

app = typer.Typer(
    name="jaxopt-mat",
    help="Closed-loop Bayesian optimization for materials: suggest -> measure -> observe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def cache_root() -> Path:
    return Path(os.environ.get("JAXOPT_MAT_CACHE", str(Path.home() / ".cache" / "jaxopt_mat")))


def _setup_jax() -> None:
    """x64 for GP work and a persistent compilation cache, before any array exists."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_compilation_cache_dir", str(cache_root() / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def progress(message: str) -> None:
    # Only on a terminal: piped output stays clean for scripts.
    if sys.stderr.isatty():
        print(f"... {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def context():
    """The CLI's context: on-disk caches of compiled programs and trained networks, progress on a terminal."""
    from jaxopt_mat.ensemble_cache import EnsembleCache
    from jaxopt_mat.program_cache import ProgramCache
    from jaxopt_mat.strategies import Context

    return Context(program_cache=ProgramCache(cache_root() / "programs"),
                   ensemble_cache=EnsembleCache(cache_root() / "ensembles"), progress=progress)


def open_campaign(directory: Path):
    """The Python campaign in ``directory``, with the CLI's context."""
    from jaxopt_mat.api import Campaign

    return Campaign.open(directory, context=context())


def guard(fn):
    """Turn the library's errors into one-line messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except JaxOptMatError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except BrokenPipeError:  # the reader of our output has gone (``status | head``): not an error to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
            raise typer.Exit(141) from None  # 128 + SIGPIPE, as a shell reports a command its pipe ended
        except OSError as e:  # a file or folder the system refuses (missing folder, no permission, disk full)
            where = f"{e.filename}: " if e.filename else ""
            print(f"error: {where}{e.strerror or e}", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper


def _version_callback(value: bool):
    if value:
        from importlib.metadata import version

        typer.echo(f"jaxopt-mat {version('jaxopt-mat')}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", callback=_version_callback,
                                 is_eager=True),
):
    """Closed-loop Bayesian optimization for materials."""
    _setup_jax()
