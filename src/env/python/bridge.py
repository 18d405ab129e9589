"""headstart's side of the Gymnasium bridge, loaded into the embedded interpreter (src/env/python.rs)."""
import inspect, sys
import numpy as np

PHYSICS = ("gravity", "mass_scale", "friction_scale", "damping_scale", "gear_scale")
OBSERVE_DIRECTION = "observe_direction"

def split(id):
    module, _, name = id.rpartition(":")
    if name.startswith("procgen-"):
        register_procgen()  # also for `procgen:procgen-<game>-v0`, whose module registers with old gym only
    elif module:
        __import__(module)
    elif name.startswith("ALE/") or "NoFrameskip" in name:
        import ale_py  # registers the Atari games (ale-py ships their ROMs)
    elif minigrid_id(name):
        import os
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame greets on stdout
        import minigrid  # registers MiniGrid-* and BabyAI-*
    return name

PROCGEN_GAMES = ("bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot",
                 "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot")
# The games that have the modes beyond easy and hard (Procgen ends the process on any other).
PROCGEN_MODES = {"extreme": ("chaser", "dodgeball", "leaper", "starpilot"),
                 "memory": ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner"),
                 "exploration": ("caveflyer", "climber", "coinrun", "heist", "jumper", "leaper", "maze", "ninja")}

def register_procgen():
    """Procgen's 16 games as Gymnasium environments `procgen-<game>-v0` (Procgen's own ids), each
    one gym3 environment of the `procgen` package seen through Gymnasium's API: 64x64 RGB frames
    of bytes, 15 actions, and the level options as keyword arguments (`num_levels` levels from
    `start_level`, 0 for all of them; `distribution_mode` "easy" or "hard"; ...)."""
    import gymnasium as gym
    if "procgen-coinrun-v0" in gym.registry:
        return
    import procgen  # noqa: F401 (the package: the procgen-mirror wheel for Python 3.11)

    class Procgen(gym.Env):
        game = None
        metadata = {"render_modes": []}
        observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        action_space = gym.spaces.Discrete(15)

        def __init__(self, num_levels=0, start_level=0, distribution_mode="hard", use_sequential_levels=False,
                     center_agent=True, use_backgrounds=True, use_monochrome_assets=False, restrict_themes=False,
                     paint_vel_info=False):
            # Procgen ends the whole process on options it refuses: they are checked here first.
            for name, value in (("num_levels", num_levels), ("start_level", start_level)):
                if not 0 <= value < 2**31:
                    raise ValueError("%s must lie in [0, 2^31), not %d" % (name, value))
            if start_level + num_levels >= 2**31:
                raise ValueError("start_level + num_levels must stay below 2^31 (level seeds are 32-bit)")
            games = PROCGEN_MODES.get(distribution_mode)
            if games is not None and self.game not in games:
                raise ValueError("distribution_mode %r: %s has no such mode (it is one of %s)"
                                 % (distribution_mode, self.game, ", ".join(games)))
            levels = dict(num_levels=num_levels, start_level=start_level)
            if distribution_mode == "exploration":
                if num_levels or start_level:
                    raise ValueError("distribution_mode 'exploration' plays one fixed level: leave num_levels and "
                                     "start_level at 0")
                levels = {}
            self.options = dict(levels, distribution_mode=distribution_mode,
                                use_sequential_levels=use_sequential_levels, center_agent=center_agent,
                                use_backgrounds=use_backgrounds, use_monochrome_assets=use_monochrome_assets,
                                restrict_themes=restrict_themes, paint_vel_info=paint_vel_info)
            self.gym3, self.frame, self.ended = None, None, False
            # Now, so that bad options fail at make; a first reset without a seed draws another.
            self.build(0)

        def build(self, seed):
            from procgen import ProcgenGym3Env
            self.close()
            # Procgen's seeds are 32-bit (a mixture's draws are 64-bit); one thread: the caller's.
            self.gym3 = ProcgenGym3Env(num=1, env_name=self.game, rand_seed=int(seed) % 2**31, num_threads=0,
                                       **self.options)
            self.frame = self.gym3.observe()[1]["rgb"][0].copy()

        def close(self):
            if self.gym3 is not None:
                self.gym3.close()
                self.gym3 = None

        def reset(self, *, seed=None, options=None):
            # A seed draws the sequence of levels anew (Procgen's `rand_seed`); without one, an
            # episode that ended has already started the next level (gym3 resets by itself), and
            # a reset in the middle of an episode starts a new sequence from the environment's
            # own generator.
            super().reset(seed=seed)
            if seed is not None or not self.ended:
                self.build(seed if seed is not None else self.np_random.integers(2**31 - 1))
            self.ended = False
            return self.frame, {}

        def step(self, action):
            self.gym3.act(np.array([int(action)], dtype=np.int32))
            reward, obs, first = self.gym3.observe()
            self.frame, self.ended = obs["rgb"][0].copy(), bool(first[0])
            # An episode ends at a level's end, the agent's death or Procgen's own time limit; gym3
            # tells them apart only by `level_complete`, so every end is a termination (as
            # OpenAI's baselines take them), and the frame is already the next level's.
            info = {"level_complete": bool(self.gym3.get_info()[0]["prev_level_complete"])} if self.ended else {}
            return self.frame, float(reward[0]), self.ended, False, info

    for game in PROCGEN_GAMES:
        # Checked again here: another thread may have registered them while `procgen` imported.
        if "procgen-%s-v0" % game not in gym.registry:
            gym.register(id="procgen-%s-v0" % game, entry_point=type("Procgen_" + game, (Procgen,), {"game": game}))

