//! A run: [`Run::prepare`] checks the specification and the outputs, decodes the images, loads the
//! model, plans the stages and estimates the memory; [`Run::execute`] owns the only loop (stages,
//! steps, logging, snapshots, checkpoints, cancellation, divergence) and writes the outputs.

mod inputs;
mod live;
mod masks;
mod opt;

use std::path::{Path, PathBuf};
use std::time::Instant;

use tensor_ops::{Backend, Network};

use crate::checkpoint::Checkpoint;
use crate::estimate::Estimate;
use crate::events::{Control, EventSink, Summary};
use crate::image_io::{Picture, Size};
use crate::objective::{self, StyleObjective};
use crate::spec::RunSpec;
use crate::stages::Stage;
use crate::{Error, Result};

pub(crate) use opt::Opt;

/// Moves an objective once built (for example onto a device emulator in tests).
pub type Place<'a> = &'a dyn Fn(StyleObjective) -> objective::Result<StyleObjective>;

/// Called with the weights path right before the model is loaded, after the images are decoded (so
/// that a typo in an image path costs no download): a front end fetches missing weights here.
pub type BeforeWeights<'a> =
    &'a mut dyn FnMut(&Path) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// How a run is carried out, beside its specification.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Run even when the estimate exceeds the available memory.
    pub force: bool,
    /// The size of the thread pool the caller set up (for the run record; 0: rayon's current pool).
    pub threads: usize,
    /// See [`BeforeWeights`].
    pub before_weights: Option<BeforeWeights<'a>>,
    /// See [`Place`].
    pub place: Option<Place<'a>>,
    /// Style targets shared with other runs (see [`crate::StyleCache`]); `None`: computed here.
    pub style_cache: Option<&'a crate::StyleCache>,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("force", &self.force)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// A prepared run: inputs decoded at the sizes they are needed, the network built, the stages planned.
pub struct Run<'a> {
    spec: RunSpec,
    options: RunOptions<'a>,
    backend: Backend,
    inputs: inputs::Inputs,
    network: Option<Network>,
    stages: Vec<Stage>,
    estimate: Estimate,
    available: Option<u64>,
    resume: Option<(Checkpoint, PathBuf)>,
    resume_path: Option<PathBuf>,
    started: Instant,
    /// The output folder, held until the run is dropped.
    _lock: crate::guard::FolderLock,
}

impl std::fmt::Debug for Run<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("stages", &self.stages)
            .field("estimate", &self.estimate)
            .finish_non_exhaustive()
    }
}

