//! `nst batch`: many runs from one batch file (`docs/batch.md`), each in its own folder named by its
//! id, skipped when done, resumed when interrupted, shared among workers with no coordinator
//! (`docs/scale-out.md`).
//!
//! - [`file`](mod@file), [`settings`]: the batch file and a job's settings.
//! - [`plan`], [`ids`], [`files`]: the file expanded into jobs with stable ids.
//! - [`shard`], [`lock`]: which worker runs which job, and the per-job lock that keeps two from
//!   running the same one.
//! - [`worker`], [`progress`], [`state`]: running a shard, its progress, and what a job's folder says.
//! - [`report`], [`sheet`], [`video`]: the status table, the contact sheet, frames and flicker.

pub mod file;
pub mod files;
pub mod ids;
pub mod lock;
pub mod plan;
pub mod progress;
pub mod report;
pub mod settings;
pub mod shard;
pub mod sheet;
pub mod state;
pub mod video;
pub mod worker;

use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use nst_engine::Control;
use serde_json::json;

use crate::cli::{
    BatchArgs, BatchCommand, BatchFileArgs, BatchPlanArgs, BatchRunArgs, BatchSheetArgs,
    BatchStatusArgs,
};
use crate::stylize::Ended;
use lock::LockConfig;
use plan::{Plan, PlanOptions};
use state::Status;

/// The contact sheet's name in the batch's folder.
pub const SHEET_FILE: &str = "contact-sheet.png";

/// Runs `nst batch …`; `control` is cancelled by Ctrl-C / SIGTERM.
///
/// # Errors
/// A batch file or setting that cannot be used (naming the file and entry), and, for `run`, jobs that
/// failed.
pub fn run(args: &BatchArgs, quiet: bool, threads: usize, control: &Control) -> Result<Ended> {
    match &args.command {
        BatchCommand::Plan(a) => plan_command(a),
        BatchCommand::Run(a) => run_command(a, quiet, threads, control),
        BatchCommand::Status(a) => status_command(a),
        BatchCommand::Sheet(a) => sheet_command(a),
    }
}

/// The weights a batch uses: `--weights`/`NST_WEIGHTS`, else the file's, else the default.
fn weights_of(args: &BatchFileArgs, f: &file::BatchFile) -> PathBuf {
    args.weights
        .clone()
        .or_else(|| f.weights.clone())
        .unwrap_or_else(crate::args::default_weights)
}

/// Reads and expands the batch file (after `before`, given the weights path).
fn load_plan(
    args: &BatchFileArgs,
    before: impl FnOnce(&std::path::Path) -> Result<()>,
) -> Result<Plan> {
    let f = file::load(&args.file)?;
    let weights = weights_of(args, &f);
    before(&weights)?;
    let opts = PlanOptions {
        out_dir: args.out_dir.clone(),
        weights: Some(weights),
    };
    Ok(plan::expand(&f, &opts)?)
}

fn plan_command(a: &BatchPlanArgs) -> Result<Ended> {
    let plan = load_plan(&a.batch, |_| Ok(()))?;
    if a.shards == Some(0) {
        bail!("--shards must be at least 1");
    }
    let shard_of = |j: &plan::Job| a.shards.map(|n| shard::assign(&j.unit, n) + 1);
    if a.json {
        let jobs: Vec<serde_json::Value> = plan
            .jobs
            .iter()
            .map(|j| {
                json!({"id": j.id.as_str(), "label": j.label, "folder": j.dir(), "shard": shard_of(j),
                       "frame": j.frame.as_ref().map(|f| f.number), "settings": j.spec})
            })
            .collect();
        let v = json!({"batch": plan.file, "out_dir": plan.out_dir, "weights": plan.weights, "jobs": jobs});
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
        return Ok(Ended::Completed);
    }
    println!(
        "{}: {} jobs ({} videos) into {}",
        plan.file.display(),
        plan.jobs.len(),
        plan.videos.len(),
        plan.out_dir.display()
    );
    let shards = a.shards.map_or(String::new(), |n| format!(" shard/{n}"));
    println!("{:<16} {:>6}{shards}  label", "job", "iter");
    for j in &plan.jobs {
        let s = shard_of(j).map_or(String::new(), |s| format!(" {s:>8}"));
        println!("{:<16} {:>6}{s}  {}", j.id, j.iterations(), j.label);
    }
    Ok(Ended::Completed)
}

