#!/usr/bin/env python3
"""SB3 `MultiInputPolicy` models over a dictionary observation, saved with SB3's own `save`, and
what SB3 computes with them on fixed observations (dict/expected.json, in the layout of
../shared/sb3/expected.json):

- dict/ppo-DictReach-v0.zip: PPO (`MultiInputActorCriticPolicy`), 64-64 tanh;
- dict/dqn-DictReach-v0.zip: DQN, 64-64 ReLU;
- dict/sac-DictReachContinuous-v0.zip: SAC, 64-64 ReLU.

DictReach is a goal-conditioned task written here (the layout of Gymnasium-Robotics' goal
environments, with a discrete part beside): a point on the plane moves towards a goal, observed as
`{"observation": Box(2), "desired_goal": Box(2), "phase": Discrete(3)}`, which Gymnasium's `Dict`
sorts to desired_goal, observation, phase. SB3's `CombinedExtractor` flattens each part (the
Discrete one-hot) and joins them in that order, as `gymnasium.spaces.flatten` lays them out.

`observations` are those flat vectors (what headstart reads); SB3 is given the dictionaries.

Needs stable-baselines3 2.9.2 and gymnasium 1.4.0 (the benchmarks' environment: make peers).
Run: .venv-peers/bin/python tests/sb3/make_dict_fixtures.py tests/sb3/dict
"""
import base64
import json
import os
import sys

import cloudpickle
import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO, SAC


class DictReach(gym.Env):
    """A point moved by one of four steps (or a continuous step) towards a goal; reward minus the
    distance; `phase` counts steps modulo 3."""

    def __init__(self, continuous=False):
        self.observation_space = spaces.Dict({
            "observation": spaces.Box(-2.0, 2.0, (2,), np.float32),
            "desired_goal": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "phase": spaces.Discrete(3),
        })
        self.continuous = continuous
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32) if continuous else spaces.Discrete(4)

    def obs(self):
        return {"observation": self.pos.copy(), "desired_goal": self.goal.copy(), "phase": self.t % 3}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.goal = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.t = 0
        return self.obs(), {}

    def step(self, action):
        if self.continuous:
            move = 0.1 * np.clip(action, -1, 1)
        else:
            move = 0.1 * np.array([[1, 0], [-1, 0], [0, 1], [0, -1]][int(action)])
        self.pos = np.clip(self.pos + move, -2, 2).astype(np.float32)
        self.t += 1
        distance = float(np.linalg.norm(self.pos - self.goal))
        return self.obs(), -distance, distance < 0.1, self.t >= 50, {}


def observations(env, count=16, seed=7):
    """Dictionaries met by a random policy, episodes restarted with fresh seeds."""
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    while len(out) < count:
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
    return out


def outputs(model, env, env_id):
    dicts = observations(env)
    flat = np.asarray([spaces.flatten(env.observation_space, o) for o in dicts], dtype=np.float32)
    batch = {k: np.asarray([o[k] for o in dicts]) for k in env.observation_space.spaces}
    policy = model.policy
    policy.set_training_mode(False)
    x, _ = policy.obs_to_tensor(batch)
    entry = {"env_id": env_id, "algo": type(model).__name__, "observations": flat.tolist()}
    with torch.no_grad():
        if isinstance(model, PPO):
            entry["values"] = policy.predict_values(x).squeeze(-1).tolist()
            entry["action_probs"] = policy.get_distribution(x).distribution.probs.tolist()
        elif isinstance(model, DQN):
            entry["q_values"] = policy.q_net(x).tolist()
        else:
            action = policy.actor(x, deterministic=True)
            entry["actor_squashed_action"] = action.tolist()
            entry["critic_q"] = [q.squeeze(-1).tolist() for q in policy.critic(x, action)]
    entry["predict_deterministic"] = model.predict(batch, deterministic=True)[0].tolist()
    return entry


def main(folder):
    torch.set_num_threads(1)
    os.makedirs(folder, exist_ok=True)
    models = {}
    ppo = PPO("MultiInputPolicy", DictReach(), n_steps=256, batch_size=64, seed=1, device="cpu")
    ppo.learn(2_048)
    dqn = DQN("MultiInputPolicy", DictReach(), learning_starts=200, seed=1, device="cpu",
              policy_kwargs=dict(net_arch=[64, 64]))
    dqn.learn(2_000)
    sac = SAC("MultiInputPolicy", DictReach(continuous=True), learning_starts=200, seed=1, device="cpu",
              policy_kwargs=dict(net_arch=[64, 64]))
    sac.learn(1_000)
    for name, model, env_id, continuous in [("ppo", ppo, "DictReach-v0", False), ("dqn", dqn, "DictReach-v0", False),
                                            ("sac", sac, "DictReachContinuous-v0", True)]:
        file = f"{name}-{env_id}.zip"
        model.save(os.path.join(folder, file), exclude=["replay_buffer"])
        models[f"{name}-{env_id}"] = dict(file=file, **outputs(model, DictReach(continuous), env_id))
    # A Dict with an image part (bytes from 0 to 255: SB3 reads it through a CNN of its own), as
    # SB3 serialises a space into `data`: for the test that headstart refuses it by name.
    image = spaces.Dict({"camera": spaces.Box(0, 255, (36, 36, 1), np.uint8), "phase": spaces.Discrete(3)})
    with open(os.path.join(folder, "image-observation-space.txt"), "w") as f:
        f.write(base64.b64encode(cloudpickle.dumps(image)).decode() + "\n")
    import stable_baselines3
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump({"sb3_version": stable_baselines3.__version__, "models": models}, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
