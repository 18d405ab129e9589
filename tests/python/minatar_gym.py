"""MinAtar's Gymnasium ids (`MinAtar/<Game>-v0`, `-v1`) registered on import, so that the bridge
makes the `minatar` package's own environments: `gym:minatar_gym:MinAtar/Breakout-v0`."""
from minatar.gym import register_envs

register_envs()
