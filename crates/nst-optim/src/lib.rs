//! Adam and L-BFGS over a flat `f32` parameter vector, with a state that resumes bit for bit.
//!
//! The optimizers see only a `&mut [f32]` and an [`Objective`] that returns the value and the
//! gradient together (one forward + backward pass in neural style transfer). They never see a tensor.
//!
//! - [`Adam`] (Kingma & Ba 2015): [`AdamConfig::kingma_ba_2015`] is Algorithm 1,
//!   [`AdamConfig::tensorflow_v1`] reproduces TensorFlow 1's `tf.train.AdamOptimizer`.
//! - [`Lbfgs`] (Nocedal & Wright 2006, Alg. 7.4–7.5) with a strong-Wolfe line search (Alg. 3.5–3.6).
//! - [`minimize`] runs either, reporting each iteration to a callback that can stop the run.
//!
//! Both implement [`Optimizer`], whose `state()` can be serialized with serde and restored with
//! `from_state()`: a run saved, restored and continued gives **bit-identical** iterates to one that
//! never stopped. Floats in the state are written so that they round-trip exactly even through
//! `serde_json` without its `float_roundtrip` feature: decimal strings for scalars; for vectors,
//! the base64 of their little-endian bytes (about 5.3 bytes per `f32`; raw bytes in binary
//! formats). The caller saves `x` itself (bit for bit, e.g. as raw `f32`).
//!
//! No printing and no logging: progress goes to the callback of [`minimize`].
//!
//! Stopping and failure, in short: [`minimize`] stops on `max_iterations`, on a tolerance
//! ([`Convergence`], L-BFGS only), on the callback's [`ControlFlow::Break`], or with
//! [`StopReason::NoDecrease`] when L-BFGS's line search finds no decrease even along steepest
//! descent (the `f32` noise floor, or a wrong gradient). An objective error
//! ([`OptimError::Objective`]) or a non-finite value or gradient at the current point
//! ([`OptimError::NonFinite`]) is returned as an error. In every case `x` is left at the last
//! accepted iterate, so the caller can keep the last good image.
//!
//! ## Features
//! None.
//!
//! # Examples
//! ```
//! use std::convert::Infallible;
//! use std::ops::ControlFlow;
//! use approx::assert_abs_diff_eq;
//! use nst_optim::{Lbfgs, LbfgsConfig, Objective, StopReason, minimize};
//!
//! /// f(x) = Σ (x_i − i)², minimum at x_i = i.
//! struct Bowl;
//! impl Objective for Bowl {
//!     type Error = Infallible;
//!     fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Infallible> {
//!         let mut f = 0.0;
//!         for (i, (&xi, g)) in x.iter().zip(grad.iter_mut()).enumerate() {
//!             let d = f64::from(xi) - i as f64;
//!             f += d * d;
//!             *g = (2.0 * d) as f32;
//!         }
//!         Ok(f)
//!     }
//! }
//!
//! let mut x = vec![0.0_f32; 4];
//! let mut opt = Lbfgs::new(LbfgsConfig::default())?;
//! let report = minimize(&mut opt, &mut x, &mut Bowl, 50, |_| ControlFlow::Continue(())).unwrap();
//! assert!(matches!(report.stop, StopReason::Converged(_)));
//! assert_abs_diff_eq!(x.as_slice(), [0.0_f32, 1.0, 2.0, 3.0].as_slice(), epsilon = 1e-5);
//! # Ok::<(), nst_optim::Error>(())
//! ```

#![warn(missing_docs)]

mod adam;
mod exact;
mod lbfgs;

use std::ops::ControlFlow;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use adam::{Adam, AdamConfig, AdamForm, AdamState, AdamStepScalars};
pub use lbfgs::{FirstStep, Lbfgs, LbfgsConfig, LbfgsState, LineSearchConfig};

