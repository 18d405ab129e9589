# headstart's commands. The first two are the README's quick start; each installs what is
# missing (libtorch, once, into ~/.cache/headstart) and reuses it afterwards.

CARGO ?= cargo
# Every build has the Gymnasium bridge, so that whichever command built target/release/headstart
# last, a study with `gym:` environments runs with it.
FEATURES := --features python
PEERS := .venv-peers
# The Gymnasium bridge's virtualenv (gymnasium with MuJoCo), which the embedded interpreter uses.
GYM := .venv-gym

.PHONY: exact quickstart test install setup-python setup-browser bench-logging bench-gym bench-minatar bench-pixels minatar-learning atari-learning verify parity sb3-policies crash-test fuzz slurm-test studies bench bench-env bench-agents policies setup peers clean-libtorch

## The main job: a real transfer study (experiments/quickstart.ron): the shipped CartPole-v1 PPO
## policy fine-tuned on a longer pole against scratch, 10 seeds, with verdicts, figures and a
## report in runs/quickstart (about 6 seconds on two cores after the build; the same numbers on
## every CPU: see `make exact`).
quickstart: setup
	$(CARGO) run --release --quiet $(FEATURES) -- run experiments/quickstart.ron

## The test suite, as CI runs it (with the Gymnasium bridge: the `python` feature).
test: setup setup-python setup-browser
	$(CARGO) test --release --all-targets $(FEATURES)
	$(CARGO) test --release --doc $(FEATURES)
	CARGO=$(CARGO) .ci/user-crate.sh

## `headstart` on your PATH (cargo's bin folder, ~/.cargo/bin), with the Gymnasium bridge;
## built in this repository's target folder, so it reuses what `make test` built.
install: setup setup-python
	$(CARGO) install --path . $(FEATURES) --locked --target-dir target

## Long checks, run before an issue is called resolved: the quick suite, then every learning
## target of the agents on five seeds, PPO on MuJoCo's InvertedPendulum-v5 through the bridge
## included (about 20 minutes on two cores; the table lands in target/learning-targets.md), the
## 20 kill -9 trials, the loaders' long property tests, 3 000 MinAtar episodes of the `minatar`
## package beside the port, and Stable-Baselines3 loading headstart's
## exports (with the benchmarks' Python environment, which it installs: about 5 GB).
## `make verify SEEDS=5-9` trains the learning targets on other seeds (default 0-4).
SEEDS ?= 0-4
verify: test exact crash-test fuzz peers
	HEADSTART_SEEDS=$(SEEDS) $(CARGO) test --release $(FEATURES) --test learning -- --ignored --nocapture
	HEADSTART_MINATAR_EPISODES=300 $(CARGO) test --release $(FEATURES) --test minatar the_package
	$(CARGO) test --release $(FEATURES) --test sb3 -- --ignored

## The quick start run with the engine's portable kernels (HEADSTART_ENGINE=portable: about 8
## minutes on two cores) and with this CPU's vector kernels: evaluations.csv must be byte-identical.
exact: setup
	$(CARGO) build --release --quiet $(FEATURES)
	mkdir -p target
	sed 's/name: "quickstart"/name: "quickstart-portable"/' experiments/quickstart.ron > target/quickstart-portable.ron
	target/release/headstart run experiments/quickstart.ron
	HEADSTART_ENGINE=portable target/release/headstart run target/quickstart-portable.ron
	cmp runs/quickstart/evaluations.csv runs/quickstart-portable/evaluations.csv
	@echo "exact: runs/quickstart and runs/quickstart-portable evaluations.csv byte-identical"

## 20 trials of kill -9 at a random moment of a study (one process, then three), each followed
## by a restart: every unit recorded once, summary identical to an uninterrupted run (the table
## the README reports; about 2 minutes).
crash-test: setup
	HEADSTART_CRASH_TRIALS=20 $(CARGO) test --release $(FEATURES) --test distributed kill_9 -- --nocapture

## Every loader fed 20 000 damaged and random files, 600 native environments and 100 Python
## environments that break their contract at random (about four minutes).
fuzz: setup
	HEADSTART_FUZZ_CASES=20000 $(CARGO) test --release $(FEATURES) --test fuzz_loaders
	HEADSTART_FUZZ_CASES=600 $(CARGO) test --release $(FEATURES) --test fuzz_envs
	HEADSTART_FUZZ_CASES=100 $(CARGO) test --release $(FEATURES) --test gym_bridge a_python_environment_breaking

## A real SLURM run on this machine: .ci/slurm.sh installs Debian's slurm-wlm and munge (root,
## about 15 s once) and starts a one-node cluster; experiments/quickstart.ron runs as a prepare
## job, a job array and a report job, and its summary must equal a local run's. Skips, saying
## so, where SLURM cannot be installed.
slurm-test: setup
	$(CARGO) build --release $(FEATURES)
	.ci/slurm-test.sh

