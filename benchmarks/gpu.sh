#!/usr/bin/env bash
# The GPU check, prepared here and run on a lent NVIDIA machine (which reaches no package registry).
#
#   benchmarks/gpu.sh prepare        # here: the wheels that machine lacks and the study's network into .gpu/
#   benchmarks/gpu.sh run OUT_DIR    # there (carry .gpu): install them, check JAX sees the GPU, write OUT_DIR/gpu.json
#   benchmarks/gpu.sh run OUT_DIR --quick   # anywhere: the same steps at small sizes (a check of this script)
#
# The device image already holds JAX's CUDA build, flax, optax, pandas, typer and the rest; it lacks gpjax
# and two of its needs (paramax, beartype), which travel as pure-Python wheels. The package itself runs from
# the working tree (PYTHONPATH), so nothing is resolved against a registry there. The run takes a few
# minutes on an H100 (EHVI over 1M and 10M candidates, the 3.2M-recipe grid against the gradient method on
# the study's network, a CLI pool campaign of a million candidates); its JSON goes into RESULTS' GPU table.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
case "${1:-}" in
prepare)
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
    mkdir -p .gpu/wheels .gpu/data
    pins="$(grep -E '^(gpjax|paramax|beartype)==' requirements-lock.txt)"
    "${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: -d .gpu/wheels $pins
    cp "${JAXOPT_MAT_DATA:-$root/../shared/data}/agbonn/agbonn_dnn.npz" .gpu/data/
    du -sh .gpu
    ;;
run)
    out="${2:?usage: benchmarks/gpu.sh run OUT_DIR [--quick]}"
    shift 2
    if compgen -G ".gpu/wheels/*.whl" >/dev/null; then
        "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-site \
            .gpu/wheels/*.whl
        export PYTHONPATH="/tmp/gpu-site:$root${PYTHONPATH:+:$PYTHONPATH}"
    else
        export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
    fi
    "${PYTHON:-python3}" -c 'import jax; print("JAX", jax.__version__, jax.devices())'
    mkdir -p "$out"
    JAXOPT_MAT_CACHE="$(mktemp -d)" PYTHONUNBUFFERED=1 "${PYTHON:-python3}" benchmarks/bench_gpu.py \
        --data "${GPU_DATA:-.gpu/data}" --out "$out/gpu.json" "$@"
    ;;
*)
    echo "usage: benchmarks/gpu.sh prepare | run OUT_DIR [--quick]" >&2
    exit 2
    ;;
esac