/// A differentiable function of a flat `f32` vector, evaluated with its gradient in one call.
///
/// In neural style transfer this is one forward and one backward pass through the network, with the
/// pixels of the generated image as `x`. `value_and_grad` puts `∂f/∂x`
/// into `grad` (same length as `x`) and returns `f(x)`. The optimizers in this crate hand `grad`
/// over **zero-filled**, so an objective may either overwrite it or add its terms into it (as
/// `nst-costs`' `*_accumulate` functions do); either way no value from an earlier call can leak in.
///
/// # Examples
/// A sum of two terms, each adding its gradient into `grad`:
/// ```
/// use std::convert::Infallible;
/// use std::ops::ControlFlow;
/// use approx::assert_abs_diff_eq;
/// use nst_optim::{Lbfgs, LbfgsConfig, Objective, minimize};
///
/// /// f(x) = Σ xᵢ² + Σ (xᵢ − 1)², minimum at xᵢ = ½.
/// struct TwoTerms;
/// impl Objective for TwoTerms {
///     type Error = Infallible;
///     fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Infallible> {
///         let mut f = 0.0;
///         for center in [0.0, 1.0] {
///             for (&xi, g) in x.iter().zip(grad.iter_mut()) {
///                 let d = f64::from(xi) - center;
///                 f += d * d;
///                 *g += (2.0 * d) as f32; // adds: `grad` arrives zeroed
///             }
///         }
///         Ok(f)
///     }
/// }
///
/// let mut x = vec![3.0_f32, -2.0];
/// let mut opt = Lbfgs::new(LbfgsConfig::default())?;
/// minimize(&mut opt, &mut x, &mut TwoTerms, 20, |_| ControlFlow::Continue(())).unwrap();
/// assert_abs_diff_eq!(x.as_slice(), [0.5_f32, 0.5].as_slice(), epsilon = 1e-5);
/// # Ok::<(), nst_optim::Error>(())
/// ```
pub trait Objective {
    /// The objective's own error, propagated as [`OptimError::Objective`].
    ///
    /// Any type works. For `?` to turn an [`OptimError`] into `anyhow::Error` or
    /// `Box<dyn std::error::Error + Send + Sync>`, it must be `Debug + Display + Send + Sync +
    /// 'static`: a `thiserror` enum, [`std::convert::Infallible`] and `anyhow::Error` all are.
    type Error;

    /// `f(x)`, with `∂f/∂x` written (or added) into the zero-filled `grad`.
    ///
    /// # Errors
    /// Whatever the objective can fail with.
    fn value_and_grad(&mut self, x: &[f32], grad: &mut [f32]) -> Result<f64, Self::Error>;
}

/// An iterative minimizer whose whole state can be saved and restored.
///
/// # Examples
/// Save, restore and continue: the iterates are bit-identical to an uninterrupted run.
/// ```
/// use std::convert::Infallible;
/// use nst_optim::{Lbfgs, LbfgsConfig, Objective, Optimizer};
///
/// struct Quartic;
/// impl Objective for Quartic {
///     type Error = Infallible;
///     fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Infallible> {
///         let mut f = 0.0;
///         for (&xi, gi) in x.iter().zip(g.iter_mut()) {
///             let d = f64::from(xi) - 0.5;
///             f += d.powi(4) + d * d;
///             *gi = (4.0 * d.powi(3) + 2.0 * d) as f32;
///         }
///         Ok(f)
///     }
/// }
///
/// let start = [3.0_f32, -2.0, 1.0];
/// let (mut x_a, mut a) = (start, Lbfgs::new(LbfgsConfig::default())?);
/// for _ in 0..6 {
///     a.step(&mut x_a, &mut Quartic).unwrap();
/// }
///
/// let (mut x_b, mut b) = (start, Lbfgs::new(LbfgsConfig::default())?);
/// for _ in 0..3 {
///     b.step(&mut x_b, &mut Quartic).unwrap();
/// }
/// let saved = serde_json::to_string(&b.state()).unwrap(); // save x_b too, bit for bit
/// let mut c = Lbfgs::from_state(serde_json::from_str(&saved).unwrap())?;
/// for _ in 0..3 {
///     c.step(&mut x_b, &mut Quartic).unwrap();
/// }
/// assert_eq!(x_a.map(f32::to_bits), x_b.map(f32::to_bits));
/// assert_eq!(a.evaluations(), c.evaluations());
/// # Ok::<(), nst_optim::Error>(())
/// ```
pub trait Optimizer {
    /// Everything needed to continue bit-identically: serialize it with serde.
    type State: Serialize + DeserializeOwned + Clone;

