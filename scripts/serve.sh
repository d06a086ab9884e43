#!/usr/bin/env bash
# Sets up, then serves the Gemini API tuning surface on http://127.0.0.1:8080 with the embedded base model.
# Keyless on loopback, so curl and SDKs work at once; issue keys with `node bin/attune.js keys create`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh serve
exec node bin/attune.js serve --keyless "$@"
