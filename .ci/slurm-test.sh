#!/usr/bin/env bash
# A real SLURM run of experiments/quickstart.ron on this machine: a single-node cluster brought up
# by .ci/slurm.sh, `headstart slurm --submit` (prepare job, job array over the 20 units, report
# job after it), and the summary compared byte for byte with a local run of the same study.
# Skips (exit 0, saying so) where SLURM cannot be installed; `make slurm-test` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/headstart
[ -x "$bin" ] || { echo "slurm-test: build first (cargo build --release)" >&2; exit 1; }

rc=0
.ci/slurm.sh up || rc=$?
if [ "$rc" -eq 3 ]; then
  echo "slurm-test: SKIPPED: SLURM cannot be installed or started here (see the line above)"
  exit 0
elif [ "$rc" -ne 0 ]; then
  exit "$rc"
fi
trap '.ci/slurm.sh down' EXIT

work=$(mktemp -d /tmp/headstart-slurm-test.XXXXXX)
started=$(date +%s)
"$bin" run experiments/quickstart.ron --out "$work/local/quickstart" --quiet > /dev/null
local_s=$(( $(date +%s) - started ))

started=$(date +%s)
"$bin" slurm experiments/quickstart.ron --out "$work/slurm/quickstart" --array-parallel 2 --submit | tee "$work/submit.txt"
ids=$(sed -n 's/^[a-z]*: job \([0-9]*\)$/\1/p' "$work/submit.txt" | paste -sd,)
report=$(sed -n 's/^report: job \([0-9]*\)$/\1/p' "$work/submit.txt")
[ -n "$report" ] || { echo "slurm-test: no report job id in the output of headstart slurm" >&2; exit 1; }
deadline=$(( $(date +%s) + 900 ))
while [ -n "$(squeue -h -j "$ids" 2>/dev/null)" ]; do
  if squeue -h -j "$ids" -o %r | grep -q DependencyNeverSatisfied; then
    echo "slurm-test: a job failed; its log:" >&2
    tail -n 20 "$work"/slurm/quickstart/slurm/*.out >&2 || true
    scancel $(echo "$ids" | tr , ' ') || true
    exit 1
  fi
  [ "$(date +%s)" -lt "$deadline" ] || { echo "slurm-test: timed out" >&2; exit 1; }
  sleep 2
done
slurm_s=$(( $(date +%s) - started ))
state=$(scontrol show job "$report" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1)
if [ ! -f "$work/slurm/quickstart/summary.json" ]; then
  echo "slurm-test: the report job (state ${state:-unknown}) wrote no summary; logs:" >&2
  tail -n 20 "$work"/slurm/quickstart/slurm/*.out >&2 || true
  exit 1
fi
cmp "$work/local/quickstart/summary.json" "$work/slurm/quickstart/summary.json"
cmp "$work/local/quickstart/evaluations.csv" "$work/slurm/quickstart/evaluations.csv"
tasks=$(ls "$work"/slurm/quickstart/slurm/units-*.out | wc -l)
echo "slurm-test: OK: prepare, an array of $tasks tasks and the report job ran under SLURM in ${slurm_s} s" \
     "(local run ${local_s} s); summary.json and evaluations.csv identical to the local run's"
rm -rf "$work"
