//! Adam (Kingma & Ba 2015), in Algorithm 1's form or TensorFlow 1's "epsilon hat" form.

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::exact::{f32_exact, vec_f32_bits};
use crate::{Error, Objective, OptimError, Optimizer, Result, StepReport, count_non_finite, norm2};

/// Settings of [`Adam`]. All arithmetic is in `f32`, like TensorFlow's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Step size `α` (must be finite and positive).
    #[serde(with = "f32_exact")]
    pub learning_rate: f32,
    /// Decay of the first-moment estimate, `β₁ ∈ [0, 1)`.
    #[serde(with = "f32_exact")]
    pub beta1: f32,
    /// Decay of the second-moment estimate, `β₂ ∈ [0, 1)`.
    #[serde(with = "f32_exact")]
    pub beta2: f32,
    /// `ε` (finite, `> 0`: with `ε = 0` a coordinate whose gradient has always been 0 would get
    /// `0/0`); where it enters depends on [`AdamConfig::form`].
    #[serde(with = "f32_exact")]
    pub epsilon: f32,
    /// Which of the paper's two equivalent-up-to-ε forms to run.
    pub form: AdamForm,
}

/// The two update forms of Kingma & Ba 2015. They differ only in where `ε` enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdamForm {
    /// Algorithm 1: `m̂ = m/(1 − β₁ᵗ)`, `v̂ = v/(1 − β₂ᵗ)`, `x ← x − α·m̂/(√v̂ + ε)`.
    Algorithm1,
    /// The "more efficient" form at the end of §2 (before §2.1), used by TensorFlow 1's
    /// `tf.train.AdamOptimizer` (`ApplyAdam` kernel):
    /// `αₜ = α·√(1 − β₂ᵗ)/(1 − β₁ᵗ)`, `m ← m + (g − m)·(1 − β₁)`, `v ← v + (g² − v)·(1 − β₂)`,
    /// `x ← x − m·αₜ/(√v + ε̂)`. Here `ε` is the paper's `ε̂`, i.e. Algorithm 1's `ε` times `√(1 − β₂ᵗ)`.
    EpsilonHat,
}

impl AdamConfig {
    /// Kingma & Ba 2015, Algorithm 1 with the paper's defaults: `α = 0.001`, `β₁ = 0.9`,
    /// `β₂ = 0.999`, `ε = 1e-8`, [`AdamForm::Algorithm1`].
    ///
    /// # Examples
    /// ```
    /// use nst_optim::{AdamConfig, AdamForm};
    /// let c = AdamConfig::kingma_ba_2015();
    /// assert_eq!((c.learning_rate, c.beta1, c.beta2, c.epsilon), (0.001, 0.9, 0.999, 1e-8));
    /// assert_eq!(c.form, AdamForm::Algorithm1);
    /// ```
    pub fn kingma_ba_2015() -> Self {
        AdamConfig {
            learning_rate: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            form: AdamForm::Algorithm1,
        }
    }

    /// TensorFlow 1's `tf.train.AdamOptimizer(learning_rate)`: its defaults `β₁ = 0.9`, `β₂ = 0.999`,
    /// `ε̂ = 1e-8`, in TensorFlow's [`AdamForm::EpsilonHat`] form (with the bias corrections folded
    /// into `αₜ`, and `β₁ᵗ`, `β₂ᵗ` kept as running `f32` products as TF's `beta1_power`/`beta2_power`
    /// variables are), so that a TensorFlow 1 program's iterates are reproduced.
    ///
    /// Neural style transfer on pixels in `0..=255` commonly uses `learning_rate = 2.0`, as the
    /// neural style transfer assignment of the Coursera Deep Learning Specialization does: its first
    /// step then moves every pixel by almost exactly 2 (see [`Adam`]).
    ///
    /// # Examples
    /// ```
    /// use nst_optim::{AdamConfig, AdamForm};
    /// let c = AdamConfig::tensorflow_v1(2.0);
    /// assert_eq!((c.learning_rate, c.beta1, c.beta2, c.epsilon), (2.0, 0.9, 0.999, 1e-8));
    /// assert_eq!(c.form, AdamForm::EpsilonHat);
    /// ```
    pub fn tensorflow_v1(learning_rate: f32) -> Self {
        AdamConfig {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            form: AdamForm::EpsilonHat,
        }
    }

    /// The former name of `AdamConfig::tensorflow_v1(2.0)`.
    #[deprecated(since = "0.1.0", note = "use `AdamConfig::tensorflow_v1(2.0)`")]
    pub fn seed() -> Self {
        Self::tensorflow_v1(2.0)
    }

