//! `nst stylize`: the run loop around the pipeline, with everything a user watches and keeps: progress,
//! intermediate images, metrics, plot, animation, checkpoints, Ctrl-C, divergence, the run record.
//!
//! This is the command-line layer (it prints to stderr, returns `anyhow` errors with context).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ndarray::{Array3, ArrayView3};
use nst_optim::{Adam, AdamConfig, Lbfgs, LbfgsConfig, OptimError, Optimizer, StepReport};
use rand::{Rng as _, SeedableRng as _};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::json;
use tensor_ops::Backend;
use vgg_weights::{LoadOptions, PoolMethod};

use crate::checkpoint::{self, Checkpoint, OptimizerState};
use crate::cli::{DeviceKind, InitKind, OptimizerKind, PoolingKind, StylizeArgs};
use crate::download::{self, WeightsSource};
use crate::estimate;
use crate::image_io::{self, Picture, Size};
use crate::metrics::{Animation, MetricsWriter, Record, plot_format_ok};
use crate::pipeline::{self, Breakdown, StyleImage, StyleObjective};
use crate::settings::{Settings, default_weights, find_image};

/// How a run ended (errors aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// All iterations done (or L-BFGS converged).
    Completed,
    /// Ctrl-C or SIGTERM: image and checkpoint written.
    Interrupted,
}

/// The ImageNet mean pixel, used when a model file has none.
pub const IMAGENET_MEAN: [f32; 3] = [123.68, 116.779, 103.939];

