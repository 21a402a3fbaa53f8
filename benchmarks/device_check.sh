#!/usr/bin/env bash
# Accelerator check of ae_jax against PyTorch, the full training loop and the statistics suite, in one command
# (benchmarks/device_check.py says what each part measures). Writes OUTDIR/device_check.md (the table),
# OUTDIR/device_check.json, each part's log and OUTDIR/device_check.log (this command's output); prints the table.
#
#   bash benchmarks/device_check.sh OUTDIR          # one GPU: under 8 minutes on an H200
#   bash benchmarks/device_check.sh OUTDIR --tiny   # tiny sizes: a CPU dry run of every part
#
# Runs from a checkout without installing it (ae_jax from the repository root on PYTHONPATH).
set -euo pipefail
if [[ $# -lt 1 || "$1" == -* ]]; then
    echo "usage: bash benchmarks/device_check.sh OUTDIR [--tiny]" >&2
    exit 2
fi
out="$1"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
mkdir -p "$out"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$root"
python "$here/device_check.py" "$out" "$@" 2>&1 | tee "$out/device_check.log"