impl<'a> Run<'a> {
    /// Prepares `spec`, or the run saved in `resume` (whose settings `spec` must then be, with only
    /// the changes a resumed run allows); notes go to `sink`.
    ///
    /// # Errors
    /// Every failure before the first iteration: a setting out of range, an output that cannot be
    /// written, an image or model that cannot be read, a size that does not fit in memory.
    pub fn prepare(
        spec: RunSpec,
        resume: Option<(Checkpoint, PathBuf)>,
        mut options: RunOptions<'a>,
        sink: &mut dyn EventSink,
    ) -> Result<Run<'a>> {
        let started = Instant::now();
        spec.validate().map_err(Error::Spec)?;
        inputs::check_outputs(&spec)?;
        crate::guard::check_outputs_are_not_inputs(&spec)?;
        let lock = crate::guard::FolderLock::acquire(&spec.out_dir)?;
        let backend = inputs::choose_backend(&spec, sink)?;
        let mut inputs = inputs::Inputs::decode(&spec)?;
        if let Some(hook) = options.before_weights.as_mut() {
            hook(&spec.weights).map_err(Error::Prepare)?;
        }
        let (model, network) = inputs.load_model(&spec, sink)?;
        let stages = crate::stages::plan(&spec, inputs.size).map_err(Error::Spec)?;
        inputs::check_sizes_fit(&network, &spec, &inputs, &stages)?;
        if let Some((c, path)) = &resume {
            let total = stages.last().expect("a plan has a stage").end;
            if c.iteration >= total {
                return Err(Error::Resume {
                    path: path.clone(),
                    reason: format!(
                        "the checkpoint is already at iteration {}, not below --iterations {total}: nothing to do (pass a larger --iterations to continue)",
                        c.iteration
                    ),
                });
            }
        }
        let last = stages.last().expect("a plan has a stage").size;
        let taps: Vec<&str> = spec.objective.layer_names().collect();
        let (h, w) = (last.height as usize, last.width as usize);
        let style = inputs.largest_style();
        let estimate = crate::estimate::estimate(&model, (h, w), style, spec.optimizer, &taps);
        let available = crate::estimate::available_memory();
        let sizes = (last, style);
        inputs::check_memory(&model, &spec, sizes, estimate, available, options.force)?;
        Ok(Run {
            spec,
            options,
            backend,
            inputs,
            network: Some(network),
            stages,
            estimate,
            available,
            resume_path: resume.as_ref().map(|(_, p)| p.clone()),
            resume,
            started,
            _lock: lock,
        })
    }

    /// The stages planned.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The estimate for the largest stage.
    pub fn estimate(&self) -> Estimate {
        self.estimate
    }

    /// Runs every stage, emitting events to `sink` and polling `control` between iterations, and
    /// writes the result, the run record and (when cancelled or asked for) a checkpoint.
    ///
    /// # Errors
    /// [`Error::Diverged`] after writing the last good image and the record; any failure of the
    /// objective, the optimizer, the outputs or the sink.
    pub fn execute(mut self, sink: &mut dyn EventSink, control: &Control) -> Result<Summary> {
        let mut live = self.first_stage()?;
        live.started(&self, sink)?;
        loop {
            live.stage_started(&self, sink)?;
            let end = live.iterate(&self, sink, control)?;
            if end == live::StageEnd::Done && live.index + 1 < self.stages.len() {
                live = self.next_stage(live)?;
            } else {
                return live.finish(&self, end, sink);
            }
        }
    }

    /// The objective of stage `index`: the content and style targets at that stage's sizes.
    fn objective(&mut self, index: usize) -> Result<StyleObjective> {
        let size = self.stages[index].size;
        let network = self.network.take().expect("the network is not in use");
        let t = self.inputs.targets(&self.spec, size);
        let style_images: Vec<objective::StyleImage<'_>> = t
            .styles
            .iter()
            .zip(&self.spec.style_blend)
            .enumerate()
            .map(|(i, (image, &weight))| objective::StyleImage {
                image: image.view(),
                weight,
                mask: t.style_masks.get(i).map(|m| m.view()),
                region: t.style_regions.get(i).map(|m| m.view()),
            })
            .collect();
        let cache = self
            .options
            .style_cache
            .map(|c| (c, crate::cache::key(&self.spec, size)));
        let cached = cache.as_ref().and_then(|(c, key)| c.get(key));
        let backend = self.backend.clone();
        let hit = cached.is_some();
        let obj = match cached {
            Some(targets) => StyleObjective::with_style_targets(
                network,
                backend,
                &self.spec.objective,
                t.content.view(),
                targets,
            ),
            None => StyleObjective::new(
                network,
                backend,
                &self.spec.objective,
                t.content.view(),
                &style_images,
            ),
        }
        .map_err(|source| Error::Targets {
            size,
            content: self.spec.content.clone(),
            source: Box::new(source),
        })?;
        if let Some((c, key)) = cache
            && !hit
        {
            c.put(key, obj.style_targets());
        }
        let mut obj = obj;
        if let Some(mask) = &t.content_mask {
            obj.set_content_mask(mask.view())?;
        }
        if let (Some((target, mask)), Some(t)) = (
            self.inputs.temporal(&self.spec, size),
            self.spec.temporal.as_ref(),
        ) {
            obj.set_temporal(target, mask, t.weight)?;
        }
        match self.options.place {
            Some(place) => Ok(place(obj)?),
            None => Ok(obj),
        }
    }

    fn threads(&self) -> usize {
        match self.options.threads {
            0 => rayon::current_num_threads(),
            n => n,
        }
    }

    /// The colour space and the content picture at `size`, when the content's colours are kept.
    fn colors_at(&self, size: Size) -> Option<(crate::color::ColorSpace, Picture)> {
        let space = match (self.spec.preserve_colors, self.spec.original_colors) {
            (true, _) => crate::color::ColorSpace::Yiq,
            (false, Some(space)) => space,
            (false, None) => return None,
        };
        Some((space, self.inputs.content.resized(size.width, size.height)))
    }
}

#[cfg(test)]
mod tests;
