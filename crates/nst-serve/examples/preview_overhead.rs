//! Measures what live previews cost a run: the same run (a VGG-19-shaped model with random weights,
//! the seed program's layers, random images) once with no page watching and once with one watching
//! (an open event stream, so the worker asks for a preview at most every 250 ms and a third thread
//! encodes it as JPEG), alternating, on one studio. It prints the wall-clock seconds per iteration
//! of both (median over the rounds) and the overhead; then, because whole runs on a shared machine
//! are noisy, the cost of one preview measured alone (rendering on the run's thread, JPEG encoding on
//! the encoder's) as a share of an iteration.
//!
//! `cargo run --release -p nst-serve --example preview_overhead -- [SIZE] [ITERATIONS] [ROUNDS]`
//! (defaults 128, 30, 3).
#![allow(clippy::print_stdout, reason = "an example that reports a measurement")]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use image::{Rgb, RgbImage};
use serde_json::Value;
use vgg_weights::Layout;
use vgg_weights::write::{Compression, write_simplenn};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (size, iterations, rounds) = (arg(1, 128), arg(2, 30), arg(3, 3));
    let dir = std::env::temp_dir().join(format!("nst-preview-overhead-{}", std::process::id()));
    let samples = dir.join("samples");
    std::fs::create_dir_all(&samples)?;
    let weights = dir.join("random-vgg19.mat");
    let model = nst_engine::network::random_vgg19("relu5_1", 1);
    write_simplenn(&weights, &model, Layout::Beta16, Compression::None)?;
    let side = 2 * size as u32;
    RgbImage::from_fn(side, side * 3 / 4, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x * y) % 255) as u8])
    })
    .save(samples.join("content.png"))?;
    RgbImage::from_fn(side, side, |x, y| {
        Rgb([((x ^ y) % 256) as u8, (x % 200) as u8, (y % 180) as u8])
    })
    .save(samples.join("style.png"))?;
    let mut config = nst_serve::Config::new(dir.join("out"), weights);
    config.samples = Some(samples);
    let server = nst_serve::Server::start(config, "127.0.0.1:0".parse()?)?;
    let addr = server.addr();
    let settings = nst_serve::Settings {
        max_size: size as u32,
        iterations,
        content: "sample:content.png".into(),
        styles: vec!["sample:style.png".into()],
        ..nst_serve::Settings::default()
    };
    let (mut plain, mut watched, mut previews) = (Vec::new(), Vec::new(), 0);
    for round in 0..rounds {
        // Alternate which goes first, so that a drift in the machine's load favours neither.
        let order = if round.is_multiple_of(2) {
            [false, true]
        } else {
            [true, false]
        };
        for watch in order {
            let stream = watch.then(|| events(addr));
            let id = submit(addr, &serde_json::to_string(&settings)?);
            let info = loop {
                let info = get(addr, &format!("/api/runs/{id}"));
                if info["state"] == "done" {
                    break info;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            // `seconds` runs from the first step to the last: iterations − 1 steps.
            let per = info["seconds"].as_f64().unwrap_or(0.0) / (iterations - 1) as f64;
            if let Some(s) = stream {
                previews += count_previews(s);
                watched.push(per);
            } else {
                plain.push(per);
            }
            println!(
                "round {round}: {} {per:.4} s/iteration",
                if watch { "watched  " } else { "unwatched" }
            );
        }
    }
    server.shutdown()?;
    let (a, b) = (median(&mut plain), median(&mut watched));
    println!(
        "{size} px, {iterations} iterations, {rounds} rounds, {} cores: unwatched {a:.4} s/iteration, watched {b:.4} s/iteration ({previews} previews), overhead {:+.2} %",
        cores(),
        100.0 * (b - a) / a
    );
    // The same cost measured without the noise of whole runs: one preview's rendering (on the run's
    // thread) and JPEG encoding (on the encoder's), at this size, times the previews per iteration.
    let (w, h) = (size, size * 3 / 4);
    let (render, encode) = preview_cost(w, h);
    let per_iteration = previews as f64 / (iterations * rounds) as f64;
    println!(
        "one preview at {w}x{h}: render {:.3} ms, JPEG {:.3} ms; {per_iteration:.2} previews per watched iteration: {:.3} % of an unwatched iteration",
        render * 1e3,
        encode * 1e3,
        100.0 * per_iteration * (render + encode) / a
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The median seconds of turning a `[3, h, w]` tensor into an 8-bit image, and of encoding that as
/// JPEG at the studio's quality, over 50 tries each.
fn preview_cost(w: usize, h: usize) -> (f64, f64) {
    let t = ndarray::Array3::from_shape_fn((3, h, w), |(c, y, x)| {
        ((c * 31 + y * 7 + x * 3) % 255) as f32 - 120.0
    });
    let mean = nst_engine::IMAGENET_MEAN;
    let time = |f: &mut dyn FnMut()| {
        let mut v: Vec<f64> = (0..50)
            .map(|_| {
                let t0 = std::time::Instant::now();
                f();
                t0.elapsed().as_secs_f64()
            })
            .collect();
        median(&mut v)
    };
    let image = nst_engine::image_io::tensor_to_rgb8(t.view(), mean);
    let render = time(&mut || {
        std::hint::black_box(nst_engine::image_io::tensor_to_rgb8(t.view(), mean));
    });
    let encode = time(&mut || {
        let mut jpeg = Vec::new();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85);
        image.write_with_encoder(enc).expect("encodes");
        std::hint::black_box(jpeg);
    });
    (render, encode)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

fn http(addr: SocketAddr, head: &str, body: &str) -> Value {
    let mut s = TcpStream::connect(addr).expect("the studio listens");
    write!(
        s,
        "{head}Host: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("writes");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("reads");
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn get(addr: SocketAddr, path: &str) -> Value {
    http(addr, &format!("GET {path} HTTP/1.0\r\n"), "")
}

fn submit(addr: SocketAddr, settings: &str) -> String {
    let v = http(
        addr,
        "POST /api/runs HTTP/1.0\r\nContent-Type: application/json\r\n",
        settings,
    );
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not queued: {v}"))
        .to_owned()
}

/// An open event stream: while it is open, the studio counts a page as watching.
fn events(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).expect("the studio listens");
    write!(s, "GET /api/events HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("writes");
    BufReader::new(s)
}

/// Closes the stream, counting the previews it announced.
fn count_previews(mut s: BufReader<TcpStream>) -> usize {
    s.get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a timeout");
    let mut n = 0;
    let mut line = String::new();
    while s.read_line(&mut line).is_ok_and(|k| k > 0) {
        n += usize::from(line.contains("\"type\":\"preview\""));
        line.clear();
    }
    n
}
