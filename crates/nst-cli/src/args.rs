//! From `nst stylize`'s flags to the engine's [`RunSpec`]: a new run's settings (defaults: the course
//! program's), or a checkpoint's settings with the few flags a resumed run may change.

use std::path::{Path, PathBuf};

use nst_engine::image_io::Size;
use nst_engine::network::parse_layers;
use nst_engine::spec::check_working_size;
use nst_engine::{InitKind, ObjectiveSpec, OptimizerKind, Preset, RunSpec};

use crate::cli::StylizeArgs;
use crate::download::{DEFAULT_DIR, VGG19_FILE_NAME};

/// The specification of a new run from the flags; defaults are the course program's.
///
/// # Errors
/// A message naming the flag for missing or contradicting flags and values out of range.
pub fn from_args(a: &StylizeArgs) -> Result<RunSpec, String> {
    let content = a
        .content
        .clone()
        .ok_or("--content is required (or --resume a checkpoint)")?;
    if a.style.is_empty() {
        return Err("--style is required (give it once per style image)".into());
    }
    let mut s = RunSpec::new(
        content,
        a.style.clone(),
        a.weights.clone().unwrap_or_else(default_weights),
    );
    // The preset's settings first; every flag given overrides its value.
    a.preset.unwrap_or(Preset::Seed).apply(&mut s);
    if !a.style_blend.is_empty() {
        s.style_blend = a.style_blend.clone();
    }
    override_objective(&mut s.objective, a)?;
    set(&mut s.optimizer, a.optimizer);
    if s.optimizer == OptimizerKind::Lbfgs && a.learning_rate.is_some() {
        return Err(
            "--learning-rate applies to --optimizer adam; L-BFGS chooses its steps by line search"
                .into(),
        );
    }
    set(&mut s.learning_rate, a.learning_rate);
    set(&mut s.init, a.init);
    if a.noise_ratio.is_some() && (s.init != InitKind::Noise || a.init_image.is_some()) {
        return Err("--noise-ratio applies only to --init noise".into());
    }
    if a.init.is_some() && a.init_image.is_some() {
        return Err("--init and --init-image contradict each other: give one".into());
    }
    set(&mut s.noise_ratio, a.noise_ratio);
    s.init_image = a.init_image.clone();
    s.size = a
        .size
        .as_deref()
        .map(str::parse::<Size>)
        .transpose()
        .map_err(|e| format!("--size: {e}"))?;
    if let Some(size) = s.size {
        check_working_size(size).map_err(|e| format!("--size {e}"))?;
    }
    set(&mut s.max_size, a.max_size);
    check_iterations(a.iterations)?;
    set(&mut s.iterations, a.iterations);
    set(&mut s.print_every, a.print_every);
    set(&mut s.seed, a.seed);
    s.upscale = a.upscale;
    set(&mut s.pooling, a.pooling);
    colors_and_masks(&mut s, a)?;
    set(&mut s.device, a.device);
    outputs(&mut s, a);
    set(&mut s.checkpoint_every, a.checkpoint_every);
    set(&mut s.scales, a.scales.clone());
    if a.scale_iterations.is_some() {
        s.scale_iterations = a.scale_iterations;
    }
    s.style_scale = a.style_scale.clone();
    if a.average.is_some() {
        s.average = a.average;
    }
    set(&mut s.bit_depth, a.bit_depth);
    s.original_colors = original_colors(a);
    s.validate()?;
    Ok(s)
}

/// `*field = v` when the flag was given.
fn set<T>(field: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *field = v;
    }
}

/// Colour preservation, the masks of spatial control, and the style cost's kind.
fn colors_and_masks(s: &mut RunSpec, a: &StylizeArgs) -> Result<(), String> {
    use crate::cli::PreserveColors;
    match a.preserve_colors {
        Some(PreserveColors::Luminance) => s.preserve_colors = true,
        Some(PreserveColors::Match) => {
            s.preserve_colors = false;
            s.color_match = Some(
                a.color_match
                    .unwrap_or(nst_engine::spec::ColorMatchKind::Pca),
            );
        }
        None => {}
    }
    if a.color_match.is_some() && s.color_match.is_none() {
        return Err("--color-match applies to --preserve-colors match".into());
    }
    if !a.style_mask.is_empty() {
        s.style_masks = a.style_mask.clone();
    }
    if !a.style_image_mask.is_empty() {
        s.style_image_masks = a.style_image_mask.clone();
    }
    if a.content_mask.is_some() {
        s.content_mask = a.content_mask.clone();
    }
    set(&mut s.objective.style_loss, a.style_loss);
    set(&mut s.objective.normalize_gradients, a.normalize_gradients);
    Ok(())
}

/// The output folder, the result and the front end's files.
fn outputs(s: &mut RunSpec, a: &StylizeArgs) {
    s.out_dir = a.out_dir.clone().unwrap_or_else(|| PathBuf::from("output"));
    s.output = a
        .output
        .clone()
        .unwrap_or_else(|| s.out_dir.join("result.png"));
    s.metrics = a.metrics.clone();
    s.animate = a.animate.clone();
    s.plot = a.plot.clone();
}

/// `--original-colors` in `--color-space` (YUV by default, as neural-style's `-original_colors`).
fn original_colors(a: &StylizeArgs) -> Option<nst_engine::color::ColorSpace> {
    a.original_colors
        .then(|| a.color_space.unwrap_or(nst_engine::color::ColorSpace::Yuv))
}

