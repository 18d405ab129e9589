"""Records the golden MinAtar trajectories that tests/minatar.rs replays: the `minatar` package
(1.0.15) itself, stepped through its Gymnasium class (`minatar.gym.BaseEnv`).

    .venv-gym/bin/python tests/python/minatar_golden.py tests/golden/minatar

One JSON file per case: the env id as headstart registers it, the parameters (the package's
keyword arguments and module constants, under headstart's names), the policy that chose the
actions, and episodes: the seed of the reset (`null`: the generator's stream continued), the
observation after the reset, and per step `[action, reward, terminated, observation]`, each
observation the bits of the (10, 10, channels) boolean array, row-major, packed by
`np.packbits` and written in hex. Episodes longer than `CAP` steps are cut (`"cut": true`).
"""
import importlib
import json
import os
import sys

import numpy as np
from minatar.gym import BaseEnv

CAP = 3000
GAMES = {"asterix": "Asterix", "breakout": "Breakout", "freeway": "Freeway",
         "seaquest": "Seaquest", "space_invaders": "SpaceInvaders"}
# Module constants a case may override, with values that change the play.
CONSTANTS = {
    "asterix": {"ramp_interval": 20, "init_spawn_speed": 3, "init_move_interval": 2},
    "breakout": {},
    "freeway": {"player_speed": 1, "time_limit": 400},
    "seaquest": {"max_oxygen": 80, "init_spawn_speed": 6, "diver_spawn_speed": 8, "init_move_interval": 2,
                 "shot_cool_down": 2, "enemy_shot_interval": 4, "diver_move_interval": 2},
    "space_invaders": {"shot_cool_down": 1, "enemy_move_interval": 7, "enemy_shot_interval": 3},
}


def bits(obs):
    return np.packbits(np.asarray(obs, dtype=bool).reshape(-1)).tobytes().hex()


def policy(name, game, n_actions, minimal, rng):
    """An action chooser: uniform, or a script that plays long enough to reach the game's later
    rules (bricks refilled, divers rescued and oxygen scored, waves cleared)."""
    full = ["n", "l", "u", "r", "d", "f"]
    labels = [full[a] for a in minimal] if minimal else full

    def index(letter):
        return labels.index(letter) if letter in labels else int(rng.integers(n_actions))

    def choose(obs):
        if name == "random" or rng.random() < (0.02 if game == "breakout" else 0.15):
            return int(rng.integers(n_actions))
        if game == "breakout":
            ball, trail = np.argwhere(obs[:, :, 1]), np.argwhere(obs[:, :, 2])
            paddle = np.argwhere(obs[9, :, 0])
            if len(ball) and len(trail) and len(paddle):
                (y, x), (ty, tx) = ball[0], trail[0]
                target = x
                if y > ty:  # falling: where it lands, bouncing off the walls
                    target = x + (x - tx) * (9 - y)
                    while not 0 <= target <= 9:
                        target = -target if target < 0 else 18 - target
                dx = target - paddle[0][0]
                return index("l" if dx < 0 else "r" if dx > 0 else "n")
        if game == "seaquest":
            oxygen = int(obs[9, :, 7].sum())
            if oxygen < 3:
                return index("u")
            return index(["l", "r", "f", "d", "f", "n"][int(rng.integers(6))])
        if game == "space_invaders":
            return index(["f", "f", "l", "r"][int(rng.integers(4))])
        return int(rng.integers(n_actions))

    return choose


def record(case):
    module = importlib.import_module("minatar.environments." + case["game"])
    saved = {k: getattr(module, k) for k in case["constants"]}
    for k, v in case["constants"].items():
        setattr(module, k, v)
    try:
        env = BaseEnv(case["game"], use_minimal_action_set=case["minimal"],
                      sticky_action_prob=case["sticky"], difficulty_ramping=case["ramping"])
        rng = np.random.default_rng(case["policy_seed"])
        minimal = env.action_set if case["minimal"] else None
        choose = policy(case["policy"], case["game"], env.action_space.n, minimal, rng)
        episodes = []
        for seed in case["seeds"]:
            if isinstance(seed, list):  # above 2^32: NumPy's array seeding of the two words
                env.game.seed(np.array(seed, dtype=np.uint32))
                obs, _ = env.reset()
                seed = seed[0] + (seed[1] << 32)
            else:
                obs, _ = env.reset(seed=seed)
            reset_obs, steps, cut = bits(obs), [], True
            for _ in range(CAP):
                action = choose(obs)
                obs, reward, terminated, truncated, _ = env.step(action)
                assert not truncated
                steps.append([action, float(reward), bool(terminated), bits(obs)])
                if terminated:
                    cut = False
                    break
            episodes.append({"seed": seed, "reset_obs": reset_obs, "steps": steps, "cut": cut})
        return episodes
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


def cases():
    for game in GAMES:
        yield dict(name="default-random", game=game, minimal=False, sticky=0.1, ramping=True, constants={},
                   policy="random", policy_seed=1, seeds=[0, None, 7])
        yield dict(name="minimal-nosticky-noramp", game=game, minimal=True, sticky=0.0, ramping=False,
                   constants={}, policy="random", policy_seed=2, seeds=[11, None])
        yield dict(name="variant-sticky", game=game, minimal=False, sticky=0.5, ramping=True,
                   constants=CONSTANTS[game], policy="scripted", policy_seed=3, seeds=[23, None])
        yield dict(name="default-scripted", game=game, minimal=True, sticky=0.1, ramping=True, constants={},
                   policy="scripted", policy_seed=4, seeds=[5, [9, 1]])


def main(out):
    os.makedirs(out, exist_ok=True)
    for case in cases():
        env_id = "MinAtar/%s-%s" % (GAMES[case["game"]], "v1" if case["minimal"] else "v0")
        params = {"sticky_action_prob": case["sticky"], "difficulty_ramping": float(case["ramping"])}
        params.update({k: float(v) for k, v in case["constants"].items()})
        doc = {"env_id": env_id, "params": params, "policy": case["policy"], "episodes": record(case)}
        path = os.path.join(out, "%s-%s.json" % (case["game"], case["name"]))
        with open(path, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        lengths = [len(e["steps"]) for e in doc["episodes"]]
        print("%s: %s steps, return %s" % (path, lengths,
                                            [sum(s[1] for s in e["steps"]) for e in doc["episodes"]]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden/minatar")
