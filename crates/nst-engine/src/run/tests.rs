//! The run loop in process: device-resident Adam on the `device-emu` emulator against the host, two
//! scales against one scale and a resampled restart, cancellation and resume at every stage, and the
//! order of events.

use std::path::Path;

use image::{Rgb, RgbImage};
use vgg_weights::write::{Compression, write_simplenn};
use vgg_weights::{Layout, PoolMethod};

use super::*;
use crate::checkpoint::{self, OptimizerState};
use crate::events::{Event, NoEvents, SinkError};
use crate::network::parse_layers;
use crate::record::Ended;
use crate::spec::Scales;
use crate::testing::TempDir;

/// Writes the tiny VGG's weights, a content image (`w × h`) and a style image into `dir`.
fn fixture(dir: &Path, (w, h): (u32, u32)) {
    let model = crate::objective::tests::tiny_model(1, 4, PoolMethod::Max);
    write_simplenn(dir.join("w.mat"), &model, Layout::Beta16, Compression::None).unwrap();
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7) as u8, (y * 9) as u8, 90]))
        .save(dir.join("c.png"))
        .unwrap();
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([((x * y) % 255) as u8, 200 - (x * 5) as u8, (y * 11) as u8])
    })
    .save(dir.join("s.png"))
    .unwrap();
}

/// The test spec: layers of the tiny model, a log every 2 iterations, seed 3, learning rate 1.
fn spec(dir: &Path, out: &str, edit: impl FnOnce(&mut RunSpec)) -> RunSpec {
    let mut s = RunSpec::new(
        dir.join("c.png"),
        vec![dir.join("s.png")],
        dir.join("w.mat"),
    );
    s.objective.content_layers = parse_layers("--content-layers", "relu2_1").unwrap();
    s.objective.style_layers = parse_layers("--style-layers", "relu1_1,relu2_1").unwrap();
    s.print_every = 2;
    s.seed = 3;
    s.learning_rate = 1.0;
    s.out_dir = dir.join(out);
    s.output = dir.join(out).join("out.png");
    edit(&mut s);
    s
}

fn execute(s: RunSpec, place: Option<Place<'_>>, control: &Control) -> Result<Summary> {
    let options = RunOptions {
        threads: 1,
        place,
        ..RunOptions::default()
    };
    Run::prepare(s, None, options, &mut NoEvents)?.execute(&mut NoEvents, control)
}

fn resume(s: RunSpec, path: &Path, place: Option<Place<'_>>) -> Result<Summary> {
    let c = Checkpoint::load(path).unwrap();
    let options = RunOptions {
        threads: 1,
        place,
        ..RunOptions::default()
    };
    Run::prepare(s, Some(c), options, &mut NoEvents)?.execute(&mut NoEvents, &Control::new())
}

fn pixels(path: &Path) -> Vec<u8> {
    image::open(path).unwrap().to_rgb8().into_raw()
}

fn saved(dir: &Path, out: &str) -> Checkpoint {
    Checkpoint::load(&dir.join(out).join(checkpoint::FILE_NAME))
        .unwrap()
        .0
}

fn adam_state(c: &Checkpoint) -> nst_optim::AdamState {
    match &c.optimizer {
        OptimizerState::Adam(s) => s.clone(),
        OptimizerState::Lbfgs(_) => panic!("an Adam checkpoint"),
    }
}

#[track_caller]
fn close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = a.iter().fold(0.0_f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what} is not all zero");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: host {x}, device {y} (scale {scale})"
        );
    }
}

#[test]
fn device_adam_run_matches_the_host_run_and_resumes_exactly() {
    let tmp = TempDir::new("run-device-adam");
    let dir = tmp.path();
    fixture(dir, (16, 12));
    let emu: Place<'_> = &|o: StyleObjective| o.on_device(device_emu::Emulator::new(64, 1));
    let six = |s: &mut RunSpec| {
        s.iterations = 6;
        s.checkpoint_every = 3;
    };
    let control = Control::new();
    let host = execute(spec(dir, "host", six), None, &control).unwrap();
    let dev = execute(spec(dir, "dev", six), Some(emu), &control).unwrap();

    // The same run: images within one grey level, the same logged iterations with costs within rounding.
    let (h, d) = (pixels(&host.output), pixels(&dev.output));
    let worst = h.iter().zip(&d).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "largest pixel difference {worst}");
    assert_ne!(h, pixels(&dir.join("c.png")), "the run changed the image");
    let (hc, dc) = (saved(dir, "host"), saved(dir, "dev"));
    let costs = |c: &Checkpoint| -> Vec<(usize, f64)> {
        c.history.iter().map(|r| (r.iteration, r.total)).collect()
    };
    let (ch, cd) = (costs(&hc), costs(&dc));
    assert_eq!(ch.len(), 4, "iterations 0, 2, 4, 6 logged: {ch:?}");
    for ((ih, th), (id, td)) in ch.iter().zip(&cd) {
        assert_eq!(ih, id);
        assert!(
            (th - td).abs() <= 1e-5 * th.abs(),
            "iteration {ih}: host {th}, device {td}"
        );
    }
    // The checkpoint holds the device's iterate and moments, in step with the host's.
    close("checkpoint image", &hc.image(), &dc.image(), 1e-4);
    let (sh, sd) = (adam_state(&hc), adam_state(&dc));
    assert_eq!((sh.step(), sd.step()), (6, 6));
    close("first moments", sh.moments().0, sd.moments().0, 1e-3);
    close("second moments", sh.moments().1, sd.moments().1, 1e-3);

    // Resuming the device run at iteration 6 and going to 9 equals a device run of 9 from the start.
    let mut more = dc.settings.clone();
    more.iterations = 9;
    let path = dir.join("dev").join(checkpoint::FILE_NAME);
    resume(more, &path, Some(emu)).unwrap();
    execute(spec(dir, "dev9", |s| s.iterations = 9), Some(emu), &control).unwrap();
    assert_eq!(
        pixels(&dir.join("dev/out.png")),
        pixels(&dir.join("dev9/out.png"))
    );
}

