#!/usr/bin/env bash
# The one test entry point (README, .ci/run): formatting, lints, unit tests,
# then end-to-end tests against real clusters of the freshly built binary.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT

step() { printf '\n== %s\n' "$*"; }

# A full run's target/ grows to about 3 GB (README, "Two commands").
free_mb=$(df -Pm . 2>/dev/null | awk 'NR == 2 { print $4 }') || free_mb=""
if [ -n "$free_mb" ] && [ "$free_mb" -lt 3500 ]; then
    echo "warning: only ${free_mb} MB free here; a full run needs about 3 GB" >&2
fi

step "tools the tests drive"
scripts/ensure-tools.sh

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lints (cargo clippy -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "alerting rules and Prometheus config (promtool)"
promtool check rules compose/prometheus/alerts.yml
promtool test rules compose/prometheus/alerts_test.yml
promtool check config compose/prometheus.yml

step "build dsync"
cargo build -p dsync
export DSYNC_BIN="$PWD/target/debug/dsync"

if [ "${DSYNC_DOCKER_TESTS:-}" = 1 ]; then
    step "container image (static dsync, FROM scratch)"
    scripts/build-image.sh --profile dev --tag "${DSYNC_IMAGE:=dsync:test}"
    export DSYNC_IMAGE
    # The image holds the binary now; its separate build tree is the size
    # of the rest of target/ together (set by .ci/run, where disk is short).
    if [ "${DSYNC_DROP_IMAGE_BUILD:-}" = 1 ]; then rm -rf target/static; fi
fi

step "unit tests"
cargo test --workspace --exclude dsync-tests --no-fail-fast 2>&1 | tee -a "$log"

step "end-to-end tests (real clusters on loopback)"
# Each test starts its own cluster; two at a time keeps elections honest on 2 cores.
cargo test -p dsync-tests --no-fail-fast -- --test-threads="${DSYNC_E2E_THREADS:-2}" --show-output 2>&1 | tee -a "$log"

# One closing line for the whole run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "\ntotal: %d passed, %d failed\n", p, f }' "$log"
echo "target/: $(du -sh target | cut -f1)"
