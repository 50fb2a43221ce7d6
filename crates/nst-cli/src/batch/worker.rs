//! `nst batch run`: one worker's pass over its shard of the plan. Each job is skipped when done (or
//! failed, unless retried), taken under its lock, resumed from its checkpoint when there is one, run by
//! the engine, and recorded in its `job.json`; a failure is recorded and the pass goes on; a signal
//! stops the job in progress (image and checkpoint written) and the pass.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nst_engine::checkpoint::Checkpoint;
use nst_engine::{Control, Event, EventSink, Record, Run, RunOptions, SinkError, StyleCache};

use super::lock::{self, Attempt, Holder, JobLock, LockConfig};
use super::plan::{Job, Plan};
use super::progress::Progress;
use super::shard::Shard;
use super::state::{self, AttemptRecord, JobRecord, State, Status};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Its shard.
    pub shard: Shard,
    /// Where the shard came from (for the records and the log).
    pub shard_source: String,
    /// Run failed jobs again (`--retry-failed`).
    pub retry_failed: bool,
    /// Lock ages.
    pub lock: LockConfig,
    /// The size of the thread pool (for the run records).
    pub threads: usize,
    /// Errors only.
    pub quiet: bool,
    /// Run jobs whose memory estimate exceeds what is available (`--force`).
    pub force: bool,
}

/// How one job went in this pass.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    /// Run to the end now.
    Done,
    /// Done before this pass.
    AlreadyDone,
    /// Failed now, with this error.
    Failed(String),
    /// Failed before this pass (not retried).
    AlreadyFailed(String),
    /// Stopped by a signal; its checkpoint is written.
    Interrupted,
    /// Another worker holds it.
    Held(Option<Holder>),
    /// A frame whose previous frame is not done (another worker has it, or it comes later).
    Waiting(String),
    /// Its lock was taken over by another worker while it ran (this one stopped).
    LockLost,
}

impl JobEnd {
    /// Whether the job ends this pass finished (now or before).
    pub fn is_done(&self) -> bool {
        matches!(self, JobEnd::Done | JobEnd::AlreadyDone)
    }

    /// Whether the job ends this pass failed (now or before).
    pub fn is_failed(&self) -> bool {
        matches!(self, JobEnd::Failed(_) | JobEnd::AlreadyFailed(_))
    }
}

/// One worker over a plan.
pub struct Worker<'a> {
    plan: &'a Plan,
    cfg: &'a WorkerConfig,
    control: &'a Control,
    cache: StyleCache,
    progress: Progress,
}

