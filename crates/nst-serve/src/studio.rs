//! The studio's state and its one worker: the runs, the queue, the run in progress and its
//! [`Control`], the latest preview, and the events sent to the pages. The engine runs on the worker's
//! own thread (and rayon's pool), never on the async runtime; previews are encoded on a third thread.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::{Duration, SystemTime};

use image::RgbImage;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use nst_engine::checkpoint::Checkpoint;
use nst_engine::{Control, Ended, Run, RunOptions, RunSpec, Scales};

use crate::settings::Settings;
use crate::sink::StudioSink;
use crate::store::{ImageRef, RunInfo, RunState, Store};
use crate::{Config, Error, Result};

/// The last event of a closing studio: event streams end on it.
pub(crate) const CLOSING: &str = "{\"type\":\"closing\"}";

/// The latest preview: a JPEG of the run in progress.
#[derive(Debug, Clone)]
pub(crate) struct Preview {
    pub(crate) run: String,
    pub(crate) iteration: usize,
    pub(crate) jpeg: Arc<Vec<u8>>,
}

/// An image for the preview encoder: the run, the iteration, the pixels.
type Frame = (String, usize, Arc<RgbImage>);

/// What the server and the worker share.
pub(crate) struct Studio {
    pub(crate) store: Store,
    pub(crate) config: Config,
    inner: Mutex<Inner>,
    wake: Condvar,
    events: broadcast::Sender<Arc<str>>,
    watchers: AtomicUsize,
    preview: Mutex<Option<Preview>>,
    encoder: Mutex<Option<mpsc::SyncSender<Frame>>>,
    /// Uploads being read (see `http::upload`).
    pub(crate) upload_slots: tokio::sync::Semaphore,
}

#[derive(Default)]
struct Inner {
    runs: BTreeMap<String, RunInfo>,
    queue: VecDeque<String>,
    current: Option<(String, Control)>,
    next_id: u32,
    closing: bool,
}

