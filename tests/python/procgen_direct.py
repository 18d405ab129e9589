"""Procgen's own gym3 environment stepped with the actions `(7 t + 3) mod 15`: the reference
that tests/procgen.rs holds the bridge's `gym:procgen-<game>-v0` to. Prints JSON: the first
frame's byte sum, then each step's reward, whether a new episode started, and the frame's sum.

usage: procgen_direct.py GAME SEED NUM_LEVELS START_LEVEL DISTRIBUTION_MODE STEPS"""
import json
import sys

import numpy as np
from procgen import ProcgenGym3Env

game, seed, num_levels, start_level, mode, steps = sys.argv[1:]
env = ProcgenGym3Env(num=1, env_name=game, rand_seed=int(seed), num_levels=int(num_levels),
                     start_level=int(start_level), distribution_mode=mode)
_, obs, _ = env.observe()
out = {"first": int(obs["rgb"].sum()), "rewards": [], "firsts": [], "sums": []}
for t in range(int(steps)):
    env.act(np.array([(7 * t + 3) % 15], dtype=np.int32))
    reward, obs, first = env.observe()
    out["rewards"].append(float(reward[0]))
    out["firsts"].append(bool(first[0]))
    out["sums"].append(int(obs["rgb"].sum()))
print(json.dumps(out))
