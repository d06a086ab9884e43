#!/usr/bin/env bash
# Sets up, then tunes the embedded stories260K on the seeds' number examples and asks it for successors.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh serve
out="${ATTUNE_DEMO_DIR:-$(mktemp -d)}/numbers-adapter"
node bin/attune.js tune --data examples/numbers.jsonl --epochs 50 --batch-size 4 --out "$out"
for prompt in "1" "twenty two" "ninety nine" "10,100,000" "seven"; do
  printf '%-12s → %s\n' "$prompt" "$(node bin/attune.js generate --adapter "$out" --prompt "$prompt" --temperature 0)"
done