## The pretrained source policies shipped in policies/ (RL Zoo presets, and the MinAtar paper's
## DQN; about 55 minutes on two cores, 14 of them HalfCheetah's million steps and 25 MinAtar's
## two million frames; the MinAtar policies without their replay buffers). Each card records the command that produced it and its evaluation over 100 episodes.
HEADSTART := $(CARGO) run --release --quiet $(FEATURES) --
policies: setup setup-python
	$(HEADSTART) train --algo ppo CartPole-v1 --seed 0 --eval-episodes 100 --quiet --force --out policies/cartpole-ppo
	$(HEADSTART) train --algo ppo CartPole-v1 --randomize length=0.3:0.7 --seed 0 --eval-episodes 100 --quiet --force --out policies/cartpole-ppo-randomized
	$(HEADSTART) train --algo ppo Acrobot-v1 --steps 200000 --seed 0 --eval-episodes 100 --quiet --force --out policies/acrobot-ppo
	$(HEADSTART) train --algo sac Pendulum-v1 --steps 10000 --seed 0 --eval-episodes 100 --quiet --force --out policies/pendulum-sac
	$(HEADSTART) train --algo dqn MountainCar-v0 --seed 1 --eval-episodes 100 --quiet --force --out policies/mountaincar-dqn
	$(HEADSTART) train --algo ppo gym:InvertedPendulum-v5 --steps 100000 --seed 0 --eval-episodes 100 --quiet --force --out policies/inverted-pendulum-ppo
	$(HEADSTART) train --algo ppo gym:HalfCheetah-v5 --seed 0 --eval-episodes 50 --quiet --force --out policies/halfcheetah-ppo
	$(HEADSTART) train --algo dqn MinAtar/Breakout-v0 --seed 0 --eval-episodes 100 --quiet --force --policy-only --out policies/minatar-breakout-dqn
	$(HEADSTART) train --algo dqn MinAtar/SpaceInvaders-v0 --seed 0 --eval-episodes 100 --quiet --force --policy-only --out policies/minatar-spaceinvaders-dqn

## The Stable-Baselines3 model shipped in policies/sb3-ppo-cartpole, trained by SB3 itself
## (about 90 s).
sb3-policies: peers
	$(PEERS)/bin/python policies/sb3-ppo-cartpole/train.py