/// Messages to the user on stderr: plain lines, or above the progress bar.
struct Say {
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl Say {
    fn line(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

/// The optimizer, either kind; Adam on a device keeps the iterate and its moments there.
pub(crate) enum Opt {
    Adam(Adam),
    /// Adam whose iterate, moments and last good image live on the objective's device: per step only
    /// the cost terms cross to the host; `x` and the moments held here are brought up to date by
    /// [`Opt::sync_host`] (for logging, checkpoints and the end). `loaded` tells whether the device
    /// holds the iterate yet.
    DeviceAdam {
        adam: Adam,
        loaded: bool,
    },
    Lbfgs(Box<Lbfgs>),
}

impl Opt {
    /// Adam on the objective's device when it has one, else on the host.
    pub(crate) fn adam(adam: Adam, obj: &StyleObjective) -> Opt {
        if obj.is_on_device() {
            Opt::DeviceAdam {
                adam,
                loaded: false,
            }
        } else {
            Opt::Adam(adam)
        }
    }

    pub(crate) fn step(
        &mut self,
        x: &mut [f32],
        obj: &mut StyleObjective,
    ) -> Result<StepReport, OptimError<pipeline::Error>> {
        match self {
            Opt::Adam(o) => o.step(x, obj),
            Opt::DeviceAdam { adam, loaded } => {
                if !*loaded {
                    let (m, v) = adam.moments_mut(x.len())?;
                    obj.device_adam_load(x, m, v)
                        .map_err(OptimError::Objective)?;
                    *loaded = true;
                }
                adam.step_external(x.len(), |s| {
                    let b = obj.device_adam_step(s)?;
                    Ok((b.total, obj.last_non_finite_grad()))
                })
            }
            Opt::Lbfgs(o) => o.step(x, obj),
        }
    }

    /// Brings `x` and the Adam moments up to date from the device (a no-op on the host).
    fn sync_host(&mut self, x: &mut [f32], obj: &mut StyleObjective) -> Result<()> {
        if let Opt::DeviceAdam { adam, loaded: true } = self {
            obj.device_image(pipeline::ResidentImage::Current, x)?;
            let (m, v) = adam
                .moments_mut::<pipeline::Error>(x.len())
                .map_err(|e| anyhow!("{e}"))?;
            obj.device_moments(m, v)?;
        }
        Ok(())
    }

    fn state(&self) -> OptimizerState {
        match self {
            Opt::Adam(o) | Opt::DeviceAdam { adam: o, .. } => OptimizerState::Adam(o.state()),
            Opt::Lbfgs(o) => OptimizerState::Lbfgs(o.state()),
        }
    }
}

/// Runs `nst stylize`.
///
/// # Errors
/// Every failure, with a message that names the file or flag.
pub fn run(args: &StylizeArgs, quiet: bool, threads: usize, stop: &AtomicBool) -> Result<Ended> {
    run_placed(args, quiet, threads, stop, &Ok)
}

/// Where the objective runs, once built (the identity for the CLI, whose `--device cuda` is placed by
/// `StyleObjective::new`; the tests put it on the `device-emu` emulator).
type Place<'a> = &'a dyn Fn(StyleObjective) -> pipeline::Result<StyleObjective>;

/// [`run`], with the objective moved by `place` once built.
fn run_placed(
    args: &StylizeArgs,
    quiet: bool,
    threads: usize,
    stop: &AtomicBool,
    place: Place<'_>,
) -> Result<Ended> {
    let started = Instant::now();
    let offline = args.offline.unwrap_or(false);
    let mut say = Say { quiet, bar: None };

    // 1. Settings: from the flags, or from a checkpoint with the few flags a resumed run may change.
    let resumed = match &args.resume {
        Some(p) => Some(Checkpoint::load(p)?),
        None => None,
    };
    let mut settings = match &resumed {
        Some((c, path)) => c
            .settings
            .clone()
            .resumed(args)
            .map_err(|e| anyhow!("--resume {}: {e}", path.display()))?,
        None => Settings::from_args(args).map_err(|e| anyhow!(e))?,
    };
    if resumed.is_none() {
        settings.content = find_image(&settings.content);
        settings.styles = settings.styles.iter().map(|s| find_image(s)).collect();
        settings.init_image = settings.init_image.as_deref().map(find_image);
    }

    // 2. Everything that can fail cheaply fails now, before any long work.
    image_io::output_format(&settings.output)?;
    check_parent_writable(&settings.output)?;
    image_io::check_writable_dir(&settings.out_dir).with_context(|| {
        format!(
            "the output folder {} (--out-dir)",
            settings.out_dir.display()
        )
    })?;
    if let Some(p) = &settings.metrics {
        check_parent_writable(p).context("--metrics")?;
    }
    if let Some(p) = &settings.animate {
        if !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")) {
            bail!(
                "--animate {}: the animation is a GIF: name it *.gif",
                p.display()
            );
        }
        check_parent_writable(p).context("--animate")?;
    }
    if let Some(p) = &settings.plot {
        if !plot_format_ok(p) {
            bail!(
                "--plot {}: the plot is PNG or SVG: name it *.png or *.svg",
                p.display()
            );
        }
        check_parent_writable(p).context("--plot")?;
    }
    let backend = choose_backend(settings.device, &say)?;
    let device = backend.name();

    // 3. Images.
    let content = image_io::load(&settings.content).context("--content")?;
    let (content_w, content_h) = (content.width(), content.height());
    let (size, note) = image_io::working_size(content_w, content_h, settings.size_rule())
        .map_err(|e| anyhow!(e))?;
    // Only working-size copies are kept: a phone photo is hundreds of MB as f32 at full size.
    let content = content.resized(size.width, size.height);
    let long = size.width.max(size.height);
    let styles = settings
        .styles
        .iter()
        .map(|p| {
            let s = image_io::load(p).context("--style")?;
            let ss = image_io::scale_long_side(s.width(), s.height(), long);
            Ok(s.resized(ss.width, ss.height))
        })
        .collect::<Result<Vec<_>>>()?;
    let init_picture = match (&settings.init_image, settings.init) {
        (Some(p), _) => Some(image_io::load(p).context("--init-image")?),
        // Decoded again rather than taken from `styles`, which holds a copy already scaled for the
        // Gram targets: one resize from the original, as `--init-image` does.
        (None, InitKind::Style) => Some(image_io::load(&settings.styles[0]).context("--style")?),
        _ => None,
    };

    // 4. Weights: the default file is downloaded on first use (unless offline), after the images are
    // read, so that a typo in a path costs no download.
    ensure_weights(&settings.weights, offline, quiet)?;

    // 5. The model, only up to the deepest layer the costs use.
    let last = pipeline::last_vgg_layer(settings.objective.layer_names());
    let opts = LoadOptions {
        last_layer: last.clone(),
    };
    let model = vgg_weights::load(&settings.weights, &opts).with_context(|| {
        format!(
            "loading the VGG weights {} (--weights)",
            settings.weights.display()
        )
    })?;
    let mean = match model.mean_rgb {
        Some(m) => m,
        None => {
            say.line("note: the model has no mean pixel; using the ImageNet mean (123.68, 116.779, 103.939)");
            IMAGENET_MEAN
        }
    };
    let pooling = match settings.pooling {
        PoolingKind::Avg => Some(PoolMethod::Avg),
        PoolingKind::Max => Some(PoolMethod::Max),
        PoolingKind::File => None,
    };

    // 6. Size check: estimated memory and time.
    if let Some(note) = note {
        say.line(&format!("note: {note}"));
    }
    let (h, w) = (size.height as usize, size.width as usize);
    let tap_names: Vec<&str> = settings.objective.layer_names().collect();
    let est = estimate::estimate(&model, h, w, settings.optimizer, &tap_names);
    let avail = estimate::available_memory();
    // The time estimate comes from a CPU GEMM's measured rate; a GPU's is not estimated (its GEMM seam
    // copies operands per call, so timing it would say nothing about the device-resident iteration).
    let speed = if matches!(backend, Backend::Cpu) {
        let rate = estimate::measure_gemm_rate(backend.gemm());
        format!(
            ", about {:.2} s per iteration ({:.0} GFLOP at {:.0} GFLOP/s measured)",
            est.flops / rate,
            est.flops / 1e9,
            rate / 1e9
        )
    } else {
        format!(", {:.0} GFLOP per iteration on the GPU", est.flops / 1e9)
    };
    say.line(&format!(
        "working size {size} (content {}x{}), estimated peak memory {}{}{speed}",
        content_w,
        content_h,
        estimate::human_bytes(est.peak_bytes),
        avail
            .map(|a| format!(" of {} available", estimate::human_bytes(a)))
            .unwrap_or_default(),
    ));
    if let Some(avail) = avail
        && est.peak_bytes > avail
        && !args.force
    {
        let hint =
            match estimate::largest_fitting(&model, h, w, settings.optimizer, &tap_names, avail) {
                Some((fh, fw)) => format!(
                    "the largest size that would fit is about {fw}x{fh} (--max-size {})",
                    fw.max(fh)
                ),
                None => "no useful size would fit".into(),
            };
        bail!(
            "working size {size} needs about {} but only {} is available: {hint}, or pass --force to try anyway",
            estimate::human_bytes(est.peak_bytes),
            estimate::human_bytes(avail)
        );
    }

    if args.force {
        // Past the estimate on the user's word: an allocation the system refuses outright would abort
        // the process later, so ask for the whole estimate once, now, and say so if it is refused.
        estimate::reserve_check(est.peak_bytes).map_err(|e| {
            anyhow!(
                "--force: working size {size} needs about {}, and the system refuses to reserve that much ({e}); choose a smaller --size or --max-size",
                estimate::human_bytes(est.peak_bytes)
            )
        })?;
    }

    // 7. Targets.
    let prep = |p: &Picture, s: Size| {
        let p = p.resized(s.width, s.height);
        let p = if settings.preserve_colors {
            luminance(&p)
        } else {
            p
        };
        p.to_tensor(mean)
    };
    let content_t = prep(&content, size);
    let style_ts: Vec<Array3<f32>> = styles
        .iter()
        .map(|s| {
            let ss = image_io::scale_long_side(s.width(), s.height(), long);
            prep(s, ss)
        })
        .collect();
    let style_imgs: Vec<StyleImage<'_>> = style_ts
        .iter()
        .zip(&settings.style_blend)
        .map(|(t, &weight)| StyleImage {
            image: t.view(),
            weight,
        })
        .collect();
    let network = pipeline::build_network(&model, pooling)
        .with_context(|| format!("the weights {} (--weights)", settings.weights.display()))?;
    drop(model);
    let obj = StyleObjective::new(
        network,
        backend,
        &settings.objective,
        content_t.view(),
        &style_imgs,
    )
    .with_context(|| {
        format!(
            "computing the content and style targets at the working size {size} (from --content {} and --max-size/--size)",
            settings.content.display()
        )
    })?;
    drop(style_ts);
    let mut obj = place(obj)?;

    // 8. Start image, optimizer and RNG: fresh or from the checkpoint.
    let n = 3 * h * w;
    let (mut x, mut opt, rng, mut iteration, mut history, base_seconds) = match resumed {
        Some((c, path)) => {
            if c.shape != [3, h, w] {
                bail!(
                    "checkpoint {} holds a {}x{} image but the settings give {size}: was the content image changed?",
                    path.display(),
                    c.shape[2],
                    c.shape[1]
                );
            }
            let x = c.image();
            let opt = match c.optimizer {
                OptimizerState::Adam(s) => Opt::adam(Adam::from_state(s)?, &obj),
                OptimizerState::Lbfgs(s) => Opt::Lbfgs(Box::new(Lbfgs::from_state(s)?)),
            };
            say.line(&format!(
                "resuming {} at iteration {}",
                path.display(),
                c.iteration
            ));
            (x, opt, c.rng, c.iteration, c.history, c.seconds)
        }
        None => {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(settings.seed);
            let x = start_image(
                &settings,
                &content_t,
                init_picture.as_ref().map(|p| prep(p, size)),
                &mut rng,
            );
            let opt = match settings.optimizer {
                OptimizerKind::Adam => Opt::adam(
                    Adam::new(AdamConfig {
                        learning_rate: settings.learning_rate,
                        ..AdamConfig::seed()
                    })?,
                    &obj,
                ),
                OptimizerKind::Lbfgs => Opt::Lbfgs(Box::new(Lbfgs::new(LbfgsConfig::default())?)),
            };
            (x, opt, rng, 0, Vec::new(), 0.0)
        }
    };
    assert_eq!(x.len(), n, "the start image has the working size");
    let startup = started.elapsed().as_secs_f64();

    // 9. Outputs.
    let mut metrics = match &settings.metrics {
        Some(p) => Some(MetricsWriter::open(p, iteration > 0)?),
        None => None,
    };
    let mut animation = settings.animate.as_ref().map(|_| Animation::default());
    let checkpoint_path = settings.out_dir.join(checkpoint::FILE_NAME);
    let total = settings.iterations;
    if iteration >= total && total > 0 {
        say.line(&format!("the checkpoint is at iteration {iteration}, already ≥ --iterations {total}: nothing to do"));
    }
    let show_bar = !quiet && std::io::stderr().is_terminal();
    if show_bar {
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
            )
            .expect("a valid template"),
        );
        bar.set_position(iteration as u64);
        say.bar = Some(bar);
    }
    say.line(&format!(
        "start-up {startup:.2} s; {} iterations of {} from iteration {iteration}",
        total,
        match settings.optimizer {
            OptimizerKind::Adam => format!("Adam (learning rate {})", settings.learning_rate),
            OptimizerKind::Lbfgs => "L-BFGS".to_owned(),
        }
    ));

