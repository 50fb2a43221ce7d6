//! What a run reads before it iterates: the output checks, the device, the images (decoded once and
//! kept only at the sizes the stages need), the model and the memory check.

use std::path::Path;

use ndarray::{Array2, Array3};
use tensor_ops::{Backend, Network};
use vgg_weights::{LoadOptions, PoolMethod, VggModel};

use crate::estimate::{self, Estimate, human_bytes};
use crate::events::{Event, EventSink};
use crate::image_io::{self, Picture, Size};
use crate::render::luminance;
use crate::spec::{DeviceKind, InitKind, PoolingKind, RunSpec};
use crate::{Error, IMAGENET_MEAN, Result};

/// Everything that can fail cheaply about the outputs fails now, before any long work.
pub(super) fn check_outputs(spec: &RunSpec) -> Result<()> {
    image_io::output_format(&spec.output)?;
    check_parent_writable(&spec.output)?;
    image_io::check_writable_dir(&spec.out_dir).map_err(|source| Error::OutDir {
        path: spec.out_dir.clone(),
        source,
    })
}

/// Checks that the folder of `path` accepts new files.
fn check_parent_writable(path: &Path) -> Result<()> {
    image_io::check_parent_writable(path).map_err(|source| Error::Unwritable {
        path: path.to_owned(),
        source,
    })
}

/// The backend for `spec.device`; `auto` falls back to the CPU and says why.
pub(super) fn choose_backend(spec: &RunSpec, sink: &mut dyn EventSink) -> Result<Backend> {
    let note = |sink: &mut dyn EventSink, text: String| {
        sink.event(&Event::Note(text)).map_err(Error::Sink)
    };
    let cpu_only = spec.needs_cpu();
    match spec.device {
        DeviceKind::Cpu => Ok(Backend::Cpu),
        DeviceKind::Cuda if cpu_only.is_some() => Err(Error::Device(format!(
            "--device cuda: {} runs on the CPU only (the GPU kernels compute the plain Gram and content costs); use --device cpu",
            cpu_only.unwrap_or_default()
        ))),
        DeviceKind::Auto if cpu_only.is_some() => {
            note(
                sink,
                format!(
                    "device: cpu (--device auto: {} runs on the CPU only)",
                    cpu_only.unwrap_or_default()
                ),
            )?;
            Ok(Backend::Cpu)
        }
        DeviceKind::Cuda => match Backend::cuda() {
            Ok(b) => {
                note(sink, format!("device: {}", b.describe()))?;
                Ok(b)
            }
            Err(tensor_ops::Error::NotCompiled { feature }) => Err(Error::Device(format!(
                "--device cuda: this nst was built without the `{feature}` feature; rebuild with `cargo build --release -p nst-cli --features {feature}` or use --device cpu"
            ))),
            Err(other) => Err(Error::Device(format!(
                "--device cuda: no usable GPU: {other}"
            ))),
        },
        DeviceKind::Auto => match Backend::cuda() {
            Ok(b) => {
                note(sink, format!("device: {} (--device auto)", b.describe()))?;
                Ok(b)
            }
            Err(e) => {
                note(sink, format!("device: cpu (--device auto: {e})"))?;
                Ok(Backend::Cpu)
            }
        },
    }
}

/// The decoded inputs: the content at the working size, each style image at the largest size a stage
/// needs, the start picture, and (once the model is read) its mean pixel.
pub(super) struct Inputs {
    /// The content image as decoded (its size only).
    pub(super) content_size: Size,
    /// The working size.
    pub(super) size: Size,
    /// A note about the working size (e.g. the content is smaller than `max_size`).
    pub(super) size_note: Option<String>,
    /// The content at the working size.
    pub(super) content: Picture,
    /// The style images at their largest needed size.
    pub(super) styles: Vec<Picture>,
    /// The start picture (`init_image`, or the first style for `init = style`), as decoded.
    pub(super) init: Option<Picture>,
    /// The temporal term's previous result and previous content frame, at the working size.
    pub(super) temporal: Option<(Picture, Picture)>,
    /// The masks of spatial control.
    pub(super) masks: super::masks::Masks,
    /// The model's mean pixel.
    pub(super) mean: [f32; 3],
}

