//! The command-line layer: dispatches the subcommands and prints (stdout for results, stderr for
//! progress and messages).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nst_engine::{Control, ObjectiveSpec, OptimizerKind, Size, estimate};
use serde_json::json;
use tensor_ops::Backend;
use vgg_weights::{LayerKind, LoadOptions, PoolMethod};

use crate::args::default_weights;
use crate::cli::{
    BenchArgs, Cli, Command, DeviceKind, DownloadArgs, InspectArgs, ModelKind, VariantKind,
};
use crate::download::{self, Model, Outcome, Progress, Variant, WeightsSource};
pub use crate::stylize::Ended;

/// Runs the parsed command line. `threads` is the size of the rayon pool the binary set up; `control`
/// is cancelled by Ctrl-C / SIGTERM.
///
/// # Errors
/// Anything that went wrong, with context for the user.
pub fn run(cli: &Cli, threads: usize, control: &Control) -> Result<Ended> {
    match &cli.command {
        Command::Stylize(args) => crate::stylize::run(args, cli.quiet, threads, control),
        Command::Inspect(args) => inspect(args).map(|()| Ended::Completed),
        Command::DownloadWeights(args) => {
            download_weights(args, cli.quiet).map(|()| Ended::Completed)
        }
        Command::Bench(args) => bench(args, cli.quiet).map(|()| Ended::Completed),
        Command::Batch(args) => crate::batch::run(args, cli.quiet, threads, control),
        Command::Serve(args) => crate::serve::run(args, cli.quiet, threads, control),
    }
}

/// An indicatif bar for downloads (hidden when quiet or when stderr is not a terminal).
pub(crate) struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    pub(crate) fn new(quiet: bool) -> BarProgress {
        use std::io::IsTerminal as _;
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("a valid template"),
        );
        BarProgress { bar }
    }
}

impl Progress for BarProgress {
    fn start(&mut self, done: u64, total: Option<u64>) {
        if let Some(t) = total {
            self.bar.set_length(t);
        }
        self.bar.set_position(done);
    }
    fn advance(&mut self, done: u64) {
        self.bar.set_position(done);
    }
    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn download_weights(args: &DownloadArgs, quiet: bool) -> Result<()> {
    let model = match args.model {
        ModelKind::Vgg19 => Model::Vgg19,
        ModelKind::Vgg16 => Model::Vgg16,
    };
    let variant = match args.variant {
        VariantKind::Beta16 => Variant::Beta16,
        VariantKind::Current => Variant::Current,
    };
    let mut source = WeightsSource::published(model, variant).ok_or_else(|| {
        anyhow!("--model vgg16 --variant beta16: no such published file (use --variant current)")
    })?;
    if let Some(url) = &args.url {
        source.url = url.clone();
    }
    let dest = args.dir.join(source.file_name);
    if !quiet && !args.offline && !dest.exists() {
        eprintln!("downloading {} to {}", source.url, dest.display());
    }
    let mut progress = BarProgress::new(quiet);
    let outcome = download::fetch(&source, &dest, args.offline, &mut progress)?;
    let (sums, what) = match &outcome {
        Outcome::AlreadyPresent(s) => (s, "already present"),
        Outcome::Downloaded { checksums, .. } => (checksums, "downloaded"),
    };
    let verified = match (&outcome, source.md5) {
        (_, Some(_)) => "MD5 verified against the published checksum",
        (_, None) => "not verified: no published checksum is known for this file",
    };
    println!("{}: {what}, {} bytes", dest.display(), sums.bytes);
    println!("  MD5     {}  ({verified})", sums.md5);
    println!("  SHA-256 {}", sums.sha256);
    Ok(())
}

fn inspect(args: &InspectArgs) -> Result<()> {
    let model = vgg_weights::load(&args.file, &LoadOptions::default())
        .with_context(|| format!("reading {}", args.file.display()))?;
    let layout = format!("{:?}", model.layout).to_lowercase();
    let rows: Vec<serde_json::Value> = model
        .layers
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Conv(c) => {
                let d = c.weights.dim();
                json!({"name": l.name, "type": "conv", "weights": [d.0, d.1, d.2, d.3], "bias": c.bias.len(),
                       "stride": c.stride, "pad": [c.pad.top, c.pad.bottom, c.pad.left, c.pad.right]})
            }
            LayerKind::Relu => json!({"name": l.name, "type": "relu"}),
            LayerKind::Pool(p) => json!({"name": l.name, "type": "pool",
                "method": if p.method == PoolMethod::Max { "max" } else { "avg" },
                "size": p.size, "stride": p.stride, "pad": [p.pad.top, p.pad.bottom, p.pad.left, p.pad.right]}),
            LayerKind::Other { type_name } => json!({"name": l.name, "type": type_name}),
            #[allow(unreachable_patterns, reason = "LayerKind is non-exhaustive")]
            _ => json!({"name": l.name, "type": "unknown"}),
        })
        .collect();
    let params: usize = model
        .layers
        .iter()
        .map(|l| match &l.kind {
            LayerKind::Conv(c) => c.weights.len() + c.bias.len(),
            _ => 0,
        })
        .sum();
    if args.json {
        let v = json!({"file": args.file, "layout": layout, "mean_rgb": model.mean_rgb, "parameters": params, "layers": rows});
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
        return Ok(());
    }
    println!("{}", args.file.display());
    println!("  layout     {layout}");
    match model.mean_rgb {
        Some([r, g, b]) => println!("  mean pixel R {r:.3}  G {g:.3}  B {b:.3}"),
        None => println!("  mean pixel none"),
    }
    println!("  layers     {} ({params} parameters)", model.layers.len());
    println!(
        "  {:<10} {:<8} {:<22} {:<8} {:<14} pool",
        "name", "type", "weights [out,in,h,w]", "stride", "pad [t,b,l,r]"
    );
    for (l, r) in model.layers.iter().zip(&rows) {
        let s = |k: &str| {
            r.get(k)
                .map(|v| v.to_string().replace(' ', ""))
                .unwrap_or_default()
        };
        let pool = match &l.kind {
            LayerKind::Pool(p) => format!(
                "{} {}x{}",
                if p.method == PoolMethod::Max {
                    "max"
                } else {
                    "avg"
                },
                p.size[0],
                p.size[1]
            ),
            _ => String::new(),
        };
        println!(
            "  {:<10} {:<8} {:<22} {:<8} {:<14} {pool}",
            l.name,
            r["type"].as_str().unwrap_or("?"),
            s("weights"),
            s("stride"),
            s("pad")
        );
    }
    Ok(())
}

