//! `nst batch`: many runs from one batch file (`docs/batch.md`), each in its own folder named by its
//! id, skipped when done, resumed when interrupted, shared among workers with no coordinator.
//!
//! - [`file`], [`settings`]: the batch file and a job's settings.
//! - [`plan`], [`ids`], [`files`]: the file expanded into jobs with stable ids.
//! - [`shard`]: which worker runs which job.

pub mod file;
pub mod files;
pub mod ids;
pub mod plan;
pub mod settings;
pub mod shard;
