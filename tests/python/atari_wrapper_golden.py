#!/usr/bin/env python3
"""A trajectory of Breakout under Stable-Baselines3's own `AtariWrapper` (no no-op reset, so
that no generator is involved; fire reset on, as SB3 sets it for games with FIRE), played with
random actions across lost lives and a game over, for tests/atari.rs to replay through
headstart's `Atari` transform over the bridge.

Each step: the action, the clipped reward, terminated, truncated, lives, the sum of the 84x84
screen; every 40th screen in full.

Needs stable-baselines3, ale-py and OpenCV (the benchmarks' environment: make peers).
Run: .venv-peers/bin/python tests/python/atari_wrapper_golden.py tests/golden/atari/breakout-sb3.json
"""
import base64, json, sys

import ale_py
import gymnasium as gym
import numpy as np
from stable_baselines3.common.atari_wrappers import AtariWrapper

ENV_ID, SEED, STEPS = "BreakoutNoFrameskip-v4", 5, 800

gym.register_envs(ale_py)
env = AtariWrapper(gym.make(ENV_ID), noop_max=0)
obs, info = env.reset(seed=SEED)
rng = np.random.default_rng(SEED)
steps, games = [], 0
first = {"sum": int(obs.sum()), "screen": base64.b64encode(obs.tobytes()).decode()}
for t in range(STEPS):
    action = int(rng.integers(env.action_space.n))
    obs, reward, terminated, truncated, info = env.step(action)
    entry = {"action": action, "reward": float(reward), "terminated": bool(terminated),
             "truncated": bool(truncated), "lives": int(info["lives"]), "sum": int(obs.sum())}
    if t % 40 == 0:
        entry["screen"] = base64.b64encode(obs.tobytes()).decode()
    if terminated or truncated:
        games += info["lives"] == 0
        obs, info = env.reset()
        entry["reset_sum"] = int(obs.sum())
    steps.append(entry)
json.dump({"env_id": ENV_ID, "seed": SEED, "games_over": int(games), "reset": first, "steps": steps},
          open(sys.argv[1], "w"))
print("games over:", games, "lives lost:", sum(s["terminated"] for s in steps))