    /// One iteration from `x`, updating `x` in place.
    ///
    /// On every error `x` is left at the last accepted iterate (bit for bit).
    ///
    /// # Errors
    /// See [`OptimError`].
    fn step<O: Objective>(
        &mut self,
        x: &mut [f32],
        objective: &mut O,
    ) -> Result<StepReport, OptimError<O::Error>>;

    /// A snapshot of the state, for saving.
    fn state(&self) -> Self::State;

    /// Rebuilds an optimizer from a saved [`Optimizer::state`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] or [`Error::InvalidState`] when the state was tampered with or is
    /// inconsistent.
    fn from_state(state: Self::State) -> Result<Self, Error>
    where
        Self: Sized;

    /// Iterations completed so far (accepted steps).
    fn iterations(&self) -> u64;

    /// Objective evaluations so far (an L-BFGS line search may take several per iteration).
    fn evaluations(&self) -> u64;
}

/// What one [`Optimizer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct StepReport {
    /// The latest objective value. [`Lbfgs`]: `f` at the returned `x`. [`Adam`]: `f` at the `x` the
    /// step started from (Adam evaluates once per step, before moving, as TensorFlow's training loops
    /// report it).
    pub value: f64,
    /// Euclidean norm of the gradient at the point where `value` was taken.
    pub grad_norm: f64,
    /// Objective evaluations during this step.
    pub evaluations: u64,
    /// `Some` when a stopping tolerance is met ([`Lbfgs`] only).
    pub converged: Option<Convergence>,
}

/// Which tolerance stopped an optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Convergence {
    /// `‖∇f‖∞ ≤ grad_tolerance`.
    Gradient,
    /// `(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ value_tolerance`.
    ValueChange,
}

/// What [`minimize`] passes to its callback after each iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct IterInfo {
    /// Iterations completed by the optimizer, counting those before a restore.
    pub iteration: u64,
    /// See [`StepReport::value`].
    pub value: f64,
    /// Objective evaluations so far, counting those before a restore.
    pub evaluations: u64,
    /// See [`StepReport::grad_norm`].
    pub grad_norm: f64,
    /// Evaluations during this iteration.
    pub step_evaluations: u64,
    /// See [`StepReport::converged`].
    pub converged: Option<Convergence>,
}

/// Why [`minimize`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// `max_iterations` steps were taken.
    MaxIterations,
    /// A tolerance was met.
    Converged(Convergence),
    /// The callback returned [`ControlFlow::Break`].
    Callback,
    /// The step returned [`OptimError::LineSearchFailed`]: no decrease was found even along
    /// steepest descent. In practice this is the `f32` noise floor (rounding `x` to `f32` makes
    /// `f` along the line noisier than the decrease still available); it also happens when the
    /// gradient is wrong. `x` holds the last accepted iterate and the optimizer stays usable.
    NoDecrease {
        /// Evaluations spent in the failed step.
        evaluations: u64,
    },
}

/// The outcome of [`minimize`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct MinimizeReport {
    /// Why it stopped.
    pub stop: StopReason,
    /// Iterations completed in this call, as counted by [`Optimizer::iterations`]: an L-BFGS step
    /// that finds its start point already converged completes none.
    pub iterations: u64,
    /// The last iteration's report (`None` when `max_iterations` was 0).
    pub last: Option<IterInfo>,
}

