//! The running state of a run and its loop: one stage's iterations with logging, snapshots,
//! checkpoints, cancellation and divergence; the move to the next stage; the end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ndarray::{Array3, ArrayView3};
use nst_optim::OptimError;
use rand::{Rng as _, SeedableRng as _};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Opt, Run};
use crate::checkpoint::{self, AverageState, Checkpoint};
use crate::events::{Control, Event, EventSink, Started, Summary};
use crate::image_io::{Picture, PngPixels, Size, save_rgb8};
use crate::objective::{Breakdown, ResidentImage, StyleObjective};
use crate::record::{Ended, Record, RunRecord, Timings, median};
use crate::render::Render;
use crate::resample;
use crate::spec::InitKind;
use crate::{Error, Result};

/// How a stage's iterations ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum StageEnd {
    /// Every iteration of the stage done.
    Done,
    /// L-BFGS converged.
    Converged,
    /// Cancelled through the [`Control`].
    Cancelled,
    /// The cost (or gradient) became non-finite at iteration `at`.
    Diverged { at: usize, what: String },
}

/// The run's progress, carried across stages.
pub(super) struct Book {
    iteration: usize,
    rng: Xoshiro256PlusPlus,
    history: Vec<Record>,
    step_times: Vec<f64>,
    base_seconds: f64,
    clock: Instant,
    startup: f64,
}

impl Book {
    fn seconds(&self) -> f64 {
        self.base_seconds + self.clock.elapsed().as_secs_f64()
    }
}

/// The moving average of the iterates (`average`), bias-corrected when read.
pub(super) struct Average {
    decay: f32,
    acc: Vec<f32>,
    count: u64,
}

impl Average {
    fn push(&mut self, x: &[f32]) {
        let d = self.decay;
        if self.acc.len() != x.len() {
            self.acc = vec![0.0; x.len()];
            self.count = 0;
        }
        for (a, &v) in self.acc.iter_mut().zip(x) {
            *a = d * *a + (1.0 - d) * v;
        }
        self.count += 1;
    }

    /// The bias-corrected average, `acc / (1 − decayᵗ)`; `None` before the first iterate.
    fn value(&self) -> Option<Vec<f32>> {
        if self.count == 0 {
            return None;
        }
        let correction = 1.0 - self.decay.powi(self.count.min(i32::MAX as u64) as i32);
        Some(self.acc.iter().map(|a| a / correction).collect())
    }
}

/// One stage under way, with the run's progress.
pub(super) struct Live {
    pub(super) index: usize,
    size: Size,
    obj: StyleObjective,
    x: Vec<f32>,
    opt: Opt,
    colors: Option<(crate::color::ColorSpace, Picture)>,
    average: Option<Average>,
    book: Book,
    /// The image the last step started from, and the last image whose cost was finite with its
    /// iteration (swapped, not cloned, so that the loop allocates no image per iteration).
    prev: Vec<f32>,
    last_good: Vec<f32>,
    good_it: Option<usize>,
}