    /// Checks every field's domain.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad field.
    ///
    /// # Examples
    /// ```
    /// use nst_optim::AdamConfig;
    /// assert!(AdamConfig::tensorflow_v1(2.0).validate().is_ok());
    /// assert!(AdamConfig { beta2: 1.0, ..AdamConfig::tensorflow_v1(2.0) }.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |name, expected, value: f32| {
            Err(Error::InvalidConfig {
                name,
                expected,
                value: f64::from(value),
            })
        };
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", "finite and positive", self.learning_rate);
        }
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(name, "in [0, 1)", b);
            }
        }
        // ε = 0 would turn every coordinate whose gradient has been 0 so far into 0/0 = NaN.
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad("epsilon", "finite and positive", self.epsilon);
        }
        Ok(())
    }
}

impl Default for AdamConfig {
    /// [`AdamConfig::kingma_ba_2015`].
    fn default() -> Self {
        Self::kingma_ba_2015()
    }
}

/// Adam (Kingma & Ba 2015): one objective evaluation per step.
///
/// ```text
/// t ← t + 1,  g = ∇f(x)
/// m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²
/// Algorithm1:  x ← x − α·(m/(1 − β₁ᵗ)) / (√(v/(1 − β₂ᵗ)) + ε)
/// EpsilonHat:  x ← x − α·√(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε̂)       (TensorFlow 1)
/// ```
///
/// `β₁ᵗ`, `β₂ᵗ` are running `f32` products. A step evaluates at `x` and moves; a non-finite value or
/// gradient is an error and leaves `x` unchanged.
///
/// # Examples
/// ```
/// use std::convert::Infallible;
/// use approx::assert_relative_eq;
/// use nst_optim::{Adam, AdamConfig, Objective, Optimizer};
///
/// struct Linear; // f(x) = 3·x, gradient 3
/// impl Objective for Linear {
///     type Error = Infallible;
///     fn value_and_grad(&mut self, x: &[f32], g: &mut [f32]) -> Result<f64, Infallible> {
///         g[0] = 3.0;
///         Ok(3.0 * f64::from(x[0]))
///     }
/// }
/// let mut x = [10.0_f32];
/// let mut adam = Adam::new(AdamConfig::tensorflow_v1(2.0))?;
/// adam.step(&mut x, &mut Linear).unwrap();
/// // First step: m = 0.3, v = 0.009, αₜ = 2·√0.001/0.1, so x moves by ≈ α = 2.
/// assert_relative_eq!(x[0], 8.0, max_relative = 1e-6);
/// # Ok::<(), nst_optim::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Adam {
    state: AdamState,
    grad: Vec<f32>,
}

/// The complete state of an [`Adam`] run; serialize it with serde. Floats round-trip exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdamState {
    config: AdamConfig,
    /// Steps taken, `t`.
    step: u64,
    evaluations: u64,
    /// `β₁ᵗ` as a running `f32` product (TF's `beta1_power`).
    #[serde(with = "f32_exact")]
    beta1_power: f32,
    #[serde(with = "f32_exact")]
    beta2_power: f32,
    /// First moments (empty before the first step).
    #[serde(with = "vec_f32_bits")]
    m: Vec<f32>,
    #[serde(with = "vec_f32_bits")]
    v: Vec<f32>,
}

impl AdamState {
    /// Steps taken so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The configuration.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// The first and second moments (empty before the first step).
    pub fn moments(&self) -> (&[f32], &[f32]) {
        (&self.m, &self.v)
    }

    /// The same state with other moments (of any length: the iterate may change size, as between
    /// the stages of a coarse-to-fine run); the step count and the bias-correction powers are kept.
    ///
    /// # Errors
    /// [`Error::InvalidState`] when the lengths differ, a value is not finite, or a second moment is
    /// negative.
    pub fn with_moments(mut self, m: Vec<f32>, v: Vec<f32>) -> Result<Self> {
        if m.len() != v.len() {
            return Err(Error::InvalidState {
                reason: format!("{} first and {} second moments", m.len(), v.len()),
            });
        }
        if m.iter().any(|x| !x.is_finite()) || v.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
            return Err(Error::InvalidState {
                reason: "a moment is not finite, or a second moment is negative".into(),
            });
        }
        self.m = m;
        self.v = v;
        Ok(self)
    }
}

