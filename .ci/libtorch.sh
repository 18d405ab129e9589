#!/usr/bin/env bash
# Installs libtorch 2.13.0 (the version tch 0.26 expects) once, from the torch==2.13.0 wheel on
# PyPI, and links it into the project as `.libtorch` (read by .cargo/config.toml).
#
# Only the CPU part of the wheel is kept: libtorch_cpu, c10, gomp and the headers, plus the two
# small CUDA runtime libraries that libtorch_cpu names as dependencies (cudart, cupti). About
# 500 MiB are downloaded the first time; later runs find the cache and return at once.
#
# Cache: $HEADSTART_CACHE (default ~/.cache/headstart). Python 3 with pip is needed only the
# first time, to download the wheels.
set -euo pipefail

version=2.13.0
cuda_runtime="nvidia-cuda-runtime==13.0.96"
cuda_cupti="nvidia-cuda-cupti==13.0.85"
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${HEADSTART_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/headstart}
dest=$cache/libtorch-$version

fail() {
  printf '\nheadstart setup: %s\n\n' "$*" | fold -s -w 100 >&2
  exit 1
}

link_into_project() {
  ln -sfn "$dest" "$root/.libtorch"
}

if [ -f "$dest/.complete" ]; then
  link_into_project
  exit 0
fi

command -v python3 >/dev/null 2>&1 || fail "python3 was not found. headstart downloads libtorch \
$version from the torch==$version wheel on PyPI with pip, once. Install Python 3 with pip \
(Debian: apt-get install python3 python3-pip), or set LIBTORCH to an existing libtorch $version \
folder and run cargo directly."
python3 -m pip --version >/dev/null 2>&1 || fail "python3 has no pip. headstart downloads \
libtorch $version from PyPI with pip, once. Install it (Debian: apt-get install python3-pip, or \
python3 -m ensurepip), then run this command again."

mkdir -p "$cache"
work=$(mktemp -d "$cache/.download.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "headstart setup: downloading libtorch $version from PyPI into $cache (once, ~500 MiB)"
# The wheel's libraries do not depend on the Python version: ask pip for the cp311 build whatever
# python3 this is, so that any Python 3 with pip works.
if ! python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
    --platform manylinux_2_17_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 --abi none \
    -d "$work" "torch==$version" "$cuda_runtime.*" "$cuda_cupti.*"; then
  fail "downloading torch==$version from PyPI failed (see pip's message above). Check the \
network or the pip configuration (index-url, proxy), then run this command again; nothing was \
installed."
fi

python3 - "$work" "$version" <<'PY' || fail "unpacking the torch wheel failed (see above); the download may be corrupt. Run this command again."
import pathlib, sys, zipfile

work, version = pathlib.Path(sys.argv[1]), sys.argv[2]
out = work / "libtorch"
(out / "lib").mkdir(parents=True)
keep_libs = {"libtorch_cpu.so", "libtorch.so", "libc10.so", "libgomp.so.1", "libshm.so",
             "libcudart.so.13", "libcupti.so.13"}
found = set()
for wheel in sorted(work.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            base = name.rsplit("/", 1)[-1]
            if name.startswith("torch/include/") and not name.endswith("/"):
                target = out / name[len("torch/"):]
            elif name.endswith("/lib/" + base) and base in keep_libs:
                target = out / "lib" / base
                found.add(base)
            elif name == "torch/version.py":
                text = z.read(info).decode()
                if f"__version__ = '{version}" not in text:
                    sys.exit(f"the wheel is not torch {version}: {text.strip()}")
                (out / "build-version").write_text(version + "\n")
                continue
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
missing = keep_libs - found
if missing:
    sys.exit(f"the wheels lack {sorted(missing)}")
if not (out / "build-version").exists():
    sys.exit("the torch wheel has no torch/version.py")
PY

# libtorch.so is a shim that names libtorch_cuda.so (not kept); torch-sys links it, but nothing in
# it is used, so the linker drops it (--as-needed) and binaries need only libtorch_cpu and c10.
touch "$work/libtorch/.complete"
rm -rf "$dest"
mv "$work/libtorch" "$dest"
link_into_project
echo "headstart setup: libtorch $version is in $dest"