impl<'a> Worker<'a> {
    /// A worker for `cfg.shard` of `plan`, stopped by `control`.
    pub fn new(plan: &'a Plan, cfg: &'a WorkerConfig, control: &'a Control) -> Worker<'a> {
        let mine: Vec<usize> = (0..plan.jobs.len())
            .filter(|&k| cfg.shard.selects(&plan.jobs[k].unit))
            .collect();
        Worker {
            progress: Progress::new(plan, mine, cfg.quiet),
            plan,
            cfg,
            control,
            cache: StyleCache::new(),
        }
    }

    /// The jobs of this worker's shard, in plan order.
    pub fn mine(&self) -> Vec<usize> {
        self.progress.mine().to_vec()
    }

    /// Runs every job of the shard; returns how each ended (in order; jobs after a signal are left
    /// out).
    pub fn run(&mut self) -> Vec<(usize, JobEnd)> {
        let mut ends = Vec::new();
        for k in self.mine() {
            if self.control.is_cancelled() {
                break;
            }
            let started = Instant::now();
            let end = self.job(k);
            self.progress
                .job_ended(k, &end, started.elapsed().as_secs_f64());
            let stop = end == JobEnd::Interrupted;
            ends.push((k, end));
            if stop {
                break;
            }
        }
        self.progress.finish();
        ends
    }

    /// Runs job `k` if it is this worker's to run now.
    fn job(&mut self, k: usize) -> JobEnd {
        let plan = self.plan;
        let job = &plan.jobs[k];
        let st = state::status_of(job, &self.cfg.lock);
        match &st.status {
            Status::Done => {
                if let Err(e) = super::video::copy_to_sequence(plan, k, true) {
                    self.progress.line(&format!("job {}: {e:#}", job.id));
                }
                return JobEnd::AlreadyDone;
            }
            Status::Failed(e) if !self.cfg.retry_failed => return JobEnd::AlreadyFailed(e.clone()),
            Status::Running(h) => return JobEnd::Held(Some(h.clone())),
            _ => {}
        }
        let previous_failed = match self.previous_frame(job) {
            Ok(failed) => failed,
            Err(end) => return end,
        };
        if let Err(e) = std::fs::create_dir_all(job.dir()) {
            return JobEnd::Failed(format!("cannot create {}: {e}", job.dir().display()));
        }
        let mut lock = match lock::try_lock(job.dir(), &self.cfg.lock) {
            Ok(Attempt::Acquired(l)) => l,
            Ok(Attempt::Held(h)) => return JobEnd::Held(h),
            Err(e) => return JobEnd::Failed(format!("cannot lock {}: {e}", job.dir().display())),
        };
        if let Some(h) = &lock.took_over {
            self.progress
                .line(&format!("job {}: took over the stale lock of {h}", job.id));
        }
        // Re-read under the lock: another worker may have finished it meanwhile.
        let st = state::status_of(job, &self.cfg.lock);
        if st.status == Status::Done {
            return JobEnd::AlreadyDone;
        }
        // The engine's own folder lock, left by a worker that died: this job's lock is ours now.
        let _ = std::fs::remove_file(job.dir().join(nst_engine::guard::LOCK_FILE));
        let mut record = st.record.unwrap_or_else(|| JobRecord::new(job));
        record.label.clone_from(&job.label);
        if let Some(message) = previous_failed {
            return self.record_failure(job, &mut record, message);
        }
        self.attempt(k, &mut lock, &mut record)
    }

    /// For a frame that starts from the previous frame's result: `Ok(None)` when that result is
    /// there, `Ok(Some(why))` when the previous frame failed (so this one fails too), `Err` when it
    /// is not there yet.
    fn previous_frame(&self, job: &Job) -> Result<Option<String>, JobEnd> {
        let Some(prev) = job.frame.as_ref().and_then(|f| f.previous) else {
            return Ok(None);
        };
        let p = &self.plan.jobs[prev];
        let number = p.frame.as_ref().map_or(0, |f| f.number);
        match state::status_of(p, &self.cfg.lock).status {
            Status::Done => Ok(None),
            Status::Failed(e) => Ok(Some(format!(
                "the previous frame ({number}, job {}) failed, and this frame starts from its result: {e}",
                p.id
            ))),
            Status::Running(h) => Err(JobEnd::Waiting(format!(
                "frame {number} (job {}) is being run by {h}",
                p.id
            ))),
            _ => Err(JobEnd::Waiting(format!(
                "frame {number} (job {}) is not done",
                p.id
            ))),
        }
    }

    fn record_failure(&self, job: &Job, record: &mut JobRecord, message: String) -> JobEnd {
        record.state = State::Failed;
        record.error = Some(message.clone());
        if let Err(e) = state::write(job.dir(), record) {
            self.progress.line(&format!("job {}: {e}", job.id));
        }
        JobEnd::Failed(message)
    }

    /// One attempt at job `k`, under `lock`: recorded before and after.
    fn attempt(&mut self, k: usize, lock: &mut JobLock, record: &mut JobRecord) -> JobEnd {
        let plan = self.plan;
        let job = &plan.jobs[k];
        let started = Instant::now();
        let h = lock.holder().clone();
        record.attempts.push(AttemptRecord {
            host: h.host,
            pid: h.pid,
            shard: format!("{} ({})", self.cfg.shard, self.cfg.shard_source),
            started_unix: unix_now(),
            ended_unix: None,
            outcome: State::Running,
            from_iteration: 0,
            iterations: 0,
            seconds: 0.0,
        });
        record.state = State::Running;
        record.error = None;
        if let Err(e) = state::write(job.dir(), record) {
            return JobEnd::Failed(format!("{e}"));
        }
        let job_control = Control::new();
        lock.watch(&self.cfg.lock, self.control, &job_control);
        let outcome = self.execute(k, &job_control);
        if lock.lost() {
            return JobEnd::LockLost;
        }
        let attempt = record.attempts.last_mut().expect("pushed above");
        attempt.ended_unix = Some(unix_now());
        attempt.seconds = started.elapsed().as_secs_f64();
        let end = match outcome {
            Ok(o) => {
                attempt.from_iteration = o.from;
                attempt.iterations = o.reached;
                record.last = o.last.or(record.last.take());
                if o.cancelled {
                    JobEnd::Interrupted
                } else {
                    JobEnd::Done
                }
            }
            Err(message) => JobEnd::Failed(message),
        };
        self.finish_record(k, record, &end);
        end
    }

    /// Writes the attempt's end into `job.json`, and a finished frame into its video's sequence.
    fn finish_record(&self, k: usize, record: &mut JobRecord, end: &JobEnd) {
        let job = &self.plan.jobs[k];
        let (state, error) = match end {
            JobEnd::Done => (State::Done, None),
            JobEnd::Interrupted => (State::Interrupted, None),
            JobEnd::Failed(e) => (State::Failed, Some(e.clone())),
            _ => return,
        };
        record.state = state;
        record.error = error;
        if let Some(a) = record.attempts.last_mut() {
            a.outcome = state;
        }
        if let Err(e) = state::write(job.dir(), record) {
            self.progress.line(&format!("job {}: {e}", job.id));
        }
        if state == State::Done
            && let Err(e) = super::video::copy_to_sequence(self.plan, k, false)
        {
            self.progress.line(&format!("job {}: {e:#}", job.id));
        }
    }

    /// Runs job `k` through the engine (resuming its checkpoint), catching a panic as a failure.
    fn execute(&mut self, k: usize, control: &Control) -> Result<Outcome, String> {
        let plan = self.plan;
        let job = &plan.jobs[k];
        if let Some(last) = completed_before(job) {
            return Ok(Outcome {
                from: job.iterations(),
                reached: job.iterations(),
                last,
                cancelled: false,
            });
        }
        let resume = self.checkpoint(job);
        let options = RunOptions {
            force: self.cfg.force,
            threads: self.cfg.threads,
            before_weights: None,
            place: None,
            style_cache: Some(&self.cache),
        };
        let mut sink = JobSink {
            progress: &mut self.progress,
            job: k,
            outcome: Outcome::default(),
        };
        let spec = job.spec.clone();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Run::prepare(spec, resume, options, &mut sink)
                .and_then(|run| run.execute(&mut sink, control))
        }));
        match ran {
            Ok(Ok(summary)) => Ok(Outcome {
                cancelled: summary.ended == nst_engine::Ended::Cancelled,
                ..sink.outcome
            }),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(panic) => Err(format!(
                "the run panicked: {}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("?")
            )),
        }
    }

    /// The job's checkpoint, when there is a readable one; an unreadable one is moved aside (the job
    /// then starts over) and said.
    fn checkpoint(&self, job: &Job) -> Option<(Checkpoint, std::path::PathBuf)> {
        let path = state::checkpoint(job.dir());
        if !path.is_file() {
            return None;
        }
        match Checkpoint::load(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                let aside = path.with_extension("json.unreadable");
                let _ = std::fs::rename(&path, &aside);
                self.progress.line(&format!(
                    "job {}: {e}; moved to {} and starting over",
                    job.id,
                    aside.display()
                ));
                None
            }
        }
    }
}