/// A step that blows up: both paths stop at the same iteration and write the last good image.
#[test]
fn device_adam_divergence_writes_the_last_good_image_as_the_host_does() {
    let tmp = TempDir::new("run-device-diverge");
    let dir = tmp.path();
    fixture(dir, (16, 12));
    let emu: Place<'_> = &|o: StyleObjective| o.on_device(device_emu::Emulator::new(64, 1));
    // Adam's first step moves every pixel by about the learning rate: 1e30 makes the next cost infinite.
    let blow = |s: &mut RunSpec| {
        s.iterations = 5;
        s.learning_rate = 1e30;
    };
    let control = Control::new();
    let host = execute(spec(dir, "host", blow), None, &control).unwrap_err();
    let dev = execute(spec(dir, "dev", blow), Some(emu), &control).unwrap_err();
    for e in [host.to_string(), dev.to_string()] {
        assert!(
            e.contains("non-finite at iteration 1") && e.contains("iteration 0"),
            "{e}"
        );
    }
    let (h, d) = (
        pixels(&dir.join("host/out.png")),
        pixels(&dir.join("dev/out.png")),
    );
    let worst = h.iter().zip(&d).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 1, "largest pixel difference {worst}");
}

/// Two scales, 16 then 32 px long: 4 iterations at 16, 3 at 32, a checkpoint at the end.
fn two_scales(s: &mut RunSpec) {
    s.max_size = 32;
    s.scales = Scales::List(vec![16]);
    s.iterations = 4;
    s.scale_iterations = Some(3);
    s.checkpoint_every = 100;
}

/// The pinned resampling rule: a two-scale run is a one-scale run at the small size, followed by a run
/// at the large size that starts from the Lanczos-resampled image with the resampled Adam state.
#[test]
fn two_scales_equal_one_scale_then_a_resampled_start_bit_for_bit() {
    let tmp = TempDir::new("run-two-scales");
    let dir = tmp.path();
    fixture(dir, (32, 24));
    let control = Control::new();
    execute(spec(dir, "two", two_scales), None, &control).unwrap();
    execute(
        spec(dir, "small", |s| {
            s.max_size = 16;
            s.iterations = 4;
            s.checkpoint_every = 100;
        }),
        None,
        &control,
    )
    .unwrap();
    let small = saved(dir, "small");
    assert_eq!((small.iteration, small.shape), (4, [3, 12, 16]));
    let image = ndarray::Array3::from_shape_vec((3, 12, 16), small.image()).unwrap();
    let image = crate::resample::lanczos3(image.view(), 24, 32);
    let state = crate::resample::adam_state(adam_state(&small), (12, 16), (24, 32)).unwrap();
    let two_spec = spec(dir, "restart", two_scales);
    let start = Checkpoint {
        settings: two_spec.clone(),
        stage: 1,
        shape: [3, 24, 32],
        image_bits: image.iter().map(|v| v.to_bits()).collect(),
        optimizer: OptimizerState::Adam(state),
        ..small
    };
    let path = dir.join("start.json");
    start.save(&path).unwrap();
    resume(two_spec, &path, None).unwrap();
    let (two, restart) = (saved(dir, "two"), saved(dir, "restart"));
    assert_eq!((two.iteration, two.stage, two.shape), (7, 1, [3, 24, 32]));
    assert_eq!(two.image_bits, restart.image_bits, "the images differ");
    assert_eq!(
        adam_state(&two),
        adam_state(&restart),
        "the Adam states differ"
    );
}

