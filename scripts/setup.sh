#!/usr/bin/env bash
# Installs what Attune needs on Debian/Ubuntu, for a profile:
#   serve  what running the server and the CLI needs: libtorch + OpenBLAS, a C++ toolchain, npm packages,
#          the native addon, the TypeScript build (server and web console);
#   test   serve, plus Chromium for the console's browser tests, PostgreSQL for the store and scale-out tests,
#          and PyTorch 2.x from pip in .venv-torch where pip has it (scripts/setup-reference.sh), which the addon
#          then builds against (the default);
#   bench  test, plus Debian's PyTorch as the benchmark's reference where pip had none.
# Safe and fast to run again: each step is skipped while its inputs are unchanged (a stamp records them).
# ATTUNE_SETUP_FORCE=1 redoes every step.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${1:-test}"
case "$profile" in serve | test | bench) ;; *) echo "usage: scripts/setup.sh [serve|test|bench]" >&2; exit 2 ;; esac

# --- apt packages, by profile ---
apt_serve=(libtorch-dev libopenblas0-pthread build-essential python3 curl jq ncurses-bin)
# chromium and fonts-dejavu-core: the console's end-to-end tests drive Debian's headless Chromium.
# strace: a test checks that checkpoints and adapters are fsynced before they are renamed into place.
# postgresql: the store and multi-machine tests start throwaway clusters (initdb as a non-root user).
apt_test=(chromium fonts-dejavu-core strace postgresql)
# python3-torch: PyTorch eager, the benchmark's reference where .venv-torch has none.
apt_bench=(python3-torch)
apt_packages=("${apt_serve[@]}")
if [ "$profile" != serve ]; then apt_packages+=("${apt_test[@]}"); fi
if [ "$profile" = bench ]; then apt_packages+=("${apt_bench[@]}"); fi

missing=()
for p in "${apt_packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- stamps: a step runs when the hash of its inputs differs from the one recorded after it last succeeded ---
force="${ATTUNE_SETUP_FORCE:-0}"
hash_of() { # the files and words given, hashed in order
  { for f in "$@"; do if [ -f "$f" ]; then sha256sum "$f"; else echo "$f"; fi; done; } | sha256sum | cut -d' ' -f1
}
tree_files() { find "$@" -type f -not -path '*/node_modules/*' 2>/dev/null | LC_ALL=C sort; }
up_to_date() { [ "$force" != 1 ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
node_abi="node-abi-$(node -p process.versions.modules)"

# Native packages (better-sqlite3) build against the running Node's headers: never a header download.
export npm_config_nodedir="${npm_config_nodedir:-$(node -p "require('path').dirname(require('path').dirname(process.execPath))")}"

# npm ci replaces node_modules wholesale, so it runs only when the lockfile (or Node's ABI) changed.
npm_stamp=node_modules/.attune-setup-stamp
npm_hash=$(hash_of package-lock.json "$node_abi")
if ! up_to_date "$npm_stamp" "$npm_hash"; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_hash" > "$npm_stamp"
fi

if [ "$profile" != serve ]; then bash scripts/setup-reference.sh; fi

native_stamp=native/build/.attune-setup-stamp
libtorch_version=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || true)
native_hash=$(hash_of $(tree_files native/src) native/binding.gyp native/build.cjs native/torch-config.cjs \
  "$node_abi" "libtorch-dev=$libtorch_version" "LIBTORCH=${LIBTORCH:-}" "TORCH_CXX11_ABI=${TORCH_CXX11_ABI:-}" "torch=$(node native/torch-config.cjs dir)")
if ! up_to_date "$native_stamp" "$native_hash" || [ ! -f native/build/Release/attune_torch.node ]; then
  echo "setup: building the native addon"
  npm run --silent build:native >/dev/null
  echo "$native_hash" > "$native_stamp"
fi

build_stamp=dist/.attune-setup-stamp
build_hash=$(hash_of $(tree_files src test bench) tsconfig.json package.json package-lock.json)
if ! up_to_date "$build_stamp" "$build_hash" || [ ! -f dist/src/cli/main.js ] || [ ! -f dist/console/index.html ]; then
  echo "setup: compiling TypeScript and the console"
  npm run --silent build
  echo "$build_hash" > "$build_stamp"
fi
echo "setup: done ($profile)"
