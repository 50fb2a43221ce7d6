//! Helpers for this crate's unit tests (the published package cannot use the workspace's test crate).

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

/// `n` values uniform in `[lo, hi)` from a seeded RNG.
pub(crate) fn uniform_vec(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut r = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}
