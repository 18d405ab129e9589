#!/usr/bin/env bash
# MinAtar learning check (make minatar-learning): DQN with the MinAtar paper's network and
# settings (the MinAtar presets) on Breakout and Space Invaders, 1 million frames, seeds 0-2
# (MINATAR_SEEDS), two runs at a time; each run's last 100 training episodes (epsilon 0.1 and
# sticky actions, the paper's measure) against the paper's DQN at 1 million frames (Breakout
# about 9.5, Space Invaders about 30; the paper's Figure 3), and a greedy evaluation of 100
# episodes. A run whose folder holds a card is not trained again. The table lands in
# target/minatar-learning/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/headstart
OUT=target/minatar-learning
SEEDS=${MINATAR_SEEDS:-0 1 2}
mkdir -p "$OUT"
run() {
    local game=$1 seed=$2 dir="$OUT/$1-seed$2"
    [ -f "$dir/card.ron" ] && return 0
    "$BIN" train --algo dqn "MinAtar/$game-v0" --seed "$seed" --quiet --force --policy-only \
        --eval-episodes 100 --out "$dir" > "$dir.log" 2>&1
}
for game in Breakout SpaceInvaders; do
    for seed in $SEEDS; do
        run "$game" "$seed" &
        while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
    done
done
wait
python3 - "$OUT" $SEEDS <<'PY'
import csv, re, sys
out, seeds = sys.argv[1], sys.argv[2:]
floors = {"Breakout": 8.5, "SpaceInvaders": 28.0}
rows, failed = [], []
for game, floor in floors.items():
    cells = []
    for seed in seeds:
        d = "%s/%s-seed%s" % (out, game, seed)
        returns = [float(r["return"]) for r in csv.DictReader(open(d + "/curve.csv"))]
        last = sum(returns[-100:]) / len(returns[-100:])
        card = open(d + "/card.ron").read()
        greedy = float(re.search(r"deterministic: true,\s*mean: ([-0-9.e]+)", card).group(1))
        cells.append("%.1f (greedy %.1f)" % (last, greedy))
        if last < floor:
            failed.append("%s seed %s: %.1f < %.1f" % (game, seed, last, floor))
    rows.append("| DQN MinAtar/%s-v0 | 1e6 | %s | %s |" % (game, floor, " | ".join(cells)))
head = "| target | frames | floor (paper's DQN at 1e6) | %s |\n|---|---|---|%s\n" % (
    " | ".join("seed %s" % s for s in seeds), "---|" * len(seeds))
table = head + "\n".join(rows) + "\n"
print(table)
open(out + "/table.md", "w").write(table)
if failed:
    sys.exit("below the paper's DQN: " + "; ".join(failed))
PY