    let run_start = Instant::now();
    let seconds = || base_seconds + run_start.elapsed().as_secs_f64();
    let mut step_times: Vec<f64> = Vec::new();
    let mut prev = x.clone();
    // The last image whose cost was finite, and its iteration; swapped with `prev`, not cloned, so that
    // the loop allocates no image-sized buffer per iteration.
    let mut last_good = x.clone();
    let mut good_it: Option<usize> = None;
    let mut ended = Ended::Completed;
    let mut diverged: Option<(usize, String)> = None;
    let is_log = |it: usize| {
        it == total || (settings.print_every > 0 && it.is_multiple_of(settings.print_every))
    };
    let mut ctx = LogCtx {
        settings: &settings,
        shape: (3, h, w),
        mean,
        content: &content,
        say: &say,
        metrics: &mut metrics,
        animation: &mut animation,
        history: &mut history,
    };

    // L-BFGS reports f at the new point, so the start image is evaluated once on its own.
    if matches!(opt, Opt::Lbfgs(_)) && iteration == 0 {
        let b = evaluate(&mut obj, &x)?;
        if b.is_finite() {
            ctx.log(0, &b, &x, seconds(), total)?;
        }
    }
    while iteration < total {
        if stop.load(Ordering::SeqCst) {
            ended = Ended::Interrupted;
            break;
        }
        // The image the step starts from, kept on the host for a divergence at the first step; device
        // Adam keeps it on the device (and leaves `x` alone), so the copy would be work for nothing.
        if !matches!(opt, Opt::DeviceAdam { .. }) {
            prev.copy_from_slice(&x);
        }
        let t = Instant::now();
        let result = opt.step(&mut x, &mut obj);
        step_times.push(t.elapsed().as_secs_f64());
        let report = match result {
            Ok(r) => r,
            Err(OptimError::NonFinite {
                value,
                non_finite_grad,
                ..
            }) => {
                diverged = Some((
                    iteration,
                    format!("cost {value}, {non_finite_grad} non-finite gradient entries"),
                ));
                break;
            }
            Err(OptimError::Objective(e)) => return Err(e).context("evaluating the cost"),
            Err(e) => return Err(e).context("the optimizer failed"),
        };
        let b = obj
            .last_breakdown()
            .cloned()
            .expect("a step evaluates the objective");
        match opt {
            Opt::Adam(_) => {
                // Adam evaluated f at the image it started from (iteration `iteration`).
                std::mem::swap(&mut last_good, &mut prev);
                good_it = Some(iteration);
                if is_log(iteration) {
                    ctx.log(iteration, &b, &last_good, seconds(), total)?;
                }
                iteration += 1;
            }
            Opt::DeviceAdam { .. } => {
                // As above, with the evaluated image on the device: fetched only to be logged.
                good_it = Some(iteration);
                if is_log(iteration) {
                    obj.device_image(pipeline::ResidentImage::LastGood, &mut last_good)?;
                    ctx.log(iteration, &b, &last_good, seconds(), total)?;
                }
                iteration += 1;
            }
            Opt::Lbfgs(_) => {
                iteration += 1;
                last_good.copy_from_slice(&x);
                good_it = Some(iteration);
                let b = if b.total == report.value {
                    b
                } else {
                    evaluate(&mut obj, &x)?
                };
                if is_log(iteration) {
                    ctx.log(iteration, &b, &x, seconds(), total)?;
                }
            }
        }
        if let Some(bar) = &ctx.say.bar {
            bar.set_position(iteration as u64);
            if let Some(b) = obj.last_breakdown() {
                bar.set_message(format!(
                    "total {:.3e}  content {:.3e}  style {:.3e}",
                    b.total, b.content, b.style
                ));
            }
        }
        if settings.checkpoint_every > 0
            && iteration.is_multiple_of(settings.checkpoint_every)
            && iteration < total
        {
            save_checkpoint(
                &checkpoint_path,
                &settings,
                iteration,
                h,
                w,
                (&mut x, &mut opt, &mut obj),
                &rng,
                ctx.history,
                seconds(),
            )?;
        }
        if report.converged.is_some() {
            ctx.say
                .line(&format!("L-BFGS converged at iteration {iteration}"));
            break;
        }
    }