/// Errors of configuration and of restoring a state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is outside its domain.
    #[error("invalid optimizer configuration: {name} must be {expected}, got {value}")]
    InvalidConfig {
        /// The field.
        name: &'static str,
        /// Its domain, in words.
        expected: &'static str,
        /// The value given.
        value: f64,
    },
    /// A saved state is inconsistent.
    #[error("invalid optimizer state: {reason}")]
    InvalidState {
        /// What is wrong.
        reason: String,
    },
}

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors while optimizing. `E` is the [`Objective`]'s error. In every case the optimizer leaves `x`
/// at its last accepted iterate, so a caller can keep the last good iterate.
///
/// `OptimError<E>` is a [`std::error::Error`] whenever `E` is [`Debug`](std::fmt::Debug) and
/// [`Display`](std::fmt::Display), so `?` converts it into `anyhow::Error` or
/// `Box<dyn Error + Send + Sync>` also when `E` is itself `anyhow::Error` (which is not a
/// `std::error::Error`). The objective's error is part of the message of
/// [`OptimError::Objective`] (formatted with `{:#}`, which shows an `anyhow::Error`'s whole chain)
/// rather than its [`source`](std::error::Error::source); match the variant to get the typed error
/// back, with its own sources.
///
/// # Examples
/// An objective whose error is `anyhow::Error`, inside a function that returns `anyhow::Result`:
/// ```
/// use std::ops::ControlFlow;
/// use anyhow::{Context, bail};
/// use nst_optim::{Adam, AdamConfig, Objective, OptimError, minimize};
///
/// /// f(x) = x², defined only for |x| ≤ 10.
/// struct Bounded;
/// impl Objective for Bounded {
///     type Error = anyhow::Error;
///     fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> anyhow::Result<f64> {
///         if x[0].abs() > 10.0 {
///             bail!("x = {} is out of the domain", x[0]);
///         }
///         g[0] = 2.0 * x[0];
///         Ok(f64::from(x[0]).powi(2))
///     }
/// }
///
/// fn run(start: f32) -> anyhow::Result<f32> {
///     let mut x = [start];
///     let mut adam = Adam::new(AdamConfig { learning_rate: 0.5, ..AdamConfig::kingma_ba_2015() })?;
///     minimize(&mut adam, &mut x, &mut Bounded, 10, |_| ControlFlow::Continue(()))
///         .context("minimizing x²")?; // `?` works: OptimError<anyhow::Error> is an Error
///     Ok(x[0])
/// }
///
/// assert!(run(3.0)?.abs() < 3.0);
/// let err = run(20.0).unwrap_err();
/// assert_eq!(
///     format!("{err:#}"),
///     "minimizing x²: the objective failed: x = 20 is out of the domain"
/// );
/// // The typed cause is still there to match on:
/// let cause = err.downcast_ref::<OptimError<anyhow::Error>>().unwrap();
/// assert!(matches!(cause, OptimError::Objective(e) if e.to_string().contains("domain")));
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OptimError<E> {
    /// The objective failed; the message ends with the objective's error.
    #[error("the objective failed: {0:#}")]
    Objective(E),
    /// The objective returned a non-finite value or gradient at the current iterate.
    #[error(
        "non-finite objective at evaluation {evaluation}: value {value}, {non_finite_grad} non-finite gradient entries"
    )]
    NonFinite {
        /// Index (1-based, counting every evaluation) of the offending evaluation.
        evaluation: u64,
        /// The value returned.
        value: f64,
        /// How many gradient entries were NaN or infinite.
        non_finite_grad: usize,
    },
    /// The L-BFGS line search found no step with sufficient decrease, even along steepest descent.
    #[error(
        "line search failed after {evaluations} evaluations along steepest descent (directional derivative {directional_derivative:e})"
    )]
    LineSearchFailed {
        /// Evaluations spent in the failed searches of this step.
        evaluations: u64,
        /// `∇f·p` along the last direction tried.
        directional_derivative: f64,
    },
    /// `x` does not have the length of the optimizer's state.
    #[error("parameter vector has length {actual}, the optimizer state has length {expected}")]
    DimensionMismatch {
        /// Length in the state.
        expected: usize,
        /// Length of `x`.
        actual: usize,
    },
}

