#!/usr/bin/env bash
# Atari learning check (make atari-learning): PPO with the RL Zoo's Atari preset (the Nature CNN,
# 8 environments) on Breakout through the Arcade Learning Environment on the bridge
# (envs/atari-breakout.ron: ALE v5 with sticky actions, SB3's Atari preprocessing, 4 stacked
# frames), 1 million agent steps (4 million frames; ATARI_STEPS), seeds 0 and 1 (ATARI_SEEDS),
# two runs at a time (about 4 hours on two cores);
# each policy evaluated over 30 whole games (raw scores) against a uniformly random policy
# over 100 games of the same game (ALE v5, its own frame skip of 4, sticky actions). Each seed
# must score at least twice the random policy's mean. A run whose folder holds a card is not
# trained again. The table lands in target/atari-learning/table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/headstart
OUT=target/atari-learning
SEEDS=${ATARI_SEEDS:-0 1}
STEPS=${ATARI_STEPS:-1000000}
mkdir -p "$OUT"
run() {
    local seed=$1 dir="$OUT/breakout-seed$1"
    [ -f "$dir/card.ron" ] && return 0
    "$BIN" train --algo ppo envs/atari-breakout.ron --steps "$STEPS" --seed "$seed" --quiet --force \
        --eval-episodes 30 --out "$dir" > "$dir.log" 2>&1
}
for seed in $SEEDS; do
    run "$seed" &
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
done
wait
.venv-gym/bin/python - "$OUT" "$STEPS" $SEEDS <<'PY'
import re, sys
import ale_py, gymnasium as gym, numpy as np
out, steps, seeds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
gym.register_envs(ale_py)
env = gym.make("ALE/Breakout-v5")
rng = np.random.default_rng(0)
scores = []
for game in range(100):
    env.reset(seed=10_000 + game)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        total, done = total + reward, terminated or truncated
    scores.append(total)
random = float(np.mean(scores))
cells, failed = [], []
for seed in seeds:
    card = open("%s/breakout-seed%s/card.ron" % (out, seed)).read()
    mean = float(re.search(r"mean: ([-0-9.e]+)", card.split("eval:", 1)[1]).group(1))
    cells.append("%.1f" % mean)
    if mean < 2 * random:
        failed.append("seed %s: %.1f" % (seed, mean))
table = "| target | agent steps (frames) | random policy (100 games) | %s |\n|---|---|---|%s\n" % (
    " | ".join("seed %s (30 games)" % s for s in seeds), "---|" * len(seeds))
table += "| PPO gym:ALE/Breakout-v5 | %d (%d) | %.2f | %s |\n" % (steps, 4 * steps, random, " | ".join(cells))
print(table)
open(out + "/table.md", "w").write(table)
if failed:
    sys.exit("below twice the random policy's %.2f: %s" % (random, "; ".join(failed)))
PY