/// Locks a mutex whose data stays valid even if a holder panicked (every update is one assignment).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Studio {
    /// Opens the folder, takes back its history (runs cut short are queued again, to resume from their
    /// checkpoints), and starts the worker and the preview encoder.
    pub(crate) fn start(config: Config) -> Result<(Arc<Studio>, std::thread::JoinHandle<()>)> {
        let store = Store::open(&config.out_dir, config.samples.as_deref())?;
        let mut inner = Inner::default();
        for mut info in store.load_all() {
            if matches!(
                info.state,
                RunState::Queued | RunState::Running | RunState::Paused
            ) {
                info.resume = store.run_dir(&info.id).join("checkpoint.json").is_file();
                if !info.resume {
                    info.iteration = 0;
                    info.costs.clear();
                }
                info.state = RunState::Queued;
                inner.queue.push_back(info.id.clone());
                store.save(&info)?;
            }
            let n: u32 = info.id[1..].parse().expect("a run id has six digits");
            inner.next_id = inner.next_id.max(n);
            inner.runs.insert(info.id.clone(), info);
        }
        let (events, _) = broadcast::channel(1024);
        let studio = Arc::new(Studio {
            store,
            config,
            inner: Mutex::new(inner),
            wake: Condvar::new(),
            events,
            watchers: AtomicUsize::new(0),
            preview: Mutex::new(None),
            encoder: Mutex::new(None),
            upload_slots: tokio::sync::Semaphore::new(crate::http::UPLOAD_SLOTS),
        });
        let (tx, rx) = mpsc::sync_channel(1);
        *lock(&studio.encoder) = Some(tx);
        let for_encoder = Arc::clone(&studio);
        std::thread::Builder::new()
            .name("nst-serve-preview".into())
            .spawn(move || for_encoder.encode_previews(&rx))
            .map_err(Error::Runtime)?;
        let for_worker = Arc::clone(&studio);
        let worker = std::thread::Builder::new()
            .name("nst-serve-worker".into())
            .spawn(move || for_worker.work())
            .map_err(Error::Runtime)?;
        Ok((studio, worker))
    }

    /// Subscribes a page to the events; it counts as watching until the receiver is dropped.
    pub(crate) fn subscribe(self: &Arc<Self>) -> (broadcast::Receiver<Arc<str>>, WatchGuard) {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        (
            self.events.subscribe(),
            WatchGuard {
                studio: Arc::clone(self),
            },
        )
    }

    /// Whether a page is watching.
    pub(crate) fn watched(&self) -> bool {
        self.watchers.load(Ordering::SeqCst) > 0
    }

    /// Sends an event to every page.
    pub(crate) fn emit(&self, event: Value) {
        // No page listening is not an error.
        let _ = self.events.send(Arc::from(event.to_string()));
    }

    /// Everything a page needs to draw itself.
    pub(crate) fn state(&self) -> Value {
        let inner = lock(&self.inner);
        let runs: Vec<Value> = inner.runs.values().map(summary).collect();
        json!({
            "runs": runs,
            "queue": inner.queue,
            "samples": self.store.samples(),
            "defaults": self.config.defaults,
            "limits": {"queue": self.config.queue_limit, "upload_bytes": crate::UPLOAD_LIMIT},
        })
    }

    /// One run's record, costs included.
    pub(crate) fn run_info(&self, id: &str) -> Result<RunInfo> {
        lock(&self.inner)
            .runs
            .get(id)
            .cloned()
            .ok_or(Error::NotFound)
    }

    /// Queues a new run.
    pub(crate) fn submit(&self, settings: Settings) -> Result<String> {
        // Check the settings and the images now, so that a mistake is a 400 and not a failed run.
        self.spec_of(&settings, PathBuf::from("check"))?;
        let mut inner = lock(&self.inner);
        if inner.closing {
            return Err(Error::Conflict("the server is shutting down".into()));
        }
        if inner.queue.len() >= self.config.queue_limit {
            return Err(Error::QueueFull(self.config.queue_limit));
        }
        inner.next_id += 1;
        let id = format!("r{:06}", inner.next_id);
        let info = RunInfo {
            id: id.clone(),
            total: settings.iterations,
            settings,
            state: RunState::Queued,
            created: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            seconds: 0.0,
            iteration: 0,
            stage: [0, 1],
            costs: Vec::new(),
            error: None,
            resume: false,
        };
        self.store.save(&info)?;
        inner.queue.push_back(id.clone());
        self.emit(json!({"type": "run", "run": summary(&info)}));
        inner.runs.insert(id.clone(), info);
        self.emit_queue(&inner);
        self.wake.notify_all();
        Ok(id)
    }

    /// Pause, resume or stop the run in progress (or take a queued run out of the queue with stop).
    pub(crate) fn command(&self, id: &str, what: Command) -> Result<()> {
        let mut inner = lock(&self.inner);
        if !inner.runs.contains_key(id) {
            return Err(Error::NotFound);
        }
        if let Some((cur, control)) = &inner.current
            && cur == id
        {
            let state = match what {
                Command::Pause => {
                    control.pause();
                    RunState::Paused
                }
                Command::Resume => {
                    control.resume();
                    RunState::Running
                }
                Command::Stop => {
                    control.cancel();
                    return Ok(());
                }
            };
            self.set_state(&mut inner, id, state);
            return Ok(());
        }
        if what == Command::Stop && inner.queue.contains(&id.to_owned()) {
            inner.queue.retain(|q| q != id);
            self.set_state(&mut inner, id, RunState::Stopped);
            self.emit_queue(&inner);
            return Ok(());
        }
        Err(Error::Conflict(format!("run {id} is not running")))
    }

    /// Queues `iterations` more iterations of a finished run, from its checkpoint.
    pub(crate) fn extend(&self, id: &str, iterations: usize) -> Result<()> {
        if iterations == 0 || iterations > 100_000 {
            return Err(Error::BadRequest(
                "iterations must be between 1 and 100000".into(),
            ));
        }
        let mut inner = lock(&self.inner);
        let info = inner.runs.get(id).ok_or(Error::NotFound)?;
        if !matches!(info.state, RunState::Done | RunState::Stopped) {
            return Err(Error::Conflict(format!(
                "run {id} is {:?}: only a finished or stopped run can continue",
                info.state
            )));
        }
        if info.settings.scales.trim() != "single" {
            return Err(Error::Conflict(
                "only a single-scale run can continue (start a new run from its image)".into(),
            ));
        }
        if !self.store.run_dir(id).join("checkpoint.json").is_file() {
            return Err(Error::Conflict(format!("run {id} has no checkpoint")));
        }
        if inner.queue.len() >= self.config.queue_limit {
            return Err(Error::QueueFull(self.config.queue_limit));
        }
        let info = inner.runs.get_mut(id).expect("checked above");
        info.total = info.iteration + iterations;
        info.resume = true;
        inner.queue.push_back(id.to_owned());
        self.set_state(&mut inner, id, RunState::Queued);
        self.emit_queue(&inner);
        self.wake.notify_all();
        Ok(())
    }

    /// Moves a queued run one place earlier.
    pub(crate) fn move_up(&self, id: &str) -> Result<()> {
        let mut inner = lock(&self.inner);
        let pos = inner
            .queue
            .iter()
            .position(|q| q == id)
            .ok_or_else(|| Error::Conflict(format!("run {id} is not queued")))?;
        if pos > 0 {
            inner.queue.swap(pos, pos - 1);
        }
        self.emit_queue(&inner);
        Ok(())
    }

    /// The latest preview of run `id`.
    pub(crate) fn preview(&self, id: &str) -> Option<Preview> {
        lock(&self.preview).clone().filter(|p| p.run == id)
    }

    /// Stops taking runs: the run in progress is cancelled (it writes a checkpoint) and stays queued
    /// for the next start.
    pub(crate) fn close(&self) {
        let mut inner = lock(&self.inner);
        inner.closing = true;
        if let Some((_, control)) = &inner.current {
            control.cancel();
        }
        self.wake.notify_all();
        drop(inner);
        *lock(&self.encoder) = None;
        let _ = self.events.send(Arc::from(CLOSING));
    }

    /// Hands an image to the preview encoder, unless it is still busy with the previous one.
    pub(crate) fn offer_preview(&self, id: &str, iteration: usize, image: Arc<RgbImage>) {
        if let Some(tx) = lock(&self.encoder).as_ref() {
            let _ = tx.try_send((id.to_owned(), iteration, image));
        }
    }

    /// Updates a run's record with `edit` and tells the pages.
    pub(crate) fn update(&self, id: &str, edit: impl FnOnce(&mut RunInfo)) {
        let mut inner = lock(&self.inner);
        if let Some(info) = inner.runs.get_mut(id) {
            edit(info);
        }
    }

    /// Saves a run's record (after a checkpoint, at the end).
    pub(crate) fn persist(&self, id: &str) {
        let info = lock(&self.inner).runs.get(id).cloned();
        if let Some(info) = info {
            // A record that cannot be written costs the history, not the run.
            let _ = self.store.save(&info);
        }
    }

    fn set_state(&self, inner: &mut Inner, id: &str, state: RunState) {
        if let Some(info) = inner.runs.get_mut(id) {
            info.state = state;
            let _ = self.store.save(info);
            self.emit(json!({"type": "run", "run": summary(info)}));
        }
    }

    fn emit_queue(&self, inner: &Inner) {
        self.emit(json!({"type": "queue", "queue": inner.queue}));
    }

    /// The worker: one run at a time, in queue order, until the studio closes.
    fn work(&self) {
        while let Some((id, control)) = self.next_job() {
            let outcome = self.run_one(&id, &control);
            let mut inner = lock(&self.inner);
            inner.current = None;
            let closing = inner.closing;
            let info = inner.runs.get_mut(&id).expect("a run stays in the table");
            let state = match outcome {
                Ok(Ended::Cancelled) if closing => {
                    info.resume = true;
                    RunState::Queued
                }
                Ok(Ended::Cancelled) => RunState::Stopped,
                Ok(Ended::Diverged) => {
                    info.error = Some("the image became non-finite: lower the learning rate or the weights; the last good image was kept".into());
                    RunState::Failed
                }
                Ok(_) => RunState::Done,
                Err(e) => {
                    info.error = Some(e);
                    RunState::Failed
                }
            };
            self.set_state(&mut inner, &id, state);
        }
    }

    /// Waits for the next queued run; `None` once the studio closes.
    fn next_job(&self) -> Option<(String, Control)> {
        let mut inner = lock(&self.inner);
        loop {
            if inner.closing {
                return None;
            }
            if let Some(id) = inner.queue.pop_front() {
                let control = Control::new();
                inner.current = Some((id.clone(), control.clone()));
                self.set_state(&mut inner, &id, RunState::Running);
                self.emit_queue(&inner);
                return Some((id, control));
            }
            inner = self
                .wake
                .wait(inner)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Prepares and executes run `id`; the error is the message the page shows.
    fn run_one(&self, id: &str, control: &Control) -> std::result::Result<Ended, String> {
        let info = self.run_info(id).map_err(|e| e.to_string())?;
        let dir = self.store.run_dir(id);
        let (spec, resume) = if info.resume {
            let (ckpt, path) = Checkpoint::load(&dir).map_err(|e| e.to_string())?;
            let mut spec = ckpt.settings.clone();
            if spec.scales == Scales::Single {
                spec.iterations = info.total;
            }
            self.update(id, |i| {
                i.costs.retain(|c| c.iteration <= ckpt.iteration);
                i.iteration = ckpt.iteration;
            });
            (spec, Some((ckpt, path)))
        } else {
            (
                self.spec_of(&info.settings, dir)
                    .map_err(|e| e.to_string())?,
                None,
            )
        };
        let mut sink = StudioSink::new(self, id, control.clone());
        let options = RunOptions {
            threads: self.config.threads,
            ..RunOptions::default()
        };
        let run = Run::prepare(spec, resume, options, &mut sink).map_err(|e| chain(&e))?;
        let summary = run.execute(&mut sink, control).map_err(|e| chain(&e));
        sink.finish(&self.store.run_dir(id).join("run.gif"));
        self.persist(id);
        summary.map(|s| s.ended)
    }

    /// The engine's specification of `settings`, writing into `dir`.
    fn spec_of(&self, settings: &Settings, dir: PathBuf) -> Result<RunSpec> {
        let resolve = |r: &str| self.store.image_path(&ImageRef::parse(r)?);
        if settings.content.is_empty() {
            return Err(Error::BadRequest("choose a content image".into()));
        }
        if settings.styles.is_empty() {
            return Err(Error::BadRequest("choose at least one style image".into()));
        }
        let content = resolve(&settings.content)?;
        let styles = settings
            .styles
            .iter()
            .map(|s| resolve(s))
            .collect::<Result<Vec<_>>>()?;
        let mut spec = settings
            .to_spec(content, styles, self.config.weights.clone(), dir)
            .map_err(Error::BadRequest)?;
        spec.checkpoint_every = self.config.checkpoint_every;
        spec.print_every = self.config.print_every;
        Ok(spec)
    }

    /// The preview encoder's loop: JPEG at quality 85, then one event.
    fn encode_previews(&self, rx: &mpsc::Receiver<Frame>) {
        while let Ok((run, iteration, image)) = rx.recv() {
            let mut jpeg = Vec::new();
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85);
            if image.write_with_encoder(encoder).is_err() {
                continue;
            }
            *lock(&self.preview) = Some(Preview {
                run: run.clone(),
                iteration,
                jpeg: Arc::new(jpeg),
            });
            self.emit(json!({"type": "preview", "run": run, "iteration": iteration}));
        }
    }

    /// The interval between two preview requests.
    pub(crate) fn preview_every(&self) -> Duration {
        self.config.preview_every
    }
}

/// Counts a watching page until dropped.
pub(crate) struct WatchGuard {
    studio: Arc<Studio>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.studio.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Pause,
    Resume,
    Stop,
}

/// A run's record without its costs (the list and the events carry this).
pub(crate) fn summary(info: &RunInfo) -> Value {
    let mut v = serde_json::to_value(info).expect("a RunInfo serializes");
    if let Some(map) = v.as_object_mut() {
        map.remove("costs");
        map.insert("last".into(), json!(info.costs.last()));
    }
    v
}

/// An error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !msg.ends_with(&cause) {
            msg.push_str(": ");
            msg.push_str(&cause);
        }
        source = s.source();
    }
    msg
}