/// What a job's run reported.
#[derive(Debug, Clone, Default)]
struct Outcome {
    from: usize,
    reached: usize,
    last: Option<Record>,
    cancelled: bool,
}

/// Follows one job's events: progress, and what the record keeps.
struct JobSink<'p> {
    progress: &'p mut Progress,
    job: usize,
    outcome: Outcome,
}

impl EventSink for JobSink<'_> {
    fn event(&mut self, e: &Event) -> Result<(), SinkError> {
        match e {
            Event::Note(text) => self.progress.note(self.job, text),
            Event::Started(s) => {
                self.outcome.from = s.first_iteration;
                self.outcome.reached = s.first_iteration;
                self.outcome.last = s.history.last().cloned();
                let total = s.stages.last().map_or(0, |st| st.end);
                self.progress
                    .job_started(self.job, s.first_iteration, total);
            }
            Event::Step { iteration, .. } => {
                self.outcome.reached = *iteration;
                self.progress.step(*iteration);
            }
            Event::Logged { record, .. } => {
                self.outcome.last = Some(record.clone());
                self.progress.logged(self.job, record);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The last costs of a job whose run record says it completed though its `job.json` does not (the
/// worker died between the two writes).
fn completed_before(job: &Job) -> Option<Option<Record>> {
    let record_path = job.spec.output.with_extension("run.json");
    let text = std::fs::read_to_string(record_path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let done = matches!(v["outcome"].as_str(), Some("completed" | "converged"));
    (done && job.spec.output.is_file()).then(|| serde_json::from_value(v["final"].clone()).ok())
}

/// An error with its causes, as the binary prints them.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
