//! A worker's progress over its jobs on stderr: a line when a job starts and ends, its logged costs,
//! and the batch's counts with an estimate of the time left (the iterations left times the seconds per
//! iteration measured so far, start-up included). A bar on a terminal; plain lines in a log (Slurm's
//! output files).

use std::io::IsTerminal as _;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nst_engine::Record;

use super::plan::Plan;
use super::worker::JobEnd;

/// What the progress lines need of each job: id, label, iterations.
struct JobInfo {
    id: String,
    label: String,
    iterations: usize,
}

/// The current job.
struct Current {
    job: usize,
    total: usize,
    iteration: usize,
    started: Instant,
    first: usize,
}

/// A worker's progress.
pub struct Progress {
    jobs: Vec<JobInfo>,
    mine: Vec<usize>,
    quiet: bool,
    bar: Option<ProgressBar>,
    ended: usize,
    done: usize,
    failed: usize,
    other: usize,
    current: Option<Current>,
    /// Iterations run by this process and the seconds its jobs took, for the estimate.
    iterations_run: usize,
    seconds_run: f64,
}

impl Progress {
    /// Progress over `mine` (indices into `plan.jobs`).
    pub fn new(plan: &Plan, mine: Vec<usize>, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(mine.len() as u64),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template("{bar:20} {pos}/{len} jobs {msg}")
                    .expect("a valid template"),
            );
            bar
        });
        Progress {
            jobs: plan
                .jobs
                .iter()
                .map(|j| JobInfo {
                    id: j.id.to_string(),
                    label: j.label.clone(),
                    iterations: j.iterations(),
                })
                .collect(),
            mine,
            quiet,
            bar,
            ended: 0,
            done: 0,
            failed: 0,
            other: 0,
            current: None,
            iterations_run: 0,
            seconds_run: 0.0,
        }
    }

    /// The jobs of this worker.
    pub fn mine(&self) -> &[usize] {
        &self.mine
    }

    /// A line above the bar (or on stderr).
    pub fn line(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    /// An engine note about job `k`.
    pub fn note(&self, k: usize, text: &str) {
        self.line(&format!("  job {}: note: {text}", self.jobs[k].id));
    }

    /// Job `k` starts at iteration `first` of `total`.
    pub fn job_started(&mut self, k: usize, first: usize, total: usize) {
        let info = &self.jobs[k];
        let from = if first > 0 {
            format!("resuming at iteration {first} of {total}")
        } else {
            format!("{total} iterations")
        };
        self.line(&format!(
            "[{}/{}] job {} ({}): {from}",
            self.ended + 1,
            self.mine.len(),
            info.id,
            info.label
        ));
        self.current = Some(Current {
            job: k,
            total,
            iteration: first,
            started: Instant::now(),
            first,
        });
    }

    /// The current job reached `iteration`.
    pub fn step(&mut self, iteration: usize) {
        if let Some(c) = self.current.as_mut() {
            c.iteration = iteration;
        }
        if let Some(bar) = &self.bar {
            bar.set_message(self.counts());
        }
    }

    /// A logged iteration of job `k`.
    pub fn logged(&self, k: usize, r: &Record) {
        let total = self.current.as_ref().map_or(0, |c| c.total);
        self.line(&format!(
            "  {} iteration {:>4}/{total}: total {:.4e}  content {:.4e}  style {:.4e}  [{}]",
            &self.jobs[k].id[..8],
            r.iteration,
            r.total,
            r.content,
            r.style,
            self.counts()
        ));
    }

    /// Job `k` ended as `end` after `seconds`.
    pub fn job_ended(&mut self, k: usize, end: &JobEnd, seconds: f64) {
        if let Some(c) = self.current.take().filter(|c| c.job == k) {
            self.iterations_run += c.iteration.saturating_sub(c.first);
            self.seconds_run += c.started.elapsed().as_secs_f64();
        }
        self.ended += 1;
        if end.is_done() {
            self.done += 1;
        } else if end.is_failed() {
            self.failed += 1;
        } else {
            self.other += 1;
        }
        let what = match end {
            JobEnd::Done => format!("done in {seconds:.1} s"),
            JobEnd::AlreadyDone => "already done".into(),
            JobEnd::Failed(e) => format!("FAILED: {e}"),
            JobEnd::AlreadyFailed(_) => "failed before (--retry-failed runs it again)".into(),
            JobEnd::Interrupted => {
                "interrupted: checkpoint written, the next run resumes it".into()
            }
            JobEnd::Held(Some(h)) => format!("held by {h}"),
            JobEnd::Held(None) => "held by a worker that is starting it".into(),
            JobEnd::Waiting(why) => format!("waiting: {why}"),
            JobEnd::LockLost => "stopped: another worker took its lock over".into(),
        };
        let info = &self.jobs[k];
        self.line(&format!(
            "[{}/{}] job {} ({}): {what}  [{}]",
            self.ended,
            self.mine.len(),
            info.id,
            info.label,
            self.counts()
        ));
        if let Some(bar) = &self.bar {
            bar.set_position(self.ended as u64);
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// `2 done, 1 running, 0 failed, 5 left, ETA 3m 10s`.
    fn counts(&self) -> String {
        let running = usize::from(self.current.is_some());
        let left = self.mine.len() - self.ended - running;
        format!(
            "{} done, {running} running, {} failed, {left} left, ETA {}",
            self.done,
            self.failed,
            self.eta().map_or_else(|| "?".to_owned(), human_duration)
        )
    }

    /// Seconds left: the iterations left over the seconds per iteration so far.
    fn eta(&self) -> Option<f64> {
        let (mut iterations, mut seconds) = (self.iterations_run, self.seconds_run);
        let mut left = 0;
        if let Some(c) = &self.current {
            iterations += c.iteration.saturating_sub(c.first);
            seconds += c.started.elapsed().as_secs_f64();
            left += c.total.saturating_sub(c.iteration);
        }
        if iterations == 0 {
            return None;
        }
        let running = usize::from(self.current.is_some());
        left += self.mine[self.ended + running..]
            .iter()
            .map(|&k| self.jobs[k].iterations)
            .sum::<usize>();
        Some(left as f64 * seconds / iterations as f64)
    }
}

/// `1h 02m`, `3m 10s`, `42s`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human_duration(41.6), "42s");
        assert_eq!(human_duration(190.0), "3m 10s");
        assert_eq!(human_duration(3725.0), "1h 02m");
        assert_eq!(human_duration(-1.0), "0s");
    }
}