impl Run<'_> {
    /// The first stage: fresh, or where the checkpoint left off.
    pub(super) fn first_stage(&mut self) -> Result<Live> {
        let Some((c, path)) = self.resume.take() else {
            let obj = self.objective(0)?;
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.spec.seed);
            let x = self.start_image(self.stages[0].size, &mut rng);
            let opt = Opt::new(&self.spec, &obj)?;
            let book = self.book(rng, 0, Vec::new(), 0.0);
            return Ok(self.live(0, obj, x, opt, book));
        };
        let index = c.stage;
        let resume_err = |reason: String| Error::Resume {
            path: path.clone(),
            reason,
        };
        let Some(stage) = self.stages.get(index) else {
            return Err(resume_err(format!(
                "the checkpoint is at stage {} but the settings give {} stages",
                index + 1,
                self.stages.len()
            )));
        };
        let size = stage.size;
        if c.shape != [3, size.height as usize, size.width as usize] {
            return Err(resume_err(format!(
                "the checkpoint holds a {}x{} image but the settings give {size}: was the content image changed?",
                c.shape[2], c.shape[1]
            )));
        }
        if self.stages.len() > 1 && !(stage.start..=stage.end).contains(&c.iteration) {
            return Err(resume_err(format!(
                "the checkpoint is at iteration {} of stage {}, which runs from {} to {} with these settings: keep --iterations and --scale-iterations as they were",
                c.iteration,
                index + 1,
                stage.start,
                stage.end
            )));
        }
        let obj = self.objective(index)?;
        let x = c.image();
        let opt = Opt::from_state(c.optimizer, &obj)?;
        let book = self.book(c.rng, c.iteration, c.history, c.seconds);
        let average = c.average;
        let mut live = self.live(index, obj, x, opt, book);
        if let (Some(a), Some(saved)) = (live.average.as_mut(), average) {
            a.acc = saved.bits.into_iter().map(f32::from_bits).collect();
            a.count = saved.count;
        }
        Ok(live)
    }

    /// The next stage, from the current one's image and optimizer state, resampled.
    pub(super) fn next_stage(&mut self, mut live: Live) -> Result<Live> {
        live.opt.sync_host(&mut live.x, &mut live.obj)?;
        let index = live.index + 1;
        let (from, to) = (live.size, self.stages[index].size);
        let hw = |s: Size| (s.height as usize, s.width as usize);
        let state = live.opt.next_stage_state(&self.spec, hw(from), hw(to))?;
        let view = ArrayView3::from_shape((3, hw(from).0, hw(from).1), &live.x)
            .expect("x has the stage's shape");
        let x = resample::lanczos3(view, hw(to).0, hw(to).1)
            .into_raw_vec_and_offset()
            .0;
        self.network = Some(live.obj.into_network());
        let obj = self.objective(index)?;
        let opt = match state {
            Some(s) => Opt::from_state(s, &obj)?,
            None => Opt::new(&self.spec, &obj)?,
        };
        Ok(self.live(index, obj, x, opt, live.book))
    }

    fn book(
        &self,
        rng: Xoshiro256PlusPlus,
        iteration: usize,
        history: Vec<Record>,
        base_seconds: f64,
    ) -> Book {
        Book {
            iteration,
            rng,
            history,
            step_times: Vec::new(),
            base_seconds,
            clock: Instant::now(),
            startup: self.started.elapsed().as_secs_f64(),
        }
    }

    fn live(&self, index: usize, obj: StyleObjective, x: Vec<f32>, opt: Opt, book: Book) -> Live {
        let size = self.stages[index].size;
        Live {
            index,
            size,
            colors: self.colors_at(size),
            average: self.spec.average.map(|decay| Average {
                decay,
                acc: Vec::new(),
                count: 0,
            }),
            prev: x.clone(),
            last_good: x.clone(),
            good_it: None,
            obj,
            x,
            opt,
            book,
        }
    }

    /// The start image at `size`, mean subtracted: `noise_ratio·U(−20, 20) + (1 − noise_ratio)·content`,
    /// or the content, pure noise, or a given picture.
    fn start_image(&self, size: Size, rng: &mut Xoshiro256PlusPlus) -> Vec<f32> {
        let s = &self.spec;
        if let Some(p) = &self.inputs.init {
            return self.inputs.tensor(s, p, size).into_raw_vec_and_offset().0;
        }
        let content = self.inputs.tensor(s, &self.inputs.content, size);
        let c = content.as_slice().expect("standard layout");
        match s.init {
            InitKind::Content => c.to_vec(),
            InitKind::Random => c
                .iter()
                .map(|_| rng.random_range(-20.0_f32..20.0))
                .collect(),
            // `Style` always comes with a picture; noise is the default.
            InitKind::Noise | InitKind::Style => c
                .iter()
                .map(|&v| {
                    let noise = rng.random_range(-20.0_f32..20.0);
                    noise * s.noise_ratio + v * (1.0 - s.noise_ratio)
                })
                .collect(),
        }
    }

    fn total(&self) -> usize {
        self.stages.last().expect("a plan has a stage").end
    }
}

impl Live {
    fn shape(&self) -> (usize, usize, usize) {
        (3, self.size.height as usize, self.size.width as usize)
    }

    fn render(&self, run: &Run<'_>, x: &[f32]) -> image::RgbImage {
        Render {
            mean: run.inputs.mean,
            colors_of: self.colors.as_ref().map(|(s, p)| (*s, p)),
        }
        .rgb8(x, self.shape())
    }

    /// The image that is shown and written: the average of the iterates when there is one.
    fn shown<'s>(&'s self, x: &'s [f32]) -> std::borrow::Cow<'s, [f32]> {
        match self.average.as_ref().and_then(Average::value) {
            Some(v) => std::borrow::Cow::Owned(v),
            None => std::borrow::Cow::Borrowed(x),
        }
    }

