"""Procgen's own gym3 environment stepped with the actions `(7 t + 3) mod 15`: the reference
that tests/procgen.rs holds the bridge's `gym:procgen-<game>-v0` to. Prints JSON: the first
frame's checksum, then each step's reward, whether a new episode started (and whether the level
was completed), and the frame's checksum: the sum of each byte times (its index mod 7919) + 1,
row-major over (row, column, colour).

usage: procgen_direct.py GAME SEED NUM_LEVELS START_LEVEL DISTRIBUTION_MODE STEPS"""
import json
import sys

import numpy as np
from procgen import ProcgenGym3Env

game, seed, num_levels, start_level, mode, steps = sys.argv[1:]
env = ProcgenGym3Env(num=1, env_name=game, rand_seed=int(seed), num_levels=int(num_levels),
                     start_level=int(start_level), distribution_mode=mode)
WEIGHTS = np.arange(64 * 64 * 3, dtype=np.int64) % 7919 + 1


def checksum(frame):
    return int((frame.reshape(-1).astype(np.int64) * WEIGHTS).sum())


_, obs, _ = env.observe()
out = {"first": checksum(obs["rgb"][0]), "rewards": [], "firsts": [], "complete": [], "sums": []}
for t in range(int(steps)):
    env.act(np.array([(7 * t + 3) % 15], dtype=np.int32))
    reward, obs, first = env.observe()
    out["rewards"].append(float(reward[0]))
    out["firsts"].append(bool(first[0]))
    out["complete"].append(bool(env.get_info()[0]["prev_level_complete"]) if first[0] else False)
    out["sums"].append(checksum(obs["rgb"][0]))
print(json.dumps(out))
