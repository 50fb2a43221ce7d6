//! The studio over HTTP, against a server on an ephemeral loopback port: uploads, runs and their
//! events, control, the queue, the history and its files, restart recovery, and the security cases.
//! A tiny VGG-shaped model with random weights and generated images keep every run to a fraction of a
//! second. The browser test (`browser`) drives the page in headless Chromium.

mod api;
mod browser;
mod control;
mod security;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};
use ndarray::{Array1, Array4};
use nst_serve::{Config, Server, Settings};
use serde_json::Value;
use vgg_weights::write::{Compression, write_simplenn};
use vgg_weights::{Conv, Layer, LayerKind, Layout, Pad, Pool, PoolMethod, VggModel};

/// A fresh folder for one test under cargo's per-target temp dir.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("nst-serve-it")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `conv1_1 … relu2_1` with 4 channels, seeded weights.
fn tiny_model() -> VggModel {
    let mut layers = Vec::new();
    let mut c_in = 3;
    let mut seed = 1.0_f32;
    let mut conv = |name: &str, c_in: usize, layers: &mut Vec<Layer>| {
        let n = 4 * c_in * 9;
        let scale = (2.0 / (9.0 * c_in as f32)).sqrt() * 1.7;
        let w: Vec<f32> = (0..n)
            .map(|i| {
                seed += 1.0;
                ((i as f32 * 12.9898 + seed * 78.233).sin() * 43758.547).fract() * scale
            })
            .collect();
        layers.push(Layer {
            name: format!("conv{name}"),
            kind: LayerKind::Conv(Conv {
                weights: Array4::from_shape_vec((4, c_in, 3, 3), w).unwrap(),
                bias: Array1::from(vec![0.05; 4]),
                stride: [1, 1],
                pad: Pad::uniform(1),
            }),
        });
        layers.push(Layer {
            name: format!("relu{name}"),
            kind: LayerKind::Relu,
        });
    };
    conv("1_1", c_in, &mut layers);
    c_in = 4;
    conv("1_2", c_in, &mut layers);
    layers.push(Layer {
        name: "pool1".into(),
        kind: LayerKind::Pool(Pool {
            method: PoolMethod::Max,
            size: [2, 2],
            stride: [2, 2],
            pad: Pad::default(),
        }),
    });
    conv("2_1", c_in, &mut layers);
    VggModel {
        layout: Layout::Beta16,
        mean_rgb: Some([123.68, 116.779, 103.939]),
        layers,
    }
}

/// The model and two sample images in `dir`; returns (weights, samples folder).
pub(crate) fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let weights = dir.join("tiny-vgg.mat");
    write_simplenn(&weights, &tiny_model(), Layout::Beta16, Compression::None).unwrap();
    // The engine caches the model's checksum beside it (for every front end, `nst stylize` too):
    // made here, so that the runs' "nothing outside the output folder changed" checks hold.
    nst_engine::record::weights_checksum(&weights).unwrap();
    let samples = dir.join("samples");
    std::fs::create_dir_all(&samples).unwrap();
    RgbImage::from_fn(40, 32, |x, y| {
        Rgb([
            (x * 6) as u8,
            (y * 7) as u8,
            if (x / 8 + y / 8) % 2 == 0 { 40 } else { 220 },
        ])
    })
    .save(samples.join("content.png"))
    .unwrap();
    RgbImage::from_fn(48, 36, |x, y| {
        let v = (((x as f32 * 0.7).sin() * (y as f32 * 0.5).cos()) * 120.0 + 128.0) as u8;
        Rgb([v, 255 - v, (x * 5) as u8])
    })
    .save(samples.join("style.jpg"))
    .unwrap();
    (weights, samples)
}

/// Settings for the tiny model: 24 px, the model's layers, `iterations`.
pub(crate) fn tiny_settings(iterations: usize) -> Settings {
    Settings {
        max_size: 24,
        iterations,
        content_layers: "relu2_1".into(),
        style_layers: "relu1_1,relu2_1".into(),
        learning_rate: 1.0,
        content: "sample:content.png".into(),
        styles: vec!["sample:style.jpg".into()],
        ..Settings::default()
    }
}

/// A studio on `dir/out` (fixture written when missing), on a free loopback port.
pub(crate) fn start(dir: &Path, edit: impl FnOnce(&mut Config)) -> Server {
    if !dir.join("tiny-vgg.mat").exists() {
        fixture(dir);
    }
    let mut config = Config::new(dir.join("out"), dir.join("tiny-vgg.mat"));
    config.samples = Some(dir.join("samples"));
    config.defaults = tiny_settings(6);
    config.checkpoint_every = 2;
    config.print_every = 2;
    config.preview_every = Duration::from_millis(0);
    config.threads = 1;
    edit(&mut config);
    Server::start(config, "127.0.0.1:0".parse().unwrap()).unwrap()
}

/// A response.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.0 request (so that no response is chunked) with `Host` set to the server's address;
/// `extra` are more header lines.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_as("HTTP/1.0", addr, method, path, extra, body)
}

/// [`request`] in HTTP `version` (chromedriver answers only HTTP/1.1; it sends a length, no chunks).
pub(crate) fn request_as(
    version: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} {version}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(BufReader::new(s))
}

/// Reads a response: the head, then `Content-Length` bytes (or to the end without one; chromedriver
/// keeps the connection open after a response with a length).
fn read_response(mut r: BufReader<TcpStream>) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {line:?}"));
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    match headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).unwrap();
        }
        None => {
            r.read_to_end(&mut body).unwrap();
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

pub(crate) fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], b"")
}

pub(crate) fn post_json(addr: SocketAddr, path: &str, v: &Value) -> Response {
    request(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/json")],
        v.to_string().as_bytes(),
    )
}

/// Queues a run of `settings`; returns its id.
pub(crate) fn submit(addr: SocketAddr, settings: &Settings) -> String {
    let r = post_json(addr, "/api/runs", &serde_json::to_value(settings).unwrap());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["id"].as_str().unwrap().to_owned()
}

/// The event stream, read line by line.
pub(crate) struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    pub(crate) fn open(addr: SocketAddr, extra: &str) -> Events {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(s, "GET /api/events HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n").unwrap();
        let mut reader = BufReader::new(s);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains(" 200 "), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
        }
        Events { reader }
    }

    /// The next event (keep-alive comments skipped).
    pub(crate) fn next(&mut self) -> Value {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "the event stream ended");
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                return serde_json::from_str(data).unwrap();
            }
        }
    }

    /// Events up to and including the first for which `stop` holds.
    pub(crate) fn until(&mut self, mut stop: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let e = self.next();
            let done = stop(&e);
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
}

/// Whether event `e` says run `id` reached `state`.
pub(crate) fn is_state(e: &Value, id: &str, state: &str) -> bool {
    e["type"] == "run" && e["run"]["id"] == id && e["run"]["state"] == state
}

/// Polls run `id` until its state is `state` (at most 60 s).
pub(crate) fn wait_state(addr: SocketAddr, id: &str, state: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let info = get(addr, &format!("/api/runs/{id}")).json();
        if info["state"] == state {
            return info;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "run {id}: {info}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file under `dir` but `except`, with its size and modification time: what must not change.
pub(crate) fn listing(
    dir: &Path,
    except: &Path,
) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.starts_with(except) {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(p, (m.len(), m.modified().unwrap()));
            }
        }
    }
    out
}
