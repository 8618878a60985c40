#!/bin/sh
# make bench: mixgan's training and FID figures next to PyTorch's, measured in one run on
# this machine. PyTorch runs only when Debian's python3-torch is installed (torchvision and
# scipy too for the FID part); otherwise its columns say "n/a".
#
# usage: bench/run.sh BUILD_DIR
# environment:
#   BENCH_THREADS     threads for both (default 2)
#   BENCH_ITERATIONS  timed training iterations per config, median reported (default 20)
#   BENCH_CONFIGS     configs to time (default "dcgan transgan hybrid")
#   TORCH_KEEP_FREED_MEMORY=1  let PyTorch's malloc keep freed memory (see bench/torch_common.py)
set -eu

build=${1:?usage: bench/run.sh BUILD_DIR}
threads=${BENCH_THREADS:-2}
iterations=${BENCH_ITERATIONS:-20}
configs=${BENCH_CONFIGS:-"dcgan transgan hybrid"}

has_torch=no
if /usr/bin/python3 -c "import torch" >/dev/null 2>&1; then has_torch=yes; fi
has_torch_fid=no
if /usr/bin/python3 -c "import torch, torchvision, scipy" >/dev/null 2>&1; then has_torch_fid=yes; fi

# Prints the value of `key` from the RESULT line in $1.
result() {
    printf '%s\n' "$1" | sed -n "s/^RESULT .*$2=\([^ ]*\).*/\1/p"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "n/a"; else printf "%.2f", a / b }'
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%Y-%m-%d)"
echo "threads: $threads; PyTorch: $has_torch"
echo

echo "== ops: GFLOP/s at the reference networks' shapes, batch 64"
"$build/bench-ops" "$threads"
echo

echo "== training: batch 64, median of $iterations iterations"
summary=""
for config in $configs; do
    ours=$("$build/bench-train" "configs/$config.json" "$iterations" "$threads")
    printf '%s\n' "$ours" | grep -v '^RESULT'
    ours_ms=$(result "$ours" ms)
    ours_rss=$(result "$ours" rss_gb)
    torch_ms=""
    torch_rss=""
    if [ "$has_torch" = yes ]; then
        theirs=$(bench/torch_gan.py "configs/$config.json" --iterations "$iterations" --threads "$threads" 2>/dev/null)
        printf '%s\n' "$theirs" | grep -v '^RESULT'
        torch_ms=$(result "$theirs" ms)
        torch_rss=$(result "$theirs" rss_gb)
    fi
    summary="$summary$(printf '%-10s %10s %10s %8s %10s %10s %8s' "$config" "$ours_ms" "${torch_ms:-n/a}" \
        "$(ratio "$torch_ms" "$ours_ms")" "$ours_rss" "${torch_rss:-n/a}" "$(ratio "$torch_rss" "$ours_rss")")
"
done
echo

echo "== FID: InceptionV3 at batch 50 on 32x32 images resized to 299, and the Frechet distance at 2048 dimensions"
ours_fid=$("$build/bench-fid" 6 "$threads")
printf '%s\n' "$ours_fid" | grep -v '^RESULT'
ours_frechet=$("$build/bench-frechet" "$threads" 3)
printf '%s\n' "$ours_frechet" | grep -v '^RESULT'
torch_rate=""
torch_frechet=""
if [ "$has_torch_fid" = yes ]; then
    theirs=$(bench/torch_fid.py --batch 50 --batches 6 --threads "$threads" 2>/dev/null)
    printf '%s\n' "$theirs" | grep -v '^RESULT'
    torch_rate=$(result "$theirs" inception_images_per_second)
    torch_frechet=$(result "$theirs" frechet_seconds)
fi
echo

echo "== summary ($threads threads)"
printf '%-10s %10s %10s %8s %10s %10s %8s\n' config "mixgan ms" "torch ms" speedup "mixgan GB" "torch GB" "ratio"
printf '%s' "$summary"
rate=$(result "$ours_fid" inception_images_per_second)
printf 'Inception images/s: mixgan %s, PyTorch %s (ratio %s)\n' "$rate" "${torch_rate:-n/a}" "$(ratio "$rate" "$torch_rate")"
frechet=$(result "$ours_frechet" frechet_seconds)
printf 'Frechet distance s: mixgan %s, PyTorch/SciPy %s (speedup %s)\n' "$frechet" "${torch_frechet:-n/a}" \
    "$(ratio "$torch_frechet" "$frechet")"
