//! How a caller observes and steers a run: the [`Event`]s the engine emits in order, the [`EventSink`]
//! that receives them on the run's thread, and the [`Control`] handle that cancels a run or asks for a
//! snapshot of the image from any thread.
//!
//! Order of events: [`Event::Note`]s while preparing, one [`Event::Started`], then for each stage one
//! [`Event::StageStarted`] followed by its [`Event::Step`]s (one per iteration), [`Event::Logged`] at
//! each print interval, [`Event::Snapshot`] when asked, [`Event::CheckpointSaved`] when written; at the
//! end one [`Event::Finished`] (also after a divergence, before the error is returned).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use image::RgbImage;

use crate::estimate::Estimate;
use crate::image_io::Size;
use crate::objective::Breakdown;
use crate::record::{Ended, Record};
use crate::stages::Stage;

/// One thing that happened in a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Something the user should know that is not an error (e.g. the model has no mean pixel).
    Note(String),
    /// The run is prepared and about to iterate.
    Started(Box<Started>),
    /// A stage begins (every run has at least one).
    StageStarted {
        /// Its index.
        index: usize,
        /// How many stages the run has.
        count: usize,
        /// The stage (size and iteration range).
        stage: Stage,
    },
    /// One iteration done.
    Step {
        /// Iterations done, over all stages.
        iteration: usize,
        /// The run's last iteration.
        total: usize,
        /// The cost the step evaluated.
        costs: Breakdown,
    },
    /// A logged iteration (every `print_every`, and the last): its record, the image as written, and the
    /// intermediate file it was saved to (none for the last iteration, which is the result).
    Logged {
        /// The metrics record.
        record: Record,
        /// The image (8-bit, as saved).
        image: Arc<RgbImage>,
        /// The intermediate image file, when one was written.
        saved: Option<PathBuf>,
    },
    /// The image of the current iterate, after a [`Control::request_snapshot`].
    Snapshot {
        /// Iterations done.
        iteration: usize,
        /// The image.
        image: Arc<RgbImage>,
    },
    /// A checkpoint was written.
    CheckpointSaved {
        /// Its path.
        path: PathBuf,
        /// Iterations it holds.
        iteration: usize,
    },
    /// The run ended; every output is written.
    Finished(Box<Summary>),
}

/// What [`Event::Started`] says.
#[derive(Debug, Clone)]
pub struct Started {
    /// The content image's size as decoded.
    pub content_size: Size,
    /// The working size (of the last stage).
    pub size: Size,
    /// Every stage.
    pub stages: Vec<Stage>,
    /// The estimate for the largest stage.
    pub estimate: Estimate,
    /// Memory the run may use, when known.
    pub available: Option<u64>,
    /// The device the run uses (`cpu`, or the GPU's description).
    pub device: String,
    /// Seconds spent preparing (decoding, weights, targets).
    pub startup_seconds: f64,
    /// The iteration the run starts from (0, or a checkpoint's).
    pub first_iteration: usize,
    /// The checkpoint resumed, if any.
    pub resumed_from: Option<PathBuf>,
    /// The records logged before this start (a resumed run's earlier ones).
    pub history: Vec<Record>,
}

/// What [`Event::Finished`] says.
#[derive(Debug, Clone)]
pub struct Summary {
    /// How the run ended.
    pub ended: Ended,
    /// Iterations done (for a divergence: of the image written).
    pub iterations: usize,
    /// The result image.
    pub output: PathBuf,
    /// The run record.
    pub record: PathBuf,
    /// The checkpoint, when one was written at the end.
    pub checkpoint: Option<PathBuf>,
    /// The median seconds of one iteration.
    pub median_step_seconds: f64,
    /// The last logged costs.
    pub last: Option<Record>,
}

/// Receives a run's events, on the run's thread, in order. An error stops the run: the engine returns
/// [`crate::Error::Sink`] at once (a front end whose output broke cannot show the rest).
pub trait EventSink {
    /// Handles one event.
    ///
    /// # Errors
    /// Whatever stops the front end from following the run.
    fn event(&mut self, event: &Event) -> Result<(), SinkError>;
}

/// The error of an [`EventSink`], as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

impl<F: FnMut(&Event) -> Result<(), SinkError>> EventSink for F {
    fn event(&mut self, event: &Event) -> Result<(), SinkError> {
        self(event)
    }
}

/// A sink that ignores every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn event(&mut self, _: &Event) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Steers a running run from any thread: cancel it (it finishes the iteration in progress, writes the
/// image and a checkpoint, and ends as [`Ended::Cancelled`]), pause and resume it (between iterations),
/// or ask for a snapshot of the image. Clones share the same run.
///
/// # Examples
/// ```
/// let control = nst_engine::Control::new();
/// let for_handler = control.clone();
/// for_handler.cancel();
/// assert!(control.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Control {
    inner: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    cancel: AtomicBool,
    snapshot: AtomicBool,
    /// Whether the run is paused; the run's thread waits on `wake` while it is.
    paused: Mutex<bool>,
    wake: Condvar,
}

impl Control {
    /// A fresh handle: not cancelled, no snapshot asked for.
    pub fn new() -> Control {
        Control::default()
    }

    /// Asks the run to stop after the iteration in progress.
    pub fn cancel(&self) {
        self.inner.cancel.store(true, Ordering::SeqCst);
        // A paused run wakes up to see the cancellation.
        let _paused = self.lock_paused();
        self.inner.wake.notify_all();
    }

    /// Asks the run to wait before its next iteration until [`Control::resume`] or
    /// [`Control::cancel`]; the iteration in progress finishes first.
    pub fn pause(&self) {
        *self.lock_paused() = true;
    }

    /// Lets a paused run go on.
    pub fn resume(&self) {
        *self.lock_paused() = false;
        self.inner.wake.notify_all();
    }

    /// Whether the run is paused (or will pause before its next iteration).
    pub fn is_paused(&self) -> bool {
        *self.lock_paused()
    }

    /// Blocks the run's thread while paused and not cancelled.
    pub(crate) fn wait_while_paused(&self) {
        let mut paused = self.lock_paused();
        while *paused && !self.is_cancelled() {
            paused = self
                .inner
                .wake
                .wait(paused)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn lock_paused(&self) -> std::sync::MutexGuard<'_, bool> {
        // A bool cannot be left half-written: a poisoned lock still holds a valid value.
        self.inner
            .paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether [`Control::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.load(Ordering::SeqCst)
    }

    /// Asks for one [`Event::Snapshot`] after the iteration in progress.
    pub fn request_snapshot(&self) {
        self.inner.snapshot.store(true, Ordering::SeqCst);
    }

    /// Takes a pending snapshot request.
    pub(crate) fn take_snapshot_request(&self) -> bool {
        self.inner.snapshot.swap(false, Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests;
