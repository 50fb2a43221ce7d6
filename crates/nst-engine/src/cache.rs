//! [`StyleCache`]: style targets kept across runs, so that runs with the same style images, style
//! settings, model and size (the frames of a video, a sweep over the content weight) compute the style
//! images' forward passes and Gram matrices once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::image_io::Size;
use crate::spec::RunSpec;

/// Style targets (one per style layer) by what they depend on; shared by reference
/// through [`crate::RunOptions::style_cache`]. Holds at most [`StyleCache::CAPACITY`] entries (the
/// oldest goes first).
#[derive(Debug, Default)]
pub struct StyleCache {
    entries: Mutex<Vec<(String, crate::objective::StyleTargetSet)>>,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

impl StyleCache {
    /// The most entries kept.
    pub const CAPACITY: usize = 8;

    /// An empty cache.
    pub fn new() -> StyleCache {
        StyleCache::default()
    }

    /// How many objectives took their targets from the cache.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// How many objectives computed their targets (and stored them).
    pub fn misses(&self) -> usize {
        self.misses.load(Ordering::Relaxed)
    }

    /// The targets stored under `key`, counting a hit or a miss.
    pub(crate) fn get(&self, key: &str) -> Option<crate::objective::StyleTargetSet> {
        let found = self
            .lock()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, g)| g.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores `grams` under `key`.
    pub(crate) fn put(&self, key: String, grams: crate::objective::StyleTargetSet) {
        let mut entries = self.lock();
        entries.retain(|(k, _)| *k != key);
        if entries.len() >= StyleCache::CAPACITY {
            entries.remove(0);
        }
        entries.push((key, grams));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, crate::objective::StyleTargetSet)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Everything the style targets of `spec` at a stage of `size` depend on.
pub(crate) fn key(spec: &RunSpec, size: Size) -> String {
    json!({
        "styles": spec.styles,
        "blend": spec.style_blend,
        "scale": spec.style_scale,
        "layers": spec.objective.style_layers,
        "pooling": spec.pooling,
        "gray": spec.preserve_colors,
        "loss": spec.objective.style_loss,
        "masks": spec.style_masks,
        "regions": spec.style_image_masks,
        // Colour matching maps the styles onto the content's colours.
        "match": spec.color_match.map(|m| (m, &spec.content)),
        "weights": spec.weights,
        "device": spec.device,
        "size": size,
    })
    .to_string()
}