    pub(super) fn started(&self, run: &Run<'_>, sink: &mut dyn EventSink) -> Result<()> {
        emit(
            sink,
            Event::Started(Box::new(Started {
                content_size: run.inputs.content_size,
                size: run.inputs.size,
                stages: run.stages.clone(),
                estimate: run.estimate,
                available: run.available,
                device: self.obj.device_name().to_owned(),
                startup_seconds: self.book.startup,
                first_iteration: self.book.iteration,
                resumed_from: run.resume_path.clone(),
                history: self.book.history.clone(),
            })),
        )
    }

    pub(super) fn stage_started(&self, run: &Run<'_>, sink: &mut dyn EventSink) -> Result<()> {
        emit(
            sink,
            Event::StageStarted {
                index: self.index,
                count: run.stages.len(),
                stage: run.stages[self.index],
            },
        )
    }

    /// Runs the stage's iterations.
    pub(super) fn iterate(
        &mut self,
        run: &Run<'_>,
        sink: &mut dyn EventSink,
        control: &Control,
    ) -> Result<StageEnd> {
        let end = run.stages[self.index].end;
        // L-BFGS reports f at the new point, so the start image is evaluated once on its own.
        if self.opt.is_lbfgs() && self.book.iteration == 0 {
            let shape = self.shape();
            let b = evaluate(&mut self.obj, &self.x, shape)?;
            if b.is_finite() {
                let x = self.x.clone();
                self.log(run, 0, &b, &x, sink)?;
            }
        }
        while self.book.iteration < end {
            control.wait_while_paused();
            if control.is_cancelled() {
                return Ok(StageEnd::Cancelled);
            }
            if let Some(stop) = self.step(run, sink)? {
                return Ok(stop);
            }
            if control.take_snapshot_request() {
                self.opt.sync_host(&mut self.x, &mut self.obj)?;
                let image = Arc::new(self.render(run, &self.shown(&self.x)));
                emit(
                    sink,
                    Event::Snapshot {
                        iteration: self.book.iteration,
                        image,
                    },
                )?;
            }
            let every = run.spec.checkpoint_every;
            let it = self.book.iteration;
            if every > 0 && it.is_multiple_of(every) && it < run.total() {
                self.save_checkpoint(run, sink)?;
            }
        }
        Ok(StageEnd::Done)
    }

    /// One iteration; `Some` when the stage must end (divergence, convergence).
    fn step(&mut self, run: &Run<'_>, sink: &mut dyn EventSink) -> Result<Option<StageEnd>> {
        let it = self.book.iteration;
        // The image the step starts from, kept on the host for a divergence at the first step; device
        // Adam keeps it on the device (and leaves `x` alone), so the copy would be work for nothing.
        if !self.opt.is_device() {
            self.prev.copy_from_slice(&self.x);
        }
        let t = Instant::now();
        let result = self.opt.step(&mut self.x, &mut self.obj);
        self.book.step_times.push(t.elapsed().as_secs_f64());
        let report = match result {
            Ok(r) => r,
            Err(OptimError::NonFinite {
                value,
                non_finite_grad,
                ..
            }) => {
                return Ok(Some(StageEnd::Diverged {
                    at: it,
                    what: format!("cost {value}, {non_finite_grad} non-finite gradient entries"),
                }));
            }
            Err(OptimError::Objective(e)) => return Err(Error::Evaluate(Box::new(e))),
            Err(e) => return Err(Error::Step(e.to_string())),
        };
        let b = self
            .obj
            .last_breakdown()
            .cloned()
            .expect("a step evaluates the objective");
        if self.opt.is_lbfgs() {
            self.after_lbfgs_step(run, b, report.value, sink)?;
        } else {
            self.after_adam_step(run, it, b, sink)?;
        }
        if self.book.step_times.len() == 3 {
            self.time_note(run, sink)?;
        }
        // A non-finite pixel hides behind the ReLUs (max(NaN, 0) = 0), so the costs stay finite:
        // check the iterate itself. Device Adam's iterate stays on the device, where the step refuses
        // non-finite gradients instead.
        if !self.opt.is_device() {
            let bad = self.x.iter().filter(|v| !v.is_finite()).count();
            if bad > 0 {
                return Ok(Some(StageEnd::Diverged {
                    at: self.book.iteration,
                    what: format!("{bad} pixel values of the image are not finite"),
                }));
            }
        }
        Ok(report.converged.is_some().then_some(StageEnd::Converged))
    }

