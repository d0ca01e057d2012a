#!/usr/bin/env bash
# The Bun lanes (issue 15): OpenCode runs the plugin in Bun, so the suites of
# the store, the lock, the token manager, the facade, the CLI and the AI SDK
# entry run under Bun too, with two Buns:
#   - OpenCode's own (the pinned opencode binary acts as Bun 1.3.14 when
#     started with BUN_BE_BUN=1; found or installed by test/support/opencode.ts);
#   - a current one: the `bun` package of the npm registry, installed into a
#     private prefix (${TMPDIR:-/tmp}/kimi-ci-bun), never into the project.
# vitest itself runs under Bun (`bun --bun vitest`), its forked workers too,
# and every fixture a test spawns with process.execPath (the CLI, the facade,
# the store writers) is that same Bun: the same files and assertions as the
# Node run, nothing skipped for Bun (see test/support/runtime.ts).
#
# Usage: scripts/test-bun.sh [opencode|current]...   (default: both; run
# `npm run build` first, the CLI tests use dist/). Env: OPENCODE_BIN,
# KIMI_CI_BUN_VERSION (default 1: the newest Bun 1.x), KIMI_BUN_WORKERS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

files=(
  test/storage/TokenStore.test.ts
  test/storage/TokenStore.decisions.test.ts
  test/storage/Notes.test.ts
  test/storage/NoteOps.test.ts
  test/storage/TokenFileEncodings.test.ts
  test/storage/clockSkew.test.ts
  test/storage/foreignOwner.test.ts
  test/storage/SpentRefreshTokens.test.ts
  test/lock/FileLock.test.ts
  test/lock/FileLock.decisions.test.ts
  test/lock/FileLock.pidns.test.ts
  test/lock/FileLock.paths.test.ts
  test/tokens/TokenManager.test.ts
  test/tokens/TokenManager.decisions.test.ts
  test/tokens/TokenManager.disk.test.ts
  test/tokens/slowTokenEndpoint.test.ts
  test/tokens/lateRefresh.test.ts
  test/request/refusingApi.test.ts
  test/request/echoedToken.test.ts
  test/opencode-unit/quotaMessage.test.ts
  test/opencode-unit/adoptSpentCopy.test.ts
  test/opencode-unit/refusedRefresh.test.ts
  test/oauth/OAuthEcho.test.ts
  test/storage/LoginStorage.test.ts
  test/promise
  test/cli
  test/ai-sdk
)
lanes=("$@")
[ ${#lanes[@]} -gt 0 ] || lanes=(opencode current)
[ -f dist/cli/main.js ] || { echo "test-bun: dist/ is missing; run npm run build first" >&2; exit 2; }

bun_dir="${TMPDIR:-/tmp}/kimi-ci-bun"
bun_bin="$bun_dir/node_modules/.bin/bun"
current_bun() {
  if [ ! -x "$bun_bin" ]; then
    npm install --prefix "$bun_dir" --no-audit --no-fund --loglevel=error "bun@${KIMI_CI_BUN_VERSION:-1}" >&2
  fi
  echo "$bun_bin"
}

run_lane() { # <label> <command...>: vitest over the files under that Bun
  local label="$1"
  shift
  local started=$SECONDS
  echo "== Bun lane: $label ($("$@" --version))"
  # Two workers on CI's 2 cores (vitest's default is one): these files mostly wait on child processes and timers.
  "$@" --bun node_modules/vitest/vitest.mjs run --maxWorkers="${KIMI_BUN_WORKERS:-2}" "${files[@]}"
  echo "== Bun lane: $label passed in $((SECONDS - started)) s"
}

for lane in "${lanes[@]}"; do
  case "$lane" in
    opencode)
      opencode_bin="${OPENCODE_BIN:-}"
      if [ -z "$opencode_bin" ]; then
        # test/support/opencode.ts finds the pinned binary or installs the fixture (npm ci); Bun runs the TypeScript.
        opencode_bin="$("$(current_bun)" -e 'const { ensureOpencode } = await import("./test/support/opencode.ts"); console.log((await ensureOpencode()).path)')"
      fi
      run_lane "OpenCode's Bun ($opencode_bin)" env BUN_BE_BUN=1 "$opencode_bin"
      ;;
    current)
      run_lane "current Bun (npm bun@${KIMI_CI_BUN_VERSION:-1})" "$(current_bun)"
      ;;
    *) echo "test-bun: unknown lane $lane (opencode or current)" >&2; exit 2 ;;
  esac
done
