#!/usr/bin/env bash
# Sets up, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
npm test