    /// After three steps: the measured time per iteration, and the time the rest of the run needs,
    /// taking each later stage's iterations as costing in proportion to its pixels.
    fn time_note(&self, run: &Run<'_>, sink: &mut dyn EventSink) -> Result<()> {
        let per = median(&self.book.step_times);
        let pixels = |s: Size| f64::from(s.width) * f64::from(s.height);
        let here = pixels(self.size);
        let it = self.book.iteration + 1;
        let rest: f64 = run.stages[self.index..]
            .iter()
            .map(|st| {
                let n = st.end.saturating_sub(st.start.max(it)) as f64;
                n * per * pixels(st.size) / here
            })
            .sum();
        emit(
            sink,
            Event::Note(format!(
                "measured {per:.3} s per iteration at {}; about {} to go",
                self.size,
                human_duration(rest)
            )),
        )
    }

    fn log_at(run: &Run<'_>, i: usize) -> bool {
        i == run.total() || (run.spec.print_every > 0 && i.is_multiple_of(run.spec.print_every))
    }

    /// L-BFGS reports the cost at the new point: log it (re-evaluated when the report is not the last
    /// evaluation) and keep the point as the last good image.
    fn after_lbfgs_step(
        &mut self,
        run: &Run<'_>,
        b: Breakdown,
        value: f64,
        sink: &mut dyn EventSink,
    ) -> Result<()> {
        self.book.iteration += 1;
        if self.x.iter().all(|v| v.is_finite()) {
            self.last_good.copy_from_slice(&self.x);
            self.good_it = Some(self.book.iteration);
        }
        let shape = self.shape();
        let b = if b.total == value {
            b
        } else {
            evaluate(&mut self.obj, &self.x, shape)?
        };
        self.push_average(true)?;
        if Self::log_at(run, self.book.iteration) {
            let x = self.x.clone();
            self.log(run, self.book.iteration, &b, &x, sink)?;
        }
        emit_step(sink, self.book.iteration, run.total(), b)
    }

    /// Adam evaluated the cost at the image it started from (iteration `it`): that image is the last
    /// good one, and the one logged.
    fn after_adam_step(
        &mut self,
        run: &Run<'_>,
        it: usize,
        b: Breakdown,
        sink: &mut dyn EventSink,
    ) -> Result<()> {
        if self.opt.is_device() {
            if Self::log_at(run, it) {
                self.obj
                    .device_image(ResidentImage::LastGood, &mut self.last_good)?;
            }
        } else {
            std::mem::swap(&mut self.last_good, &mut self.prev);
        }
        self.good_it = Some(it);
        if Self::log_at(run, it) {
            let good = std::mem::take(&mut self.last_good);
            let logged = self.log(run, it, &b, &good, sink);
            self.last_good = good;
            logged?;
        }
        self.book.iteration += 1;
        self.push_average(false)?;
        emit_step(sink, self.book.iteration, run.total(), b)
    }

    /// Adds the new iterate to the average (bringing it from the device first, for device Adam).
    fn push_average(&mut self, host_current: bool) -> Result<()> {
        if self.average.is_none() {
            return Ok(());
        }
        if !host_current {
            self.opt.sync_host(&mut self.x, &mut self.obj)?;
        }
        if let Some(a) = self.average.as_mut() {
            a.push(&self.x);
        }
        Ok(())
    }

    /// Logs iteration `it` with its costs `b` and image `x` (the average's, when there is one).
    fn log(
        &mut self,
        run: &Run<'_>,
        it: usize,
        b: &Breakdown,
        x: &[f32],
        sink: &mut dyn EventSink,
    ) -> Result<()> {
        let record = Record::new(it, b, self.book.seconds()).at_stage(self.index, self.size);
        let image = Arc::new(self.render(run, &self.shown(x)));
        let saved = if it == run.total() {
            None
        } else {
            let path = run.spec.out_dir.join(format!("iter-{it:04}.png"));
            save_rgb8(&image, &path)?;
            Some(path)
        };
        self.book.history.push(record.clone());
        emit(
            sink,
            Event::Logged {
                record,
                image,
                saved,
            },
        )
    }

