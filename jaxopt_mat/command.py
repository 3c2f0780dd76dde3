"""An evaluation that is a command: a template split into arguments once, placeholders filled per argument.

``python sim.py --ligand {ligand} --t {temperature}`` becomes the argument
list ``["python", "sim.py", "--ligand", "{ligand}", "--t", "{temperature}"]``
when the runner starts; for each condition every ``{name}`` is replaced
inside its own argument, and the list is run without a shell. A value such
as ``x; rm -rf ~`` or a SMILES with parentheses therefore stays one argument
and is never interpreted. The command's last non-empty line on stdout is
one JSON object with the measured columns (optionally ``"status":
"failed"``); a non-zero exit, no JSON object or a timeout is a failed run,
with the tail of the command's stderr kept in ``DIR/runs/<suggestion>.log``.
The result is written to ``DIR/runs/<suggestion>.json`` before the runner
observes it, so a runner started again after a crash picks it up.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
from pathlib import Path

from jaxopt_mat.errors import DataError

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Characters of a command's stderr kept in its log when it fails.
STDERR_TAIL = 4000


def split_template(template: str, names) -> list[str]:
    """The template's arguments, after checking that every placeholder names an input (or ``id``, ``suggestion``)."""
    try:
        args = shlex.split(template)
    except ValueError as e:
        raise DataError(f"--command: {e} in {template!r}") from None
    if not args:
        raise DataError("--command is empty")
    known = set(names) | {"suggestion"}
    unknown = sorted({m for a in args for m in _PLACEHOLDER.findall(a)} - known)
    if unknown:
        raise DataError(f"--command: unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)} "
                        f"(known: {', '.join(sorted(known))})")
    return args


def _text(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


@dataclasses.dataclass(frozen=True)
class CommandEvaluation:
    """``evaluate(condition, suggestion=...)`` for :func:`jaxopt_mat.runner.run` that runs a command (picklable)."""

    args: tuple[str, ...]
    runs_dir: str
    timeout: float | None = None
    takes_suggestion_id = True

    def arguments(self, condition: dict, suggestion: str) -> list[str]:
        values = {**{k: _text(v) for k, v in condition.items()}, "suggestion": suggestion}
        return [_PLACEHOLDER.sub(lambda m: values[m.group(1)], a) for a in self.args]

    def __call__(self, condition: dict, suggestion: str = "") -> dict:
        runs = Path(self.runs_dir)
        runs.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(self.arguments(condition, suggestion), capture_output=True, text=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
            result, why = _parse(done.stdout) if done.returncode == 0 else (None, f"exit status {done.returncode}")
            stderr = done.stderr
        except subprocess.TimeoutExpired as e:
            result, why = None, f"timed out after {self.timeout:g} s"
            stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        except OSError as e:
            result, why, stderr = None, f"could not start: {e.strerror or e}", ""
        if result is None:
            (runs / f"{suggestion}.log").write_text(f"{why}\n{stderr[-STDERR_TAIL:]}", encoding="utf-8")
            result = {"status": "failed"}
        tmp = runs / f".{suggestion}.json.tmp"
        tmp.write_text(json.dumps(result) + "\n", encoding="utf-8")
        tmp.replace(runs / f"{suggestion}.json")
        return result


def _parse(stdout: str):
    """The JSON object on the last non-empty line of ``stdout``: ``(result, None)`` or ``(None, why not)``."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    if not lines:
        return None, "no output (expected one JSON object on the last line)"
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None, f"the last line is not JSON: {lines[-1][:200]!r}"
    if not isinstance(result, dict):
        return None, "the last line is JSON but not an object"
    return result, None