/// Times Adam iterations of the seed's objective at a size, on random images.
fn bench(args: &BenchArgs, quiet: bool) -> Result<()> {
    let size: Size = args
        .size
        .parse()
        .map_err(|e: String| anyhow!("--size: {e}"))?;
    nst_engine::spec::check_working_size(size).map_err(|e| anyhow!("--size {e}"))?;
    if args.iterations == 0 {
        bail!("--iterations must be at least 1 (the median of no iterations is no figure)");
    }
    let weights = args.weights.clone().unwrap_or_else(default_weights);
    if !args.random_weights && !Path::new(&weights).is_file() {
        bail!(
            "the weights file {} does not exist (--weights / NST_WEIGHTS; or time random weights with --random-weights)",
            weights.display()
        );
    }
    let backend = match args.device {
        DeviceKind::Cpu => Backend::Cpu,
        DeviceKind::Cuda => Backend::cuda().map_err(|e| anyhow!("--device cuda: {e}"))?,
        DeviceKind::Auto => Backend::cuda().unwrap_or(Backend::Cpu),
    };
    if !quiet {
        eprintln!("device: {}", backend.describe());
    }
    let t0 = Instant::now();
    let spec = ObjectiveSpec::course();
    let last = nst_engine::network::last_vgg_layer(spec.layer_names());
    let model = if args.random_weights {
        nst_engine::network::random_vgg19(last.as_deref().unwrap_or("relu5_1"), 1)
    } else {
        vgg_weights::load(&weights, &LoadOptions { last_layer: last })
            .with_context(|| format!("loading {}", weights.display()))?
    };
    let load_s = t0.elapsed().as_secs_f64();
    let (h, w) = (size.height as usize, size.width as usize);
    // A size that cannot fit would end in an allocation failure (an abort), not a message.
    let taps: Vec<&str> = spec.layer_names().collect();
    // The bench's style image has the working size.
    let est = estimate::estimate(&model, (h, w), (h, w), OptimizerKind::Adam, &taps);
    if let Some(avail) = estimate::available_memory()
        && est.peak_bytes > avail
    {
        bail!(
            "--size {size} needs about {} but only {} is available",
            estimate::human_bytes(est.peak_bytes),
            estimate::human_bytes(avail)
        );
    }
    let report =
        nst_engine::bench::time_adam(&model, backend, size, args.iterations, |i, secs, cost| {
            if !quiet {
                eprintln!(
                    "iteration {i}: {secs:.3} s, cost {cost:.9e}{}",
                    if i == 0 { " (warm-up)" } else { "" }
                );
            }
        })?;
    println!(
        "{size}: weights loaded in {load_s:.2} s, start-up (weights + targets) {:.2} s, median Adam iteration {:.3} s over {} iterations ({} backend, {} threads)",
        load_s + report.startup_seconds,
        report.median(),
        report.seconds.len(),
        report.device,
        rayon::current_num_threads()
    );
    Ok(())
}
