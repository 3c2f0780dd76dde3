"""The package's shape: arrows point down (shells -> orchestration -> core), no import cycles, modules of one idea."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxopt_mat"
# The orchestration and the shells: nothing in the functional core may import these.
UPPER = ("jaxopt_mat.campaign", "jaxopt_mat.strategies", "jaxopt_mat.stopping", "jaxopt_mat.report",
         "jaxopt_mat.api", "jaxopt_mat.cli", "jaxopt_mat.simulate", "jaxopt_mat.campaign_figures",
         "jaxopt_mat.runner", "jaxopt_mat.command")
CORE = ("jaxopt_mat.space", "jaxopt_mat.design", "jaxopt_mat.surrogates", "jaxopt_mat.acquisition",
        "jaxopt_mat.pareto", "jaxopt_mat.optimize", "jaxopt_mat.objectives", "jaxopt_mat.data",
        "jaxopt_mat.chunked", "jaxopt_mat.errors", "jaxopt_mat.pool", "jaxopt_mat.embedding",
        "jaxopt_mat.explain", "jaxopt_mat.virtual_lab", "jaxopt_mat.test_functions", "jaxopt_mat.plots",
        "jaxopt_mat.input_kinds", "jaxopt_mat.ascent", "jaxopt_mat.pool_table",
        "jaxopt_mat.constraint_text")
MAX_LINES = 420  # "about 400"
# Known to be longer, with the reason; every other module must stay within MAX_LINES.
LONGER: dict = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict) -> set[str]:
    """Every jaxopt_mat module ``name`` imports, at the top or inside a function."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m in modules and m != name}


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_the_core_never_imports_the_layers_above_it(graph):
    bad = [(m, dep) for m, deps in graph.items() if m.startswith(CORE) for dep in deps if dep.startswith(UPPER)]
    assert not bad, bad


def test_no_module_imports_the_package_root(graph):
    # The root is the curated public API; modules import what they use from where it lives.
    bad = [m for m, deps in graph.items() if "jaxopt_mat" in deps and m != "jaxopt_mat"]
    assert not bad, bad


def test_the_import_graph_has_no_cycle(graph):
    inner = {m: deps - {"jaxopt_mat"} for m, deps in graph.items() if m != "jaxopt_mat"}

    def parent_packages(m):  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = m.split(".")
        return {".".join(parts[:k]) for k in range(2, len(parts))}

    # A module's own parent packages are already being initialised when it runs: not an edge.
    edges = {m: {d for dep in deps for d in ({dep} | parent_packages(dep))
                 if d in inner and d != m and not m.startswith(d + ".")}
             for m, deps in inner.items()}
    state: dict = {}
    path: list = []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == "open":
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_modules_hold_one_idea_each():
    too_long = {}
    for name, path in _modules().items():
        n = len(path.read_text().splitlines())
        if n > LONGER.get(name, MAX_LINES):
            too_long[name] = n
    assert not too_long, too_long


def test_the_command_line_starts_without_the_heavy_optional_imports():
    """Every CLI call pays its imports: scipy.stats and flax (0.2-0.4 s each) and torch load only where used."""
    import subprocess
    import sys

    code = "import sys, jaxopt_mat.cli; print(','.join(m for m in ('scipy.stats', 'flax', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported at start-up: {out}"
