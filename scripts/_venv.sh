# Sourced by scripts/test and scripts/demo: create (or reuse) .venv and install the project
# with the exact versions of requirements-lock.txt.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

supported() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' 2>/dev/null; }

if [ ! -x .venv/bin/python ]; then
    python=""
    for candidate in ${PYTHON:-python3.11 python3.12 python3}; do
        if command -v "$candidate" >/dev/null 2>&1 && supported "$candidate"; then
            python="$candidate"
            break
        fi
    done
    if [ -z "$python" ]; then
        echo "jaxopt_mat needs Python 3.11 or 3.12: ${PYTHON:-none found} (set PYTHON=/path/to/python3.12)" >&2
        exit 1
    fi
    "$python" -m venv .venv
fi
stamp=.venv/.jaxopt_mat-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements-lock.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements-lock.txt
    .venv/bin/python -m pip install --quiet --no-deps -e ".[dev]"
    touch "$stamp"
fi
