#!/usr/bin/env bash
# Sets up (PyTorch 2.x for the addon and the benchmark's reference first, where pip has it), then runs
# the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-reference.sh
bash scripts/setup.sh
npm test
