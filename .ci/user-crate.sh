#!/usr/bin/env bash
# An environment in a crate of the user's own, as a new user makes one: `headstart new env` outside
# the repository, built with cargo (sharing this repository's target folder, so that only headstart
# and the new crate compile), then `check`, `train` and a two-seed study run by its binary without
# LD_LIBRARY_PATH. Needs target/release/headstart (`make test` builds it first).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
unset LD_LIBRARY_PATH
cd "$dir"
"$root/target/release/headstart" new env point-mass
cd point-mass
CARGO_TARGET_DIR="$root/target" ${CARGO:-cargo} build --release --quiet
bin="$root/target/release/point-mass"
"$bin" check PointMass-v0 -p length=12
"$bin" train --algo ppo PointMass-v0 --steps 4000 --out runs/ppo
test -f runs/ppo/weights.safetensors
"$bin" run experiments/point-mass.ron --quiet
grep -q 'PointMass-v0-slip=0.3' runs/point-mass-slip/report.md
echo "user-crate: a crate outside the repository built, checked, trained and ran a study ($dir)"
