"""Stable-Baselines3's side of `make parity`: trains SB3 2.9.2 agents with the RL Zoo presets that
headstart's presets copy (the same as ../shared/peers/sb3_*.py), one torch thread, and saves a
snapshot of the model at each of the last ten evaluation points (steps budget * 91/100, 92/100,
..., 100/100), so that headstart imports and evaluates every snapshot with its own protocol: both
tools' agents are scored by one evaluation (the same environments, seeds, episodes and steps).

A snapshot for step t is the model after the first update that ends at or after t environment
steps: SB3's `_on_rollout_start` follows each `train()`, the point where headstart's harness
evaluates (`Event::Checkpoint`, after the block's training); the last points get the final model.

    python sb3_train.py OUT_DIR TASK SEED [SEED ...]   # TASK: ppo-cartpole, dqn-cartpole, sac-pendulum,
                                                      #       a2c-cartpole, td3-pendulum

A seed whose folder is complete is kept (re-running continues where it stopped). Each seed's
folder gets a JSON file with its training seconds.
"""
import json
import os
import shutil
import sys
import time

import gymnasium as gym
import torch
import numpy as np
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise


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
    if task == "a2c-cartpole":
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        return 200_000, A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, verbose=0, device="cpu")
    if task == "td3-pendulum":
        # The Zoo's: one training per episode, as many gradient steps as the episode had steps.
        noise = NormalActionNoise(mean=np.zeros(1), sigma=0.1 * np.ones(1))
        return 20_000, TD3("MlpPolicy", gym.make("Pendulum-v1"), gamma=0.98, buffer_size=200_000, learning_starts=10_000,
                           action_noise=noise, gradient_steps=-1, train_freq=(1, "episode"), learning_rate=1e-3,
                           policy_kwargs=dict(net_arch=[400, 300]), seed=seed, verbose=0, device="cpu")
    sys.exit(f"unknown task {task!r}: ppo-cartpole, dqn-cartpole, sac-pendulum, a2c-cartpole or td3-pendulum")


def points(budget):
    """The evaluation points: the last ten hundredths of the budget (benches/parity.rs: POINTS)."""
    return [budget * i // 100 for i in range(91, 101)]


class Snapshots(BaseCallback):
    """Saves the model for every evaluation point passed, after the update that passed it."""

    def __init__(self, folder, targets):
        super().__init__()
        self.folder, self.targets = folder, list(targets)

    def save_due(self):
        while self.targets and self.model.num_timesteps >= self.targets[0]:
            self.model.save(os.path.join(self.folder, f"step{self.targets.pop(0)}.zip"))

    def _on_rollout_start(self):
        self.save_due()

    def _on_step(self):
        return True


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, task, seeds = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for seed in seeds:
        folder = os.path.join(out, f"{task}-seed{seed}")
        if os.path.exists(os.path.join(folder, "done.json")):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        steps, model = build(task, seed)
        snapshots = Snapshots(folder, points(steps))
        start = time.perf_counter()
        model.learn(total_timesteps=steps, callback=snapshots)
        seconds = time.perf_counter() - start
        snapshots.save_due()
        with open(os.path.join(folder, "done.json"), "w") as f:
            json.dump({"task": task, "seed": seed, "steps": steps, "final_step": model.num_timesteps,
                       "train_s": round(seconds, 2)}, f)
        print(json.dumps({"task": task, "seed": seed, "train_s": round(seconds, 2)}), flush=True)


if __name__ == "__main__":
    main()
