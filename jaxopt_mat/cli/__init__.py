"""The ``jaxopt-mat`` command line: parse, call the Python :class:`~jaxopt_mat.api.Campaign`, print, exit code.

Every error a user can cause is printed as one line on stderr with a non-zero
exit code; nothing is written unless the whole input is valid.

- :mod:`~jaxopt_mat.cli.common`: the typer application, its error guard and the shared context.
- :mod:`~jaxopt_mat.cli.commands`: ``init``, ``suggest``, ``observe``, ``cancel``, ``status``.
- :mod:`~jaxopt_mat.cli.figures`: ``explain`` and ``plot``.
- :mod:`~jaxopt_mat.cli.loops`: ``simulate`` and ``demo``.
- :mod:`~jaxopt_mat.cli.run_loop`: ``run``, the loop on an executor with a command per evaluation.
"""

from jaxopt_mat.cli import commands, figures, loops, run_loop  # noqa: F401  (registers the commands)
from jaxopt_mat.cli.common import app


def run() -> None:
    app()


__all__ = ["app", "run"]
