//! Estimates of a run's peak memory and time per iteration, before it starts.
//!
//! Memory is the larger of two moments. During the iterations: the weights, the network's working
//! buffer (the largest activation; a quarter more for what this count misses, calibrated on the peaks
//! in `docs/performance.md`: the content target, the costs' and the threads' buffers), the tapped
//! outputs once (each tap's gradient is written over its output, `Network::backward_in_place`), what
//! the backward pass keeps per layer (a bit per ReLU output, a byte per max-pool output), the
//! per-thread im2col tiles of `tensor-ops` (at most 4 MiB each, or one whole layer when that is
//! smaller), Winograd F(4×4)'s transformed weights of the largest 3×3 layer and its block buffers,
//! the optimizer's vectors (Adam: `x`, the gradient, two moments, and our copies; L-BFGS: 10
//! pairs of vectors), and a fixed 64 MB for the program itself (its code, thread stacks and buffers,
//! the weights file while it is read). During the style images' walk for their targets: two buffers
//! of the largest activation at the size of the band the walk runs on (the walk keeps no tapped
//! output), the style image, the weights and the same vectors. Measured against the peak RSS of real
//! runs from 400 to 3200 px it is within 6 % from 1 MP up (`docs/performance.md`). FLOPs: the
//! convolutions', forward and input-gradient (about twice the
//! forward). Time is not estimated before a run: the run measures its first iterations.

use vgg_weights::{LayerKind, VggModel};

use crate::spec::OptimizerKind;

/// A run's estimated cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Peak resident memory, bytes.
    pub peak_bytes: u64,
    /// FLOPs of one iteration (forward and backward through the convolutions).
    pub flops: f64,
}

/// Estimates the run at `height × width` through `model` (already cut at the last needed layer), with
/// costs at the layers named in `taps`, and `style`, the `(height, width)` of the largest style image
/// at its working size (`(0, 0)`: none).
pub fn estimate(
    model: &VggModel,
    (height, width): (usize, usize),
    style: (usize, usize),
    optimizer: OptimizerKind,
    taps: &[&str],
) -> Estimate {
    let (mut c, mut h, mut w) = (3_usize, height, width);
    let mut weights = 0_u64;
    let mut max_act = (c * h * w) as u64;
    let mut kept = 0_u64;
    let mut tapped = 0_u64;
    let mut im2col = 0_u64;
    let mut largest_3x3 = 0_u64;
    let mut flops = 0.0_f64;
    // Rows a band of the style image's walk computes again above and below, and the layers' stride.
    let (mut halo, mut scale) = (0_usize, 1_usize);
    for layer in &model.layers {
        match &layer.kind {
            LayerKind::Conv(conv) => {
                let [c_out, c_in, kh, kw] = {
                    let d = conv.weights.dim();
                    [d.0, d.1, d.2, d.3]
                };
                weights += (conv.weights.len() + conv.bias.len()) as u64 * 4;
                if (kh, kw) == (3, 3) {
                    largest_3x3 = largest_3x3.max(conv.weights.len() as u64 * 4);
                }
                let ho = (h + conv.pad.top + conv.pad.bottom).saturating_sub(kh)
                    / conv.stride[0].max(1)
                    + 1;
                let wo = (w + conv.pad.left + conv.pad.right).saturating_sub(kw)
                    / conv.stride[1].max(1)
                    + 1;
                im2col = im2col.max((c_in * kh * kw * ho * wo) as u64 * 4);
                halo += (kh - 1) * scale;
                scale *= conv.stride[0].max(1);
                flops += 2.0 * (c_out * ho * wo) as f64 * (c_in * kh * kw) as f64;
                c = c_out;
                h = ho;
                w = wo;
            }
            LayerKind::Relu => kept += (c * h * w) as u64 / 8 + 8,
            LayerKind::Pool(p) => {
                halo += (p.size[0] - 1) * scale;
                scale *= p.stride[0].max(1);
                h = (h + p.pad.top + p.pad.bottom).saturating_sub(p.size[0]) / p.stride[0].max(1)
                    + 1;
                w = (w + p.pad.left + p.pad.right).saturating_sub(p.size[1]) / p.stride[1].max(1)
                    + 1;
                if p.method == vgg_weights::PoolMethod::Max {
                    kept += (c * h * w) as u64;
                }
            }
            _ => {}
        }
        let act = (c * h * w) as u64;
        max_act = max_act.max(act);
        if taps.contains(&layer.name.as_str()) {
            tapped += act * 4;
        }
    }
    let image = (3 * height * width) as u64 * 4;
    let optimizer_bytes = match optimizer {
        OptimizerKind::Adam => 7 * image,
        OptimizerKind::Lbfgs => 26 * image,
    };
    let tiles = ((4 << 20) * 2 * rayon::current_num_threads() as u64).min(im2col);
    // Winograd F(4×4)'s transformed weights are 36/9 of the largest 3×3 layer's, and its phased
    // blocks take two buffers of up to 16 MiB (together about 4.5 activations: 36 values per 16
    // outputs, in and out); F(2×2)'s 16/9 and 4 MiB ones were in the fixed part's calibration.
    let winograd = if largest_3x3 > 0 {
        largest_3x3 * 20 / 9 + (max_act * 4 * 9 / 2).min(24 * 1024 * 1024)
    } else {
        0
    };
    let fixed = weights + tiles + winograd + optimizer_bytes + 64 * 1024 * 1024;
    // One working buffer, plus a quarter of it for what is not counted here (see the module docs).
    let iterations = fixed + 4 * (max_act + max_act / 4) + kept + tapped;
    // The style walk runs in bands of the generated image's pixels (at least 256 rows) plus the
    // halo when the style image is larger (nst-engine's `objective`); the largest activation grows
    // with the pixels (VGG's is conv1's output).
    let (style_h, style_w) = style;
    let walk_rows = if style_h * style_w > height * width {
        ((height * width / style_w.max(1)).max(256) + halo).min(style_h)
    } else {
        style_h
    };
    let style_pixels = style_h * style_w;
    let walk_pixels = walk_rows * style_w;
    let style_act = (max_act as f64 * walk_pixels as f64 / (height * width).max(1) as f64) as u64;
    // The style image as decoded and as a tensor, 12 bytes per pixel each.
    let style_walk = fixed + 4 * 2 * style_act + 24 * style_pixels as u64;
    let peak = iterations.max(style_walk);
    Estimate {
        peak_bytes: peak,
        flops: 2.0 * flops,
    }
}

