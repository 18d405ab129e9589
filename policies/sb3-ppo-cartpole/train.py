"""Trains the Stable-Baselines3 model shipped here (`make sb3-policies`, with the benchmarks' Python
environment): PPO on CartPole-v1 with the RL Zoo's hyperparameters (constant learning rate and clip
range instead of the Zoo's linear schedules), 100 000 steps, seed 0, one torch thread, saved with
SB3's own `save`, as a user of SB3 has it. headstart imports it (`headstart import sb3`, or
`source: Sb3(...)` in an experiment)."""
import os, sys
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
import gymnasium as gym

torch.set_num_threads(1)
here = os.path.dirname(os.path.abspath(__file__))
env = make_vec_env("CartPole-v1", n_envs=8, seed=0)
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
            ent_coef=0.0, learning_rate=1e-3, clip_range=0.2, seed=0, device="cpu")
model.learn(100_000)
model.save(os.path.join(here, "ppo-CartPole-v1.zip"))
mean, std = evaluate_policy(model, gym.make("CartPole-v1"), n_eval_episodes=100, deterministic=True)
print(f"PPO CartPole-v1, 100000 steps: {mean:.1f} +/- {std:.1f} over 100 deterministic episodes")