    // 10. The end: final costs, image, checkpoint, plot, animation, record.
    if let Some(bar) = &say.bar {
        bar.finish_and_clear();
    }
    let say = Say { quiet, bar: None };
    ctx.say = &say;
    opt.sync_host(&mut x, &mut obj)?;
    if let (Opt::DeviceAdam { loaded: true, .. }, Some(_)) = (&opt, good_it) {
        obj.device_image(pipeline::ResidentImage::LastGood, &mut last_good)?;
    }
    if let Some((at, what)) = &diverged {
        // Without a finite step, the image the failing step started from.
        let (good_it, good) = match good_it {
            Some(i) => (i, &last_good),
            None => (iteration, &prev),
        };
        write_image(good, h, w, mean, &settings, &content, &settings.output)?;
        finish_outputs(&mut ctx, &settings)?;
        write_record(
            &settings,
            "diverged",
            startup,
            &step_times,
            good_it,
            ctx.history,
            device,
            threads,
        )?;
        bail!(
            "the cost became non-finite at iteration {at} ({what}); the last good image (iteration {good_it}) is in {}; \
             lower --learning-rate (now {}) or the style/content weights",
            settings.output.display(),
            settings.learning_rate
        );
    }
    let final_logged = ctx.history.last().is_some_and(|r| r.iteration == iteration);
    if ended == Ended::Completed && !final_logged && total > 0 {
        let b = evaluate(&mut obj, &x)?;
        if b.is_finite() {
            ctx.log(iteration, &b, &x, seconds(), total)?;
        } else {
            bail!(
                "the cost became non-finite after the last iteration; lower --learning-rate (now {})",
                settings.learning_rate
            );
        }
    }
    write_image(&x, h, w, mean, &settings, &content, &settings.output)?;
    if ended == Ended::Interrupted || settings.checkpoint_every > 0 {
        save_checkpoint(
            &checkpoint_path,
            &settings,
            iteration,
            h,
            w,
            (&mut x, &mut opt, &mut obj),
            &rng,
            ctx.history,
            seconds(),
        )?;
    }
    finish_outputs(&mut ctx, &settings)?;
    let outcome = if ended == Ended::Interrupted {
        "interrupted"
    } else {
        "completed"
    };
    let record = write_record(
        &settings,
        outcome,
        startup,
        &step_times,
        iteration,
        ctx.history,
        device,
        threads,
    )?;
    match ended {
        Ended::Interrupted => say.line(&format!(
            "interrupted after iteration {iteration}: image written to {}, checkpoint to {}; continue with `nst stylize --resume {}`",
            settings.output.display(),
            checkpoint_path.display(),
            checkpoint_path.display()
        )),
        Ended::Completed => say.line(&format!(
            "done: {} ({} iterations, median {:.3} s each; run record {})",
            settings.output.display(),
            iteration,
            median(&step_times),
            record.display()
        )),
    }
    Ok(ended)
}

