#!/usr/bin/env bash
# Installs everything Attune needs on Debian/Ubuntu: libtorch + OpenBLAS (+ PyTorch for the benchmark's
# reference), Chromium for the console's browser tests, npm packages, the native addon and the TypeScript
# build (server and web console). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium and fonts-dejavu-core: the console's end-to-end tests drive Debian's headless Chromium.
# strace: a test checks that checkpoints and adapters are fsynced before they are renamed into place.
# postgresql: the store and multi-machine tests start throwaway clusters (initdb as the postgres user).
apt_packages=(libtorch-dev libopenblas0-pthread python3-torch build-essential python3 curl jq ncurses-bin chromium fonts-dejavu-core strace postgresql)
missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Native packages (better-sqlite3) build against the running Node's headers: never a header download.
export npm_config_nodedir="${npm_config_nodedir:-$(node -p "require('path').dirname(require('path').dirname(process.execPath))")}"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build:native >/dev/null
npm run --silent build
echo "setup: done"
