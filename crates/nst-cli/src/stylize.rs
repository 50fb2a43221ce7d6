//! `nst stylize`: flags → the engine's [`RunSpec`], the weights fetched at the edge, and the engine's
//! events → lines on stderr, the progress bar, the metrics file, the GIF and the cost plot.
//!
//! This is the command-line layer (it prints to stderr, returns `anyhow` errors with context).

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nst_engine::checkpoint::Checkpoint;
use nst_engine::estimate::human_bytes;
use nst_engine::{Control, Event, OptimizerKind, Place, Run, RunOptions, RunSpec, SinkError};

use crate::args::{self, default_weights};
use crate::cli::StylizeArgs;
use crate::download::{self, WeightsSource};
use crate::metrics::{Animation, MetricsWriter, plot_format_ok};

/// How a run ended (errors aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// All iterations done (or L-BFGS converged).
    Completed,
    /// Ctrl-C or SIGTERM: image and checkpoint written.
    Interrupted,
    /// `nst batch status`: some jobs are not done yet (none failed).
    Unfinished,
}

/// Runs `nst stylize`; `control` is cancelled by Ctrl-C / SIGTERM.
///
/// # Errors
/// Every failure, with a message that names the file or flag.
pub fn run(args: &StylizeArgs, quiet: bool, threads: usize, control: &Control) -> Result<Ended> {
    run_placed(args, quiet, threads, control, None)
}

/// [`run`], with the objective moved by `place` once built (the tests put it on the `device-emu`
/// emulator).
pub(crate) fn run_placed(
    args: &StylizeArgs,
    quiet: bool,
    threads: usize,
    control: &Control,
    place: Option<Place<'_>>,
) -> Result<Ended> {
    let (spec, resume) = spec_of(args)?;
    if args.print_settings {
        println!(
            "{}",
            serde_json::to_string_pretty(&spec).expect("settings serialize")
        );
        return Ok(Ended::Completed);
    }
    check_front_end_outputs(&spec)?;
    let offline = args.offline.unwrap_or(false);
    let mut fetch = |path: &Path| {
        ensure_weights(path, offline, quiet)
            .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })
    };
    let options = RunOptions {
        force: args.force,
        threads,
        before_weights: Some(&mut fetch),
        place,
        style_cache: None,
    };
    let mut front = FrontEnd::new(&spec, quiet);
    let mut sink = |e: &Event| front.event(e);
    let run = Run::prepare(spec, resume, options, &mut sink)?;
    let summary = run.execute(&mut sink, control)?;
    Ok(match summary.ended {
        nst_engine::Ended::Cancelled => Ended::Interrupted,
        _ => Ended::Completed,
    })
}

/// The specification from the flags, or from the checkpoint named by `--resume` with the flags a
/// resumed run may change.
fn spec_of(args: &StylizeArgs) -> Result<(RunSpec, Option<(Checkpoint, std::path::PathBuf)>)> {
    match &args.resume {
        Some(p) => {
            let (c, path) = Checkpoint::load(p)?;
            let dir = path.parent().unwrap_or(Path::new("."));
            let spec = args::resumed(c.settings.clone(), args, dir)
                .map_err(|e| anyhow!("--resume {}: {e}", path.display()))?;
            Ok((spec, Some((c, path))))
        }
        None => {
            let mut spec = args::from_args(args).map_err(|e| anyhow!(e))?;
            spec.content = nst_engine::spec::find_image(&spec.content);
            spec.styles = spec
                .styles
                .iter()
                .map(|s| nst_engine::spec::find_image(s))
                .collect();
            spec.init_image = spec.init_image.as_deref().map(nst_engine::spec::find_image);
            Ok((spec, None))
        }
    }
}

/// The outputs that this front end writes (metrics, animation, plot): named right and writable.
fn check_front_end_outputs(spec: &RunSpec) -> Result<()> {
    use nst_engine::image_io::output_format;
    output_format(&spec.output)?;
    let writable = |p: &Path, flag: &str| {
        nst_engine::image_io::check_parent_writable(p)
            .with_context(|| format!("cannot write {}", p.display()))
            .context(flag.to_owned())
    };
    nst_engine::image_io::check_writable_dir(&spec.out_dir)
        .with_context(|| format!("the output folder {} (--out-dir)", spec.out_dir.display()))?;
    if let Some(p) = &spec.metrics {
        writable(p, "--metrics")?;
    }
    if let Some(p) = &spec.animate {
        if !p.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")) {
            bail!(
                "--animate {}: the animation is a GIF: name it *.gif",
                p.display()
            );
        }
        writable(p, "--animate")?;
    }
    if let Some(p) = &spec.plot {
        if !plot_format_ok(p) {
            bail!(
                "--plot {}: the plot is PNG or SVG: name it *.png or *.svg",
                p.display()
            );
        }
        writable(p, "--plot")?;
    }
    Ok(())
}

/// What the command line shows and keeps of a run's events.
struct FrontEnd {
    quiet: bool,
    bar: Option<ProgressBar>,
    metrics_path: Option<std::path::PathBuf>,
    metrics: Option<MetricsWriter>,
    animation: Option<Animation>,
    animate: Option<std::path::PathBuf>,
    plot: Option<std::path::PathBuf>,
    weights: (f32, f32, f32),
    history: Vec<nst_engine::Record>,
    optimizer: String,
    tv: bool,
    total: usize,
    /// `stage k/n WxH` of a multi-stage run, for the progress bar.
    stage: String,
}

