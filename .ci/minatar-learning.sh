#!/usr/bin/env bash
# MinAtar learning check (make minatar-learning): DQN with the MinAtar paper's network and
# settings (the MinAtar presets) on Breakout and Space Invaders, 1 million frames, seeds 0-2
# (MINATAR_SEEDS), two runs at a time, against the paper's DQN at 1 million frames (its learning
# curves, 30 seeds: Breakout about 9.5, Space Invaders about 30). Two measures per run: its
# greedy policy over 100 episodes (sticky actions on), which must reach the paper's value, and
# the paper's own measure, the mean of its last 100 training episodes (epsilon 0.1), which must
# reach 80 % of it (headstart's DQN takes Adam where the paper's takes centred RMSprop). A run
# whose folder holds a card is not trained again. The table lands in
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
paper = {"Breakout": 9.5, "SpaceInvaders": 30.0}
rows, failed = [], []
for game, value in paper.items():
    cells = []
    for seed in seeds:
        d = "%s/%s-seed%s" % (out, game, seed)
        returns = [float(r["return"]) for r in csv.DictReader(open(d + "/curve.csv"))]
        last = sum(returns[-100:]) / len(returns[-100:])
        card = open(d + "/card.ron").read()
        greedy = float(re.search(r"deterministic: true,\s*mean: ([-0-9.e]+)", card).group(1))
        cells.append("%.1f / %.1f" % (greedy, last))
        if greedy < value or last < 0.8 * value:
            failed.append("%s seed %s: greedy %.1f, training %.1f" % (game, seed, greedy, last))
    rows.append("| DQN MinAtar/%s-v0 | 1e6 | %s | %s |" % (game, value, " | ".join(cells)))
head = "| target | frames | paper's DQN at 1e6 | %s |\n|---|---|---|%s\n" % (
    " | ".join("seed %s: greedy / last 100 training" % s for s in seeds), "---|" * len(seeds))
table = head + "\n".join(rows) + "\n"
print(table)
open(out + "/table.md", "w").write(table)
if failed:
    sys.exit("short of the paper's DQN (greedy below it, or training below 80 %% of it): " + "; ".join(failed))
PY
