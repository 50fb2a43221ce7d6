#!/usr/bin/env bash
# The size table of docs/performance.md: seconds per Adam iteration, start-up and peak RSS of
# `nst bench --random-weights` (VGG-19's layer shapes to conv5_1, synthetic content, style and start
# images of the working size) from 400 px to 4K, one process per size.
#
#   cargo build --release -p nst-cli
#   bash benches/size-table.sh                        # every size, 2 timed iterations each
#   SIZES="400x300 1024x768" ITERATIONS=5 bash benches/size-table.sh
#
# Prints a Markdown table. Needs GNU time (/usr/bin/time) for the peak RSS; 3840x2160 needs about
# 9 GB of memory and a few minutes on 2 cores.
set -euo pipefail

nst=${NST:-target/release/nst}
sizes=${SIZES:-"400x300 1024x768 1600x1200 2400x1350 3200x1800 3840x2160"}
iterations=${ITERATIONS:-2}
threads=${THREADS:-2}

[[ -x $nst ]] || { echo "size-table: $nst not found (cargo build --release -p nst-cli)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "size-table: /usr/bin/time (GNU time) is needed for the peak RSS" >&2; exit 2; }

echo "| size | MP | s/iteration (median of $iterations) | start-up s | start-up / iteration | peak RSS | peak per MP | load |"
echo "|---|---|---|---|---|---|---|---|"
for size in $sizes; do
    w=${size%x*}
    h=${size#*x}
    log=$(mktemp)
    /usr/bin/time -f "peak_kb %M" "$nst" bench --random-weights --size "$size" \
        --iterations "$iterations" --threads "$threads" >"$log" 2>&1 || {
        cat "$log" >&2
        echo "size-table: nst bench failed at $size" >&2
        exit 1
    }
    summary=$(grep -E "median Adam iteration" "$log")
    median=$(sed -E 's/.*median Adam iteration ([0-9.]+) s.*/\1/' <<<"$summary")
    startup=$(sed -E 's/.*start-up \(weights \+ targets\) ([0-9.]+) s.*/\1/' <<<"$summary")
    peak_kb=$(awk '/^peak_kb/ {print $2}' "$log")
    load=$(cut -d' ' -f1 /proc/loadavg)
    rm -f "$log"
    awk -v w="$w" -v h="$h" -v m="$median" -v s="$startup" -v k="$peak_kb" -v l="$load" 'BEGIN {
        mp = w * h / 1e6
        gb = k * 1024 / 1e9
        printf "| %dx%d | %.2f | %.2f | %.2f | %.2f | %.2f GB | %.2f GB | %s |\n", w, h, mp, m, s, s / m, gb, gb / mp, l
    }'
done
