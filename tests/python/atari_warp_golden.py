#!/usr/bin/env python3
"""Screens of Breakout and Space Invaders (RGB, 210x160) and what SB3's `WarpFrame` makes of
them (OpenCV's RGB2GRAY, then INTER_AREA to 84x84), for tests/atari.rs.

Needs ale-py and OpenCV (the benchmarks' environment: make peers).
Run: .venv-peers/bin/python tests/python/atari_warp_golden.py tests/golden/atari/warp.json
"""
import base64, json, sys

import ale_py
import cv2
import gymnasium as gym
import numpy as np

gym.register_envs(ale_py)
out = []
for game in ("BreakoutNoFrameskip-v4", "SpaceInvadersNoFrameskip-v4"):
    env = gym.make(game)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for step in range(300):
        obs, *_ = env.step(int(rng.integers(env.action_space.n)))
        if step == 299:
            grey = cv2.cvtColor(obs, cv2.COLOR_RGB2GRAY)
            warped = cv2.resize(grey, (84, 84), interpolation=cv2.INTER_AREA)
            out.append({"game": game, "rgb": base64.b64encode(obs.tobytes()).decode(),
                        "grey": base64.b64encode(grey.tobytes()).decode(),
                        "warped": base64.b64encode(warped.tobytes()).decode()})
json.dump({"opencv": cv2.__version__, "frames": out}, open(sys.argv[1], "w"))