impl Adam {
    /// A fresh optimizer (`t = 0`, zero moments, sized on the first step).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] from [`AdamConfig::validate`].
    pub fn new(config: AdamConfig) -> Result<Self> {
        config.validate()?;
        Ok(Adam {
            state: AdamState {
                config,
                step: 0,
                evaluations: 0,
                beta1_power: 1.0,
                beta2_power: 1.0,
                m: Vec::new(),
                v: Vec::new(),
            },
            grad: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AdamConfig {
        &self.state.config
    }
}

/// The scalars of one Adam step, for an implementation that applies the update where the iterate lives
/// (a GPU): with them, the elementwise update is exactly the one [`Adam::step`] computes. See
/// [`Adam::step_external`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AdamStepScalars {
    /// Which update.
    pub form: AdamForm,
    /// `α`.
    pub learning_rate: f32,
    /// `β₁`.
    pub beta1: f32,
    /// `β₂`.
    pub beta2: f32,
    /// `ε` (or `ε̂` for [`AdamForm::EpsilonHat`]).
    pub epsilon: f32,
    /// `1 − β₁ᵗ` for this step's `t` (Algorithm 1 divides `m` by it).
    pub c1: f32,
    /// `1 − β₂ᵗ`.
    pub c2: f32,
    /// `αₜ = α·√(1 − β₂ᵗ)/(1 − β₁ᵗ)` ([`AdamForm::EpsilonHat`]).
    pub alpha_t: f32,
}

impl Adam {
    /// The scalars of the next step, those [`Adam::step`] uses (`β^t` for `t = step + 1`, from TF's
    /// running products).
    pub fn next_step_scalars(&self) -> AdamStepScalars {
        let s = &self.state;
        let AdamConfig {
            learning_rate,
            beta1,
            beta2,
            epsilon,
            form,
        } = s.config;
        let b1p = s.beta1_power * beta1;
        let b2p = s.beta2_power * beta2;
        AdamStepScalars {
            form,
            learning_rate,
            beta1,
            beta2,
            epsilon,
            c1: 1.0 - b1p,
            c2: 1.0 - b2p,
            alpha_t: learning_rate * (1.0 - b2p).sqrt() / (1.0 - b1p),
        }
    }

    /// One step of `n` parameters that live elsewhere (a GPU) together with the moments. `run` gets
    /// this step's scalars; it must evaluate `f` and its gradient at the current iterate and, only when
    /// the value and every gradient entry are finite, apply the update there; it returns the value and
    /// the number of non-finite gradient entries. A finite step advances `t`; any other is
    /// [`OptimError::NonFinite`] and leaves the state as it was, as [`Adam::step`] does.
    ///
    /// The moments held here are then stale: copy them back with [`Adam::moments_mut`] before
    /// [`Optimizer::state`] is saved.
    ///
    /// # Errors
    /// [`OptimError::DimensionMismatch`] when `n` differs from earlier steps; the objective's error
    /// from `run`; [`OptimError::NonFinite`].
    ///
    /// # Examples
    /// ```
    /// use nst_optim::{Adam, AdamConfig, Objective, Optimizer};
    /// struct Square;
    /// impl Objective for Square {
    ///     type Error = std::convert::Infallible;
    ///     fn value_and_grad(&mut self, p: &[f32], g: &mut [f32]) -> Result<f64, Self::Error> {
    ///         g[0] = 2.0 * p[0];
    ///         Ok(f64::from(p[0] * p[0]))
    ///     }
    /// }
    /// // f(x) = x², "on the device": x and the moments are kept by the caller.
    /// let (mut x, mut m, mut v) = (3.0_f32, 0.0_f32, 0.0_f32);
    /// let mut adam = Adam::new(AdamConfig { learning_rate: 0.1, ..AdamConfig::kingma_ba_2015() })?;
    /// let mut reference = Adam::new(*adam.config())?;
    /// let mut x_ref = [3.0_f32];
    /// for _ in 0..5 {
    ///     adam.step_external(1, |s| {
    ///         let (f, g) = (f64::from(x * x), 2.0 * x);
    ///         m = s.beta1 * m + (1.0 - s.beta1) * g;
    ///         v = s.beta2 * v + (1.0 - s.beta2) * g * g;
    ///         x -= s.learning_rate * (m / s.c1) / ((v / s.c2).sqrt() + s.epsilon);
    ///         Ok::<_, std::convert::Infallible>((f, 0))
    ///     })?;
    ///     reference.step(&mut x_ref, &mut Square)?;
    /// }
    /// assert_eq!(x, x_ref[0]); // the same update, bit for bit
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn step_external<E>(
        &mut self,
        n: usize,
        run: impl FnOnce(&AdamStepScalars) -> Result<(f64, usize), E>,
    ) -> Result<StepReport, OptimError<E>> {
        self.size_moments(n)?;
        let scalars = self.next_step_scalars();
        let (value, non_finite_grad) = run(&scalars).map_err(OptimError::Objective)?;
        let s = &mut self.state;
        s.evaluations += 1;
        if !value.is_finite() || non_finite_grad > 0 {
            return Err(OptimError::NonFinite {
                evaluation: s.evaluations,
                value,
                non_finite_grad,
            });
        }
        self.advance();
        Ok(StepReport {
            value,
            grad_norm: f64::NAN,
            evaluations: 1,
            converged: None,
        })
    }

    /// The first and second moments, sized for `n` parameters (zeros before the first step), for
    /// copying them to or from where [`Adam::step_external`] keeps them.
    ///
    /// # Errors
    /// [`OptimError::DimensionMismatch`] when `n` differs from earlier steps.
    pub fn moments_mut<E>(&mut self, n: usize) -> Result<(&mut [f32], &mut [f32]), OptimError<E>> {
        self.size_moments(n)?;
        Ok((&mut self.state.m, &mut self.state.v))
    }

    /// Records a step: `t` and TF's running products `β^t` (initialized to 1, multiplied after each step).
    fn advance(&mut self) {
        let s = &mut self.state;
        s.beta1_power *= s.config.beta1;
        s.beta2_power *= s.config.beta2;
        s.step += 1;
    }

    fn size_moments<E>(&mut self, n: usize) -> Result<(), OptimError<E>> {
        let s = &mut self.state;
        if s.step == 0 && s.m.is_empty() {
            s.m = vec![0.0; n];
            s.v = vec![0.0; n];
        } else if s.m.len() != n {
            return Err(OptimError::DimensionMismatch {
                expected: s.m.len(),
                actual: n,
            });
        }
        Ok(())
    }
}

impl Optimizer for Adam {
    type State = AdamState;

    fn step<O: Objective>(
        &mut self,
        x: &mut [f32],
        objective: &mut O,
    ) -> Result<StepReport, OptimError<O::Error>> {
        let n = x.len();
        self.size_moments(n)?;
        let s = &mut self.state;
        // Zeroed every time: an objective may add into `grad`, and no stale entry may survive.
        self.grad.clear();
        self.grad.resize(n, 0.0);
        let value = objective
            .value_and_grad(x, &mut self.grad)
            .map_err(OptimError::Objective)?;
        s.evaluations += 1;
        let non_finite_grad = count_non_finite(&self.grad);
        if !value.is_finite() || non_finite_grad > 0 {
            return Err(OptimError::NonFinite {
                evaluation: s.evaluations,
                value,
                non_finite_grad,
            });
        }

        let AdamStepScalars {
            form,
            learning_rate,
            beta1,
            beta2,
            epsilon,
            c1,
            c2,
            alpha_t,
        } = self.next_step_scalars();
        let s = &mut self.state;
        match form {
            AdamForm::Algorithm1 => {
                for (((xi, &g), m), v) in x.iter_mut().zip(&self.grad).zip(&mut s.m).zip(&mut s.v) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let m_hat = *m / c1;
                    let v_hat = *v / c2;
                    *xi -= learning_rate * m_hat / (v_hat.sqrt() + epsilon);
                }
            }
            AdamForm::EpsilonHat => {
                // The expression order of TensorFlow's ApplyAdam CPU kernel (training_ops.cc).
                for (((xi, &g), m), v) in x.iter_mut().zip(&self.grad).zip(&mut s.m).zip(&mut s.v) {
                    *m += (g - *m) * (1.0 - beta1);
                    *v += (g * g - *v) * (1.0 - beta2);
                    *xi -= (*m * alpha_t) / (v.sqrt() + epsilon);
                }
            }
        }
        self.advance();
        Ok(StepReport {
            value,
            grad_norm: norm2(&self.grad),
            evaluations: 1,
            converged: None,
        })
    }

    fn state(&self) -> AdamState {
        self.state.clone()
    }

    fn from_state(state: AdamState) -> Result<Self> {
        state.config.validate()?;
        let invalid = |reason: String| Err(Error::InvalidState { reason });
        if state.m.len() != state.v.len() {
            return invalid(format!(
                "first moments have length {}, second moments {}",
                state.m.len(),
                state.v.len()
            ));
        }
        for (name, power) in [
            ("beta1_power", state.beta1_power),
            ("beta2_power", state.beta2_power),
        ] {
            // A power above 1 would make the bias correction 1 − βᵗ negative.
            if !(0.0..=1.0).contains(&power) {
                return invalid(format!("{name} is {power}, not in [0, 1]"));
            }
        }
        if state.m.iter().any(|m| !m.is_finite()) {
            return invalid("a first moment is not finite".to_owned());
        }
        // A negative second moment would give √v = NaN.
        if state.v.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
            return invalid("a second moment is negative or not finite".to_owned());
        }
        Ok(Adam {
            state,
            grad: Vec::new(),
        })
    }

    fn iterations(&self) -> u64 {
        self.state.step
    }

    fn evaluations(&self) -> u64 {
        self.state.evaluations
    }
}