    /// Writes the checkpoint, first bringing the iterate and moments up from the device.
    fn save_checkpoint(&mut self, run: &Run<'_>, sink: &mut dyn EventSink) -> Result<PathBuf> {
        self.opt.sync_host(&mut self.x, &mut self.obj)?;
        let c = Checkpoint {
            format: checkpoint::FORMAT_VERSION,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            settings: run.spec.clone(),
            iteration: self.book.iteration,
            stage: self.index,
            shape: [3, self.size.height as usize, self.size.width as usize],
            image_bits: self.x.iter().map(|v| v.to_bits()).collect(),
            optimizer: self.opt.state(),
            rng: self.book.rng.clone(),
            history: self.book.history.clone(),
            seconds: self.book.seconds(),
            average: self.average.as_ref().map(|a| AverageState {
                bits: a.acc.iter().map(|v| v.to_bits()).collect(),
                count: a.count,
            }),
            checksums: None,
        };
        let path = run.spec.out_dir.join(checkpoint::FILE_NAME);
        c.save(&path)?;
        emit(
            sink,
            Event::CheckpointSaved {
                path: path.clone(),
                iteration: self.book.iteration,
            },
        )?;
        Ok(path)
    }

    /// The end: final costs, image, checkpoint, record, the `Finished` event.
    pub(super) fn finish(
        mut self,
        run: &Run<'_>,
        end: StageEnd,
        sink: &mut dyn EventSink,
    ) -> Result<Summary> {
        self.opt.sync_host(&mut self.x, &mut self.obj)?;
        if self.opt.device_loaded() && self.good_it.is_some() {
            self.obj
                .device_image(ResidentImage::LastGood, &mut self.last_good)?;
        }
        if let StageEnd::Diverged { at, what } = end {
            return self.finish_diverged(run, at, &what, sink);
        }
        let ended = match end {
            StageEnd::Cancelled => Ended::Cancelled,
            StageEnd::Converged => Ended::Converged,
            _ => Ended::Completed,
        };
        let it = self.book.iteration;
        let result = self.shown(&self.x).into_owned();
        let final_logged = self.book.history.last().is_some_and(|r| r.iteration == it);
        if ended != Ended::Cancelled && !final_logged && run.total() > 0 {
            let shape = self.shape();
            let b = evaluate(&mut self.obj, &result, shape)?;
            if !b.is_finite() {
                return Err(Error::Spec(format!(
                    "the cost became non-finite after the last iteration; lower --learning-rate (now {})",
                    run.spec.learning_rate
                )));
            }
            // The result is logged as it is (the average is already applied).
            let avg = self.average.take();
            let logged = self.log(run, it, &b, &result, sink);
            self.average = avg;
            logged?;
        }
        self.write_result(run, &result)?;
        let checkpoint = if ended == Ended::Cancelled || run.spec.checkpoint_every > 0 {
            Some(self.save_checkpoint(run, sink)?)
        } else {
            self.remove_stale_checkpoint(run, sink)?;
            None
        };
        self.summary(run, ended, it, checkpoint, sink)
    }

    /// A run that completes without a final checkpoint leaves none behind: one in its folder is from
    /// an earlier interruption (of this run, now resumed and done, or of a run whose result this one
    /// replaced) and would resume a picture that is no longer there.
    fn remove_stale_checkpoint(&self, run: &Run<'_>, sink: &mut dyn EventSink) -> Result<()> {
        let path = run.spec.out_dir.join(checkpoint::FILE_NAME);
        if path.is_file() {
            std::fs::remove_file(&path).map_err(|e| {
                Error::Spec(format!(
                    "cannot remove the out-of-date checkpoint {}: {e}",
                    path.display()
                ))
            })?;
            emit(
                sink,
                Event::Note(format!(
                    "removed the out-of-date checkpoint {}",
                    path.display()
                )),
            )?;
        }
        Ok(())
    }

