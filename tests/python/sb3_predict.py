"""Loads a model headstart exported with Stable-Baselines3 itself and prints what it predicts.

Usage: python sb3_predict.py ALGO MODEL.zip OBS.json [vec_normalize.pkl]
Prints JSON: {"actions": model.predict(obs, deterministic=True)} for the observations in OBS.json
(raw; normalised with the VecNormalize statistics first when a .pkl is given; a Dict model's
flat observations unflattened into dictionaries)."""
import json, sys
import gymnasium as gym
import numpy as np
import stable_baselines3 as sb3
from stable_baselines3.common.vec_env import VecNormalize

algo, path, obs_path = sys.argv[1:4]
model = getattr(sb3, algo.upper()).load(path, device="cpu")
obs = np.array(json.load(open(obs_path)), dtype=np.float32)
if len(sys.argv) > 4:
    import pickle
    with open(sys.argv[4], "rb") as f:
        norm = pickle.load(f)
    norm.training = False
    obs = norm.normalize_obs(obs)
if isinstance(model.observation_space, gym.spaces.Dict):
    # headstart's observations are Gymnasium's flat layout of the Dict: SB3 is given dictionaries.
    rows = [gym.spaces.unflatten(model.observation_space, row) for row in obs]
    obs = {key: np.asarray([row[key] for row in rows]) for key in model.observation_space.spaces}
actions, _ = model.predict(obs, deterministic=True)
print(json.dumps({"actions": np.asarray(actions).tolist()}))