/// What a stage's objective is built from: the content and style tensors and the masks at the stage's
/// sizes.
pub(super) struct StageTargets {
    /// The content at the stage's size.
    pub(super) content: Array3<f32>,
    /// Each style image at its size for the stage.
    pub(super) styles: Vec<Array3<f32>>,
    /// Each style's mask on the stage's grid (empty: none).
    pub(super) style_masks: Vec<Array2<f32>>,
    /// Each style's region on its own grid (empty: none).
    pub(super) style_regions: Vec<Array2<f32>>,
    /// The content mask on the stage's grid.
    pub(super) content_mask: Option<Array2<f32>>,
}

impl Inputs {
    /// `(height, width)` of the style image with the most pixels at its working size (`(0, 0)`
    /// without one).
    pub(super) fn largest_style(&self) -> (usize, usize) {
        self.styles
            .iter()
            .map(|p| (p.height() as usize, p.width() as usize))
            .max_by_key(|&(h, w)| h * w)
            .unwrap_or((0, 0))
    }

    /// Decodes the images named in `spec`.
    pub(super) fn decode(spec: &RunSpec) -> Result<Inputs> {
        let image_at = |flag, path: &Path, size: Size| {
            image_io::load_at(path, size).map_err(|source| Error::Image { flag, source })
        };
        // The sizes come from the headers, so that a size past the limits is refused before any
        // decoding or resizing.
        let (cw, ch) = image_io::dimensions(&spec.content).map_err(|source| Error::Image {
            flag: "--content",
            source,
        })?;
        let content_size = Size {
            width: cw,
            height: ch,
        };
        let (size, size_note) =
            image_io::working_size(cw, ch, spec.size_rule()).map_err(Error::Spec)?;
        crate::spec::check_working_size(size).map_err(|e| {
            Error::Spec(format!(
                "the working size of --content {} ({cw}x{ch}) with --max-size {}{}: {e}; choose a smaller --max-size",
                spec.content.display(),
                spec.max_size,
                if spec.upscale { " --upscale" } else { "" }
            ))
        })?;
        // Only working-size copies are kept, decoded straight into that size where the image is 8-bit
        // RGB: a phone photo is hundreds of MB as f32 at full size.
        let content = image_at("--content", &spec.content, size)?;
        let long = size.width.max(size.height);
        let styles = spec
            .styles
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (w, h) = image_io::dimensions(p).map_err(|source| Error::Image {
                    flag: "--style",
                    source,
                })?;
                let ss = style_size((w, h), long, spec.style_scale_of(i));
                crate::spec::check_working_size(ss).map_err(|e| {
                    Error::Spec(format!(
                        "--style {} would be resized to {ss} (--style-scale {}): {e}",
                        p.display(),
                        spec.style_scale_of(i),
                    ))
                })?;
                Ok((image_at("--style", p, ss)?, (w, h)))
            })
            .collect::<Result<Vec<_>>>()?;
        let masks = super::masks::Masks::decode(spec, (cw, ch), size, &styles)?;
        let mut styles: Vec<Picture> = styles.into_iter().map(|(p, _)| p).collect();
        let maps = match spec.color_match {
            Some(method) => super::masks::match_colors(
                &mut styles,
                (&content, &spec.content),
                method,
                &spec.styles,
            )?,
            None => Vec::new(),
        };
        let init = match (&spec.init_image, spec.init) {
            (Some(p), _) => Some(image_at("--init-image", p, size)?),
            // Decoded again rather than taken from `styles`, which holds a copy already scaled for the
            // Gram targets: one resize from the original, as `init_image` does.
            // With colour matching, the start is matched like the style it comes from.
            (None, InitKind::Style) => {
                let mut p = image_at("--style", &spec.styles[0], size)?;
                if let Some(map) = maps.first() {
                    super::masks::apply(map, &mut p);
                }
                Some(p)
            }
            _ => None,
        };
        let temporal = match &spec.temporal {
            Some(t) => Some((
                image_at("the temporal term's previous result", &t.previous, size)?,
                image_at(
                    "the temporal term's previous frame",
                    &t.previous_content,
                    size,
                )?,
            )),
            None => None,
        };
        Ok(Inputs {
            content_size,
            size,
            size_note,
            content,
            styles,
            init,
            temporal,
            masks,
            mean: IMAGENET_MEAN,
        })
    }

    /// Reads the model up to the deepest layer the costs use, keeps its mean pixel and builds the
    /// network with the pooling `spec` asks for.
    pub(super) fn load_model(
        &mut self,
        spec: &RunSpec,
        sink: &mut dyn EventSink,
    ) -> Result<(VggModel, Network)> {
        let last = crate::network::last_vgg_layer(spec.objective.layer_names());
        let model = vgg_weights::load(&spec.weights, &LoadOptions { last_layer: last }).map_err(
            |source| match source {
                // The layer was named by a flag, not by the file: blame the flag.
                vgg_weights::Error::UnknownLayer {
                    name, available, ..
                } => {
                    let flag = if spec.objective.style_layers.iter().any(|l| l.name == name) {
                        "--style-layers"
                    } else {
                        "--content-layers"
                    };
                    Error::Spec(format!(
                        "{flag}: the model {} has no layer `{name}`; its layers are: {}",
                        spec.weights.display(),
                        available.join(", ")
                    ))
                }
                source => Error::Weights {
                    path: spec.weights.clone(),
                    source,
                },
            },
        )?;
        match model.mean_rgb {
            Some(m) => self.mean = m,
            None => sink
                .event(&Event::Note(
                    "the model has no mean pixel; using the ImageNet mean (123.68, 116.779, 103.939)".into(),
                ))
                .map_err(Error::Sink)?,
        }
        if let Some(note) = &self.size_note {
            sink.event(&Event::Note(note.clone()))
                .map_err(Error::Sink)?;
        }
        let pooling = match spec.pooling {
            PoolingKind::Avg => Some(PoolMethod::Avg),
            PoolingKind::Max => Some(PoolMethod::Max),
            PoolingKind::File => None,
        };
        let network =
            crate::network::build_network(&model, pooling).map_err(|source| Error::Network {
                path: spec.weights.clone(),
                source: Box::new(source),
            })?;
        Ok((model, network))
    }

    /// The content tensor at `size` and each style tensor at its size for a stage of long side
    /// `size`'s, luminance only when `preserve_colors`.
    pub(super) fn targets(&self, spec: &RunSpec, size: Size) -> StageTargets {
        use super::masks::mask_at;
        let long = size.width.max(size.height);
        let content = self.tensor(spec, &self.content, size);
        let style_sizes: Vec<Size> = self
            .styles
            .iter()
            .enumerate()
            .map(|(i, s)| style_size((s.width(), s.height()), long, spec.style_scale_of(i)))
            .collect();
        let styles = self
            .styles
            .iter()
            .zip(&style_sizes)
            .map(|(s, &ss)| self.tensor(spec, s, ss))
            .collect();
        let m = &self.masks;
        StageTargets {
            content,
            styles,
            style_masks: m.styles.iter().map(|p| mask_at(p, size)).collect(),
            style_regions: m
                .regions
                .iter()
                .zip(&style_sizes)
                .map(|(p, &ss)| mask_at(p, ss))
                .collect(),
            content_mask: m.content.as_ref().map(|p| mask_at(p, size)),
        }
    }

    /// The temporal term's target and mask at `size` (see [`crate::Temporal`]), when there is one.
    pub(super) fn temporal(
        &self,
        spec: &RunSpec,
        size: Size,
    ) -> Option<(Array3<f32>, Array2<f32>)> {
        let ((previous, before), t) = (self.temporal.as_ref()?, spec.temporal.as_ref()?);
        let target = self.tensor(spec, previous, size);
        let (now, before) = (
            self.content.resized(size.width, size.height),
            before.resized(size.width, size.height),
        );
        let mask = Array2::from_shape_fn((size.height as usize, size.width as usize), |(y, x)| {
            let (a, b) = (
                now.pixels.get_pixel(x as u32, y as u32).0,
                before.pixels.get_pixel(x as u32, y as u32).0,
            );
            let change = (0..3)
                .map(|c| (a[c] - b[c]).abs() * 255.0)
                .fold(0.0_f32, f32::max);
            if change <= t.threshold { 1.0 } else { 0.0 }
        });
        Some((target, mask))
    }

    /// `p` resized to `size`, as a mean-subtracted tensor (gray with `preserve_colors`).
    pub(super) fn tensor(&self, spec: &RunSpec, p: &Picture, size: Size) -> Array3<f32> {
        let p = p.resized(size.width, size.height);
        let p = if spec.preserve_colors {
            luminance(&p)
        } else {
            p
        };
        p.to_tensor(self.mean)
    }
}

