//! The state of a whole batch, read from its folders: a table (job, status, time, iterations, final
//! costs, label), the errors of failed jobs, each video's flicker, the counts, and the same as JSON.

use std::fmt::Write as _;

use serde_json::json;

use super::lock::LockConfig;
use super::plan::Plan;
use super::state::{self, JobStatus, Status};
use super::video;

/// How many jobs are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Done.
    pub done: usize,
    /// Failed.
    pub failed: usize,
    /// Held by a live worker.
    pub running: usize,
    /// Stopped with a checkpoint.
    pub interrupted: usize,
    /// Not started.
    pub pending: usize,
}

impl Counts {
    /// Counts `statuses`.
    pub fn of(statuses: &[JobStatus]) -> Counts {
        let mut c = Counts::default();
        for s in statuses {
            match s.status {
                Status::Done => c.done += 1,
                Status::Failed(_) => c.failed += 1,
                Status::Running(_) => c.running += 1,
                Status::Interrupted => c.interrupted += 1,
                Status::Pending => c.pending += 1,
            }
        }
        c
    }

    /// Every job.
    pub fn total(&self) -> usize {
        self.done + self.failed + self.running + self.interrupted + self.pending
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} jobs: {} done, {} failed, {} running, {} interrupted, {} pending",
            self.total(),
            self.done,
            self.failed,
            self.running,
            self.interrupted,
            self.pending
        )
    }
}

/// Every job's status, from its folder.
pub fn statuses(plan: &Plan, cfg: &LockConfig) -> Vec<JobStatus> {
    plan.jobs.iter().map(|j| state::status_of(j, cfg)).collect()
}

/// The table, the errors, the flicker of each video and the counts.
pub fn render(plan: &Plan, statuses: &[JobStatus]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16}  {:<11} {:>8} {:>6} {:>11} {:>11} {:>11}  label",
        "job", "status", "time", "iter", "total", "content", "style"
    );
    for (job, st) in plan.jobs.iter().zip(statuses) {
        let r = st.record.as_ref();
        let last = r.and_then(|r| r.last.as_ref());
        let num = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.4e}"));
        let _ = writeln!(
            out,
            "{:<16}  {:<11} {:>8} {:>6} {:>11} {:>11} {:>11}  {}",
            job.id,
            st.status.word(),
            r.map_or_else(|| "-".to_owned(), |r| format!("{:.1}s", r.seconds())),
            last.map_or_else(|| "-".to_owned(), |l| l.iteration.to_string()),
            num(last.map(|l| l.total)),
            num(last.map(|l| l.content)),
            num(last.map(|l| l.style)),
            job.label
        );
    }
    for (job, st) in plan.jobs.iter().zip(statuses) {
        if let Status::Failed(e) = &st.status {
            let _ = writeln!(out, "failed: {} ({}): {e}", job.id, job.label);
        }
    }
    let plain: Vec<Status> = statuses.iter().map(|s| s.status.clone()).collect();
    for v in &plan.videos {
        let _ = writeln!(out, "{}", flicker_line(plan, v, &plain));
    }
    let _ = writeln!(out, "{}", Counts::of(statuses));
    out
}

/// `video walk: flicker 3.1 (results) against 2.0 (inputs), ratio 1.55, over 7 pairs of frames`.
fn flicker_line(plan: &Plan, v: &super::plan::Video, statuses: &[Status]) -> String {
    match video::flicker(plan, v, statuses) {
        Ok(Some(f)) => format!(
            "video {}: flicker {:.2} (mean |result(t) − result(t−1)|, 0–255) against {:.2} for the inputs: ratio {:.2}, over {} pairs of frames; frames in {}",
            v.name,
            f.outputs,
            f.inputs,
            f.ratio(),
            f.pairs,
            v.sequence_dir.display()
        ),
        Ok(None) => format!(
            "video {}: flicker not measured yet (needs two consecutive frames done)",
            v.name
        ),
        Err(e) => format!("video {}: flicker not measured: {e:#}", v.name),
    }
}

/// The same as JSON: every job with its status, error, time, attempts and final costs; each video's
/// flicker; the counts.
pub fn to_json(plan: &Plan, statuses: &[JobStatus]) -> serde_json::Value {
    let jobs: Vec<serde_json::Value> = plan
        .jobs
        .iter()
        .zip(statuses)
        .map(|(job, st)| {
            let r = st.record.as_ref();
            json!({
                "id": job.id.as_str(),
                "label": job.label,
                "folder": job.dir(),
                "status": st.status.word(),
                "error": match &st.status { Status::Failed(e) => Some(e.as_str()), _ => None },
                "held_by": match &st.status { Status::Running(h) => Some(h.to_string()), _ => None },
                "seconds": r.map(|r| r.seconds()),
                "attempts": r.map_or(0, |r| r.attempts.len()),
                "completions": r.map_or(0, |r| r.completions()),
                "final": r.and_then(|r| r.last.as_ref()),
            })
        })
        .collect();
    let plain: Vec<Status> = statuses.iter().map(|s| s.status.clone()).collect();
    let videos: Vec<serde_json::Value> = plan
        .videos
        .iter()
        .map(|v| {
            let f = video::flicker(plan, v, &plain).ok().flatten();
            json!({
                "name": v.name,
                "frames": v.jobs.len(),
                "sequence": v.sequence_dir,
                "flicker": f.map(|f| json!({"results": f.outputs, "inputs": f.inputs, "ratio": f.ratio(), "pairs": f.pairs})),
            })
        })
        .collect();
    let c = Counts::of(statuses);
    json!({
        "batch": plan.file,
        "out_dir": plan.out_dir,
        "jobs": jobs,
        "videos": videos,
        "counts": {"done": c.done, "failed": c.failed, "running": c.running, "interrupted": c.interrupted, "pending": c.pending},
    })
}