/// Everything the logging of one iteration touches.
struct LogCtx<'a> {
    settings: &'a Settings,
    shape: (usize, usize, usize),
    mean: [f32; 3],
    content: &'a Picture,
    say: &'a Say,
    metrics: &'a mut Option<MetricsWriter>,
    animation: &'a mut Option<Animation>,
    history: &'a mut Vec<Record>,
}

impl LogCtx<'_> {
    fn log(
        &mut self,
        iteration: usize,
        b: &Breakdown,
        x: &[f32],
        seconds: f64,
        total: usize,
    ) -> Result<()> {
        let r = Record::new(iteration, b, seconds);
        self.say.line(&format!(
            "iteration {iteration:>4}/{total}: total {:.4e}  content {:.4e}  style {:.4e}{}  [{seconds:.1} s]",
            r.total,
            r.content,
            r.style,
            if self.settings.objective.tv_weight > 0.0 { format!("  tv {:.4e}", r.tv) } else { String::new() }
        ));
        if let Some(m) = self.metrics.as_mut() {
            m.write(&r)?;
        }
        let img = to_rgb8(x, self.shape, self.mean, self.settings, self.content);
        if iteration != total {
            let path = self
                .settings
                .out_dir
                .join(format!("iter-{iteration:04}.png"));
            image_io::save_rgb8(&img, &path)?;
        }
        if let Some(a) = self.animation.as_mut() {
            a.push(&img);
        }
        self.history.push(r);
        Ok(())
    }
}

