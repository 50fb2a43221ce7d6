//! Pause and resume through [`Control`]: a paused run takes no step until resumed, and a paused run
//! that is cancelled ends as cancelled.

use std::sync::mpsc;
use std::time::Duration;

use image::{Rgb, RgbImage};
use vgg_weights::write::{Compression, write_simplenn};
use vgg_weights::{Layout, PoolMethod};

use super::*;
use crate::network::parse_layers;
use crate::testing::TempDir;
use crate::{RunOptions, RunSpec};

/// A tiny run of `iterations` in `dir`, its steps sent to `steps`; the sink pauses the run once it
/// reports iteration 2.
fn run_pausing_at_2(
    dir: &std::path::Path,
    iterations: usize,
    control: Control,
    steps: mpsc::Sender<usize>,
) -> std::thread::JoinHandle<crate::Result<Summary>> {
    let model = crate::objective::tests::tiny_model(1, 4, PoolMethod::Max);
    write_simplenn(dir.join("w.mat"), &model, Layout::Beta16, Compression::None).unwrap();
    RgbImage::from_fn(12, 10, |x, y| Rgb([(x * 7) as u8, (y * 9) as u8, 90]))
        .save(dir.join("c.png"))
        .unwrap();
    let mut s = RunSpec::new(
        dir.join("c.png"),
        vec![dir.join("c.png")],
        dir.join("w.mat"),
    );
    s.objective.content_layers = parse_layers("--content-layers", "relu2_1").unwrap();
    s.objective.style_layers = parse_layers("--style-layers", "relu1_1,relu2_1").unwrap();
    s.iterations = iterations;
    s.out_dir = dir.join("out");
    s.output = dir.join("out").join("out.png");
    std::thread::spawn(move || {
        let for_sink = control.clone();
        let mut sink = move |e: &Event| {
            if let Event::Step { iteration, .. } = e {
                if *iteration == 2 {
                    for_sink.pause();
                }
                steps.send(*iteration).unwrap();
            }
            Ok::<(), SinkError>(())
        };
        crate::run(s, RunOptions::default(), &mut sink, &control)
    })
}

#[test]
fn a_paused_run_takes_no_step_until_resumed() {
    let tmp = TempDir::new("events-pause");
    let control = Control::new();
    let (tx, rx) = mpsc::channel();
    let handle = run_pausing_at_2(tmp.path(), 5, control.clone(), tx);
    assert_eq!(rx.recv().unwrap(), 1);
    assert_eq!(rx.recv().unwrap(), 2);
    assert!(control.is_paused());
    // Waiting cannot prove that no step comes, but a step taken while paused fails this.
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(300)),
        Err(mpsc::RecvTimeoutError::Timeout)
    );
    control.resume();
    let rest: Vec<usize> = rx.iter().collect();
    assert_eq!(rest, vec![3, 4, 5]);
    let summary = handle.join().unwrap().unwrap();
    assert_eq!((summary.ended, summary.iterations), (Ended::Completed, 5));
}

#[test]
fn a_paused_run_that_is_cancelled_ends_cancelled() {
    let tmp = TempDir::new("events-pause-cancel");
    let control = Control::new();
    let (tx, rx) = mpsc::channel();
    let handle = run_pausing_at_2(tmp.path(), 5, control.clone(), tx);
    assert_eq!(rx.recv().unwrap(), 1);
    assert_eq!(rx.recv().unwrap(), 2);
    control.cancel();
    let summary = handle.join().unwrap().unwrap();
    assert_eq!((summary.ended, summary.iterations), (Ended::Cancelled, 2));
    assert!(rx.try_recv().is_err(), "no step after the cancellation");
}