/// Runs `opt` from `x` for at most `max_iterations` steps, calling `callback` after each.
///
/// Stops early when the optimizer reports [`Convergence`], when the callback returns
/// [`ControlFlow::Break`] (e.g. on Ctrl-C; the current `x` is a completed iterate), or with
/// [`StopReason::NoDecrease`] when a line search fails (the callback is not called for that step).
/// For an evaluation budget, break from the callback on [`IterInfo::evaluations`]. Nothing is
/// printed. Continue a run by calling it again, with the same or a restored optimizer;
/// `max_iterations` counts the steps of this call.
///
/// # Errors
/// The first other [`OptimError`] of a step (the objective's error, a non-finite value at an
/// accepted point, a length mismatch); `x` then holds the last accepted iterate.
///
/// # Examples
/// ```
/// use std::convert::Infallible;
/// use std::ops::ControlFlow;
/// use nst_optim::{Adam, AdamConfig, Objective, StopReason, minimize};
///
/// struct Square;
/// impl Objective for Square {
///     type Error = Infallible;
///     fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Infallible> {
///         g[0] = 2.0 * x[0];
///         Ok(f64::from(x[0]).powi(2))
///     }
/// }
///
/// let mut x = [3.0_f32];
/// let mut opt = Adam::new(AdamConfig { learning_rate: 0.1, ..AdamConfig::kingma_ba_2015() })?;
/// let mut seen = Vec::new();
/// let report = minimize(&mut opt, &mut x, &mut Square, 100, |info| {
///     seen.push(info.value);
///     if info.iteration == 5 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
/// }).unwrap();
/// assert_eq!(report.stop, StopReason::Callback);
/// assert_eq!(seen.len(), 5);
/// assert!(seen.windows(2).all(|w| w[1] < w[0]));
/// # Ok::<(), nst_optim::Error>(())
/// ```
pub fn minimize<P, O, F>(
    opt: &mut P,
    x: &mut [f32],
    objective: &mut O,
    max_iterations: u64,
    mut callback: F,
) -> Result<MinimizeReport, OptimError<O::Error>>
where
    P: Optimizer + ?Sized,
    O: Objective,
    F: FnMut(&IterInfo) -> ControlFlow<()>,
{
    let mut last = None;
    let iterations_before = opt.iterations();
    for _ in 0..max_iterations {
        let report = match opt.step(x, objective) {
            Ok(report) => report,
            Err(OptimError::LineSearchFailed { evaluations, .. }) => {
                let stop = StopReason::NoDecrease { evaluations };
                return Ok(MinimizeReport {
                    stop,
                    iterations: opt.iterations() - iterations_before,
                    last,
                });
            }
            Err(e) => return Err(e),
        };
        let info = IterInfo {
            iteration: opt.iterations(),
            value: report.value,
            evaluations: opt.evaluations(),
            grad_norm: report.grad_norm,
            step_evaluations: report.evaluations,
            converged: report.converged,
        };
        last = Some(info);
        // The callback sees every iteration, the last one included.
        let flow = callback(&info);
        let stop = match (report.converged, flow) {
            (Some(c), _) => Some(StopReason::Converged(c)),
            (None, ControlFlow::Break(())) => Some(StopReason::Callback),
            (None, ControlFlow::Continue(())) => None,
        };
        if let Some(stop) = stop {
            return Ok(MinimizeReport {
                stop,
                iterations: opt.iterations() - iterations_before,
                last,
            });
        }
    }
    Ok(MinimizeReport {
        stop: StopReason::MaxIterations,
        iterations: opt.iterations() - iterations_before,
        last,
    })
}

/// Euclidean norm accumulated in f64.
fn norm2(v: &[f32]) -> f64 {
    v.iter()
        .map(|&g| f64::from(g) * f64::from(g))
        .sum::<f64>()
        .sqrt()
}

/// Number of NaN or infinite entries.
fn count_non_finite(v: &[f32]) -> usize {
    v.iter().filter(|g| !g.is_finite()).count()
}

/// The README's examples, run as doctests so that they keep compiling and passing.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
