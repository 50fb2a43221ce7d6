//! One VGG-19 pass to `conv5_1` (13 conv layers, random seeded He-uniform weights) at a given size:
//! per-layer forward and input-backward times and GFLOP/s, the whole network walk, and peak RSS.
//!
//! ```text
//! cargo run --release -p tensor-ops --example vgg_pass -- --width 400 --height 300 --pooling max --reps 5
//! ```
//!
//! It needs `tensor-ops`, `ndarray` 0.17 and `rand` 0.9 (for the seeded weights), so it also runs as
//! a program of your own with those three dependencies.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example prints its table"
)]

use std::time::Instant;

use ndarray::{Array1, Array3, Array4, ArrayView3};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tensor_ops::{
    AvgPool2d, Conv2d, ConvAlgorithm, Layer, MaxPool2d, Network, Padding, Relu, Saved, Shape,
};

/// `n` values drawn uniformly from `[lo, hi)` with a seeded RNG.
fn uniform_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// VGG-19's conv blocks up to `conv5_1`: (block, number of conv layers, output channels).
const BLOCKS: [(usize, usize, usize); 5] = [
    (1, 2, 64),
    (2, 2, 128),
    (3, 4, 256),
    (4, 4, 512),
    (5, 1, 512),
];
/// Gatys et al.'s style taps and the content tap.
const TAPS: [&str; 6] = [
    "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1",
];

struct Args {
    width: usize,
    height: usize,
    avg: bool,
    reps: usize,
    algorithm: Option<ConvAlgorithm>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        width: 400,
        height: 300,
        avg: false,
        reps: 5,
        algorithm: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--width" => args.width = number(value()?)?,
            "--height" => args.height = number(value()?)?,
            "--reps" => args.reps = number(value()?)?.max(1),
            "--pooling" => {
                args.avg = match value()?.as_str() {
                    "avg" => true,
                    "max" => false,
                    other => return Err(format!("--pooling avg|max, got {other}")),
                }
            }
            "--conv" => {
                args.algorithm = match value()?.as_str() {
                    "auto" => None,
                    "im2col" => Some(ConvAlgorithm::Im2col),
                    "winograd" => Some(ConvAlgorithm::Winograd),
                    "winograd4" => Some(ConvAlgorithm::Winograd4),
                    other => {
                        return Err(format!(
                            "--conv auto|im2col|winograd|winograd4, got {other}"
                        ));
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; use --width --height --pooling avg|max --reps N --conv auto|im2col|winograd|winograd4"
                ));
            }
        }
    }
    Ok(args)
}

fn build(avg: bool, convs: Vec<Conv2d>) -> Vec<Box<dyn Layer>> {
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    let mut convs = convs.into_iter();
    for (bi, &(block, n_conv, _)) in BLOCKS.iter().enumerate() {
        for i in 1..=n_conv {
            layers.push(Box::new(convs.next().expect("one conv per layer")));
            layers.push(Box::new(Relu::new(format!("relu{block}_{i}"))));
        }
        if bi + 1 < BLOCKS.len() {
            let name = format!("pool{block}");
            layers.push(if avg {
                Box::new(AvgPool2d::new(name, [2, 2], [2, 2], Padding::ZERO).expect("valid layer"))
            } else {
                Box::new(MaxPool2d::new(name, [2, 2], [2, 2], Padding::ZERO).expect("valid layer"))
            });
        }
    }
    layers
}

/// The 13 conv layers to `conv5_1`, He-uniform weights from fixed seeds.
fn build_convs(algorithm: Option<ConvAlgorithm>) -> Vec<Conv2d> {
    let mut c_in = 3;
    let mut convs = Vec::new();
    for &(block, n_conv, c_out) in &BLOCKS {
        for i in 1..=n_conv {
            let k = c_in * 9;
            let bound = (6.0 / k as f32).sqrt();
            let seed = (block * 10 + i) as u64;
            let w = Array4::from_shape_vec(
                (c_out, c_in, 3, 3),
                uniform_vec(seed, c_out * k, -bound, bound),
            )
            .expect("sized");
            let b = Array1::from(uniform_vec(seed + 1000, c_out, -0.1, 0.1));
            let conv = Conv2d::new(
                format!("conv{block}_{i}"),
                w,
                b,
                [1, 1],
                Padding::uniform(1),
            )
            .expect("valid layer");
            convs.push(match algorithm {
                None => conv,
                Some(a) => conv
                    .with_algorithm(a)
                    .expect("3×3 stride 1 pad 1 takes both algorithms"),
            });
            c_in = c_out;
        }
    }
    convs
}

