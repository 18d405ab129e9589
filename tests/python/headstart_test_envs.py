"""Python environments for headstart's bridge tests: a user's own Gymnasium environments, registered
when this module is imported (`gym:headstart_test_envs:HeadstartCorridor-v0`)."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class Corridor(gym.Env):
    """Walk right to the end of a corridor of `length` cells; `slip` flips an action at random."""

    def __init__(self, length=8, slip=0.0):
        self.length = int(length)
        self.slip = float(slip)
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float64)
        self.action_space = spaces.Discrete(2, start=-1)  # -1: left, 0: right
        self.pos = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = 0
        return np.array([0.0]), {}

    def step(self, action):
        assert action in (-1, 0), action
        if self.slip and self.np_random.random() < self.slip:
            action = -1 - action
        self.pos = max(0, self.pos + (1 if action == 0 else -1))
        done = self.pos >= self.length
        return np.array([self.pos / self.length]), (1.0 if done else -0.01), done, False, {"pos": self.pos}


class Broken(Corridor):
    """Fails in its third step, as a simulator that diverges does."""

    def step(self, action):
        if self.pos >= 2:
            raise FloatingPointError("the simulator diverged")
        self.pos += 1
        return np.array([0.0]), 0.0, False, False, {}


class NotFinite(Corridor):
    def step(self, action):
        return np.array([np.nan]), 0.0, False, False, {}


class ShortLast(Corridor):
    """Returns an empty last observation when it terminates (a bug at the episode's end)."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return (np.zeros(0) if terminated else obs), reward, terminated, truncated, info


class NanReward(Corridor):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float("nan"), terminated, truncated, info


class DictObs(Corridor):
    """The corridor observed as a dict: the position and whether the last step went right."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict({"pos": spaces.Box(0.0, 1.0, (1,)), "last": spaces.Discrete(2)})

    def reset(self, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return {"pos": obs, "last": 0}, info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return {"pos": obs, "last": int(action == 0)}, reward, terminated, truncated, info


class DictText(DictObs):
    """A dict with a part of text, which has no numbers to read."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict({"pos": spaces.Box(0.0, 1.0, (1,)), "note": spaces.Text(8)})


class Typed(Corridor):
    """A corridor whose constructor insists on its arguments' types: an int, a float, a bool and a
    str, two of them with declared bounds; the str picks the layout ("long" doubles the length)."""

    param_bounds = {"n_cells": (2, 20), "reward_scale": (0.1, 10.0)}

    def __init__(self, n_cells=8, reward_scale=1.0, slippery=False, layout="plain"):
        if type(n_cells) is not int or type(reward_scale) is not float or type(slippery) is not bool:
            raise TypeError("wrong types: %r %r %r" % (n_cells, reward_scale, slippery))
        if layout not in ("plain", "long"):
            raise ValueError("layout must be 'plain' or 'long', not %r" % (layout,))
        super().__init__(length=n_cells * (2 if layout == "long" else 1), slip=0.2 if slippery else 0.0)


class Chaotic(Corridor):
    """A corridor that breaks the contract at random (probability `p` per reset and step, drawn
    from `fault_seed`), in the ways Python code breaks it: a wrong length, NaN or inf, values of
    the wrong dtype (strings, None, objects), a reward that is not a number, flags that are not
    bools, an info that is not a dict, a tuple of the wrong size, an exception."""

    FAULTS = ("short", "long", "nan", "inf", "strings", "none_obs", "object_obs", "reward_none",
              "reward_str", "reward_array", "reward_nan", "flag_str", "info_list", "tuple_short", "raise")

    def __init__(self, fault_seed=0, p=0.05):
        super().__init__(length=6)
        self.faults = np.random.default_rng(fault_seed)
        self.p = float(p)

    def fault(self):
        return self.FAULTS[self.faults.integers(len(self.FAULTS))] if self.faults.random() < self.p else None

    def reset(self, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        kind = self.fault()
        if kind == "raise":
            raise RuntimeError("the simulator lost its state")
        return self.broken_obs(kind, obs), info

    def broken_obs(self, kind, obs):
        return {"short": np.array([]), "long": np.array([0.5, 0.5]), "nan": np.array([np.nan]),
                "inf": np.array([np.inf]), "strings": np.array(["left"]), "none_obs": None,
                "object_obs": np.array([object()], dtype=object)}.get(kind, obs)

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        kind = self.fault()
        if kind == "raise":
            raise RuntimeError("the simulator diverged")
        if kind == "tuple_short":
            return obs, reward, terminated, truncated
        reward = {"reward_none": None, "reward_str": "1.0", "reward_array": np.array([1.0, 2.0]),
                  "reward_nan": float("nan")}.get(kind, reward)
        terminated = "no" if kind == "flag_str" else terminated
        info = [("pos", 1)] if kind == "info_list" else info
        return self.broken_obs(kind, obs), reward, terminated, truncated, info


gym.register("HeadstartChaotic-v0", entry_point=Chaotic, max_episode_steps=50)
gym.register("HeadstartCorridor-v0", entry_point=Corridor, max_episode_steps=50)
gym.register("HeadstartTyped-v0", entry_point=Typed, max_episode_steps=50)
gym.register("HeadstartBroken-v0", entry_point=Broken, max_episode_steps=10)
gym.register("HeadstartNotFinite-v0", entry_point=NotFinite, max_episode_steps=10)
gym.register("HeadstartDictObs-v0", entry_point=DictObs, max_episode_steps=10)
gym.register("HeadstartDictText-v0", entry_point=DictText, max_episode_steps=10)
gym.register("HeadstartShortLast-v0", entry_point=ShortLast, max_episode_steps=50)
gym.register("HeadstartNanReward-v0", entry_point=NanReward, max_episode_steps=50)
