//! The optimizer of a run, either kind; Adam on a device keeps the iterate and its moments there.

use nst_optim::{Adam, AdamConfig, Lbfgs, LbfgsConfig, OptimError, Optimizer as _, StepReport};

use crate::checkpoint::OptimizerState;
use crate::objective::{self, ResidentImage, StyleObjective};
use crate::resample;
use crate::spec::{OptimizerKind, RunSpec};
use crate::{Error, Result};

/// The optimizer, either kind.
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
    /// A fresh optimizer for `spec`.
    pub(crate) fn new(spec: &RunSpec, obj: &StyleObjective) -> Result<Opt> {
        Ok(match spec.optimizer {
            OptimizerKind::Adam => Opt::adam(
                Adam::new(AdamConfig {
                    learning_rate: spec.learning_rate,
                    ..AdamConfig::tensorflow_v1(2.0)
                })
                .map_err(Error::Optimizer)?,
                obj,
            ),
            OptimizerKind::Lbfgs => Opt::Lbfgs(Box::new(
                Lbfgs::new(LbfgsConfig::default()).map_err(Error::Optimizer)?,
            )),
        })
    }

    /// An optimizer from a saved state.
    pub(crate) fn from_state(state: OptimizerState, obj: &StyleObjective) -> Result<Opt> {
        Ok(match state {
            OptimizerState::Adam(s) => {
                Opt::adam(Adam::from_state(s).map_err(Error::Optimizer)?, obj)
            }
            OptimizerState::Lbfgs(s) => {
                Opt::Lbfgs(Box::new(Lbfgs::from_state(s).map_err(Error::Optimizer)?))
            }
        })
    }

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

    /// The state carried into the next stage, for an image going from `from` to `to` (`(H, W)`):
    /// Adam's moments resampled ([`resample::adam_state`]), L-BFGS's history dropped (its pairs
    /// belong to the old image size).
    pub(crate) fn next_stage_state(
        &self,
        spec: &RunSpec,
        from: (usize, usize),
        to: (usize, usize),
    ) -> Result<Option<OptimizerState>> {
        Ok(match self.state() {
            OptimizerState::Adam(s) => Some(OptimizerState::Adam(
                resample::adam_state(s, from, to).map_err(Error::Optimizer)?,
            )),
            OptimizerState::Lbfgs(_) => {
                debug_assert_eq!(spec.optimizer, OptimizerKind::Lbfgs);
                None
            }
        })
    }

    pub(crate) fn is_lbfgs(&self) -> bool {
        matches!(self, Opt::Lbfgs(_))
    }

    pub(crate) fn is_device(&self) -> bool {
        matches!(self, Opt::DeviceAdam { .. })
    }

    pub(crate) fn step(
        &mut self,
        x: &mut [f32],
        obj: &mut StyleObjective,
    ) -> std::result::Result<StepReport, OptimError<objective::Error>> {
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
    pub(crate) fn sync_host(&mut self, x: &mut [f32], obj: &mut StyleObjective) -> Result<()> {
        if let Opt::DeviceAdam { adam, loaded: true } = self {
            obj.device_image(ResidentImage::Current, x)?;
            let (m, v) = adam
                .moments_mut::<objective::Error>(x.len())
                .map_err(|e| Error::Device(e.to_string()))?;
            obj.device_moments(m, v)?;
        }
        Ok(())
    }

    /// Whether the device holds the iterate (device Adam after its first step).
    pub(crate) fn device_loaded(&self) -> bool {
        matches!(self, Opt::DeviceAdam { loaded: true, .. })
    }

    pub(crate) fn state(&self) -> OptimizerState {
        match self {
            Opt::Adam(o) | Opt::DeviceAdam { adam: o, .. } => OptimizerState::Adam(o.state()),
            Opt::Lbfgs(o) => OptimizerState::Lbfgs(o.state()),
        }
    }
}
