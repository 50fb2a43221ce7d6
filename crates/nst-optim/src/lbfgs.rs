//! L-BFGS (Nocedal & Wright 2006, Alg. 7.4–7.5) with a strong-Wolfe line search (Alg. 3.5–3.6).

#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::exact::{f64_exact, vec_f32_bits};
use crate::{
    Convergence, Error, Objective, OptimError, Optimizer, Result, StepReport, count_non_finite,
    norm2,
};

/// Settings of [`Lbfgs`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LbfgsConfig {
    /// Number `m` of correction pairs `(s, y)` kept (≥ 1). Default 10 (SciPy's `maxcor`;
    /// Nocedal & Wright suggest 3–20).
    pub history_size: usize,
    /// Stop when `‖∇f‖∞ ≤ grad_tolerance` (≥ 0). Default `1e-5` (SciPy's `pgtol`).
    #[serde(with = "f64_exact")]
    pub grad_tolerance: f64,
    /// Stop when `(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ value_tolerance` (≥ 0). Default
    /// `2.220446049250313e-9` (SciPy's `ftol`, `1e7 · f64::EPSILON`).
    #[serde(with = "f64_exact")]
    pub value_tolerance: f64,
    /// The line search.
    pub line_search: LineSearchConfig,
    /// The first trial step of a search without history (the first iteration, and after the
    /// history is cleared). Default [`FirstStep::ZeroTarget`]; states saved before this setting
    /// existed read back as [`FirstStep::UnitLength`], the rule they ran with.
    #[serde(default = "FirstStep::unit_length")]
    pub first_step: FirstStep,
}

/// How [`Lbfgs`] sizes the first trial step `α₀` along `p = −∇f` when it has no curvature pairs
/// (with pairs, `α₀ = 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FirstStep {
    /// `α₀ = min(1, 1/‖∇f‖)`: a step of length at most 1 (Nocedal & Wright; SciPy). On an image of
    /// 0–255 values with a large cost this step is tiny, and the search doubles it ten times or
    /// more before the curvature condition holds.
    UnitLength,
    /// `α₀ = 2·f/‖∇f‖²` when `f > 0` (otherwise as [`FirstStep::UnitLength`]): the minimizer along
    /// `−∇f` of the quadratic that has the observed value and slope and a minimum value of 0, the
    /// lower bound of a sum of squares such as the style-transfer cost. It over-shoots when the
    /// minimum is above 0, which the search corrects by interpolation in a few evaluations.
    #[default]
    ZeroTarget,
}

impl FirstStep {
    /// [`FirstStep::UnitLength`], for serde's default of states saved without this setting.
    fn unit_length() -> FirstStep {
        FirstStep::UnitLength
    }

    /// `α₀` for value `f` and gradient norm `g_norm` (`‖∇f‖₂`, > 0).
    fn alpha(self, f: f64, g_norm: f64) -> f64 {
        let unit = (1.0 / g_norm).min(1.0);
        match self {
            FirstStep::UnitLength => unit,
            FirstStep::ZeroTarget => {
                let a = 2.0 * f / (g_norm * g_norm);
                if a.is_finite() && a > 0.0 { a } else { unit }
            }
        }
    }
}

/// Settings of the strong-Wolfe line search (Nocedal & Wright 2006, Alg. 3.5 with `zoom`, Alg. 3.6).
///
/// A step `α` is accepted when
/// `f(x + αp) ≤ f(x) + c₁·α·∇f·p` (sufficient decrease) and `|∇f(x + αp)·p| ≤ c₂·|∇f·p|` (curvature).
/// The decrease is also required to be strict, `f(x + αp) < f(x)`, which the first condition
/// implies in exact arithmetic but not when `f(x)` is so large that `c₁·α·∇f·p` rounds away.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LineSearchConfig {
    /// Sufficient-decrease constant `c₁ ∈ (0, c₂)`. Default `1e-4` (Nocedal & Wright, p. 33).
    #[serde(with = "f64_exact")]
    pub c1: f64,
    /// Curvature constant `c₂ ∈ (c₁, 1)`. Default `0.9` (Nocedal & Wright, p. 34, for quasi-Newton).
    #[serde(with = "f64_exact")]
    pub c2: f64,
    /// Evaluations allowed per search (≥ 1). Default 20. When they run out, the best point found
    /// with sufficient decrease is taken if there is one.
    pub max_evaluations: u32,
}

