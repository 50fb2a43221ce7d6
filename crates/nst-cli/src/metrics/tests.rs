//! Records, the plot in both formats, and the animation's frame thinning.

use super::*;
use crate::testing::TempDir;
use nst_engine::Breakdown;

fn history(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let b = Breakdown {
                total: 1e6 / (i + 1) as f64,
                content: 10.0 + i as f64,
                style: 1e4 / (i + 1) as f64,
                tv: 0.0,
                style_layers: vec![("relu1_1".into(), 5.0), ("relu2_1".into(), 6.0)],
                temporal: 0.0,
            };
            Record::new(i * 10, &b, i as f64)
        })
        .collect()
}

#[test]
fn records_are_json_lines() {
    let dir = TempDir::new("metrics-lines");
    let path = dir.path().join("m.jsonl");
    let mut w = MetricsWriter::open(&path, false).unwrap();
    for r in &history(3) {
        w.write(r).unwrap();
    }
    drop(w);
    let mut w = MetricsWriter::open(&path, true).unwrap();
    w.write(&history(1)[0]).unwrap();
    let lines: Vec<Record> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[2], history(3)[2]);
    assert_eq!(lines[0].style_layers["relu2_1"], 6.0);
}

#[test]
fn plots_in_both_formats() {
    let dir = TempDir::new("metrics-plot");
    let h = history(12);
    plot(&dir.path().join("p.svg"), &h, 10.0, 40.0, 0.0).unwrap();
    let svg = std::fs::read_to_string(dir.path().join("p.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("iteration") && svg.contains("β·style"),
        "{}",
        &svg[..200]
    );
    plot(&dir.path().join("p.png"), &h, 10.0, 40.0, 0.0).unwrap();
    let png = image::open(dir.path().join("p.png")).unwrap().to_rgb8();
    // Something other than the white background was drawn.
    assert!(png.pixels().filter(|p| p.0 != [255, 255, 255]).count() > 2000);
    assert!(plot(&dir.path().join("p.pdf"), &h, 1.0, 1.0, 0.0).is_err());
    // An empty history still gives a valid (empty) chart.
    plot(&dir.path().join("e.svg"), &[], 1.0, 1.0, 0.0).unwrap();
}

#[test]
fn animation_keeps_at_most_max_frames_spread_over_the_run() {
    let mut a = Animation::default();
    let img = RgbImage::new(2, 2);
    for _ in 0..(Animation::MAX_FRAMES * 3) {
        a.push(&img);
    }
    assert!(
        a.len() <= Animation::MAX_FRAMES && a.len() >= Animation::MAX_FRAMES / 2,
        "{}",
        a.len()
    );
    let dir = TempDir::new("metrics-gif");
    a.save(&dir.path().join("a.gif")).unwrap();
    let f = File::open(dir.path().join("a.gif")).unwrap();
    let frames = image::AnimationDecoder::into_frames(
        image::codecs::gif::GifDecoder::new(std::io::BufReader::new(f)).unwrap(),
    )
    .collect_frames()
    .unwrap();
    assert_eq!(frames.len(), a.len());
}
