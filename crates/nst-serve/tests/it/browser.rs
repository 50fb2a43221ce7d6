//! The page in a real browser: headless Chromium driven through WebDriver (chromedriver) loads the
//! page, chooses the sample images, starts a small run on the random test model, sees the preview
//! image change and the run appear in the history, opens it, checks that the page fits a phone's width, and
//! keeps screenshots (`target/nst-serve-browser/studio.png`, `studio-detail.png`, `studio-phone.png`).
//!
//! Runs only with `NST_TEST_BROWSER=1`, which `.ci/browser-test` (the `browser` leg of
//! `cargo xtask test`) sets once Chromium and chromedriver are installed; then a missing driver is a
//! failure, not a skip. Where no browser can be installed, that leg is a visible SKIPPED row.

#![allow(
    clippy::print_stderr,
    reason = "the test says when it is skipped and where its screenshot is"
)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::*;

/// The W3C WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver, from `NST_CHROMEDRIVER` or the `PATH`.
fn chromedriver() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NST_CHROMEDRIVER") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("chromedriver"))
        .find(|p| p.is_file())
}

/// A chromedriver process on a free port, killed on drop.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    fn start(path: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t0 = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, addr }
    }

    /// One WebDriver command; returns its `value`.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let r = request_as(
            "HTTP/1.1",
            self.addr,
            method,
            path,
            &[("Host", "127.0.0.1"), ("Content-Type", "application/json")],
            body.as_bytes(),
        );
        let v = r.json();
        assert_eq!(r.status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leaves Chromium's profile behind when killed right after a session ends.
        std::thread::sleep(Duration::from_secs(1));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session.
struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Drop for Session<'_> {
    /// Ends the browser, also when the test failed midway (else Chromium outlives chromedriver).
    fn drop(&mut self) {
        let _ = request_as(
            "HTTP/1.1",
            self.driver.addr,
            "DELETE",
            &format!("/session/{}", self.id),
            &[("Host", "127.0.0.1")],
            b"",
        );
    }
}

impl Session<'_> {
    fn cmd(&self, method: &str, what: &str, body: Value) -> Value {
        self.driver
            .call(method, &format!("/session/{}/{what}", self.id), &body)
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn click(&self, css: &str) {
        let e = self.cmd(
            "POST",
            "element",
            json!({"using": "css selector", "value": css}),
        );
        let id = e[ELEMENT].as_str().unwrap().to_owned();
        self.cmd("POST", &format!("element/{id}/click"), json!({}));
    }

    /// Evaluates `script` until it returns something truthy (at most `secs` seconds).
    fn wait_for(&self, script: &str, secs: u64) -> Value {
        let t0 = Instant::now();
        loop {
            let v = self.js(script);
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(secs),
                "timed out waiting for {script}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_page_runs_a_stylization_in_headless_chromium() {
    if std::env::var("NST_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED the_page_runs_a_stylization_in_headless_chromium: NST_TEST_BROWSER is not 1 (.ci/browser-test sets it)"
        );
        return;
    }
    let driver_path = chromedriver()
        .expect("NST_TEST_BROWSER=1 but no chromedriver was found (PATH or NST_CHROMEDRIVER)");
    let dir = temp_dir("browser");
    // The repository's sample images, as `nst serve` offers them.
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images");
    let server = start(&dir, |c| {
        c.samples = Some(images);
        c.defaults = tiny_settings(120);
        c.defaults.max_size = 160;
        c.preview_every = Duration::from_millis(100);
    });
    let url = server.url();
    let driver = Driver::start(&driver_path);
    let profile = dir.join("chromium-profile");
    let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
        "--window-size=1280,1560", format!("--user-data-dir={}", profile.display()),
    ]}}}});
    let created = driver.call("POST", "/session", &caps);
    let session = Session {
        driver: &driver,
        id: created["sessionId"].as_str().unwrap().to_owned(),
    };
    session.cmd("POST", "url", json!({ "url": url }));
    session.wait_for(
        "return document.querySelectorAll('#samples .sample').length == 4",
        20,
    );
    assert_eq!(
        session.js("return document.querySelector('#start').disabled"),
        true
    );
    session.click(".sample[data-ref='sample:louvre_pyramid.jpg'] .as-content");
    session.click(".sample[data-ref='sample:vangogh_night_cafe.jpg'] .as-style");
    assert_eq!(
        session.js("return document.querySelectorAll('#style-picked .thumb').length"),
        1
    );
    session.click("#start");
    // The preview changes while the run goes on.
    let seen = previews_seen(&session, server.addr());
    assert!(seen.len() >= 2, "the preview changed: {seen:?}");
    session.wait_for(
        "return document.querySelector(\".entry[data-id='r000001'].done\") !== null",
        120,
    );
    session.wait_for(
        "return document.querySelector('#s-iter').textContent == '120 / 120'",
        20,
    );
    // Wait until the history thumbnail has loaded, for the screenshot.
    session.wait_for("const i = document.querySelector(\".entry[data-id='r000001'] img\"); return i.complete && i.naturalWidth > 0", 20);
    save_screenshot(&session, "studio.png");
    // Open the run from the history: its image, its downloads, its cost plot.
    session.click(".entry[data-id='r000001']");
    session.wait_for("return document.querySelector('#detail').open", 10);
    session.wait_for(
        "const i = document.querySelector('#d-image'); return i.complete && i.naturalWidth > 0",
        20,
    );
    let links = session.js(
        "return [document.querySelector('#d-png').getAttribute('href'), document.querySelector('#d-gif').getAttribute('href')]",
    );
    assert_eq!(
        links,
        json!(["api/runs/r000001/result.png", "api/runs/r000001/run.gif"])
    );
    assert_eq!(get(server.addr(), "/api/runs/r000001/run.gif").status, 200);
    save_screenshot(&session, "studio-detail.png");
    session.click("#detail .close");
    // On a phone's screen: one column, nothing wider than the screen.
    session.cmd("POST", "window/rect", json!({"width": 390, "height": 844}));
    session.wait_for("return window.innerWidth <= 400", 10);
    assert_eq!(
        session.js("return document.documentElement.scrollWidth <= window.innerWidth"),
        true,
        "the page fits a phone's width"
    );
    save_screenshot(&session, "studio-phone.png");
    drop(session);
    server.shutdown().unwrap();
}

/// The iterations of the preview images the page showed, until three were seen or the run ended.
fn previews_seen(session: &Session<'_>, addr: SocketAddr) -> std::collections::BTreeSet<u64> {
    let mut seen = std::collections::BTreeSet::new();
    let t0 = Instant::now();
    while seen.len() < 3 {
        let it = session.js("const p = document.querySelector('#preview'); return p.complete && p.naturalWidth > 0 ? (p.dataset.iteration || '') : ''");
        if let Some(i) = it.as_str().filter(|s| !s.is_empty()) {
            seen.insert(i.parse::<u64>().unwrap());
        }
        if get(addr, "/api/runs/r000001").json()["state"] == "done" && seen.len() >= 2 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "previews seen: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    seen
}

/// The page from the top, as a PNG `name` in `target/nst-serve-browser/`.
fn save_screenshot(session: &Session<'_>, name: &str) {
    session.js("window.scrollTo(0, 0)");
    let shot = session.cmd("GET", "screenshot", json!({}));
    let png = decode_base64(shot.as_str().unwrap());
    assert_eq!(&png[1..4], b"PNG");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../nst-serve-browser");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(name), &png).unwrap();
    eprintln!("screenshot: {}", out.join(name).display());
}

/// Standard base64 (the screenshot).
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
