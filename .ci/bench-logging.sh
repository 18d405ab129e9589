#!/usr/bin/env bash
# What TensorBoard logging costs: each run trained with and without `--tensorboard`, one right
# after the other (the order alternating), ROUNDS times; prints each pair's wall times and the
# median ratio logged / not logged per task. The runs are the same bits either way (logging reads,
# never feeds back), so only the writing is timed. Usage: .ci/bench-logging.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/headstart
ROUNDS=${1:-3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
seconds() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
printf '%-28s %6s %9s %9s %7s\n' task round off_s on_s ratio
for task in "ppo CartPole-v1 300000" "dqn CartPole-v1 100000" "sac Pendulum-v1 4000"; do
  set -- $task
  ratios=()
  for r in $(seq "$ROUNDS"); do
    run_off() { rm -rf "$OUT/off"; seconds "$BIN" train --algo "$1" "$2" --steps "$3" -q --out "$OUT/off"; }
    run_on() { rm -rf "$OUT/on" "$OUT/tb"; seconds "$BIN" train --algo "$1" "$2" --steps "$3" -q --out "$OUT/on" --tensorboard "$OUT/tb"; }
    if (( r % 2 )); then off=$(run_off "$@"); on=$(run_on "$@"); else on=$(run_on "$@"); off=$(run_off "$@"); fi
    ratio=$(echo "scale=4; $on / $off" | bc)
    ratios+=("$ratio")
    printf '%-28s %6s %9.2f %9.2f %7.3f\n' "$task" "$r" "$off" "$on" "$ratio"
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')
  printf '%-28s median ratio logged / not logged: %s\n' "$task" "$median"
done