impl Default for LineSearchConfig {
    fn default() -> Self {
        LineSearchConfig {
            c1: 1e-4,
            c2: 0.9,
            max_evaluations: 20,
        }
    }
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            history_size: 10,
            grad_tolerance: 1e-5,
            value_tolerance: 1e7 * f64::EPSILON,
            line_search: LineSearchConfig::default(),
            first_step: FirstStep::default(),
        }
    }
}

impl LbfgsConfig {
    /// Checks every field's domain.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad field.
    ///
    /// # Examples
    /// ```
    /// use nst_optim::{LbfgsConfig, LineSearchConfig};
    /// assert!(LbfgsConfig::default().validate().is_ok());
    /// let bad = LbfgsConfig { line_search: LineSearchConfig { c1: 0.95, ..Default::default() }, ..Default::default() };
    /// assert!(bad.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |name, expected, value: f64| {
            Err(Error::InvalidConfig {
                name,
                expected,
                value,
            })
        };
        if self.history_size == 0 {
            return bad("history_size", "at least 1", 0.0);
        }
        for (name, v) in [
            ("grad_tolerance", self.grad_tolerance),
            ("value_tolerance", self.value_tolerance),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, "finite and non-negative", v);
            }
        }
        let ls = &self.line_search;
        if !(ls.c1 > 0.0 && ls.c1 < 1.0) {
            return bad("line_search.c1", "in (0, 1)", ls.c1);
        }
        if !(ls.c2 > ls.c1 && ls.c2 < 1.0) {
            return bad("line_search.c2", "in (c1, 1)", ls.c2);
        }
        if ls.max_evaluations == 0 {
            return bad("line_search.max_evaluations", "at least 1", 0.0);
        }
        Ok(())
    }
}

/// Limited-memory BFGS (Nocedal & Wright 2006, Alg. 7.5) with the two-loop recursion (Alg. 7.4)
/// and a strong-Wolfe line search (Alg. 3.5–3.6, cubic interpolation eq. 3.59 in `zoom`).
///
/// One step:
/// ```text
/// p = −H·∇f(x)            two-loop recursion over the last m pairs, H₀ = (sᵀy / yᵀy)·I
/// α: strong Wolfe along p  trial 1 (when the history is empty: LbfgsConfig::first_step, 2f/‖∇f‖²)
/// x ← x + α·p;  s = Δx, y = Δ∇f kept when sᵀy > 0
/// ```
///
/// Robustness, all deterministic:
/// - If `p` is not a descent direction (`∇f·p ≥ 0` or not finite), the history is cleared and
///   `p = −∇f` (steepest descent).
/// - A non-finite value or gradient at a trial point counts as "too far": the search shrinks.
/// - If the line search fails with a non-empty history, the history is cleared and the search is
///   retried along steepest descent; if that fails too, the step returns
///   [`OptimError::LineSearchFailed`] with `x` restored.
/// - Pairs with `sᵀy ≤ 1e-10·‖s‖·‖y‖` (possible when the search stops at its budget) are skipped.
///   The test compares the cosine of `s` and `y`, so it does not depend on the scale of `f` or `x`.
///
/// The value and gradient at the current point are cached in the state, so each iteration costs
/// the line search's evaluations only (usually 1). If `x` is changed between steps (its bit pattern
/// is fingerprinted), the cache is dropped and re-evaluated, and the history is kept.
///
/// # Examples
/// ```
/// use std::convert::Infallible;
/// use nst_optim::{Lbfgs, LbfgsConfig, Objective, Optimizer};
///
/// struct Rosenbrock;
/// impl Objective for Rosenbrock {
///     type Error = Infallible;
///     fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Infallible> {
///         let (a, b) = (f64::from(x[0]), f64::from(x[1]));
///         g[0] = (-2.0 * (1.0 - a) - 400.0 * a * (b - a * a)) as f32;
///         g[1] = (200.0 * (b - a * a)) as f32;
///         Ok((1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2))
///     }
/// }
/// let mut x = [-1.2_f32, 1.0];
/// let mut opt = Lbfgs::new(LbfgsConfig::default())?;
/// let mut last = f64::INFINITY;
/// for _ in 0..100 {
///     let r = opt.step(&mut x, &mut Rosenbrock).unwrap();
///     assert!(r.value <= last); // monotone under the line search
///     last = r.value;
///     if r.converged.is_some() { break; }
/// }
/// assert!((x[0] - 1.0).abs() < 1e-4 && (x[1] - 1.0).abs() < 1e-4);
/// # Ok::<(), nst_optim::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Lbfgs {
    state: LbfgsState,
    work: Work,
}

