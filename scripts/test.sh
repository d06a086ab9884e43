#!/usr/bin/env bash
# Sets up (the test profile: PyTorch 2.x for the addon first, where pip has it), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
npm test