impl FrontEnd {
    fn new(spec: &RunSpec, quiet: bool) -> FrontEnd {
        let o = &spec.objective;
        FrontEnd {
            quiet,
            bar: None,
            metrics_path: spec.metrics.clone(),
            metrics: None,
            animation: spec.animate.as_ref().map(|_| Animation::default()),
            animate: spec.animate.clone(),
            plot: spec.plot.clone(),
            weights: (o.alpha, o.beta, o.tv_weight),
            history: Vec::new(),
            optimizer: match spec.optimizer {
                OptimizerKind::Adam => format!("Adam (learning rate {})", spec.learning_rate),
                OptimizerKind::Lbfgs => "L-BFGS".to_owned(),
            },
            tv: o.tv_weight > 0.0,
            total: 0,
            stage: String::new(),
        }
    }

    /// A message above the progress bar, or a plain line.
    fn line(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn event(&mut self, e: &Event) -> Result<(), SinkError> {
        self.handle(e).map_err(|e| SinkError(format!("{e:#}")))
    }

    fn handle(&mut self, e: &Event) -> Result<()> {
        match e {
            Event::Note(text) => self.line(&format!("note: {text}")),
            Event::Started(s) => self.started(s)?,
            Event::StageStarted {
                index,
                count,
                stage,
            } if *count > 1 => {
                self.stage = format!("stage {}/{count} {}  ", index + 1, stage.size);
                self.line(&format!(
                    "stage {}/{count}: {} for iterations {}–{}",
                    index + 1,
                    stage.size,
                    stage.start,
                    stage.end
                ));
            }
            Event::Step {
                iteration, costs, ..
            } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(*iteration as u64);
                    bar.set_message(format!(
                        "{}total {:.3e}  content {:.3e}  style {:.3e}",
                        self.stage, costs.total, costs.content, costs.style
                    ));
                }
            }
            Event::Logged { record, image, .. } => {
                let r = record;
                self.line(&format!(
                    "iteration {:>4}/{}: total {:.4e}  content {:.4e}  style {:.4e}{}  [{:.1} s]",
                    r.iteration,
                    self.total,
                    r.total,
                    r.content,
                    r.style,
                    if self.tv {
                        format!("  tv {:.4e}", r.tv)
                    } else {
                        String::new()
                    },
                    r.seconds
                ));
                if let Some(m) = self.metrics.as_mut() {
                    m.write(r)?;
                }
                if let Some(a) = self.animation.as_mut() {
                    a.push(image);
                }
                self.history.push(r.clone());
            }
            Event::Finished(s) => self.finished(s)?,
            _ => {}
        }
        Ok(())
    }

    fn started(&mut self, s: &nst_engine::Started) -> Result<()> {
        let est = &s.estimate;
        let flops = format!(", {:.0} GFLOP per iteration", est.flops / 1e9);
        self.line(&format!(
            "working size {} (content {}), estimated peak memory {}{}{flops}",
            s.size,
            s.content_size,
            human_bytes(est.peak_bytes),
            s.available
                .map(|a| format!(" of {} available", human_bytes(a)))
                .unwrap_or_default(),
        ));
        if let Some(path) = &s.resumed_from {
            self.line(&format!(
                "resuming {} at iteration {}",
                path.display(),
                s.first_iteration
            ));
        }
        self.total = s.stages.last().map_or(0, |st| st.end);
        self.history = s.history.clone();
        if let Some(p) = &self.metrics_path {
            self.metrics = Some(MetricsWriter::open(p, s.first_iteration > 0)?);
        }
        if !self.quiet && std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                Some(self.total as u64),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
                )
                .expect("a valid template"),
            );
            bar.set_position(s.first_iteration as u64);
            self.bar = Some(bar);
        }
        self.line(&format!(
            "start-up {:.2} s; {} iterations of {} from iteration {}",
            s.startup_seconds, self.total, self.optimizer, s.first_iteration
        ));
        Ok(())
    }

    fn finished(&mut self, s: &nst_engine::Summary) -> Result<()> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let (Some(a), Some(p)) = (self.animation.as_ref(), &self.animate)
            && !a.is_empty()
        {
            a.save(p)?;
            self.line(&format!("animation ({} frames): {}", a.len(), p.display()));
        }
        if let Some(p) = &self.plot {
            let (alpha, beta, tv) = self.weights;
            crate::metrics::plot(p, &self.history, alpha, beta, tv)?;
            self.line(&format!("cost plot: {}", p.display()));
        }
        match s.ended {
            nst_engine::Ended::Converged => {
                self.line(&format!("L-BFGS converged at iteration {}", s.iterations));
                self.done(s);
            }
            nst_engine::Ended::Completed => self.done(s),
            nst_engine::Ended::Cancelled => {
                let c = s.checkpoint.as_deref().unwrap_or(Path::new("?"));
                self.line(&format!(
                    "interrupted after iteration {}: image written to {}, checkpoint to {}; continue with `nst stylize --resume {}`",
                    s.iterations,
                    s.output.display(),
                    c.display(),
                    c.display()
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn done(&self, s: &nst_engine::Summary) {
        self.line(&format!(
            "done: {} ({} iterations, median {:.3} s each; run record {})",
            s.output.display(),
            s.iterations,
            s.median_step_seconds,
            s.record.display()
        ));
    }
}

/// Makes sure the weights exist: the default file is downloaded on first use (unless offline); any other
/// missing path is an error.
pub(crate) fn ensure_weights(path: &Path, offline: bool, quiet: bool) -> Result<()> {
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