fn finish_outputs(ctx: &mut LogCtx<'_>, settings: &Settings) -> Result<()> {
    if let (Some(a), Some(p)) = (ctx.animation.as_ref(), &settings.animate)
        && !a.is_empty()
    {
        a.save(p)?;
        ctx.say
            .line(&format!("animation ({} frames): {}", a.len(), p.display()));
    }
    if let Some(p) = &settings.plot {
        let o = &settings.objective;
        crate::metrics::plot(p, ctx.history, o.alpha, o.beta, o.tv_weight)?;
        ctx.say.line(&format!("cost plot: {}", p.display()));
    }
    Ok(())
}

fn evaluate(obj: &mut StyleObjective, x: &[f32]) -> Result<Breakdown> {
    let s = obj.shape();
    let img = ArrayView3::from_shape(s.dim(), x).expect("x has the objective's shape");
    let mut grad = Array3::zeros(s.dim());
    Ok(obj.evaluate(img, grad.view_mut())?)
}

/// The start image, mean subtracted: the seed's `noise_ratio·U(−20, 20) + (1 − noise_ratio)·content`,
/// or the content, pure noise, or a given picture.
fn start_image(
    s: &Settings,
    content: &Array3<f32>,
    picture: Option<Array3<f32>>,
    rng: &mut Xoshiro256PlusPlus,
) -> Vec<f32> {
    if let Some(p) = picture {
        return p.into_raw_vec_and_offset().0;
    }
    let c = content.as_standard_layout();
    let c = c.as_slice().expect("standard layout");
    match s.init {
        InitKind::Content => c.to_vec(),
        InitKind::Random => c
            .iter()
            .map(|_| rng.random_range(-20.0_f32..20.0))
            .collect(),
        // `Style` always comes with a picture; noise is the seed.
        InitKind::Noise | InitKind::Style => c
            .iter()
            .map(|&v| {
                let noise = rng.random_range(-20.0_f32..20.0);
                noise * s.noise_ratio + v * (1.0 - s.noise_ratio)
            })
            .collect(),
    }
}

