//! Measures what live previews cost a run: the same run (a VGG-19-shaped model with random weights,
//! the seed program's layers, random images) once with no page watching and once with one watching
//! (an open event stream, so the worker asks for a preview at most every 250 ms and a third thread
//! encodes it as JPEG), alternating, on one studio. It prints the wall-clock seconds per iteration
//! of both (median over the rounds) and the overhead.
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
        for watch in [false, true] {
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
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
