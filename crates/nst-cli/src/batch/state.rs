//! What a job's folder says about it: `job.json` (written atomically by the worker that holds the job's
//! lock: state, error, every attempt, final costs), the result, the checkpoint and the lock. The
//! status of a batch is read from these alone, by any process, at any time.

use std::path::{Path, PathBuf};

use nst_engine::Record;
use serde::{Deserialize, Serialize};

use super::lock::{self, Holder, LockConfig};
use super::plan::Job;

/// The job record's name in a job's folder.
pub const JOB_FILE: &str = "job.json";

/// A job's state as its record says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A worker started it (and, if it holds no lock now, died).
    Running,
    /// Finished; the result is written.
    Done,
    /// Stopped with an error (recorded).
    Failed,
    /// Stopped by a signal; its checkpoint is written.
    Interrupted,
}

/// One worker's go at a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The worker's host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its shard (`2/3`) and where that came from.
    pub shard: String,
    /// When it started (seconds since the Unix epoch).
    pub started_unix: u64,
    /// When it ended, once it did.
    pub ended_unix: Option<u64>,
    /// `done`, `failed`, `interrupted`, or `running` while it runs.
    pub outcome: State,
    /// The iteration it started from (a checkpoint's, or 0).
    pub from_iteration: usize,
    /// The iteration it reached.
    pub iterations: usize,
    /// Wall seconds.
    pub seconds: f64,
}

/// `job.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: String,
    /// Its label in the plan.
    pub label: String,
    /// Its state.
    pub state: State,
    /// The error of a failed job.
    pub error: Option<String>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// The last logged costs.
    pub last: Option<Record>,
}

impl JobRecord {
    /// A record for a job not yet tried.
    pub fn new(job: &Job) -> JobRecord {
        JobRecord {
            id: job.id.to_string(),
            label: job.label.clone(),
            state: State::Running,
            error: None,
            attempts: Vec::new(),
            last: None,
        }
    }

    /// The wall seconds of every attempt.
    pub fn seconds(&self) -> f64 {
        self.attempts.iter().map(|a| a.seconds).sum()
    }

    /// The iteration reached.
    pub fn iterations(&self) -> usize {
        self.attempts.last().map_or(0, |a| a.iterations)
    }

    /// How many attempts finished the job (1 for a job done once).
    pub fn completions(&self) -> usize {
        self.attempts
            .iter()
            .filter(|a| a.outcome == State::Done)
            .count()
    }
}

/// Reads `dir/job.json`; `None` when there is none.
///
/// # Errors
/// A message naming the file when it cannot be read or parsed.
pub fn read(dir: &Path) -> Result<Option<JobRecord>, String> {
    let path = dir.join(JOB_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `dir/job.json` atomically.
///
/// # Errors
/// The write's error, naming the file.
pub fn write(dir: &Path, record: &JobRecord) -> Result<(), nst_engine::image_io::ImageError> {
    let text = serde_json::to_string_pretty(record).expect("a job record serializes");
    nst_engine::image_io::write_atomically(&dir.join(JOB_FILE), |f| {
        std::io::Write::write_all(f, text.as_bytes()).map_err(|e| e.to_string())
    })
}

/// A job's status, read from its folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Never started (or started and died before its first checkpoint).
    Pending,
    /// A live worker holds its lock.
    Running(Holder),
    /// Stopped before the end with a checkpoint to resume from.
    Interrupted,
    /// Finished: result and record written.
    Done,
    /// Failed with this error.
    Failed(String),
}

impl Status {
    /// One word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running(_) => "running",
            Status::Interrupted => "interrupted",
            Status::Done => "done",
            Status::Failed(_) => "failed",
        }
    }
}

/// A job's status and record.
#[derive(Debug, Clone)]
pub struct JobStatus {
    /// The status.
    pub status: Status,
    /// `job.json`, when there is one.
    pub record: Option<JobRecord>,
}

/// Reads the status of `job` from its folder.
pub fn status_of(job: &Job, cfg: &LockConfig) -> JobStatus {
    let dir = job.dir();
    let record = match read(dir) {
        Ok(r) => r,
        Err(e) => {
            return JobStatus {
                status: Status::Failed(e),
                record: None,
            };
        }
    };
    let status = match (&record, lock::holder_of(dir, cfg)) {
        (Some(r), _) if r.state == State::Done && job.spec.output.is_file() => Status::Done,
        (_, Some(holder)) => Status::Running(holder),
        (Some(r), None) if r.state == State::Failed => {
            Status::Failed(r.error.clone().unwrap_or_default())
        }
        _ if checkpoint(dir).is_file() => Status::Interrupted,
        _ => Status::Pending,
    };
    JobStatus { status, record }
}

/// The checkpoint in a job's folder.
pub fn checkpoint(dir: &Path) -> PathBuf {
    dir.join(nst_engine::checkpoint::FILE_NAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(outcome: State, seconds: f64) -> AttemptRecord {
        AttemptRecord {
            host: "h".into(),
            pid: 1,
            shard: "1/1".into(),
            started_unix: 0,
            ended_unix: Some(1),
            outcome,
            from_iteration: 0,
            iterations: 10,
            seconds,
        }
    }

    #[test]
    fn records_round_trip_and_count_attempts() {
        let dir = crate::testing::TempDir::new("state-record");
        assert_eq!(read(dir.path()), Ok(None));
        let r = JobRecord {
            id: "0123456789abcdef".into(),
            label: "content=a".into(),
            state: State::Done,
            error: None,
            attempts: vec![attempt(State::Interrupted, 1.5), attempt(State::Done, 2.0)],
            last: None,
        };
        write(dir.path(), &r).unwrap();
        let back = read(dir.path()).unwrap().unwrap();
        assert_eq!(back, r);
        assert_eq!(
            (back.seconds(), back.completions(), back.iterations()),
            (3.5, 1, 10)
        );
        let text = std::fs::read_to_string(dir.path().join(JOB_FILE)).unwrap();
        assert!(text.contains("\"state\": \"done\""), "{text}");
        std::fs::write(dir.path().join(JOB_FILE), "{").unwrap();
        assert!(read(dir.path()).unwrap_err().contains(JOB_FILE));
    }
}