/// Gray picture (Y of YIQ in all three channels), for `--preserve-colors`.
fn luminance(p: &Picture) -> Picture {
    let mut q = p.clone();
    for px in q.pixels.pixels_mut() {
        let [r, g, b] = px.0;
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        px.0 = [y, y, y];
    }
    q
}

/// The image as 8-bit RGB; with `--preserve-colors`, the result's luminance with the content's I and Q.
fn to_rgb8(
    x: &[f32],
    shape: (usize, usize, usize),
    mean: [f32; 3],
    s: &Settings,
    content: &Picture,
) -> image::RgbImage {
    let view = ArrayView3::from_shape(shape, x).expect("x has the working shape");
    if !s.preserve_colors {
        return image_io::tensor_to_rgb8(view, mean);
    }
    let (_, h, w) = shape;
    let c = content.resized(w as u32, h as u32);
    image::RgbImage::from_fn(w as u32, h as u32, |xx, yy| {
        let px = |ch: usize| view[[ch, yy as usize, xx as usize]] + mean[ch];
        let y = 0.299 * px(0) + 0.587 * px(1) + 0.114 * px(2);
        let [r, g, b] = c.pixels.get_pixel(xx, yy).0.map(|v| v * 255.0);
        let i = 0.596 * r - 0.274 * g - 0.322 * b;
        let q = 0.211 * r - 0.523 * g + 0.312 * b;
        let out = [
            y + 0.956 * i + 0.621 * q,
            y - 0.272 * i - 0.647 * q,
            y - 1.106 * i + 1.703 * q,
        ];
        image::Rgb(out.map(|v| v.clamp(0.0, 255.0).round() as u8))
    })
}

fn write_image(
    x: &[f32],
    h: usize,
    w: usize,
    mean: [f32; 3],
    s: &Settings,
    content: &Picture,
    path: &Path,
) -> Result<()> {
    let img = to_rgb8(x, (3, h, w), mean, s, content);
    image_io::save_rgb8(&img, path)?;
    Ok(())
}

/// Writes the checkpoint of `(x, opt)`, first bringing both up to date from the objective's device
/// (device-resident Adam), so that no save can miss the device's iterate or moments.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per kind of save; a struct would only rename them"
)]
fn save_checkpoint(
    path: &Path,
    settings: &Settings,
    iteration: usize,
    h: usize,
    w: usize,
    (x, opt, obj): (&mut [f32], &mut Opt, &mut StyleObjective),
    rng: &Xoshiro256PlusPlus,
    history: &[Record],
    seconds: f64,
) -> Result<()> {
    opt.sync_host(x, obj)?;
    let c = Checkpoint {
        format: checkpoint::FORMAT_VERSION,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        settings: settings.clone(),
        iteration,
        shape: [3, h, w],
        image_bits: x.iter().map(|v| v.to_bits()).collect(),
        optimizer: opt.state(),
        rng: rng.clone(),
        history: history.to_vec(),
        seconds,
    };
    c.save(path)?;
    Ok(())
}

