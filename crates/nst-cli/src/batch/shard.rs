//! Sharing a batch among workers with no coordinator: `--shard I/N` (1-based, as nextest's), or the
//! array index a scheduler sets (`SLURM_ARRAY_TASK_ID`, Kubernetes' `JOB_COMPLETION_INDEX`), and a
//! fixed assignment of jobs to shards. A still job goes to the shard its id selects (its id is a
//! hash, so adding a job never moves another); a video's segments go to contiguous ranges of shards,
//! so that each worker takes whole runs of frames. Membership is computed over the whole plan, before
//! finished jobs are skipped, so that a rerun never reshuffles.

use std::fmt;
use std::str::FromStr;

/// One worker's part of a batch: shard `index` (0-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    /// At least 1.
    pub count: usize,
}

/// How a job is assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// By a hash (a still job's id).
    Hash(u64),
    /// By its place among `count` consecutive units of a group (a video's segments).
    Range {
        /// The group (the video's first frame's id).
        group: u64,
        /// The unit's place, from 0.
        index: usize,
        /// The group's size.
        count: usize,
    },
}

impl Shard {
    /// The whole batch.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether this shard runs `unit`.
    pub fn selects(&self, unit: &Unit) -> bool {
        assign(unit, self.count) == self.index
    }
}

/// The shard (0-based, of `shards`) that runs `unit`.
///
/// # Panics
/// If `shards` is 0.
#[track_caller]
pub fn assign(unit: &Unit, shards: usize) -> usize {
    assert!(shards > 0, "at least one shard");
    let n = shards as u64;
    match *unit {
        Unit::Hash(h) => (h % n) as usize,
        Unit::Range {
            group,
            index,
            count,
        } => {
            // Segment i of c goes to ⌊i·n/c⌋: contiguous, in order, as even as c allows; the group's
            // hash turns the range so that short videos do not all start on shard 0.
            let start = group % n;
            let within = (index as u64 * n) / (count.max(1) as u64);
            ((start + within) % n) as usize
        }
    }
}

impl FromStr for Shard {
    type Err = String;
    /// `I/N` with `1 ≤ I ≤ N`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: expected I/N with 1 ≤ I ≤ N (e.g. 2/8)");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let i: usize = i.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || i == 0 || i > n {
            return Err(bad());
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// The shard of this worker: `--shard`, else the scheduler's array index, else the whole batch;
/// with where it came from, for the log.
///
/// With `count` (`--shard-count`, `NST_SHARD_COUNT`), an array index is the shard's 0-based index as
/// it is, so that a single resubmitted array element (`sbatch --array=1`) keeps its place; without it,
/// a Slurm array's index is counted from `SLURM_ARRAY_TASK_MIN` and its size is
/// `SLURM_ARRAY_TASK_COUNT`. Kubernetes does not tell a pod the number of completions: `count` is
/// required with `JOB_COMPLETION_INDEX`.
///
/// # Errors
/// A message naming the variable or flag that does not make a shard.
pub fn resolve(
    flag: Option<Shard>,
    count: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Shard, String), String> {
    if count == Some(0) {
        return Err("--shard-count (NST_SHARD_COUNT) must be at least 1".into());
    }
    if let Some(s) = flag {
        if count.is_some_and(|c| c != s.count) {
            return Err(format!(
                "--shard {s} and --shard-count {} (or NST_SHARD_COUNT) disagree: give one",
                count.unwrap_or_default()
            ));
        }
        return Ok((s, format!("--shard {s}")));
    }
    let number = |key: &str| -> Result<Option<usize>, String> {
        env(key)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{key}={v} is not a whole number"))
            })
            .transpose()
    };
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        return slurm(id, count, &number);
    }
    if let Some(index) = number("JOB_COMPLETION_INDEX")? {
        let Some(count) = count else {
            return Err("JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but not the number of shards: pass --shard-count N or set NST_SHARD_COUNT to the Job's completions".into());
        };
        return indexed(index, count, "JOB_COMPLETION_INDEX");
    }
    match count {
        Some(c) if c > 1 => Err(format!(
            "--shard-count {c} without a shard index: pass --shard I/{c}, or run under a Slurm array or a Kubernetes Indexed Job"
        )),
        _ => Ok((Shard::ALL, "no shard: the whole batch".into())),
    }
}

fn slurm(
    id: usize,
    count: Option<usize>,
    number: &dyn Fn(&str) -> Result<Option<usize>, String>,
) -> Result<(Shard, String), String> {
    if let Some(count) = count {
        return indexed(id, count, "SLURM_ARRAY_TASK_ID");
    }
    let (Some(min), Some(max), Some(n)) = (
        number("SLURM_ARRAY_TASK_MIN")?,
        number("SLURM_ARRAY_TASK_MAX")?,
        number("SLURM_ARRAY_TASK_COUNT")?,
    ) else {
        return Err("SLURM_ARRAY_TASK_ID is set without SLURM_ARRAY_TASK_MIN, _MAX and _COUNT: pass --shard-count N".into());
    };
    if max < min || max - min + 1 != n || id < min || id > max {
        return Err(format!(
            "the Slurm array {min}-{max} with {n} tasks is stepped or a list (task {id}): use a contiguous --array=0-{} or pass --shard-count N",
            n.saturating_sub(1)
        ));
    }
    let shard = Shard {
        index: id - min,
        count: n,
    };
    Ok((
        shard,
        format!("SLURM_ARRAY_TASK_ID={id} of {min}-{max}: shard {shard}"),
    ))
}

fn indexed(index: usize, count: usize, var: &str) -> Result<(Shard, String), String> {
    if index >= count {
        return Err(format!(
            "{var}={index} is not below the shard count {count}: number the tasks 0..{}",
            count - 1
        ));
    }
    let shard = Shard { index, count };
    Ok((shard, format!("{var}={index} of {count}: shard {shard}")))
}

#[cfg(test)]
mod tests;