    /// A divergence: the last good image is written with the record, then the error is returned.
    fn finish_diverged(
        self,
        run: &Run<'_>,
        at: usize,
        what: &str,
        sink: &mut dyn EventSink,
    ) -> Result<Summary> {
        // Without a finite step, the image the failing step started from.
        let (good_it, good) = match self.good_it {
            Some(i) => (i, &self.last_good),
            None => (self.book.iteration, &self.prev),
        };
        self.write_result(run, good)?;
        self.summary(run, Ended::Diverged, good_it, None, sink)?;
        if self.good_it.is_none() && at == run.stages[0].start && self.index == 0 {
            let o = &run.spec.objective;
            return Err(Error::Spec(format!(
                "the cost of the start image is not finite ({what}): the weights (--alpha {}, --beta {}, --tv-weight {}) make the costs or their gradients overflow 32-bit floats; lower them (the start image is in {})",
                o.alpha,
                o.beta,
                o.tv_weight,
                run.spec.output.display()
            )));
        }
        Err(Error::Diverged {
            at,
            what: what.to_owned(),
            good: good_it,
            output: run.spec.output.clone(),
            learning_rate: run.spec.learning_rate,
            weights: {
                let o = &run.spec.objective;
                format!(
                    "--alpha {} --beta {} --tv-weight {}",
                    o.alpha, o.beta, o.tv_weight
                )
            },
        })
    }

    /// Writes `x` (as it is) as the result: a PNG at the bit depth asked for, with the sRGB chunk, the
    /// program and the run's settings as text chunks, so that the picture says how it was made; JPEG
    /// and GIF as 8-bit pictures.
    fn write_result(&self, run: &Run<'_>, x: &[f32]) -> Result<()> {
        let spec = &run.spec;
        let is_png = matches!(
            crate::image_io::output_format(&spec.output)?,
            image::ImageFormat::Png
        );
        if !is_png {
            return Ok(save_rgb8(&self.render_plain(run, x), &spec.output)?);
        }
        let text = [
            (
                "Software".to_owned(),
                format!("nst {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "nst-settings".to_owned(),
                serde_json::to_string(spec).expect("settings serialize"),
            ),
        ];
        let size = (self.size.width, self.size.height);
        if spec.bit_depth == 16 {
            let render = Render {
                mean: run.inputs.mean,
                colors_of: self.colors.as_ref().map(|(s, p)| (*s, p)),
            };
            let samples = render.rgb16(x, self.shape());
            crate::image_io::save_png(&spec.output, size, PngPixels::Sixteen(&samples), &text)?;
        } else {
            let img = self.render_plain(run, x);
            crate::image_io::save_png(&spec.output, size, PngPixels::Eight(img.as_raw()), &text)?;
        }
        Ok(())
    }

    /// Renders `x` as it is (no average applied again).
    fn render_plain(&self, run: &Run<'_>, x: &[f32]) -> image::RgbImage {
        Render {
            mean: run.inputs.mean,
            colors_of: self.colors.as_ref().map(|(s, p)| (*s, p)),
        }
        .rgb8(x, self.shape())
    }

    fn summary(
        &self,
        run: &Run<'_>,
        ended: Ended,
        iterations: usize,
        checkpoint: Option<PathBuf>,
        sink: &mut dyn EventSink,
    ) -> Result<Summary> {
        let steps = &self.book.step_times;
        let timings = Timings {
            startup: self.book.startup,
            steps: steps.len(),
            median_step: median(steps),
            total_steps: steps.iter().sum(),
        };
        let record = RunRecord {
            spec: &run.spec,
            ended,
            timings,
            iterations,
            last: self.book.history.last(),
            device: self.obj.device_name(),
            threads: run.threads(),
            stages: &run.stages,
        }
        .write()?;
        let summary = Summary {
            ended,
            iterations,
            output: run.spec.output.clone(),
            record,
            checkpoint,
            median_step_seconds: timings.median_step,
            last: self.book.history.last().cloned(),
        };
        emit(sink, Event::Finished(Box::new(summary.clone())))?;
        Ok(summary)
    }
}

/// `42 s`, `3.5 min`, `2.1 h`.
fn human_duration(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else if seconds < 5400.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

fn emit(sink: &mut dyn EventSink, event: Event) -> Result<()> {
    sink.event(&event).map_err(Error::Sink)
}

fn emit_step(
    sink: &mut dyn EventSink,
    iteration: usize,
    total: usize,
    costs: Breakdown,
) -> Result<()> {
    emit(
        sink,
        Event::Step {
            iteration,
            total,
            costs,
        },
    )
}

fn evaluate(
    obj: &mut StyleObjective,
    x: &[f32],
    shape: (usize, usize, usize),
) -> Result<Breakdown> {
    let img = ArrayView3::from_shape(shape, x).expect("x has the objective's shape");
    let mut grad = Array3::zeros(shape);
    obj.evaluate(img, grad.view_mut())
        .map_err(|e| Error::Evaluate(Box::new(e)))
}
