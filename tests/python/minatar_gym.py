"""MinAtar's Gymnasium ids (`MinAtar/<Game>-v0`, `-v1`) registered on import, so that the bridge
makes the `minatar` package's own environments: `gym:minatar_gym:MinAtar/Breakout-v0`."""
import logging
import warnings

# The package warns that its plotting dependencies are missing (they are left out on purpose),
# and Gymnasium that `-v0` has a newer version (`-v1` is another action set, not a fix).
logging.disable(logging.WARNING)
from minatar.gym import register_envs  # noqa: E402
logging.disable(logging.NOTSET)
warnings.filterwarnings("ignore", message=".*is out of date.*")

register_envs()