def minigrid_id(name):
    return name.startswith("MiniGrid-") or name.startswith("BabyAI-")

def optional_int(p):
    """A keyword argument `int | None = None` (ALE's `mode` and `difficulty`): an int whose 0
    leaves the choice to the environment (headstart passes only values that differ from it)."""
    text = str(p.annotation)
    return p.default is None and ("int" in text) and all(
        t.strip() in ("int", "None", "Optional[int]", "typing.Optional[int]", "<class 'int'>")
        for t in text.replace("|", ",").split(","))

def kwargs_of(name):
    """The constructor's int, float and bool keyword arguments as (name, default, kind, low, high),
    and its str ones as (name, default)."""
    import gymnasium as gym
    spec = gym.spec(name)
    entry = spec.entry_point
    if isinstance(entry, str):
        mod, _, attr = entry.partition(":")
        entry = getattr(__import__(mod, fromlist=[attr]), attr)
    out, texts = [], []
    try:
        params = inspect.signature(entry).parameters.values()
    except (TypeError, ValueError):
        params = []
    # Optional bounds the environment declares: a class attribute `param_bounds = {"name": (lo, hi)}`.
    bounds = dict(getattr(entry, "param_bounds", None) or {})
    params = list(params)
    numeric = {p.name for p in params
               if isinstance(spec.kwargs.get(p.name, p.default), (int, float))}
    unknown = sorted(set(bounds) - numeric)
    if unknown:
        raise ValueError("param_bounds names %s, which %s no keyword argument with an int, float or bool default "
                         "(it has: %s)" % (", ".join(unknown), "is" if len(unknown) == 1 else "are",
                                           ", ".join(sorted(numeric)) or "none"))
    for p in params:
        d = spec.kwargs.get(p.name, p.default)
        optional = d is None and optional_int(p)
        if optional:
            d = 0
        if isinstance(d, bool):
            kind = "bool"
        elif isinstance(d, int):
            kind = "int?" if optional else "int"
        elif isinstance(d, float):
            kind = "float"
        elif isinstance(d, str):
            texts.append((p.name, d))
            continue
        else:
            continue  # objects are not parameters headstart can set
        lo, hi = bounds.get(p.name, (None, None)) if kind != "bool" else (None, None)  # a bool is 0 or 1
        out.append((p.name, float(d), kind, None if lo is None else float(lo), None if hi is None else float(hi)))
    if minigrid_id(name):
        # headstart's own: observe MiniGrid's dict (the image and the agent's direction) rather
        # than the image alone.
        out.append((OBSERVE_DIRECTION, 0.0, "bool", None, None))
    return spec, out, texts