/// `W'[c, o, i, j] = W[o, c, 2 − i, 2 − j]` with padding `2 − 1 = 1`: its forward pass (by im2col) is
/// the input gradient of `conv`.
fn flipped_transposed(conv: &Conv2d) -> Conv2d {
    let [c_out, c_in, kh, kw] = conv.weight_dims();
    let w = conv.weight_matrix();
    let wf = Array4::from_shape_fn((c_in, c_out, kh, kw), |(c, o, i, j)| {
        w[[o, (c * kh + kh - 1 - i) * kw + kw - 1 - j]]
    });
    Conv2d::new(
        "flipped",
        wf,
        Array1::zeros(c_in),
        [1, 1],
        Padding::uniform(kh - 1 - conv.padding().top),
    )
    .and_then(|c| c.with_algorithm(ConvAlgorithm::Im2col))
    .expect("valid layer")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<R>(reps: usize, mut f: impl FnMut() -> R) -> f64 {
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU time of this process, from `/proc/self/stat` (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vgg_pass: {e}");
            std::process::exit(2);
        }
    };
    let threads = rayon::current_num_threads();
    let image = Array3::from_shape_vec(
        (3, args.height, args.width),
        uniform_vec(7, 3 * args.height * args.width, -120.0, 135.0),
    )
    .expect("sized");
    let mut net = Network::new(build(args.avg, build_convs(args.algorithm)));
    let taps: Vec<usize> = TAPS
        .iter()
        .map(|t| net.index_of(t).expect("tap exists"))
        .collect();
    println!(
        "VGG-19 to conv5_1 at {}x{} ({} pooling, convolution: {}), {} rayon threads, {} reps (medians)",
        args.width,
        args.height,
        if args.avg { "avg" } else { "max" },
        args.algorithm
            .map_or("auto".to_owned(), |a| format!("{a:?}")),
        threads,
        args.reps
    );
    let rss_before = vm_hwm_mb();

    // The whole walk first, so that peak RSS reflects it and not the per-layer breakdown below.
    let mut outs = Vec::new();
    let mut grads: Vec<Array3<f32>> = Vec::new();
    net.forward_into(image.view(), &taps, &mut outs)
        .expect("forward");
    for (j, o) in outs.iter().enumerate() {
        grads.push(
            Array3::from_shape_vec(o.dim(), uniform_vec(100 + j as u64, o.len(), -1e-3, 1e-3))
                .expect("sized"),
        );
    }
    let grad_views: Vec<ArrayView3<'_, f32>> = grads.iter().map(|g| g.view()).collect();
    net.backward(&grad_views).expect("backward");
    let t_fwd = time(args.reps, || {
        net.forward_into(image.view(), &taps, &mut outs)
            .expect("forward")
    });
    let t_both = time(args.reps, || {
        net.forward_into(image.view(), &taps, &mut outs)
            .expect("forward");
        net.backward(&grad_views).expect("backward")
    });
    let hwm = vm_hwm_mb();
    let cpu0 = cpu_seconds();
    let t_both_again = time(args.reps, || {
        net.forward_into(image.view(), &taps, &mut outs)
            .expect("forward");
        net.backward(&grad_views).expect("backward")
    });
    let cpu_per_pass = (cpu_seconds() - cpu0) / args.reps as f64;
    drop(outs);
    let t_infer = time(args.reps, || {
        net.forward_inference(image.view(), &taps).expect("forward")
    });

    // Per layer: wall-clock medians, mean process CPU time per call (1/100 s ticks summed over the
    // repetitions), and the flipped-kernel alternative of the input gradient.
    println!(
        "{:<9} {:>15} {:>15} {:>6} {:>8} {:>7} {:>8} {:>8} {:>7} {:>8} {:>8}",
        "layer",
        "input",
        "output",
        "GFLOP",
        "fwd ms",
        "GFLOP/s",
        "fwd cpu",
        "bwd ms",
        "GFLOP/s",
        "bwd cpu",
        "flip ms"
    );
    let mut x = image.clone();
    let mut sums = [0.0_f64; 7]; // fwd, fwd cpu, bwd, bwd cpu, flip, other fwd, other bwd
    let mut flops = 0.0;
    let conv_layers = build_convs(args.algorithm);
    let convs: std::collections::HashMap<&str, &Conv2d> =
        conv_layers.iter().map(|c| (c.name(), c)).collect();
    for layer in net.layers() {
        let in_shape = Shape::of(&x);
        let out_shape = layer.output_shape(in_shape).expect("shapes chain");
        let mut y = Array3::zeros(out_shape.dim());
        let mut saved = Saved::default();
        let c0 = cpu_seconds();
        let tf = time(args.reps, || {
            layer
                .forward(x.view(), y.view_mut(), Some(&mut saved))
                .expect("forward")
        });
        let cf = (cpu_seconds() - c0) / args.reps as f64;
        let dy =
            Array3::from_shape_vec(out_shape.dim(), uniform_vec(3, out_shape.len(), -1.0, 1.0))
                .expect("sized");
        let mut dx = Array3::zeros(in_shape.dim());
        let c0 = cpu_seconds();
        let tb = time(args.reps, || {
            layer
                .backward_input(&saved, dy.view(), dx.view_mut())
                .expect("backward")
        });
        let cb = (cpu_seconds() - c0) / args.reps as f64;
        if let Some(conv) = convs.get(layer.name()) {
            let f = 2.0 * out_shape.len() as f64 * (in_shape.channels * 9) as f64;
            // The alternative input gradient: a forward im2col convolution of dY with the flipped, transposed kernel.
            let flipped = flipped_transposed(conv);
            let mut dx2 = Array3::zeros(in_shape.dim());
            let tflip = time(args.reps, || {
                flipped
                    .forward(dy.view(), dx2.view_mut(), None)
                    .expect("flipped forward")
            });
            flops += f;
            for (acc, v) in sums.iter_mut().zip([tf, cf, tb, cb, tflip]) {
                *acc += v;
            }
            println!(
                "{:<9} {:>15} {:>15} {:>6.2} {:>8.1} {:>7.1} {:>8.1} {:>8.1} {:>7.1} {:>8.1} {:>8.1}",
                layer.name(),
                in_shape.to_string(),
                out_shape.to_string(),
                f / 1e9,
                tf * 1e3,
                f / tf / 1e9,
                cf * 1e3,
                tb * 1e3,
                f / tb / 1e9,
                cb * 1e3,
                tflip * 1e3
            );
        } else {
            sums[5] += tf;
            sums[6] += tb;
            println!(
                "{:<9} {:>15} {:>15} {:>6} {:>8.1} {:>7} {:>8} {:>8.1}",
                layer.name(),
                in_shape.to_string(),
                out_shape.to_string(),
                "",
                tf * 1e3,
                "",
                "",
                tb * 1e3
            );
        }
        x = y;
    }
    println!(
        "{:<9} {:>15} {:>15} {:>6.2} {:>8.1} {:>7.1} {:>8.1} {:>8.1} {:>7.1} {:>8.1} {:>8.1}",
        "conv sum",
        "",
        "",
        flops / 1e9,
        sums[0] * 1e3,
        flops / sums[0] / 1e9,
        sums[1] * 1e3,
        sums[2] * 1e3,
        flops / sums[2] / 1e9,
        sums[3] * 1e3,
        sums[4] * 1e3
    );
    println!(
        "{:<9} {:>15} {:>15} {:>6} {:>8.1} {:>7} {:>8} {:>8.1}",
        "relu+pool",
        "",
        "",
        "",
        sums[5] * 1e3,
        "",
        "",
        sums[6] * 1e3
    );
    println!();
    println!(
        "network forward (6 taps, keeps masks/indices): {:8.1} ms  ({:.1} GFLOP/s)",
        t_fwd * 1e3,
        flops / t_fwd / 1e9
    );
    println!(
        "network forward_inference:                     {:8.1} ms",
        t_infer * 1e3
    );
    println!(
        "network forward + input-backward:              {:8.1} ms  ({:.1} GFLOP/s; again: {:.1} ms)",
        t_both * 1e3,
        2.0 * flops / t_both / 1e9,
        t_both_again * 1e3
    );
    println!(
        "  process CPU time per forward + backward:     {:8.1} ms  ({:.1} GFLOP per CPU-second; load-independent-ish)",
        cpu_per_pass * 1e3,
        2.0 * flops / cpu_per_pass / 1e9
    );
    println!(
        "peak RSS (VmHWM) after the network passes:     {hwm:8.1} MB (before building the input: {rss_before:.1} MB)"
    );
}