/// The size of a style image for a stage of long side `long`: its long side `scale·long`, aspect kept.
fn style_size((width, height): (u32, u32), long: u32, scale: f32) -> Size {
    let side = ((f64::from(long) * f64::from(scale)).round() as u32).max(1);
    image_io::scale_long_side(width, height, side)
}

/// Refuses a run whose estimate exceeds the available memory, with the largest size that would fit,
/// unless forced; when forced, asks the allocator for the estimate once so that a refusal is an error
/// now rather than an abort later.
pub(super) fn check_memory(
    model: &VggModel,
    spec: &RunSpec,
    (size, style): (Size, (usize, usize)),
    est: Estimate,
    available: Option<u64>,
    force: bool,
) -> Result<()> {
    let (h, w) = (size.height as usize, size.width as usize);
    if let Some(avail) = available
        && est.peak_bytes > avail
        && !force
    {
        let taps: Vec<&str> = spec.objective.layer_names().collect();
        let fitting = estimate::largest_fitting(model, (h, w), style, spec.optimizer, &taps, avail);
        let hint = match fitting {
            Some((fh, fw)) => format!(
                "the largest size that would fit is about {fw}x{fh} (--max-size {})",
                fw.max(fh)
            ),
            None => "no useful size would fit".into(),
        };
        return Err(Error::TooLarge(format!(
            "working size {size} needs about {} but only {} is available: {hint}, or pass --force to try anyway",
            human_bytes(est.peak_bytes),
            human_bytes(avail)
        )));
    }
    // Forced past the estimate: no probe, since the estimate is what the user overrides. Within it, ask
    // the allocator once, so that a size it refuses outright is an error now rather than an abort later.
    if force && available.is_none_or(|a| est.peak_bytes <= a) {
        estimate::reserve_check(est.peak_bytes).map_err(|e| {
            Error::TooLarge(format!(
                "--force: working size {size} needs about {}, and the system refuses to reserve that much ({e}); choose a smaller --size or --max-size",
                human_bytes(est.peak_bytes)
            ))
        })?;
    }
    Ok(())
}

