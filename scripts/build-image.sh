#!/usr/bin/env bash
# Builds the dsync container image offline: a statically linked dsync in a
# FROM scratch image (no registry is needed or used).
#
#   scripts/build-image.sh [--tag TAG] [--profile release|dev] [--binary PATH]
#
# --profile dev builds faster (the test suite uses it); --binary reuses an
# already built static binary instead of compiling one.
# The image is tagged dsync:<version> (and dsync:latest unless --tag is given);
# --tag takes a tag (rc1) or a whole reference (dsync:rc1).
set -euo pipefail

cd "$(dirname "$0")/.."
tag=""
binary=""
profile="release"
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) tag="$2"; shift 2 ;;
        --binary) binary="$2"; shift 2 ;;
        --profile) profile="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

command -v docker >/dev/null || { echo "docker is not installed" >&2; exit 1; }

if [ -z "$binary" ]; then
    echo "==> building a static dsync ($profile)"
    # glibc linked statically: the image has no libc to load.
    RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=target/static \
        cargo build --profile "$profile" --locked -p dsync --target x86_64-unknown-linux-gnu
    dir="$profile"; [ "$profile" = dev ] && dir=debug
    binary="target/static/x86_64-unknown-linux-gnu/$dir/dsync"
fi
if ldd "$binary" 2>/dev/null | grep -q "=>"; then
    echo "$binary is dynamically linked; the scratch image needs a static binary" >&2
    exit 1
fi

version="$("$binary" --version | awk '{print $2}')"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$binary" "$ctx/dsync"
mkdir "$ctx/data"

# --tag takes a tag (rc1) or a whole reference (dsync:rc1).
ref="dsync:${tag:-$version}"
case "$tag" in *:*) ref="$tag" ;; esac
tags=(-t "$ref")
[ -z "$tag" ] && tags+=(-t dsync:latest)
echo "==> docker build ${tags[*]}"
docker build -q -f compose/Dockerfile "${tags[@]}" "$ctx"
echo "built $ref"
