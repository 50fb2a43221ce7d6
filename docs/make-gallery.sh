#!/usr/bin/env bash
# Remakes the pictures of docs/gallery.md: every artistic control of `nst stylize` on one content image.
#
# Usage: [ONLY="name …"] bash docs/make-gallery.sh WEIGHTS.mat [NST]
#   WEIGHTS.mat  a real pre-trained VGG (the gallery was made with a VGG-16 trunk)
#   NST          the nst binary [default: target/release/nst]
# Needs ImageMagick's `convert` for the input thumbnails. Writes docs/images/gallery/*.jpg and prints
# each run's wall time and final cost.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

weights=${1:?usage: bash docs/make-gallery.sh WEIGHTS.mat [NST]}
nst=${2:-target/release/nst}
out=docs/images/gallery
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

content=images/louvre_pyramid.jpg
wave=images/hokusai_great_wave.jpg
cafe=images/vangogh_night_cafe.jpg
m=images/masks

for f in "$content" "$wave" "$cafe"; do
    convert "$f" -resize 384x384 -quality 85 "$out/input-$(basename "${f%.*}").jpg"
done
for f in "$m/louvre_sky.png" "$m/louvre_pyramid.png" "$m/hokusai_wave.png"; do
    convert "$f" -resize 384x384 -quality 85 "$out/mask-$(basename "${f%.*}").jpg"
done

# name, then the flags of that run (beside the model, the content, the output and the threads)
run() {
    local name=$1
    shift
    # ONLY="a b": remake only those pictures.
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return; fi
    local start=$SECONDS
    "$nst" stylize --weights "$weights" --content "$content" --print-every 0 --threads 2 --out-dir "$work/$name" -o "$work/$name/result.jpg" "$@" \
        >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
    cp "$work/$name/result.jpg" "$out/$name.jpg"
    local total
    total=$(grep -o '"total":[^,}]*' "$work/$name/result.run.json" | tail -n 1 | cut -d: -f2)
    printf '%-18s %4ds  final total %s\n' "$name" $((SECONDS - start)) "$total"
}

# Every run but the presets: 384 px, 100 Adam iterations from the content image.
base=(--max-size 384 --init content --iterations 100)
run plain "${base[@]}" --style "$wave"
run luminance "${base[@]}" --style "$wave" --preserve-colors luminance
for method in chol pca sym; do
    run "match-$method" "${base[@]}" --style "$wave" --preserve-colors match --color-match "$method"
done
run original-yuv "${base[@]}" --style "$wave" --original-colors --color-space yuv
run original-lab "${base[@]}" --style "$wave" --original-colors --color-space lab
run sky-only "${base[@]}" --style "$wave" --style-mask "$m/louvre_sky.png"
run two-styles "${base[@]}" --style "$wave" --style "$cafe" --style-mask "$m/louvre_sky.png" --style-mask "$m/louvre_ground.png"
run wave-region "${base[@]}" --style "$wave" --style-image-mask "$m/hokusai_wave.png"
run keep-pyramid "${base[@]}" --style "$wave" --content-mask "$m/louvre_pyramid.png" --style-mask "$m/louvre_not_pyramid.png" --content-layers relu2_1,relu4_2 --alpha 100
run mean-cov "${base[@]}" --style "$wave" --style-loss mean-cov
run w2 "${base[@]}" --style "$wave" --style-loss w2
run normalized "${base[@]}" --style "$wave" --normalize-gradients
run preset-gatys --style "$wave" --preset gatys --max-size 384 --iterations 100
run preset-jcjohnson --style "$wave" --preset jcjohnson --max-size 384 --iterations 300
run preset-w2 --style "$wave" --preset w2 --max-size 384 --iterations 200 --scale-iterations 100
# The recipes' weights were set for ImageNet VGG-19; on another model a flag rebalances them.
run preset-jcjohnson-tv --style "$wave" --preset jcjohnson --max-size 384 --iterations 300 --tv-weight 1e-5
run preset-w2-alpha --style "$wave" --preset w2 --max-size 384 --iterations 200 --scale-iterations 100 --alpha 1