fn run_command(a: &BatchRunArgs, quiet: bool, threads: usize, control: &Control) -> Result<Ended> {
    let offline = a.offline.unwrap_or(false);
    let plan = load_plan(&a.batch, |w| {
        crate::stylize::ensure_weights(w, offline, quiet)
    })?;
    let (shard, source) = shard::resolve(a.shard, a.shard_count, &|k| std::env::var(k).ok())
        .map_err(|e| anyhow!(e))?;
    std::fs::create_dir_all(&plan.out_dir)
        .with_context(|| format!("creating the batch folder {}", plan.out_dir.display()))?;
    let cfg = worker::WorkerConfig {
        shard,
        shard_source: source.clone(),
        retry_failed: a.retry_failed,
        lock: LockConfig::stale_after(a.stale_after),
        threads,
        quiet,
        force: a.force,
    };
    let mut w = worker::Worker::new(&plan, &cfg, control);
    if !quiet {
        eprintln!(
            "batch {}: {} jobs into {}; {source}: {} of them here",
            plan.file.display(),
            plan.jobs.len(),
            plan.out_dir.display(),
            w.mine().len()
        );
        for v in plan.videos.iter().filter(|v| v.segments < shard.count) {
            eprintln!(
                "note: video {} has {} segment(s) for {} shards: some workers have none of its frames (segment_frames shares a clip out)",
                v.name, v.segments, shard.count
            );
        }
    }
    let ends = w.run();
    let statuses = report::statuses(&plan, &cfg.lock);
    print!("{}", report::render(&plan, &statuses));
    let plain: Vec<Status> = statuses.iter().map(|s| s.status.clone()).collect();
    let sheet = plan.out_dir.join(SHEET_FILE);
    if let Err(e) = sheet::write(&plan, &plain, 256, &sheet) {
        eprintln!("warning: no contact sheet: {e:#}");
    }
    worker_summary(&ends, &cfg, quiet)
}

/// This worker's line, and its exit: interrupted, failed jobs, or done.
fn worker_summary(
    ends: &[(usize, worker::JobEnd)],
    cfg: &worker::WorkerConfig,
    quiet: bool,
) -> Result<Ended> {
    use worker::JobEnd;
    let count = |f: &dyn Fn(&JobEnd) -> bool| ends.iter().filter(|(_, e)| f(e)).count();
    let failed = count(&JobEnd::is_failed);
    if !quiet {
        eprintln!(
            "this worker (shard {}): {} run to the end, {} done before, {failed} failed, {} interrupted, {} held by other workers or waiting",
            cfg.shard,
            count(&|e| *e == JobEnd::Done),
            count(&|e| *e == JobEnd::AlreadyDone),
            count(&|e| *e == JobEnd::Interrupted),
            count(&|e| matches!(e, JobEnd::Held(_) | JobEnd::Waiting(_) | JobEnd::LockLost)),
        );
    }
    if ends.iter().any(|(_, e)| *e == JobEnd::Interrupted) {
        return Ok(Ended::Interrupted);
    }
    if failed > 0 {
        bail!(
            "{failed} of this worker's {} jobs failed (see the table; --retry-failed runs them again)",
            ends.len()
        );
    }
    Ok(Ended::Completed)
}

fn status_command(a: &BatchStatusArgs) -> Result<Ended> {
    let plan = load_plan(&a.batch, |_| Ok(()))?;
    let statuses = report::statuses(&plan, &LockConfig::stale_after(a.stale_after));
    if a.json {
        let v = report::to_json(&plan, &statuses);
        println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
    } else {
        print!("{}", report::render(&plan, &statuses));
    }
    let c = report::Counts::of(&statuses);
    if c.failed > 0 {
        bail!("{} of {} jobs failed", c.failed, c.total());
    }
    Ok(if c.done == c.total() {
        Ended::Completed
    } else {
        Ended::Unfinished
    })
}

fn sheet_command(a: &BatchSheetArgs) -> Result<Ended> {
    if a.cell < 16 || a.cell > 2048 {
        bail!("--cell must be between 16 and 2048 pixels, not {}", a.cell);
    }
    let plan = load_plan(&a.batch, |_| Ok(()))?;
    let statuses: Vec<Status> = report::statuses(&plan, &LockConfig::default())
        .into_iter()
        .map(|s| s.status)
        .collect();
    let path = a
        .output
        .clone()
        .unwrap_or_else(|| plan.out_dir.join(SHEET_FILE));
    sheet::write(&plan, &statuses, a.cell, &path)?;
    let done = statuses.iter().filter(|s| **s == Status::Done).count();
    println!("{}: {done} of {} results", path.display(), plan.jobs.len());
    Ok(Ended::Completed)
}
