#!/usr/bin/env bash
# Atari learning check (make atari-learning): PPO with the RL Zoo's Atari preset (the Nature CNN
# and its linear layer shared by the policy's and the value's heads, 8 environments) on an Atari
# game through the Arcade Learning Environment on the bridge (envs/atari-<game>.ron: ALE v5 with
# sticky actions, SB3's Atari preprocessing, 4 stacked frames): KungFuMaster (ATARI_GAME, the
# name of envs/atari-<game>.ron and of ALE/<Game>-v5), 100 000 agent steps (400 000 frames;
# ATARI_STEPS), seeds 0 and 1 (ATARI_SEEDS), two runs at a time (about 20 minutes on two cores;
# ATARI_GAME=Breakout ATARI_STEPS=1000000: about 3 hours);
# each policy evaluated over 30 whole games (raw scores) with its actions sampled, as the RL
# Zoo evaluates Atari policies (its enjoy.py is stochastic for Atari), and over 30 with its
# greedy actions, against a uniformly random policy over 100 games of the same game (ALE v5,
# its own frame skip of 4, sticky actions). Each seed's sampled policy must score at least twice
# the random policy's mean. A run whose folder holds a card is not trained again. The table
# lands in target/atari-learning/table-<game>-<steps>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/headstart
OUT=target/atari-learning
SEEDS=${ATARI_SEEDS:-0 1}
STEPS=${ATARI_STEPS:-100000}
GAME=${ATARI_GAME:-KungFuMaster}
NAME=$(echo "$GAME" | tr '[:upper:]' '[:lower:]')
mkdir -p "$OUT"
run() {
    local seed=$1 dir="$OUT/$NAME-$STEPS-seed$1"
    [ -f "$dir/card.ron" ] && return 0
    "$BIN" train --algo ppo "envs/atari-$NAME.ron" --steps "$STEPS" --seed "$seed" --quiet --force \
        --eval-episodes 30 --out "$dir" > "$dir.log" 2>&1
    "$BIN" eval "$dir" --episodes 30 --stochastic --seed 1000 > "$dir/stochastic.txt" 2>&1
}
for seed in $SEEDS; do
    run "$seed" &
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
done
wait
.venv-gym/bin/python - "$OUT" "$STEPS" "$GAME" "$NAME" $SEEDS <<'PY'
import re, sys
import ale_py, gymnasium as gym, numpy as np
out, steps, game, name, seeds = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
gym.register_envs(ale_py)
env = gym.make("ALE/%s-v5" % game)
rng = np.random.default_rng(0)
scores = []
for g in range(100):
    env.reset(seed=10_000 + g)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        total, done = total + reward, terminated or truncated
    scores.append(total)
random = float(np.mean(scores))
cells, failed = [], []
for seed in seeds:
    run = "%s/%s-%d-seed%s" % (out, name, steps, seed)
    greedy = float(re.search(r"mean: ([-0-9.e]+)", open(run + "/card.ron").read().split("eval:", 1)[1]).group(1))
    sampled = float(re.search(r": ([-0-9.e]+) \+/- [-0-9.e]+ over 30 stochastic", open(run + "/stochastic.txt").read()).group(1))
    cells.append("%.1f / %.1f" % (sampled, greedy))
    if sampled < 2 * random:
        failed.append("seed %s: %.1f" % (seed, sampled))
table = "| target | agent steps (frames) | random policy (100 games) | %s |\n|---|---|---|%s\n" % (
    " | ".join("seed %s: sampled / greedy (30 games each)" % s for s in seeds), "---|" * len(seeds))
table += "| PPO gym:ALE/%s-v5 | %d (%d) | %.2f | %s |\n" % (game, steps, 4 * steps, random, " | ".join(cells))
print(table)
open("%s/table-%s-%d.md" % (out, name, steps), "w").write(table)
if failed:
    sys.exit("below twice the random policy's %.2f: %s" % (random, "; ".join(failed)))
PY
