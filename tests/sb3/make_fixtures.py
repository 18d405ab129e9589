#!/usr/bin/env python3
"""SB3 models of the kinds ../shared/sb3 lacks, saved with SB3's own `save`, and what SB3 computes
with them on fixed observations (expected.json, in the layout of ../shared/sb3/expected.json):

- a2c-CartPole-v1.zip: A2C (RMSprop, the default), 64-64 tanh;
- td3-Pendulum-v1.zip: TD3 with Gaussian action noise, 64-64 ReLU (SB3's [400, 300] made small);
- split/ppo-CartPole-v1.zip: PPO whose actor and critic differ (net_arch=dict(pi=[32], vf=[64])).

Needs stable-baselines3 2.9.2 and gymnasium 1.4.0 (the benchmarks' environment: make peers).
Run: .venv-peers/bin/python tests/sb3/make_fixtures.py tests/sb3
"""
import json
import os
import sys

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C, PPO, TD3
from stable_baselines3.common.noise import NormalActionNoise


def observations(env_id, count=16, seed=7):
    """Observations met by a random policy, episodes restarted with fresh seeds."""
    env = gym.make(env_id)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    while len(out) < count:
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
    return np.asarray(out, dtype=np.float32)


def returns(model, env_id):
    """The undiscounted return of one deterministic episode per seed 0-4."""
    out = []
    for seed in range(5):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        out.append(total)
    return out


def outputs(model, env_id):
    obs = observations(env_id)
    x = torch.as_tensor(obs)
    policy = model.policy
    policy.set_training_mode(False)
    entry = {"env_id": env_id, "algo": type(model).__name__, "observations": obs.tolist()}
    with torch.no_grad():
        if isinstance(model, (A2C, PPO)):
            entry["values"] = policy.predict_values(x).squeeze(-1).tolist()
            entry["action_probs"] = policy.get_distribution(x).distribution.probs.tolist()
        else:
            action = policy.actor(x)
            entry["actor_action"] = action.tolist()
            entry["critic_q"] = [q.squeeze(-1).tolist() for q in policy.critic(x, action)]
    entry["predict_deterministic"] = model.predict(obs, deterministic=True)[0].tolist()
    entry["deterministic_returns_seeds_0_4"] = returns(model, env_id)
    return entry


def main(folder):
    torch.set_num_threads(1)
    os.makedirs(folder, exist_ok=True)
    models = {}

    a2c = A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=1, device="cpu")
    a2c.learn(40_000)
    a2c.save(os.path.join(folder, "a2c-CartPole-v1.zip"))
    models["a2c-CartPole-v1"] = dict(file="a2c-CartPole-v1.zip", **outputs(a2c, "CartPole-v1"))

    noise = NormalActionNoise(mean=np.zeros(1), sigma=0.1 * np.ones(1))
    td3 = TD3("MlpPolicy", "Pendulum-v1", action_noise=noise, learning_starts=500, seed=1, device="cpu",
              policy_kwargs=dict(net_arch=[64, 64]))
    td3.learn(3_000)
    td3.save(os.path.join(folder, "td3-Pendulum-v1.zip"), exclude=["replay_buffer"])
    models["td3-Pendulum-v1"] = dict(file="td3-Pendulum-v1.zip", **outputs(td3, "Pendulum-v1"))

    split = PPO("MlpPolicy", "CartPole-v1", n_steps=256, batch_size=64, seed=1, device="cpu",
                policy_kwargs=dict(net_arch=dict(pi=[32], vf=[64])))
    split.learn(20_000)
    os.makedirs(os.path.join(folder, "split"), exist_ok=True)
    split.save(os.path.join(folder, "split", "ppo-CartPole-v1.zip"))
    models["ppo-split-CartPole-v1"] = dict(file="split/ppo-CartPole-v1.zip", **outputs(split, "CartPole-v1"))

    import stable_baselines3
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"sb3_version": stable_baselines3.__version__, "models": models}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
