"""Stable-Baselines3's side of `make parity`: trains SB3 2.9.2 agents with the RL Zoo presets that
headstart's presets copy (the same as ../shared/peers/sb3_*.py), one torch thread, and saves each
final model as a zip that headstart imports and evaluates with its own protocol, so that both
tools' agents are scored by one evaluation (the same environments, seeds and episodes).

    python sb3_train.py OUT_DIR TASK SEED [SEED ...]      # TASK: ppo-cartpole, dqn-cartpole, sac-pendulum

A model already in OUT_DIR is kept (re-running continues where it stopped). Each model gets a
JSON line beside it with its training seconds.
"""
import json
import os
import sys
import time

import gymnasium as gym
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.env_util import make_vec_env


def lin(v):
    return lambda p: p * v


def build(task, seed):
    if task == "ppo-cartpole":
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        return 100_000, PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                            ent_coef=0.0, learning_rate=lin(0.001), clip_range=lin(0.2), seed=seed, verbose=0,
                            device="cpu")
    if task == "dqn-cartpole":
        return 50_000, DQN("MlpPolicy", gym.make("CartPole-v1"), learning_rate=2.3e-3, batch_size=64,
                           buffer_size=100_000, learning_starts=1000, gamma=0.99, target_update_interval=10,
                           train_freq=256, gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
                           policy_kwargs=dict(net_arch=[256, 256]), seed=seed, verbose=0, device="cpu")
    if task == "sac-pendulum":
        return 10_000, SAC("MlpPolicy", gym.make("Pendulum-v1"), learning_rate=1e-3, seed=seed, verbose=0,
                           device="cpu")
    sys.exit(f"unknown task {task!r}: ppo-cartpole, dqn-cartpole or sac-pendulum")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, task, seeds = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for seed in seeds:
        path = os.path.join(out, f"{task}-seed{seed}")
        if os.path.exists(path + ".zip"):
            continue
        steps, model = build(task, seed)
        start = time.perf_counter()
        model.learn(total_timesteps=steps)
        seconds = time.perf_counter() - start
        model.save(path + ".tmp.zip")
        os.replace(path + ".tmp.zip", path + ".zip")
        with open(path + ".json", "w") as f:
            json.dump({"task": task, "seed": seed, "steps": steps, "train_s": round(seconds, 2)}, f)
        print(json.dumps({"task": task, "seed": seed, "train_s": round(seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