/// A sink that cancels the run once it reports iteration `at`.
fn cancel_at(at: usize, control: &Control) -> impl FnMut(&Event) -> Result<(), SinkError> + '_ {
    move |e| {
        if let Event::Step { iteration, .. } = e
            && *iteration == at
        {
            control.cancel();
        }
        Ok(())
    }
}

/// Cancelled inside the first stage, at the boundary and inside the second, then resumed: the same bits
/// as the uninterrupted run.
#[test]
fn cancelled_at_any_stage_and_resumed_ends_bit_identical() {
    let tmp = TempDir::new("run-cancel-stages");
    let dir = tmp.path();
    fixture(dir, (32, 24));
    execute(spec(dir, "whole", two_scales), None, &Control::new()).unwrap();
    let whole = saved(dir, "whole");
    for at in [2, 4, 5] {
        let out = format!("cut{at}");
        let control = Control::new();
        let mut sink = cancel_at(at, &control);
        let run = Run::prepare(
            spec(dir, &out, two_scales),
            None,
            RunOptions::default(),
            &mut sink,
        )
        .unwrap();
        let summary = run.execute(&mut sink, &control).unwrap();
        assert_eq!(summary.ended, Ended::Cancelled, "cancelled at {at}");
        let cut = saved(dir, &out);
        assert_eq!(cut.iteration, at);
        assert_eq!(cut.stage, usize::from(at >= 4), "at {at}");
        let path = dir.join(&out).join(checkpoint::FILE_NAME);
        let summary = resume(cut.settings.clone(), &path, None).unwrap();
        assert_eq!(summary.ended, Ended::Completed);
        let done = saved(dir, &out);
        assert_eq!(done.image_bits, whole.image_bits, "cancelled at {at}");
        assert_eq!(adam_state(&done), adam_state(&whole), "cancelled at {at}");
    }
}

/// The events of a small two-stage run, recorded by a test front end.
#[test]
fn events_come_in_order_with_their_content() {
    let tmp = TempDir::new("run-events");
    let dir = tmp.path();
    fixture(dir, (32, 24));
    let control = Control::new();
    let mut seen: Vec<Event> = Vec::new();
    let mut sink = |e: &Event| {
        if let Event::Step { iteration: 1, .. } = e {
            control.request_snapshot();
        }
        seen.push(e.clone());
        Ok::<(), SinkError>(())
    };
    let run = Run::prepare(
        spec(dir, "events", two_scales),
        None,
        RunOptions::default(),
        &mut sink,
    )
    .unwrap();
    run.execute(&mut sink, &control).unwrap();
    let kinds: Vec<String> = seen
        .iter()
        .map(|e| match e {
            Event::Note(_) => "note".into(),
            Event::Started(s) => format!("started {} {}", s.size, s.stages.len()),
            Event::StageStarted { index, stage, .. } => format!("stage {index} {}", stage.size),
            Event::Step { iteration, .. } => format!("step {iteration}"),
            Event::Logged { record, saved, .. } => format!(
                "logged {} stage {} {}",
                record.iteration,
                record.stage,
                if saved.is_some() { "saved" } else { "result" }
            ),
            Event::Snapshot { iteration, image } => {
                format!("snapshot {iteration} {}x{}", image.width(), image.height())
            }
            Event::CheckpointSaved { iteration, .. } => format!("checkpoint {iteration}"),
            Event::Finished(s) => format!("finished {:?} {}", s.ended, s.iterations),
        })
        .collect();
    let expected = [
        "started 32x24 2",
        "stage 0 16x12",
        "logged 0 stage 0 saved",
        "step 1",
        "snapshot 1 16x12",
        "step 2",
        "logged 2 stage 0 saved",
        "step 3",
        "note",
        "step 4",
        "stage 1 32x24",
        "logged 4 stage 1 saved",
        "step 5",
        "step 6",
        "logged 6 stage 1 saved",
        "step 7",
        "logged 7 stage 1 result",
        "checkpoint 7",
        "finished Completed 7",
    ];
    assert_eq!(kinds, expected);
    let Some(Event::Finished(summary)) = seen.last() else {
        panic!("the last event is Finished");
    };
    assert_eq!(summary.last.as_ref().map(|r| r.iteration), Some(7));
    assert!(summary.output.exists() && summary.record.exists());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary.record).unwrap()).unwrap();
    assert_eq!(record["stages"].as_array().map(Vec::len), Some(2));
    assert_eq!(record["final"]["size"]["width"], 32);
}

