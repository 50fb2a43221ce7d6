#!/bin/bash
# Alternating A/B timing of `nst bench` builds on a drifting machine: each round runs every binary
# once (5 Adam iterations at SIZE with seeded random VGG-19 weights), then prints each binary's
# median over the rounds and its range.
#
#   bash benches/ab.sh ROUNDS SIZE path/to/nst-a path/to/nst-b ...
#   bash benches/ab.sh 4 400x300 /tmp/nst-before target/release/nst
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 ROUNDS SIZE NST_BINARY..." >&2
  exit 2
fi
rounds=$1 size=$2
shift 2
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    t=$("$bin" bench --random-weights --size "$size" --iterations 5 -q 2>&1 |
      grep -oE "median Adam iteration [0-9.]*" | awk '{print $4}')
    echo "$bin $t" >> "$results"
  done
done
for bin in "$@"; do
  grep -F "$bin " "$results" | awk '{print $2}' | sort -n |
    awk -v b="$bin" '{a[NR]=$1} END {printf "%s: median %s s over %d rounds (range %s-%s)\n", b, a[int((NR+1)/2)], NR, a[1], a[NR]}'
done