/// The complete state of an [`Lbfgs`] run; serialize it with serde. Floats round-trip exactly.
///
/// It holds `2m + 1` vectors of `n` values (the `m` correction pairs and the gradient at the current
/// point). In JSON each vector is the base64 of its bytes, about 5.33 bytes per value: for
/// `m = 10` and a 400×300 RGB image (`n = 360,000`) that is 40.3 MB (measured), against 30.2 MB of
/// raw `f32`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbfgsState {
    config: LbfgsConfig,
    iterations: u64,
    evaluations: u64,
    /// Correction pairs, oldest first.
    history: VecDeque<Pair>,
    /// Value and gradient at the current point, if known.
    current: Option<Current>,
}

impl LbfgsState {
    /// The configuration.
    pub fn config(&self) -> &LbfgsConfig {
        &self.config
    }

    /// Number of correction pairs held.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pair {
    #[serde(with = "vec_f32_bits")]
    s: Vec<f32>,
    #[serde(with = "vec_f32_bits")]
    y: Vec<f32>,
    /// `1/(sᵀy)`.
    #[serde(with = "f64_exact")]
    rho: f64,
    /// `sᵀy / yᵀy`, the initial Hessian scale if this is the newest pair (N&W eq. 7.20).
    #[serde(with = "f64_exact")]
    gamma: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Current {
    #[serde(with = "f64_exact")]
    value: f64,
    #[serde(with = "vec_f32_bits")]
    grad: Vec<f32>,
    /// FNV-1a of the bit pattern of the `x` this belongs to.
    x_fingerprint: u64,
}

/// Scratch buffers; never part of the state.
#[derive(Debug, Clone, Default)]
struct Work {
    x0: Vec<f32>,
    p: Vec<f32>,
    q: Vec<f64>,
    alphas: Vec<f64>,
    g_trial: Vec<f32>,
    g_lo: Vec<f32>,
    s: Vec<f32>,
    y: Vec<f32>,
}

/// One evaluated point of the line search: `φ(α) = f(x₀ + α·p)`, `φ'(α) = ∇f·p`.
#[derive(Debug, Clone, Copy)]
struct Trial {
    alpha: f64,
    /// `+∞` when the objective was not finite there.
    value: f64,
    /// NaN when the objective was not finite there.
    slope: f64,
}

/// Where the accepted point's gradient is.
enum Accepted {
    /// The last trial; its gradient is in `g_trial` and `x` already holds it.
    Last(Trial),
    /// An earlier trial; its gradient is in `g_lo`.
    Lo(Trial),
}

impl Lbfgs {
    /// A fresh optimizer with an empty history.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] from [`LbfgsConfig::validate`].
    pub fn new(config: LbfgsConfig) -> Result<Self> {
        config.validate()?;
        Ok(Lbfgs {
            state: LbfgsState {
                config,
                iterations: 0,
                evaluations: 0,
                history: VecDeque::new(),
                current: None,
            },
            work: Work::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LbfgsConfig {
        &self.state.config
    }

    /// Drops the history and the cached value and gradient (counters are kept).
    pub fn reset(&mut self) {
        self.state.history.clear();
        self.state.current = None;
    }

    /// Evaluates the objective at `x` into `grad`, which is zeroed first (so an objective that adds
    /// into its gradient buffer sees the same input every time, and no stale value survives).
    fn evaluate<O: Objective>(
        state: &mut LbfgsState,
        x: &[f32],
        grad: &mut [f32],
        objective: &mut O,
    ) -> Result<f64, OptimError<O::Error>> {
        grad.fill(0.0);
        let value = objective
            .value_and_grad(x, grad)
            .map_err(OptimError::Objective)?;
        state.evaluations += 1;
        Ok(value)
    }

    /// Two-loop recursion (N&W Alg. 7.4): `p = −H·g`.
    fn direction(&mut self, g: &[f32]) {
        let Work { p, q, alphas, .. } = &mut self.work;
        let history = &self.state.history;
        q.clear();
        q.extend(g.iter().map(|&v| f64::from(v)));
        alphas.clear();
        for pair in history.iter().rev() {
            let a = pair.rho * dot_f32_f64(&pair.s, q);
            for (qi, &yi) in q.iter_mut().zip(&pair.y) {
                *qi -= a * f64::from(yi);
            }
            alphas.push(a);
        }
        let gamma = history.back().map_or(1.0, |pair| pair.gamma);
        for qi in q.iter_mut() {
            *qi *= gamma;
        }
        for (pair, &a) in history.iter().zip(alphas.iter().rev()) {
            let b = pair.rho * dot_f32_f64(&pair.y, q);
            for (qi, &si) in q.iter_mut().zip(&pair.s) {
                *qi += f64::from(si) * (a - b);
            }
        }
        p.clear();
        p.extend(q.iter().map(|&r| (-r) as f32));
    }

    /// Writes `x = x₀ + α·p` (rounded once from f64, so the same `α` always gives the same `x`).
    fn place(x: &mut [f32], x0: &[f32], p: &[f32], alpha: f64) {
        for ((xi, &a), &d) in x.iter_mut().zip(x0).zip(p) {
            *xi = (f64::from(a) + alpha * f64::from(d)) as f32;
        }
    }

    /// Strong-Wolfe line search from `x₀ = work.x0` along `work.p`. `Ok(None)` means it failed
    /// (`x` is then unspecified; the caller restores it).
    fn line_search<O: Objective>(
        &mut self,
        x: &mut [f32],
        objective: &mut O,
        f0: f64,
        slope0: f64,
        alpha0: f64,
    ) -> Result<Option<Accepted>, OptimError<O::Error>> {
        let LineSearchConfig {
            c1,
            c2,
            max_evaluations,
        } = self.state.config.line_search;
        let mut evals = 0_u32;
        // Sufficient decrease, and a strict one: for a huge f0, f0 + c1·α·φ'(0) can round to f0.
        let armijo = |t: &Trial| t.value <= f0 + c1 * t.alpha * slope0 && t.value < f0;
        let curvature = |t: &Trial| t.slope.abs() <= -c2 * slope0;

        let mut prev = Trial {
            alpha: 0.0,
            value: f0,
            slope: slope0,
        };
        let mut alpha = alpha0;
        let (mut lo, mut hi);
        // Alg. 3.5: bracket.
        loop {
            if evals >= max_evaluations {
                return Ok((prev.alpha > 0.0).then_some(Accepted::Lo(prev)));
            }
            let cur = self.trial(x, objective, alpha)?;
            evals += 1;
            if !armijo(&cur) || (prev.alpha > 0.0 && cur.value >= prev.value) {
                (lo, hi) = (prev, cur);
                break;
            }
            if curvature(&cur) {
                return Ok(Some(Accepted::Last(cur)));
            }
            self.work.g_lo.copy_from_slice(&self.work.g_trial);
            if cur.slope >= 0.0 {
                (lo, hi) = (cur, prev);
                break;
            }
            prev = cur;
            alpha *= 2.0;
        }
        // Alg. 3.6: zoom. Invariant: `lo` satisfies sufficient decrease and has the lowest value so
        // far; its gradient is in `g_lo` when `lo.alpha > 0`.
        loop {
            let width = (hi.alpha - lo.alpha).abs();
            if evals >= max_evaluations || width <= 1e-12 * lo.alpha.abs().max(hi.alpha.abs()) {
                return Ok((lo.alpha > 0.0).then_some(Accepted::Lo(lo)));
            }
            let a = interpolate(&lo, &hi);
            let cur = self.trial(x, objective, a)?;
            evals += 1;
            if !armijo(&cur) || cur.value >= lo.value {
                hi = cur;
            } else {
                if curvature(&cur) {
                    return Ok(Some(Accepted::Last(cur)));
                }
                if cur.slope * (hi.alpha - lo.alpha) >= 0.0 {
                    hi = lo;
                }
                lo = cur;
                self.work.g_lo.copy_from_slice(&self.work.g_trial);
            }
        }
    }

    /// Evaluates `φ(α)` and `φ'(α)`, leaving `x = x₀ + α·p` and the gradient in `g_trial`.
    fn trial<O: Objective>(
        &mut self,
        x: &mut [f32],
        objective: &mut O,
        alpha: f64,
    ) -> Result<Trial, OptimError<O::Error>> {
        Self::place(x, &self.work.x0, &self.work.p, alpha);
        let value = Self::evaluate(&mut self.state, x, &mut self.work.g_trial, objective)?;
        let slope = dot_f32(&self.work.g_trial, &self.work.p);
        if value.is_finite() && slope.is_finite() && count_non_finite(&self.work.g_trial) == 0 {
            Ok(Trial {
                alpha,
                value,
                slope,
            })
        } else {
            Ok(Trial {
                alpha,
                value: f64::INFINITY,
                slope: f64::NAN,
            })
        }
    }
}

impl Optimizer for Lbfgs {
    type State = LbfgsState;

    fn step<O: Objective>(
        &mut self,
        x: &mut [f32],
        objective: &mut O,
    ) -> Result<StepReport, OptimError<O::Error>> {
        let n = x.len();
        let expected = self.state.history.front().map(|p| p.s.len()).or(self
            .state
            .current
            .as_ref()
            .map(|c| c.grad.len()));
        if let Some(expected) = expected.filter(|&e| e != n) {
            return Err(OptimError::DimensionMismatch {
                expected,
                actual: n,
            });
        }
        let evals_before = self.state.evaluations;
        let w = &mut self.work;
        w.x0.resize(n, 0.0);
        w.g_trial.resize(n, 0.0);
        w.g_lo.resize(n, 0.0);

        // The value and gradient at x: cached, or evaluated now.
        let fingerprint = fnv1a(x);
        let (f0, g0) = match self.state.current.take() {
            Some(c) if c.x_fingerprint == fingerprint => (c.value, c.grad),
            _ => {
                let mut g = vec![0.0; n];
                let value = Self::evaluate(&mut self.state, x, &mut g, objective)?;
                let non_finite_grad = count_non_finite(&g);
                if !value.is_finite() || non_finite_grad > 0 {
                    return Err(OptimError::NonFinite {
                        evaluation: self.state.evaluations,
                        value,
                        non_finite_grad,
                    });
                }
                (value, g)
            }
        };
        let g0_inf = g0.iter().fold(0.0_f64, |m, &v| m.max(f64::from(v).abs()));
        if g0_inf <= self.state.config.grad_tolerance {
            let report = StepReport {
                value: f0,
                grad_norm: norm2(&g0),
                evaluations: self.state.evaluations - evals_before,
                converged: Some(Convergence::Gradient),
            };
            self.state.current = Some(Current {
                value: f0,
                grad: g0,
                x_fingerprint: fingerprint,
            });
            return Ok(report);
        }
        self.work.x0.copy_from_slice(x);

        // Direction, line search, and the steepest-descent fallback.
        self.direction(&g0);
        let accepted = loop {
            let mut slope0 = dot_f32(&g0, &self.work.p);
            if !(slope0 < 0.0 && slope0.is_finite()) {
                self.state.history.clear();
                self.direction(&g0);
                slope0 = dot_f32(&g0, &self.work.p);
            }
            let alpha0 = if self.state.history.is_empty() {
                self.state.config.first_step.alpha(f0, norm2(&g0))
            } else {
                1.0
            };
            match self.line_search(x, objective, f0, slope0, alpha0) {
                Ok(Some(acc)) => break acc,
                Ok(None) if !self.state.history.is_empty() => {
                    self.state.history.clear();
                    self.direction(&g0);
                }
                Ok(None) => {
                    x.copy_from_slice(&self.work.x0);
                    self.state.current = Some(Current {
                        value: f0,
                        grad: g0,
                        x_fingerprint: fingerprint,
                    });
                    return Err(OptimError::LineSearchFailed {
                        evaluations: self.state.evaluations - evals_before,
                        directional_derivative: slope0,
                    });
                }
                Err(e) => {
                    x.copy_from_slice(&self.work.x0);
                    self.state.current = Some(Current {
                        value: f0,
                        grad: g0,
                        x_fingerprint: fingerprint,
                    });
                    return Err(e);
                }
            }
        };
        // Move the accepted gradient out of its work buffer, and park g0's buffer there instead: no
        // allocation per step.
        let Work {
            x0,
            p,
            g_trial,
            g_lo,
            s: s_new,
            y: y_new,
            ..
        } = &mut self.work;
        let (f1, g1_slot) = match accepted {
            Accepted::Last(t) => (t.value, g_trial),
            Accepted::Lo(t) => {
                Self::place(x, x0, p, t.alpha);
                (t.value, g_lo)
            }
        };
        let mut g1 = g0;
        std::mem::swap(g1_slot, &mut g1);
        let g0 = &*g1_slot;

        // Curvature pair.
        s_new.clear();
        s_new.extend(
            x.iter()
                .zip(x0.iter())
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)) as f32),
        );
        y_new.clear();
        y_new.extend(
            g1.iter()
                .zip(g0)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)) as f32),
        );
        push_pair(
            &mut self.state.history,
            self.state.config.history_size,
            s_new,
            y_new,
        );
        self.state.iterations += 1;

        let g1_inf = g1.iter().fold(0.0_f64, |m, &v| m.max(f64::from(v).abs()));
        let converged = if g1_inf <= self.state.config.grad_tolerance {
            Some(Convergence::Gradient)
        } else if (f0 - f1) / f0.abs().max(f1.abs()).max(1.0) <= self.state.config.value_tolerance {
            Some(Convergence::ValueChange)
        } else {
            None
        };
        let report = StepReport {
            value: f1,
            grad_norm: norm2(&g1),
            evaluations: self.state.evaluations - evals_before,
            converged,
        };
        self.state.current = Some(Current {
            value: f1,
            grad: g1,
            x_fingerprint: fnv1a(x),
        });
        Ok(report)
    }

    fn state(&self) -> LbfgsState {
        self.state.clone()
    }

    fn from_state(state: LbfgsState) -> Result<Self> {
        state.config.validate()?;
        let invalid = |reason: String| Err(Error::InvalidState { reason });
        if state.history.len() > state.config.history_size {
            return invalid(format!(
                "{} correction pairs but history_size is {}",
                state.history.len(),
                state.config.history_size
            ));
        }
        let n = state
            .history
            .front()
            .map(|p| p.s.len())
            .or(state.current.as_ref().map(|c| c.grad.len()));
        if let Some(n) = n {
            let lengths_ok = state
                .history
                .iter()
                .all(|p| p.s.len() == n && p.y.len() == n)
                && state.current.as_ref().is_none_or(|c| c.grad.len() == n);
            if !lengths_ok {
                return invalid(format!("vectors of different lengths (expected {n})"));
            }
        }
        if state
            .history
            .iter()
            .any(|p| !(p.rho.is_finite() && p.rho > 0.0 && p.gamma.is_finite() && p.gamma > 0.0))
        {
            return invalid(
                "a correction pair has a non-positive or non-finite curvature".to_owned(),
            );
        }
        if state
            .history
            .iter()
            .any(|p| p.s.iter().chain(&p.y).any(|v| !v.is_finite()))
        {
            return invalid("a correction pair holds a non-finite value".to_owned());
        }
        if let Some(c) = &state.current
            && !(c.value.is_finite() && c.grad.iter().all(|g| g.is_finite()))
        {
            return invalid("the cached value or gradient is not finite".to_owned());
        }
        Ok(Lbfgs {
            state,
            work: Work::default(),
        })
    }

    fn iterations(&self) -> u64 {
        self.state.iterations
    }

    fn evaluations(&self) -> u64 {
        self.state.evaluations
    }
}

