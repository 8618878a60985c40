#!/bin/sh
# Rebuilds the bundled sample dataset data/dogs32.bin and its preview data/dogs32-preview.png
# from a folder of dog crops laid out as <synset>-<breed>/<id>.jpg, one folder per breed: the
# first 20 images of each breed folder, in byte-wise sorted order of their names, centre-cropped
# and resized to 32x32 by 'mixgan prepare --images'. The output is byte-identical from run to
# run and for any thread count; data/README.md gives its SHA-256.
#
# usage: scripts/make-sample-data.sh SOURCE_DIR
# Set MIXGAN to use another binary than ./mixgan (built with 'make' when missing).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 SOURCE_DIR" >&2
    exit 2
fi
source_dir=${1%/}
per_breed=20
cd "$(dirname "$0")/.."

mixgan=${MIXGAN:-./mixgan}
if [ ! -x "$mixgan" ]; then
    make mixgan
fi

list=$(mktemp)
trap 'rm -f "$list"' EXIT INT TERM

# The same selection and order as prepare's own listing: names compared byte by byte, hidden
# files skipped, .jpg, .jpeg and .png in any letter case.
export LC_ALL=C
for breed_dir in "$source_dir"/*/; do
    breed=$(basename "$breed_dir")
    find "$breed_dir" -maxdepth 1 -type f ! -name '.*' \
        \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) -printf '%f\n' |
        sort | head -n "$per_breed" | sed "s|^|$breed/|"
done >"$list"

if [ ! -s "$list" ]; then
    echo "error: no breed folders with images under $source_dir" >&2
    exit 1
fi

"$mixgan" prepare --images "$source_dir" --list "$list" --size 32 \
    --out data/dogs32.bin --preview data/dogs32-preview.png
sha256sum data/dogs32.bin
