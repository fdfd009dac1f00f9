#!/usr/bin/env bash
# Fills the ignored folder device/ with what benchmarks/run_h200.sh needs on the accelerator
# machine, which reaches no registry and does not get ../shared: wheels of the packages its
# image lacks (grain and its two missing dependencies, ml_collections) for its Python 3.12,
# and a copy of the shared reference scripts. Run here, from anywhere, before the device call.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
shared="${RMPL_SHARED:-$repo/../shared}"
if [ ! -f "$shared/bench/hf_reference.py" ]; then
  echo "prepare_device: $shared/bench/hf_reference.py not found (set RMPL_SHARED to the shared folder)" >&2
  exit 1
fi
if ! git check-ignore -q device/; then
  echo "prepare_device: device/ is not ignored by git; refusing to fill it" >&2
  exit 1
fi
mkdir -p device/wheels device/bench
rm -f device/wheels/*.whl
# Versions as in the development venv; the image already has absl-py, etils, cloudpickle,
# protobuf, psutil, numpy and PyYAML (see the device README's package list).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d device/wheels grain==0.2.18 array-record==0.8.6 portpicker==1.6.0 ml_collections==1.1.0
rm -f device/bench/*.py
cp "$shared"/bench/*.py device/bench/
# What was measured: the commit and whether the tree had local changes.
{ git rev-parse HEAD; echo "uncommitted paths: $(git status --porcelain | wc -l)"; } > device/revision.txt
ls -l device/wheels device/bench
du -sh device