/// The layers and weights of the cost given by flags, over the preset's.
fn override_objective(o: &mut ObjectiveSpec, a: &StylizeArgs) -> Result<(), String> {
    if let Some(text) = &a.content_layers {
        o.content_layers = parse_layers("--content-layers", text).map_err(|e| e.to_string())?;
    }
    if let Some(text) = &a.style_layers {
        o.style_layers = parse_layers("--style-layers", text).map_err(|e| e.to_string())?;
    }
    set(&mut o.alpha, a.alpha);
    set(&mut o.beta, a.beta);
    set(&mut o.tv_weight, a.tv_weight);
    Ok(())
}

/// A checkpoint's settings with the flags a resumed run may change applied (iterations, print
/// interval, outputs, checkpoints, device, weights path). Without `--out-dir`, the run continues in
/// the folder of the checkpoint that was named (`checkpoint_dir`), not in the folder it was written
/// in, and an output that was inside that folder moves with it: a copied checkpoint never writes
/// into the run it was copied from.
///
/// # Errors
/// A message naming the first flag that would change the optimization itself.
pub fn resumed(
    mut spec: RunSpec,
    a: &StylizeArgs,
    checkpoint_dir: &Path,
) -> Result<RunSpec, String> {
    refuse_fixed_flags(a)?;
    check_iterations(a.iterations)?;
    if let Some(n) = a.iterations {
        spec.iterations = n;
    }
    if let Some(k) = a.print_every {
        spec.print_every = k;
    }
    if let Some(d) = &a.out_dir {
        spec.out_dir = d.clone();
        if a.output.is_none() {
            spec.output = d.join("result.png");
        }
    } else {
        let here = if checkpoint_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            checkpoint_dir
        };
        if let Ok(inside) = spec.output.strip_prefix(&spec.out_dir) {
            spec.output = here.join(inside);
        }
        spec.out_dir = here.to_owned();
    }
    if let Some(o) = &a.output {
        spec.output = o.clone();
    }
    if a.metrics.is_some() {
        spec.metrics = a.metrics.clone();
    }
    if a.animate.is_some() {
        spec.animate = a.animate.clone();
    }
    if a.plot.is_some() {
        spec.plot = a.plot.clone();
    }
    if let Some(k) = a.checkpoint_every {
        spec.checkpoint_every = k;
    }
    if let Some(d) = a.device {
        spec.device = d;
    }
    if let Some(w) = &a.weights {
        spec.weights = w.clone();
    }
    if let Some(b) = a.bit_depth {
        spec.bit_depth = b;
    }
    if a.original_colors {
        spec.original_colors = original_colors(a);
    }
    spec.validate()?;
    Ok(spec)
}

/// A resumed run takes the checkpoint's settings: a flag that would change the optimization is an error.
fn refuse_fixed_flags(a: &StylizeArgs) -> Result<(), String> {
    let fixed: [(&str, bool); 30] = [
        ("--content", a.content.is_some()),
        ("--style", !a.style.is_empty()),
        ("--style-blend", !a.style_blend.is_empty()),
        ("--optimizer", a.optimizer.is_some()),
        ("--learning-rate", a.learning_rate.is_some()),
        ("--alpha", a.alpha.is_some()),
        ("--beta", a.beta.is_some()),
        ("--tv-weight", a.tv_weight.is_some()),
        ("--noise-ratio", a.noise_ratio.is_some()),
        ("--init", a.init.is_some()),
        ("--init-image", a.init_image.is_some()),
        ("--seed", a.seed.is_some()),
        ("--max-size", a.max_size.is_some()),
        ("--size", a.size.is_some()),
        ("--upscale", a.upscale),
        ("--pooling", a.pooling.is_some()),
        ("--content-layers", a.content_layers.is_some()),
        ("--style-layers", a.style_layers.is_some()),
        ("--preserve-colors", a.preserve_colors.is_some()),
        ("--color-match", a.color_match.is_some()),
        ("--style-mask", !a.style_mask.is_empty()),
        ("--style-image-mask", !a.style_image_mask.is_empty()),
        ("--content-mask", a.content_mask.is_some()),
        ("--style-loss", a.style_loss.is_some()),
        ("--normalize-gradients", a.normalize_gradients.is_some()),
        ("--scales", a.scales.is_some()),
        ("--scale-iterations", a.scale_iterations.is_some()),
        ("--style-scale", !a.style_scale.is_empty()),
        ("--average", a.average.is_some()),
        ("--preset", a.preset.is_some()),
    ];
    if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
        return Err(format!(
            "{flag} cannot be changed when resuming: the checkpoint's settings are used (start a new run to change it)"
        ));
    }
    Ok(())
}

/// `--iterations 0` would only write the start image under the result's name: refuse it.
fn check_iterations(n: Option<usize>) -> Result<(), String> {
    if n == Some(0) {
        return Err("--iterations must be at least 1 (--init content writes the content image as the start)".into());
    }
    Ok(())
}

/// `pretrained-model/imagenet-vgg-verydeep-19.mat`.
pub fn default_weights() -> PathBuf {
    Path::new(DEFAULT_DIR).join(VGG19_FILE_NAME)
}

#[cfg(test)]
mod tests;