#[allow(
    clippy::too_many_arguments,
    reason = "the record gathers everything the run knows"
)]
fn write_record(
    s: &Settings,
    outcome: &str,
    startup: f64,
    step_times: &[f64],
    iteration: usize,
    history: &[Record],
    device: &str,
    threads: usize,
) -> Result<PathBuf> {
    let path = s.output.with_extension("run.json");
    let weights = weights_checksum(&s.weights);
    let record = json!({
        "program": "nst",
        "version": env!("CARGO_PKG_VERSION"),
        "outcome": outcome,
        "finished_unix_seconds": SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "settings": s,
        "weights": { "path": s.weights, "md5": weights.as_ref().map(|w| &w.0), "bytes": weights.as_ref().map(|w| w.1) },
        "device": device,
        "threads": threads,
        "iterations": iteration,
        "timings": {
            "startup_seconds": startup,
            "steps_timed": step_times.len(),
            "median_step_seconds": median(step_times),
            "total_step_seconds": step_times.iter().sum::<f64>(),
        },
        "final": history.last(),
    });
    let text = serde_json::to_string_pretty(&record).expect("the record serializes");
    image_io::write_atomically(&path, |f| {
        use std::io::Write as _;
        f.write_all(text.as_bytes()).map_err(|e| e.to_string())
    })?;
    Ok(path)
}

/// The weights file's MD5, cached in `<weights>.md5` (with its size and modification time) so that it is
/// computed once per file.
fn weights_checksum(path: &Path) -> Option<(String, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_secs();
    let mut cache = path.as_os_str().to_owned();
    cache.push(".md5");
    let cache = PathBuf::from(cache);
    if let Ok(text) = std::fs::read_to_string(&cache) {
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() == 3 && f[1] == meta.len().to_string() && f[2] == mtime.to_string() {
            return Some((f[0].to_owned(), meta.len()));
        }
    }
    let sums = download::checksums(path).ok()?;
    // Best effort (a read-only weights folder just means no cache), but never a torn file.
    let line = format!("{} {} {mtime}\n", sums.md5, meta.len());
    let _ = image_io::write_atomically(&cache, |f| {
        std::io::Write::write_all(f, line.as_bytes()).map_err(|e| e.to_string())
    });
    Some((sums.md5, meta.len()))
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn check_parent_writable(path: &Path) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    image_io::check_writable_dir(dir).with_context(|| format!("cannot write {}", path.display()))
}

fn choose_backend(device: DeviceKind, say: &Say) -> Result<Backend> {
    match device {
        DeviceKind::Cpu => Ok(Backend::Cpu),
        DeviceKind::Cuda => Backend::cuda()
            .inspect(|b| say.line(&format!("device: {}", b.describe())))
            .map_err(|e| match e {
            tensor_ops::Error::NotCompiled { feature } => anyhow!(
                "--device cuda: this nst was built without the `{feature}` feature; rebuild with `cargo build --release -p nst-cli --features {feature}` or use --device cpu"
            ),
            other => anyhow!("--device cuda: no usable GPU: {other}"),
        }),
        DeviceKind::Auto => match Backend::cuda() {
            Ok(b) => {
                say.line(&format!("device: {} (--device auto)", b.describe()));
                Ok(b)
            }
            Err(e) => {
                say.line(&format!("device: cpu (--device auto: {e})"));
                Ok(Backend::Cpu)
            }
        },
    }
}

/// Makes sure the weights exist: the default file is downloaded on first use (unless offline); any other
/// missing path is an error.
fn ensure_weights(path: &Path, offline: bool, quiet: bool) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    if path.is_dir() {
        bail!(
            "the weights path {} is a folder, not a .mat file (--weights / NST_WEIGHTS)",
            path.display()
        );
    }
    if path != default_weights() {
        bail!(
            "the weights file {} does not exist (--weights / NST_WEIGHTS); `nst download-weights` fetches the default one",
            path.display()
        );
    }
    let mut source = WeightsSource::default_vgg19();
    // A mirror of the same file (the checksum still applies).
    if let Ok(url) = std::env::var("NST_WEIGHTS_URL")
        && !url.is_empty()
    {
        source.url = url;
    }
    if !quiet && !offline {
        eprintln!(
            "weights not found at {}: downloading {}",
            path.display(),
            source.url
        );
    }
    let mut progress = crate::app::BarProgress::new(quiet);
    download::fetch(&source, path, offline, &mut progress)?;
    Ok(())
}

#[cfg(test)]
mod tests;