def model_of(env):
    model = getattr(env.unwrapped, "model", None)
    return model if model is not None and hasattr(model, "opt") and hasattr(model, "body_mass") else None

def describe(id):
    name = split(id)
    spec, kwargs, texts = kwargs_of(name)
    env = make(id, {}, {}, None)
    physics = []
    model = model_of(env)
    if model is not None:
        import mujoco
        physics.append(("gravity", float(model.opt.gravity[2])))
        for p in PHYSICS[1:]:
            physics.append((p, 1.0))
        for b in range(1, model.nbody):
            n = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b)
            if n:
                physics.append(("mass." + n, float(model.body_mass[b])))
    limit = spec.max_episode_steps
    threshold = spec.reward_threshold
    env.close()
    return kwargs, texts, physics, limit, threshold

def make(id, values, texts, max_episode_steps):
    import gymnasium as gym
    name = split(id)
    _, kwargs, _ = kwargs_of(name)
    kinds = {n: kind for n, _, kind, _, _ in kwargs}
    convert = {"int": int, "int?": int, "bool": bool, "float": float}
    # headstart checked every value against its kind (a whole number for an int, 0 or 1 for a bool).
    kw = {k: convert[kinds[k]](v) for k, v in values.items() if k in kinds}
    direction = kw.pop(OBSERVE_DIRECTION, False)
    kw.update({k: str(v) for k, v in texts.items()})  # headstart checked the names against the str kwargs
    if max_episode_steps is not None:
        kw["max_episode_steps"] = max_episode_steps
    env = gym.make(name, **kw)
    if minigrid_id(name) and isinstance(env.observation_space, gym.spaces.Dict):
        # MiniGrid observes a dict (the egocentric image, the direction, the mission's text):
        # headstart reads the image, as MiniGrid's own ImgObsWrapper gives it, or with
        # `observe_direction` the image and the direction (the text has no numbers to read).
        if direction:
            env = gym.wrappers.FilterObservation(env, ["direction", "image"])
        else:
            from minigrid.wrappers import ImgObsWrapper
            env = ImgObsWrapper(env)
    physics = {k: v for k, v in values.items() if k in PHYSICS or k.startswith("mass.")}
    if physics:
        apply_physics(env, physics)
    if "torch" in sys.modules:
        raise ImportError("the environment imported torch into headstart's process, which already runs "
                          "libtorch: two builds of it cannot share a process (import torch lazily, or "
                          "keep it out of the environment)")
    return env

def apply_physics(env, physics):
    model = model_of(env)
    if model is None:
        raise ValueError("physics parameters (%s) need a MuJoCo environment" % ", ".join(sorted(physics)))
    import mujoco
    if "gravity" in physics:
        model.opt.gravity[2] = physics["gravity"]
    s = physics.get("mass_scale", 1.0)
    model.body_mass[:] *= s
    model.body_inertia[:] *= s
    model.geom_friction[:] *= physics.get("friction_scale", 1.0)
    model.dof_damping[:] *= physics.get("damping_scale", 1.0)
    model.actuator_gear[:] *= physics.get("gear_scale", 1.0)
    for k, v in physics.items():
        if k.startswith("mass."):
            b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, k[5:])
            ratio = v / model.body_mass[b] if model.body_mass[b] > 0 else 1.0
            model.body_mass[b] = v
            model.body_inertia[b] *= ratio