/// Appends the pair `(s, y)` to `history` (dropping the oldest beyond `history_size`) when its
/// curvature is safely positive, `sᵀy > 1e-10·‖s‖·‖y‖` with everything finite, and returns whether
/// it did. A pair with `sᵀy ≤ 0` would make `H` indefinite (Nocedal & Wright 2006, §6.1: the BFGS
/// update needs `sᵀy > 0`); under the strong Wolfe conditions it cannot occur, but a search that
/// stops at its evaluation budget can return such a point. The margin is on the cosine of `s` and
/// `y`, which is unchanged when `f` or `x` is rescaled: a bound on `sᵀy/yᵀy` (the initial Hessian
/// scale `γ`) would instead drop every pair of an objective with curvature above its inverse, as a
/// style-transfer objective in pixel units can have.
///
/// The vectors are moved into the history (swapped with the recycled oldest pair's buffers, or
/// with empty ones), so `s` and `y` hold no meaningful values afterwards.
fn push_pair(
    history: &mut VecDeque<Pair>,
    history_size: usize,
    s: &mut Vec<f32>,
    y: &mut Vec<f32>,
) -> bool {
    let sy = dot_f32(s, y);
    let ss = dot_f32(s, s);
    let yy = dot_f32(y, y);
    let margin = 1e-10 * (ss.sqrt() * yy.sqrt());
    if !(sy > margin && sy.is_finite() && margin.is_finite()) {
        return false;
    }
    // Reuse the oldest pair's buffers once the history is full.
    let (mut s_new, mut y_new) = if history.len() >= history_size {
        let old = history.pop_front().expect("history_size >= 1");
        (old.s, old.y)
    } else {
        (Vec::with_capacity(s.len()), Vec::with_capacity(y.len()))
    };
    std::mem::swap(&mut s_new, s);
    std::mem::swap(&mut y_new, y);
    history.push_back(Pair {
        s: s_new,
        y: y_new,
        rho: 1.0 / sy,
        gamma: sy / yy,
    });
    true
}

