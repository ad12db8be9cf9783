#!/usr/bin/env bash
# Set up everything, then run the main job or the tests.
#   bash bootstrap.sh all     # set up, then `invoke all` (the whole pipeline on the embedded default)
#   bash bootstrap.sh test    # set up, then ruff + the test suite (what CI runs)
# Works on Linux (installs an optimized BLAS through apt when it can) and macOS (MLX uses Metal/Accelerate).
set -euo pipefail
cd "$(dirname "$0")"
what="${1:-all}"
PY="${PYTHON:-python3}"
case "$what" in
  all|test|setup) ;;
  *) echo "usage: bash bootstrap.sh [all|test|setup]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)" >&2
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >&2
echo "setup: installing the project and its dependencies into .venv" >&2
.venv/bin/python -m pip install -q -e ".[dev]" >&2

if [ "$(uname -s)" = "Linux" ]; then
  if .venv/bin/python -c 'import sys; from common.blas import candidate_paths; sys.exit(0 if candidate_paths() else 1)'; then
    :
  elif command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing OpenBLAS (libopenblas0-pthread) so MLX runs ~50x faster on this CPU" >&2
    $SUDO apt-get update -qq >&2 || true
    $SUDO apt-get install -y -qq libopenblas0-pthread >&2 || \
      echo "setup: warning: could not install libopenblas0-pthread; install it yourself, or run: .venv/bin/pip install mkl" >&2
  else
    echo "setup: warning: no optimized BLAS and no apt-get; run: .venv/bin/pip install mkl (or install OpenBLAS)" >&2
  fi
fi

# The embedded base model (idempotent): serve works right after set-up with the shipped adapter.
.venv/bin/python -m finetune model >&2

case "$what" in
  all) exec .venv/bin/invoke all ;;
  test)
    .venv/bin/ruff format --check .
    .venv/bin/ruff check .
    exec .venv/bin/python -m pytest -q ;;
  setup) echo "setup: done; activate with: source .venv/bin/activate" >&2 ;;
esac
