//! Coarse-to-fine planning: the stages of a run (size and iterations of each) from
//! [`Scales`], and the global iteration at which each stage starts and ends.

use serde::{Deserialize, Serialize};

use crate::image_io::{MAX_SIDE, Size, scale_long_side};
use crate::spec::{RunSpec, Scales};

/// One stage of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// The image size of this stage (the working size for the last one).
    pub size: Size,
    /// The global iteration this stage starts at.
    pub start: usize,
    /// The global iteration it ends at (exclusive: `end − start` iterations).
    pub end: usize,
}

/// The stages of `spec` for the working size `working`: the long sides from [`Scales`], each with the
/// working size's aspect, the first with `spec.iterations` iterations and the others with
/// [`RunSpec::later_iterations`].
///
/// # Errors
/// A message naming `--scales` for a scale above the working size.
pub fn plan(spec: &RunSpec, working: Size) -> Result<Vec<Stage>, String> {
    let long = working.width.max(working.height);
    let mut sides: Vec<u32> = match &spec.scales {
        Scales::Single => Vec::new(),
        Scales::Auto { min } => auto_sides(long, *min),
        Scales::List(v) => {
            check_list(v)?;
            if let Some(&above) = v.iter().find(|&&s| s > long) {
                return Err(format!(
                    "--scales: {above} px is larger than the working size {working} (long side {long}; raise --max-size, or --upscale a small content image)"
                ));
            }
            v.iter().copied().filter(|&s| s < long).collect()
        }
    };
    sides.push(long);
    let mut stages = Vec::with_capacity(sides.len());
    let mut start = 0;
    for (i, side) in sides.into_iter().enumerate() {
        let n = if i == 0 {
            spec.iterations
        } else {
            spec.later_iterations()
        };
        let size = if side == long {
            working
        } else {
            scale_long_side(working.width, working.height, side)
        };
        stages.push(Stage {
            size,
            start,
            end: start + n,
        });
        start += n;
    }
    Ok(stages)
}

/// The long sides below `long` of `--scales auto:min`: `long/√2ᵏ` for k = 1, 2, … while at least
/// `min`, smallest first.
pub fn auto_sides(long: u32, min: u32) -> Vec<u32> {
    let mut sides = Vec::new();
    let mut k = 1;
    loop {
        let side = (f64::from(long) / std::f64::consts::SQRT_2.powi(k)).round() as u32;
        if side < min.max(1) || side >= long {
            break;
        }
        sides.push(side);
        k += 1;
    }
    sides.reverse();
    sides
}

/// Checks an explicit list of scales: not empty, each in 16..=[`MAX_SIDE`], strictly increasing.
///
/// # Errors
/// A message naming `--scales` and the offending value.
pub fn check_list(v: &[u32]) -> Result<(), String> {
    if v.is_empty() {
        return Err("--scales: no scale given".into());
    }
    if let Some(bad) = v.iter().find(|&&s| !(16..=MAX_SIDE).contains(&s)) {
        return Err(format!(
            "--scales: {bad} px is not a usable long side (16 to {MAX_SIDE} pixels)"
        ));
    }
    if let Some(w) = v.windows(2).find(|w| w[1] <= w[0]) {
        let what = if w[1] == w[0] {
            "is given twice"
        } else {
            "comes after a larger scale"
        };
        return Err(format!(
            "--scales: {} {what}: list the long sides once each, smallest first (e.g. 256,512,1024)",
            w[1]
        ));
    }
    Ok(())
}

/// The index of the stage that global iteration `iteration` belongs to: the stage whose range holds
/// it, or the last stage at or after its end.
pub fn stage_of(stages: &[Stage], iteration: usize) -> usize {
    stages
        .iter()
        .position(|s| iteration < s.end)
        .unwrap_or(stages.len().saturating_sub(1))
}

#[cfg(test)]
mod tests;
