#!/bin/sh
# Makes tests/data/inception/pt_inception-2015-12-05-6726825d.truncated.pth, the first 818,371
# bytes of the Inception weights that pytorch-fid downloads. The five pickles of that legacy
# format file (its first 81,511 bytes) describe all 566 records, and the data of the first
# storages follows, so the tests can check every record and the truncated-data error.
#
# Usage, from the repository root:
#   scripts/make-truncated-inception.sh [FULL_WEIGHTS_FILE]
# Without an argument the full file (95,628,359 bytes) is downloaded from pytorch-fid's
# release page; with one, that local copy is used.
set -eu

url=https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
out=tests/data/inception/pt_inception-2015-12-05-6726825d.truncated.pth

if [ $# -ge 1 ]; then
    full=$1
else
    full=$(mktemp)
    trap 'rm -f "$full"' EXIT
    curl --fail --location --output "$full" "$url"
fi

# The suffix of the file name is the start of its SHA-256.
if ! sha256sum "$full" | grep -q '^6726825d'; then
    echo "error: $full is not pt_inception-2015-12-05-6726825d.pth: its SHA-256 does not start with 6726825d" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
head -c 818371 "$full" >"$out"
echo "f6f585476eb37da06b4f6adebf74f1c9a1e17c4de1e7dfd2a764005dd3c59922  $out" | sha256sum --check -