/// Memory the run may use: `NST_MEMORY_LIMIT_MB` if set (a cap for shared machines), else what the
/// system can give now (`MemAvailable` of `/proc/meminfo`), if known.
pub fn available_memory() -> Option<u64> {
    if let Some(mb) = std::env::var("NST_MEMORY_LIMIT_MB")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(mb * 1024 * 1024);
    }
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Asks the allocator for `bytes` at once and gives them back, untouched (so they never become
/// resident): fails where a run of that size would die on a refused allocation (an abort, not an error).
/// With overcommit a success does not promise the memory, only that it is not refused outright.
///
/// # Errors
/// The allocator's refusal, as text.
pub fn reserve_check(bytes: u64) -> Result<(), String> {
    let bytes =
        usize::try_from(bytes).map_err(|_| format!("{bytes} bytes exceed the address space"))?;
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(bytes).map_err(|e| e.to_string())
}

/// The largest working size with the same aspect as `height × width` whose estimate fits in `budget`.
pub fn largest_fitting(
    model: &VggModel,
    (height, width): (usize, usize),
    style: (usize, usize),
    optimizer: OptimizerKind,
    taps: &[&str],
    budget: u64,
) -> Option<(usize, usize)> {
    let mut scale = 1.0_f64;
    while scale > 0.01 {
        scale *= 0.95;
        let (h, w) = (
            ((height as f64) * scale).round() as usize,
            ((width as f64) * scale).round() as usize,
        );
        if h < 16 || w < 16 {
            return None;
        }
        let style = (
            ((style.0 as f64) * scale).round() as usize,
            ((style.1 as f64) * scale).round() as usize,
        );
        if estimate(model, (h, w), style, optimizer, taps).peak_bytes <= budget {
            return Some((h, w));
        }
    }
    None
}

/// `1.5 GB`, `310 MB`.
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else {
        format!("{:.0} MB", b / 1e6)
    }
}

#[cfg(test)]
mod tests;