def space(s, observation=False):
    """A space as headstart's. Observations may be boxes of any number type (images of uint8,
    MinAtar's grids of bool), read as float32 with their bounds; actions only float boxes."""
    import gymnasium as gym
    if isinstance(s, gym.spaces.Discrete):
        return ("discrete", int(s.n), int(s.start), [], [], [])
    if observation and isinstance(s, gym.spaces.Dict):
        # Parts in the Dict's order, read as gymnasium.spaces.flatten lays them out; a part
        # that is not a Box or a Discrete (starting at 0) is named.
        parts = []
        for key, part in s.spaces.items():
            if isinstance(part, gym.spaces.Discrete) and int(part.start) != 0:
                return ("unsupported", 0, 0, [], [], "Dict part %r: Discrete starting at %d" % (key, part.start))
            if isinstance(part, gym.spaces.Dict):
                return ("unsupported", 0, 0, [], [], "Dict part %r: a Dict inside a Dict (flatten the nesting)" % key)
            inner = space(part, observation=True)
            if inner[0] == "unsupported":
                return ("unsupported", 0, 0, [], [], "Dict part %r is a %s: a part must be a Box of numbers or a "
                        "Discrete (leave it out with gymnasium.wrappers.FilterObservation)" % (key, type(part).__name__))
            parts.append((str(key), inner))
        return ("dict", 0, 0, [], [], parts)
    numeric = np.issubdtype(s.dtype, np.floating) or (
        observation and (np.issubdtype(s.dtype, np.integer) or s.dtype == np.bool_)) if isinstance(s, gym.spaces.Box) else False
    if numeric:
        low, high = (np.asarray(b, dtype=np.float64).ravel() for b in (s.low, s.high))
        return ("box", 0, 0, [float(x) for x in low], [float(x) for x in high], list(s.shape))
    if isinstance(s, gym.spaces.Box):
        return ("unsupported", 0, 0, [], [], "Box of " + str(s.dtype) + " (integer actions: use a Discrete space)")
    return ("unsupported", 0, 0, [], [], type(s).__name__ + " (flatten it with gymnasium.wrappers.FlattenObservation, "
            "or pick a Box or Discrete space)")

def spaces(env):
    o = env.observation_space
    direct = isinstance(o, gym_spaces().Box) and o.dtype == np.float32 and len(o.shape) == 1
    return space(o, observation=True), space(env.action_space), direct

def gym_spaces():
    import gymnasium as gym
    return gym.spaces

def action_maker(env):
    dtype = env.action_space.dtype
    return lambda values: np.asarray(values, dtype=dtype)

def action_template(env):
    s = env.action_space
    if isinstance(s, gym_spaces().Box) and s.dtype == np.float32:
        return np.zeros(s.shape, dtype=np.float32)
    return None

def flat(obs):
    if isinstance(obs, np.ndarray):
        return obs.astype(np.float32).reshape(-1)
    return np.ascontiguousarray(obs, dtype=np.float32).reshape(-1)

def flattener(env):
    """What makes an observation a flat float32 array: a Dict's as gymnasium.spaces.flatten does
    (parts in order, a Discrete one-hot), anything else as `flat`."""
    import gymnasium as gym
    s = env.observation_space
    if isinstance(s, gym.spaces.Dict):
        return lambda obs: gym.spaces.flatten(s, obs).astype(np.float32)
    return flat

def scalars(info):
    out = []
    for k, v in info.items():
        if isinstance(v, (bool, np.bool_)):
            out.append((str(k), float(v)))
        elif isinstance(v, (int, float, np.integer, np.floating)) or (isinstance(v, np.ndarray) and v.size == 1):
            out.append((str(k), float(v)))
    return out

def set_attribute(env, name, value):
    u = env.unwrapped
    if not hasattr(u, name):
        raise AttributeError("%s has no attribute %r" % (type(u).__name__, name))
    current = getattr(u, name)
    if isinstance(current, int) and not isinstance(current, bool) and float(value).is_integer():
        value = int(value)
    setattr(u, name, value)

def get_attribute(env, name):
    return [float(x) for x in np.asarray(getattr(env.unwrapped, name), dtype=np.float64).ravel()]
