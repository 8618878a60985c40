#!/bin/sh
# Copies the real Stanford Dogs image and annotation that the prepare tests crop into
# tests/data/stanford-dogs/, keeping the dataset's own layout, then regenerates the expected
# crops in tests/data/prepare_expected.h from them.
#
# usage: scripts/make-test-fixtures.sh STANFORD_DOGS_ROOT
#   STANFORD_DOGS_ROOT contains Images/ and Annotation/ as the dataset is distributed.
# The expected values need Python 3 with Pillow and NumPy (Debian: python3-pil python3-numpy);
# set PYTHON to the interpreter that has them when it is not the first python3 on PATH.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 STANFORD_DOGS_ROOT" >&2
    exit 2
fi
root=$1
cd "$(dirname "$0")/.."

# Two Maltese dogs side by side in a 350x262 picture of 18 KB: a small real file with more
# than one <object>.
breed=n02085936-Maltese_dog
id=n02085936_2760
dest=tests/data/stanford-dogs
mkdir -p "$dest/Images/$breed" "$dest/Annotation/$breed"
cp "$root/Images/$breed/$id.jpg" "$dest/Images/$breed/$id.jpg"
cp "$root/Annotation/$breed/$id" "$dest/Annotation/$breed/$id"
chmod 644 "$dest/Images/$breed/$id.jpg" "$dest/Annotation/$breed/$id"

"${PYTHON:-python3}" tests/make_prepare_expected.py "$dest/Images/$breed/$id.jpg" \
    "$dest/Annotation/$breed/$id" >tests/data/prepare_expected.h
