#!/usr/bin/env bash
# Installs the tools the test suite drives besides cargo, when missing:
# kubernetes-validate (PyPI) for the manifests, Schemathesis (PyPI, pinned:
# its CLI changes between releases) for the API fuzzing test, tmux (Debian)
# for the dashboard's end-to-end test, iproute2 and nftables (Debian) for the
# partition faults (network namespaces; skipped with DSYNC_NO_NETNS=1),
# libfaketime (Debian's faketime) for the clusters made by older releases
# (tests/fixtures/), whose leases are wall-clock deadlines, and
# Prometheus (Debian) for promtool, which checks the alerting rules and the
# Prometheus config on every run, and for the scrape test under
# DSYNC_DOCKER_TESTS=1. Called by scripts/test.sh and scripts/chaos.sh.
set -euo pipefail

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "missing $*; install it (apt-get install $*) or run as root" >&2
        return 1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "installing kubernetes-validate (pip)"
    python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
fi

SCHEMATHESIS_VERSION=4.32.5
if ! schemathesis --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION (pip)"
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if ! command -v tmux >/dev/null 2>&1; then
    echo "installing tmux (apt)"
    apt_install tmux
fi

if [ "${DSYNC_NO_NETNS:-}" != 1 ]; then
    if ! command -v ip >/dev/null 2>&1; then
        echo "installing iproute2 (apt)"
        apt_install iproute2
    fi
    if ! command -v nft >/dev/null 2>&1; then
        echo "installing nftables (apt)"
        apt_install nftables
    fi
fi

# The places tests/src/fixture.rs looks in.
faketime=""
for lib in /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib{64,}/faketime/libfaketimeMT.so.1 /usr/local/lib/faketime/libfaketimeMT.so.1; do
    [ -e "$lib" ] && faketime=$lib
done
if [ -z "$faketime" ]; then
    echo "installing libfaketime (apt)"
    apt_install faketime
fi

# Debian ships promtool in the prometheus package.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    echo "installing prometheus and promtool (apt)"
    apt_install prometheus
fi