/// A trial step inside `[lo, hi]`: the cubic interpolant's minimizer (N&W eq. 3.59), else the
/// quadratic's, safeguarded to the middle 80 % of the interval, else bisection.
fn interpolate(lo: &Trial, hi: &Trial) -> f64 {
    let (a, b) = (lo.alpha, hi.alpha);
    let mid = 0.5 * (a + b);
    let candidate = if hi.value.is_finite() && hi.slope.is_finite() {
        let d1 = lo.slope + hi.slope - 3.0 * (lo.value - hi.value) / (a - b);
        let disc = d1 * d1 - lo.slope * hi.slope;
        if disc >= 0.0 {
            let d2 = (b - a).signum() * disc.sqrt();
            b - (b - a) * (hi.slope + d2 - d1) / (hi.slope - lo.slope + 2.0 * d2)
        } else {
            f64::NAN
        }
    } else if hi.value.is_finite() {
        // Quadratic through φ(a), φ'(a), φ(b).
        let d = b - a;
        a - lo.slope * d * d / (2.0 * (hi.value - lo.value - lo.slope * d))
    } else {
        f64::NAN
    };
    let (left, right) = (a.min(b), a.max(b));
    let margin = 0.1 * (right - left);
    if candidate.is_finite() && candidate >= left + margin && candidate <= right - margin {
        candidate
    } else {
        mid
    }
}

fn dot_f32(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&u, &v)| f64::from(u) * f64::from(v))
        .sum()
}

fn dot_f32_f64(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(&u, &v)| f64::from(u) * v).sum()
}

/// FNV-1a (64-bit) of the bit patterns of `x`: detects a caller changing `x` between steps.
fn fnv1a(x: &[f32]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for v in x {
        for byte in v.to_bits().to_le_bytes() {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
