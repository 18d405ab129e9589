#!/usr/bin/env python3
"""SB3 `CnnPolicy` models on Atari frames, saved with SB3's own `save`, and what SB3 computes with
them on fixed frames (cnn/expected.json, in the layout of ../shared/sb3/expected.json):

- cnn/ppo-BreakoutNoFrameskip-v4.zip: PPO, the Nature CNN shared by actor and critic;
- cnn/dqn-BreakoutNoFrameskip-v4.zip: DQN, the Nature CNN (online and target networks).

Both read the RL Zoo's Atari pipeline (`make_atari_env`: noop reset, frame skip 4 with max-pool,
episodic life, fire on reset, clipped reward; four frames stacked) with frames of 36x36 instead
of 84x84 (the Nature CNN's smallest image), which keeps the files small (the network is the
same but for the width of its first linear layer's input). A few thousand steps of learning
move the weights off their initialisation; the models are not meant to play well.

`observations` are the stacked frames as the environment gives them, (row, column, frame), as
headstart reads images; SB3 transposes them to (frame, row, column) itself.

Needs stable-baselines3 2.9.2, gymnasium 1.4.0, ale-py 0.12.1 and OpenCV (the benchmarks'
environment: make peers). Run: .venv-peers/bin/python tests/sb3/make_cnn_fixtures.py tests/sb3/cnn
"""
import json
import os
import sys

import ale_py
import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack

ENV_ID = "BreakoutNoFrameskip-v4"
SCREEN = 36


def atari(seed):
    env = make_atari_env(ENV_ID, n_envs=1, seed=seed, wrapper_kwargs=dict(screen_size=SCREEN))
    return VecFrameStack(env, n_stack=4)


def frames(count=8, seed=7):
    """Stacked frames met by a random policy, every fifth step."""
    env = atari(seed)
    rng = np.random.default_rng(seed)
    obs = env.reset()
    out = []
    for step in range(5 * count):
        if step % 5 == 4:
            out.append(obs[0])
        obs, _, _, _ = env.step(np.array([rng.integers(env.action_space.n)]))
    return np.asarray(out, dtype=np.uint8)


def outputs(model):
    obs = frames()
    policy = model.policy
    policy.set_training_mode(False)
    x, _ = policy.obs_to_tensor(obs)
    entry = {"env_id": ENV_ID, "algo": type(model).__name__, "observations": obs.tolist()}
    with torch.no_grad():
        if isinstance(model, PPO):
            entry["values"] = policy.predict_values(x).squeeze(-1).tolist()
            entry["action_probs"] = policy.get_distribution(x).distribution.probs.tolist()
        else:
            entry["q_values"] = policy.q_net(x).tolist()
    entry["predict_deterministic"] = model.predict(obs, deterministic=True)[0].tolist()
    return entry


def main(folder):
    torch.set_num_threads(1)
    gym.register_envs(ale_py)
    os.makedirs(folder, exist_ok=True)
    models = {}

    ppo = PPO("CnnPolicy", atari(1), n_steps=128, batch_size=64, n_epochs=2, learning_rate=2.5e-4, seed=1,
              device="cpu")
    ppo.learn(2_048)
    ppo.save(os.path.join(folder, f"ppo-{ENV_ID}.zip"))
    models[f"ppo-{ENV_ID}"] = dict(file=f"ppo-{ENV_ID}.zip", **outputs(ppo))

    dqn = DQN("CnnPolicy", atari(1), buffer_size=5_000, learning_starts=500, target_update_interval=500,
              learning_rate=1e-4, seed=1, device="cpu")
    dqn.learn(2_048)
    dqn.save(os.path.join(folder, f"dqn-{ENV_ID}.zip"), exclude=["replay_buffer"])
    models[f"dqn-{ENV_ID}"] = dict(file=f"dqn-{ENV_ID}.zip", **outputs(dqn))

    import stable_baselines3
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"sb3_version": stable_baselines3.__version__, "models": models}, f)


if __name__ == "__main__":
    main(sys.argv[1])
