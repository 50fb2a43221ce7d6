//! The engine's events, on the run's thread, turned into the studio's: the run's record, the pages'
//! progress events, preview requests (only while a page watches, at most one per
//! [`crate::Config::preview_every`]) and the frames of the run's GIF.

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use nst_engine::animation::Animation;
use nst_engine::{Control, Event, EventSink, SinkError};

use crate::store::CostPoint;
use crate::studio::Studio;

/// Follows one run.
pub(crate) struct StudioSink<'a> {
    studio: &'a Studio,
    id: String,
    control: Control,
    animation: Animation,
    /// When the last preview was asked for.
    asked: Option<Instant>,
    /// The first step seen in this process, and when: iterations per second count from it.
    first: Option<(usize, Instant)>,
    /// The optimization seconds before this process (a resumed run's).
    before: f64,
}

impl<'a> StudioSink<'a> {
    pub(crate) fn new(studio: &'a Studio, id: &str, control: Control) -> StudioSink<'a> {
        let before = studio.run_info(id).map_or(0.0, |i| i.seconds);
        StudioSink {
            studio,
            id: id.to_owned(),
            control,
            animation: Animation::default(),
            asked: None,
            first: None,
            before,
        }
    }

    /// Writes the GIF of the run, when it has frames.
    pub(crate) fn finish(&self, gif: &Path) {
        if !self.animation.is_empty() {
            // A GIF that cannot be written costs the animation, not the run.
            let _ = self.animation.save(gif);
        }
    }

    fn step(&mut self, iteration: usize, total: usize, costs: &nst_engine::Breakdown) {
        let now = Instant::now();
        let (first, at) = *self.first.get_or_insert((iteration.saturating_sub(1), now));
        let elapsed = now.duration_since(at).as_secs_f64();
        let done = iteration - first;
        let ips = if elapsed > 0.0 && done > 1 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let eta = (ips > 0.0).then(|| (total - iteration) as f64 / ips);
        let point = CostPoint {
            iteration,
            total: costs.total,
            content: costs.content,
            style: costs.style,
            tv: costs.tv,
        };
        let seconds = self.before + elapsed;
        self.studio.update(&self.id, |info| {
            info.iteration = iteration;
            info.total = total;
            info.seconds = seconds;
            info.costs.push(point);
        });
        self.studio.emit(json!({
            "type": "step", "run": self.id, "iteration": iteration, "total": total,
            "costs": point, "ips": ips, "eta": eta,
        }));
        // Saved before the engine writes this iteration's checkpoint, so that the record never has
        // fewer costs than the checkpoint has iterations (a kill in between would leave a gap).
        let every = self.studio.config.checkpoint_every;
        if every > 0 && iteration.is_multiple_of(every) {
            self.studio.persist(&self.id);
        }
        if self.studio.watched()
            && self
                .asked
                .is_none_or(|t| now.duration_since(t) >= self.studio.preview_every())
        {
            self.asked = Some(now);
            self.control.request_snapshot();
        }
    }
}

impl EventSink for StudioSink<'_> {
    fn event(&mut self, event: &Event) -> Result<(), SinkError> {
        match event {
            Event::Started(s) => {
                let total = s.stages.last().map_or(0, |st| st.end);
                let stages = s.stages.len();
                self.studio.update(&self.id, |info| {
                    info.total = total;
                    info.stage = [0, stages];
                });
                self.studio.emit(json!({
                    "type": "started", "run": self.id, "total": total, "stages": stages,
                    "size": s.size.to_string(), "first": s.first_iteration,
                }));
            }
            Event::StageStarted {
                index,
                count,
                stage,
            } => {
                self.studio
                    .update(&self.id, |info| info.stage = [*index, *count]);
                self.studio.emit(json!({
                    "type": "stage", "run": self.id, "index": index, "count": count,
                    "size": stage.size.to_string(),
                }));
            }
            Event::Step {
                iteration,
                total,
                costs,
            } => self.step(*iteration, *total, costs),
            Event::Snapshot { iteration, image } => {
                self.studio
                    .offer_preview(&self.id, *iteration, image.clone());
            }
            Event::Logged { record, image, .. } => {
                self.animation.push(image);
                if self.studio.watched() {
                    self.studio
                        .offer_preview(&self.id, record.iteration, image.clone());
                }
            }
            Event::CheckpointSaved { iteration, .. } => {
                self.studio.persist(&self.id);
                self.studio
                    .emit(json!({"type": "checkpoint", "run": self.id, "iteration": iteration}));
            }
            Event::Note(text) => {
                self.studio
                    .emit(json!({"type": "note", "run": self.id, "text": text}));
            }
            _ => {}
        }
        Ok(())
    }
}
