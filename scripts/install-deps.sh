#!/bin/sh
# Installs the Debian packages that mixgan builds against, when any is missing.
# Runs apt-get as root directly, otherwise through sudo.
set -eu

packages="gcc make libc6-dev libopenblas-dev libopenblas-openmp-dev libstb-dev libcjson-dev libjpeg62-turbo-dev"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "Installing missing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "error: not root and sudo is not available; install as root:" >&2
    echo "  apt-get install -y$missing" >&2
    exit 1
fi
$sudo apt-get update
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
