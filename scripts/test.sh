#!/usr/bin/env bash
# The one test entry point (README, .ci/run): formatting, lints, unit tests,
# then end-to-end tests against real clusters of the freshly built binary.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "tools the tests drive"
scripts/ensure-tools.sh

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "build dsync"
cargo build -p dsync
export DSYNC_BIN="$PWD/target/debug/dsync"

if [ "${DSYNC_DOCKER_TESTS:-}" = 1 ]; then
    step "container image (static dsync, FROM scratch)"
    scripts/build-image.sh --profile dev --tag "${DSYNC_IMAGE:=dsync:test}"
    export DSYNC_IMAGE
fi

step "unit tests"
cargo test --workspace --exclude dsync-tests 2>&1 | tee -a "$log"

step "end-to-end tests (real clusters on loopback)"
# Each test starts its own cluster; two at a time keeps elections honest on 2 cores.
cargo test -p dsync-tests -- --test-threads="${DSYNC_E2E_THREADS:-2}" --show-output 2>&1 | tee -a "$log"

# One closing line for the whole run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$log"
