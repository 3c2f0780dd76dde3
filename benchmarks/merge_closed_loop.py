"""Merge the per-seed regrets of several ``bench_closed_loop.py`` runs into one sample per target and method.

    .venv/bin/python benchmarks/merge_closed_loop.py LOG [LOG ...] [--rules "spectrum GP,measured,oracle"]

Each run of ``bench_closed_loop.py`` prints one line per seed (``auto seed 3:
regret measured ..., basin floor ...``) and one per finished method and
target; save its output (stdout and stderr) to a log. Runs over disjoint
seeds (``--first-seed``) add up to a larger sample, because each seed's run
is deterministic. A seed that appears in two logs must have printed the same
regrets in both (a check that the runs used the same code); otherwise the
merge stops. Prints, per rule and target, each method's median regret
[25th, 75th percentile], the seeds merged, the two-step / random ratio of
medians with its 90 % bootstrap interval, and the runs that ended in the
best recipe's basin.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_closed_loop import GLOBAL_BASIN_TOL, format_ratio, format_spread  # noqa: E402

SEED_LINE = re.compile(r"^\s+(?P<method>\w+) seed (?P<seed>\d+): regret (?P<rules>.*), basin floor (?P<floor>[-\d.e]+)\s*$")
DONE_LINE = re.compile(r"^  (?P<label>.+) (?P<method>\w+): median regret ")


def read_log(path: Path) -> dict[tuple[str, str], dict[int, dict[str, float]]]:
    """``{(target label, method): {seed: {rule: regret, "basin floor": floor}}}`` of one log."""
    out: dict = {}
    pending: dict = {}
    for line in path.read_text().splitlines():
        if m := SEED_LINE.match(line):
            rules = {}
            for part in m["rules"].split(", "):
                rule, value = part.rsplit(" ", 1)
                rules[rule] = float(value)
            rules["basin floor"] = float(m["floor"])
            pending.setdefault(m["method"], {})[int(m["seed"])] = rules
        elif (m := DONE_LINE.match(line)) and m["method"] in pending:
            out[(m["label"], m["method"])] = pending.pop(m["method"])
    return out


def merge(paths) -> dict:
    """:func:`read_log` of every log, merged; a seed repeated across logs must agree."""
    merged: dict = {}
    for path in paths:
        for key, seeds in read_log(Path(path)).items():
            have = merged.setdefault(key, {})
            for seed, rules in seeds.items():
                if seed in have and have[seed] != rules:
                    raise SystemExit(f"error: {key[1]} seed {seed} on {key[0]!r} printed different regrets in "
                                     f"{path} than in an earlier log: the runs used different code")
                have[seed] = rules
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+")
    ap.add_argument("--rules", default="spectrum GP,measured,oracle", help="comma-separated rule names of the logs")
    args = ap.parse_args()
    for path in args.logs:
        if not Path(path).is_file():
            ap.error(f"no such log: {path}")
    merged = merge(args.logs)
    if not merged:
        ap.error("no finished method in these logs")
    labels = list(dict.fromkeys(label for label, _ in merged))
    methods = list(dict.fromkeys(method for _, method in merged))
    for rule in args.rules.split(","):
        print(f"### Recommended by: {rule}\n")
        print("| target | seeds | " + " | ".join(methods) + " | two-step / random |")
        print("| --- | --- | " + " | ".join("---" for _ in methods) + " | --- |")
        for label in labels:
            runs = {m: merged[(label, m)] for m in methods if (label, m) in merged}
            missing = [m for m, seeds in runs.items() if any(rule not in r for r in seeds.values())]
            if missing:
                raise SystemExit(f"error: rule {rule!r} is not in the logs of {', '.join(missing)} on {label!r}")
            seeds = {m: sorted(s) for m, s in runs.items()}
            values = {m: [runs[m][s][rule] for s in seeds[m]] for m in runs}
            spans = sorted({f"{s[0]}-{s[-1]} ({len(s)})" for s in seeds.values()})
            cells = [format_spread(values[m]) if m in values else "n/a" for m in methods]
            ratio = format_ratio(values["auto"], values["random"]) if {"auto", "random"} <= values.keys() else "n/a"
            print(f"| {label} | {', '.join(spans)} | " + " | ".join(cells) + f" | {ratio} |")
        print()
    print("### Runs in the best recipe's basin\n")
    for label in labels:
        counts = [f"{m} {sum(r['basin floor'] <= GLOBAL_BASIN_TOL for r in merged[(label, m)].values())}"
                  f"/{len(merged[(label, m)])}" for m in methods if (label, m) in merged]
        print(f"- {label}: " + ", ".join(counts))


if __name__ == "__main__":
    main()