/// Checks every image of every stage (the content at the stage's size, each style at its size) against
/// the smallest input the network takes up to its deepest tapped layer, before any target is computed.
///
/// # Errors
/// [`Error::Spec`] naming the image, its flag, the size it would have, and what would work.
pub(super) fn check_sizes_fit(
    network: &Network,
    spec: &RunSpec,
    inputs: &Inputs,
    stages: &[crate::Stage],
) -> Result<()> {
    let Some(last) = spec
        .objective
        .layer_names()
        .filter_map(|n| network.index_of(n))
        .max()
    else {
        return Ok(()); // an unknown layer is the objective's error, with the list of layers
    };
    let fits = |s: Size| {
        network
            .shapes(
                tensor_ops::Shape {
                    channels: 3,
                    height: s.height as usize,
                    width: s.width as usize,
                },
                last,
            )
            .is_ok()
    };
    let min = smallest_square(&fits);
    let layer = network.layers()[last].name().to_owned();
    for (k, stage) in stages.iter().enumerate() {
        let where_ = if stages.len() > 1 {
            format!(" in stage {} of --scales", k + 1)
        } else {
            String::new()
        };
        if !fits(stage.size) {
            return Err(Error::Spec(format!(
                "--content {}: the working size {}{where_} is too small for the network, which needs at least {min}x{min} pixels up to `{layer}`; use a larger --max-size (with --upscale for a small image){}",
                spec.content.display(),
                stage.size,
                if stages.len() > 1 {
                    ", or a larger smallest --scales"
                } else {
                    ""
                }
            )));
        }
        let long = stage.size.width.max(stage.size.height);
        for (i, (p, s)) in spec.styles.iter().zip(&inputs.styles).enumerate() {
            let ss = style_size((s.width(), s.height()), long, spec.style_scale_of(i));
            if !fits(ss) {
                return Err(Error::Spec(format!(
                    "--style {}: at the working size {}{where_} it is resized to {ss} (its long side {} × the working size's), too small for the network, which needs at least {min}x{min} pixels up to `{layer}`; use a less elongated style image, a larger --style-scale, or a larger --max-size",
                    p.display(),
                    stage.size,
                    spec.style_scale_of(i)
                )));
            }
        }
    }
    Ok(())
}

/// The smallest square side that `fits` (by doubling, then bisection); 0 when none up to 65536 does.
fn smallest_square(fits: &dyn Fn(Size) -> bool) -> u32 {
    let square = |n| Size {
        width: n,
        height: n,
    };
    let mut hi = 1;
    while !fits(square(hi)) {
        if hi >= 65_536 {
            return 0;
        }
        hi *= 2;
    }
    let mut lo = hi / 2; // does not fit (or 0)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(square(mid)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}
