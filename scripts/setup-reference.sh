#!/usr/bin/env bash
# PyTorch 2.x from pip in .venv-torch: the benchmark's reference (bench/reference), and the libtorch the
# native addon builds against when it is there (native/torch-config.cjs). pip resolves torch from its
# configured index or wheel directory. Where pip has no torch 2.x for this Python, nothing is installed:
# the benchmark falls back to Debian's python3-torch and the addon to Debian's libtorch (scripts/setup.sh).
# Quick when already done. The test and benchmark paths run it; `attune serve` does not need it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-torch

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import torch, sys; sys.exit(int(torch.__version__.split(".")[0]) < 2)' 2>/dev/null; then
  exit 0
fi
if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
  echo "setup-reference: installing python3-venv"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv"
# No retries: an unreachable index fails fast and pip goes on with the others it is configured with.
if "$venv/bin/pip" install --quiet --retries 0 --timeout 10 'torch>=2' numpy; then
  echo "setup-reference: $("$venv/bin/python" -c 'import torch; print("PyTorch", torch.__version__)') in $venv"
else
  rm -rf "$venv"
  echo "setup-reference: no PyTorch 2.x from pip here; the benchmark's reference is Debian's python3-torch"
fi