/// A run that shares a [`crate::StyleCache`]: the second run with the same style takes the targets
/// from it (one miss per stage, then hits) and ends with the same image, bit for bit, as a run that
/// computed them itself.
#[test]
fn style_targets_from_the_cache_give_the_same_image() {
    let dir = TempDir::new("run-style-cache");
    fixture(dir.path(), (20, 16));
    let cache = crate::StyleCache::new();
    let cached = |out: &str, content: &str| {
        let mut s = spec(dir.path(), out, |s| {
            s.iterations = 4;
            s.scales = Scales::List(vec![16]);
        });
        s.content = dir.path().join(content);
        let options = RunOptions {
            threads: 1,
            style_cache: Some(&cache),
            ..RunOptions::default()
        };
        Run::prepare(s, None, options, &mut NoEvents)
            .unwrap()
            .execute(&mut NoEvents, &Control::new())
            .unwrap()
    };
    cached("first", "c.png");
    assert_eq!(
        (cache.misses(), cache.hits()),
        (2, 0),
        "two stages, two targets"
    );
    // Another content of the same size: the style targets are the same.
    RgbImage::from_fn(20, 16, |x, y| Rgb([(y * 12) as u8, (x * 3) as u8, 40]))
        .save(dir.path().join("c2.png"))
        .unwrap();
    let with_cache = cached("second", "c2.png");
    assert_eq!((cache.misses(), cache.hits()), (2, 2));
    let mut fresh = spec(dir.path(), "fresh", |s| {
        s.iterations = 4;
        s.scales = Scales::List(vec![16]);
    });
    fresh.content = dir.path().join("c2.png");
    let without = execute(fresh, None, &Control::new()).unwrap();
    assert_eq!(pixels(&with_cache.output), pixels(&without.output));
    let grams_of = |content: &str| {
        let mut s = spec(dir.path(), "g", |_| {});
        s.content = dir.path().join(content);
        s
    };
    assert_ne!(
        crate::cache::key(
            &grams_of("c.png"),
            Size {
                width: 20,
                height: 16
            }
        ),
        crate::cache::key(
            &grams_of("c.png"),
            Size {
                width: 21,
                height: 16
            }
        ),
        "the size is part of the key"
    );
}

/// Runs with the artistic controls (masks, colour matching, gradient normalization; the W2 cost)
/// over two scales, cancelled inside each stage and resumed: the same bits as uninterrupted.
#[test]
fn controls_cancelled_and_resumed_end_bit_identical() {
    let tmp = TempDir::new("run-controls-resume");
    let dir = tmp.path();
    fixture(dir, (32, 24));
    let mask = |name: &str, (w, h): (u32, u32)| {
        image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 8 + y * 3) % 256) as u8]))
            .save(dir.join(name))
            .unwrap();
        dir.join(name)
    };
    let (m, r) = (mask("m.png", (32, 24)), mask("r.png", (32, 24)));
    let masked = |s: &mut RunSpec| {
        two_scales(s);
        s.style_masks = vec![m.clone()];
        s.style_image_masks = vec![r.clone()];
        s.content_mask = Some(m.clone());
        s.color_match = Some(crate::spec::ColorMatchKind::Sym);
        s.objective.normalize_gradients = true;
    };
    let w2 = |s: &mut RunSpec| {
        two_scales(s);
        s.objective.style_loss = crate::objective::StyleLossKind::W2;
    };
    for (name, edit) in [("masked", &masked as &dyn Fn(&mut RunSpec)), ("w2", &w2)] {
        let whole = format!("{name}-whole");
        execute(spec(dir, &whole, edit), None, &Control::new()).unwrap();
        let want = saved(dir, &whole);
        for at in [2, 5] {
            let out = format!("{name}-cut{at}");
            let control = Control::new();
            let mut sink = cancel_at(at, &control);
            let run = Run::prepare(
                spec(dir, &out, edit),
                None,
                RunOptions::default(),
                &mut sink,
            )
            .unwrap();
            assert_eq!(
                run.execute(&mut sink, &control).unwrap().ended,
                Ended::Cancelled
            );
            let cut = saved(dir, &out);
            let path = dir.join(&out).join(checkpoint::FILE_NAME);
            resume(cut.settings.clone(), &path, None).unwrap();
            let done = saved(dir, &out);
            assert_eq!(done.image_bits, want.image_bits, "{name} cancelled at {at}");
        }
    }
}

/// A single-colour content has no colours to match: an error naming it, not whitened styles.
#[test]
fn colour_matching_refuses_a_single_colour_content() {
    let tmp = TempDir::new("run-flat-match");
    let dir = tmp.path();
    fixture(dir, (32, 24));
    RgbImage::from_pixel(32, 24, Rgb([90, 120, 30]))
        .save(dir.join("flat.png"))
        .unwrap();
    let s = spec(dir, "flat", |s| {
        s.content = dir.join("flat.png");
        s.color_match = Some(crate::spec::ColorMatchKind::Pca);
    });
    let e = execute(s, None, &Control::new()).unwrap_err().to_string();
    assert!(e.contains("flat.png") && e.contains("single colour"), "{e}");
}
