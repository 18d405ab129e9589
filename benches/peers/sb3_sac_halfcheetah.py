"""Peer timing: SB3 SAC on HalfCheetah-v5 with the RL Zoo's hyperparameters (its -v4 values:
learning_starts 10000, SB3's defaults otherwise), one torch thread; the same JSON line as
../shared/peers/sb3_*.py. Needs gymnasium[mujoco] beside stable-baselines3 (`make peers`)."""
import json
import sys
import time

import gymnasium as gym
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

torch.set_num_threads(1)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
model = SAC("MlpPolicy", gym.make("HalfCheetah-v5"), learning_starts=10_000, seed=seed, verbose=0, device="cpu")
t0 = time.perf_counter()
model.learn(total_timesteps=steps)
t = time.perf_counter() - t0
m, s = evaluate_policy(model, gym.make("HalfCheetah-v5"), n_eval_episodes=10, deterministic=True, warn=False)
print(json.dumps({"peer": "sb3-sac-halfcheetah", "steps": steps, "train_s": round(t, 2), "sps": round(steps / t),
                  "eval_mean": m, "eval_std": s}))