## Every shipped transfer study in experiments/ (about five hours on two cores, the MinAtar studies 50 minutes of it, the Atari one two hours; results in
## runs/<name>/report.md; with the Gymnasium bridge, which the MuJoCo study needs). Re-running
## continues where it stopped.
studies: setup setup-python
	for f in experiments/*.ron; do $(CARGO) run --release --quiet $(FEATURES) -- run $$f || exit 1; done

## Every benchmark, side by side with its peer.
bench: bench-env bench-agents

## Gymnasium environments stepped through the bridge against the same loop in Python.
bench-gym: setup setup-python
	$(CARGO) bench $(FEATURES) --bench gym_bridge

## DQN with the MinAtar paper's network and settings on MinAtar Breakout and Space Invaders,
## 1 million frames, seeds 0-2 (MINATAR_SEEDS="0 1 2"): the last 100 training episodes against
## the paper's DQN at that budget (about 40 minutes on two cores; target/minatar-learning).
minatar-learning: setup
	$(CARGO) build --release --quiet $(FEATURES)
	.ci/minatar-learning.sh

## PPO with the RL Zoo's Atari preset on KungFuMaster through the ALE
## (envs/atari-kungfumaster.ron; ATARI_GAME=Breakout for envs/atari-breakout.ron), 100 000 agent
## steps (ATARI_STEPS), seeds 0 and 1 (ATARI_SEEDS="0 1"): 30 whole games of each policy against
## a random policy's 100 (about 20 minutes on two cores; target/atari-learning).
atari-learning: setup setup-python
	$(CARGO) build --release --quiet $(FEATURES)
	.ci/atari-learning.sh

## What TensorBoard logging costs: PPO CartPole-v1, DQN CartPole-v1 and SAC Pendulum-v1 trained
## with and without `--tensorboard`, side by side, 3 rounds (about 4 minutes); the median ratio.
bench-logging: setup
	$(CARGO) build --release --quiet $(FEATURES)
	.ci/bench-logging.sh

## PPO on Atari frames with a trunk each for actor and critic against one shared trunk
## (`share_trunk`), side by side, 3 rounds of 2 048 steps (about 3 minutes); the median ratio.
bench-pixels: setup setup-python
	$(CARGO) bench $(FEATURES) --bench pixels

## MinAtar's five games, native against the `minatar` package's Python loop, side by side.
bench-minatar: setup setup-python
	$(CARGO) bench $(FEATURES) --bench minatar

## Training wall time of PPO, DQN and SAC against Stable-Baselines3 on the same tasks (SAC also on
## HalfCheetah-v5 through the bridge), and each run's useful FLOP/s as a fraction of the
## machine's matrix-product rate (about an hour and a half, most of it SB3's SAC;
## HEADSTART_BENCH=ppo,dqn,sac,halfcheetah picks rows).
bench-agents: setup setup-python peers
	$(CARGO) bench $(FEATURES) --bench agents

## Learning quality against Stable-Baselines3 on seeds 5-19 (no preset was tuned on them): both
## tools train PPO CartPole-v1, DQN CartPole-v1 and SAC Pendulum-v1; each seed's score is the mean
## of ten evaluations over the last tenth of the budget, both tools evaluated at the same steps by
## one protocol; a one-sided Welch test says whether headstart is below (about 80 minutes on two
## cores, most of it SB3; results kept in target/parity).
parity: setup peers
	$(CARGO) bench $(FEATURES) --bench parity

## CartPole-v1 stepping speed against Gymnasium's Python CartPole-v1.
bench-env: setup peers
	$(CARGO) bench $(FEATURES) --bench env_step

## libtorch 2.13.0 from the torch wheel on PyPI (CPU part), linked as .libtorch.
setup:
	@.ci/libtorch.sh

## The Gymnasium bridge's virtualenv: gymnasium 1.4.0 with MuJoCo (about 230 MB, 30 s), made
## with the Python that headstart embeds.
setup-python: $(GYM)/.installed $(GYM)/.installed-minatar $(GYM)/.installed-ale $(GYM)/.installed-minigrid $(GYM)/.installed-tensorboard \
	$(GYM)/.installed-procgen
$(GYM)/.installed:
	python3 -m venv $(GYM)
	$(GYM)/bin/python -m pip install --quiet "gymnasium[mujoco]==1.4.0" numpy
	touch $@
# The `minatar` package, which tests/minatar.rs steps beside the native port (its plotting
# dependencies are optional and left out).
$(GYM)/.installed-minatar: $(GYM)/.installed
	$(GYM)/bin/python -m pip install --quiet --no-deps minatar==1.0.15
	touch $@
# The Arcade Learning Environment with its ROMs (ale-py ships them; 3 MB), for `gym:ALE/...`.
$(GYM)/.installed-ale: $(GYM)/.installed
	$(GYM)/bin/python -m pip install --quiet ale-py==0.12.1
	touch $@
# TensorBoard itself, which tests/tensorboard.rs reads headstart's event files with.
$(GYM)/.installed-tensorboard: $(GYM)/.installed
	$(GYM)/bin/python -m pip install --quiet tensorboard==2.21.0
	touch $@
# Procgen, for `gym:procgen-<game>-v0`: OpenAI's procgen 0.10.7 rebuilt for Python 3.11
# (`procgen-mirror`; OpenAI's own wheels stop at 3.10) and gym3, which runs it (50 MB). Their
# metadata pins numpy < 2 and old gym, which they import but do not need with numpy 2: installed
# without dependencies, with what they use (gym 0.26's registry module, cffi, filelock, imageio).
$(GYM)/.installed-procgen: $(GYM)/.installed
	$(GYM)/bin/python -m pip install --quiet "cffi>=1.13" "filelock>=3" "imageio>=2.6"
	$(GYM)/bin/python -m pip install --quiet --no-deps procgen-mirror==0.10.7 gym3==0.3.3 gym==0.26.2
	touch $@
# MiniGrid (pure Python, with pygame-ce, which it imports: 13 MB), for `gym:MiniGrid-...`.
$(GYM)/.installed-minigrid: $(GYM)/.installed
	$(GYM)/bin/python -m pip install --quiet minigrid==3.2.0 pygame-ce==2.5.8
	touch $@

## Debian's Chromium (about 300 MB), in which tests/html_report.rs opens the HTML report; with
## sudo when not root. Elsewhere, set HEADSTART_CHROMIUM to a Chromium or Chrome binary.
setup-browser:
	@[ -n "$$HEADSTART_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { S=$$([ "$$(id -u)" = 0 ] || echo sudo); $$S apt-get update -qq && $$S apt-get install -y -qq --no-install-recommends chromium; }

## A Python environment with the peers the benchmarks compare against.
peers: $(PEERS)/.installed-sb3-mujoco $(PEERS)/.installed-atari
$(PEERS)/.installed-sb3-mujoco:
	python3 -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet "gymnasium[mujoco]==1.4.0" numpy torch==2.13.0 stable-baselines3==2.9.2
	touch $@
# SB3's Atari wrappers need the ALE and OpenCV (tests/sb3/make_cnn_fixtures.py, the Atari checks).
$(PEERS)/.installed-atari: $(PEERS)/.installed-sb3-mujoco
	$(PEERS)/bin/python -m pip install --quiet ale-py==0.12.1 opencv-python-headless==5.1.0.95
	touch $@

clean-libtorch:
	rm -rf .libtorch "$${HEADSTART_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/headstart}"
