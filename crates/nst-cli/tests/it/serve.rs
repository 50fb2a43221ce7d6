//! `nst serve` as a process: it prints its URL, serves the studio, and a server killed mid-run
//! (SIGKILL: no chance to save) resumes the run from its last checkpoint when started again on the
//! same folder. The HTTP API itself is tested in `nst-serve`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// `nst serve` on a free port in `dir`; returns the process and the address from its URL line.
fn serve(dir: &Path) -> (Child, String) {
    let mut child = nst_command(
        dir,
        &[
            "serve",
            "--port",
            "0",
            "--out-dir",
            "studio",
            "--weights",
            "tiny-vgg.mat",
            "--samples",
            ".",
            "--checkpoint-every",
            "5",
            "--threads",
            "1",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("nst studio: http://")
        .unwrap_or_else(|| panic!("{line:?}"));
    (child, url.trim_end_matches('/').to_owned())
}

fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    raw
}

fn run_info(addr: &str) -> serde_json::Value {
    let raw = http(addr, "GET", "/api/runs/r000001", "");
    serde_json::from_str(raw.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn serve_killed_mid_run_resumes_from_the_last_checkpoint() {
    let dir = temp_dir("serve-kill");
    fixture(&dir);
    let (mut server, addr) = serve(&dir);
    let settings = r#"{"content": "sample:content.png", "styles": ["sample:style.jpg"], "max_size": 32,
        "iterations": 100000, "learning_rate": 1.0, "content_layers": "relu2_1", "style_layers": "relu1_1,relu2_1"}"#;
    let raw = http(&addr, "POST", "/api/runs", settings);
    assert!(raw.starts_with("HTTP/1.0 201"), "{raw}");
    let run = dir.join("studio/runs/r000001");
    let t0 = Instant::now();
    // Wait for the checkpoint at 15 (steps past it are reported only after it is written): the resumed
    // run starts after iteration 10, so its image must not be written again.
    while run_info(&addr)["iteration"].as_u64().unwrap_or(0) < 17
        || !run.join("iter-0010.png").exists()
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let early = std::fs::metadata(run.join("iter-0010.png"))
        .unwrap()
        .modified()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("studio.json")).unwrap()).unwrap();
    assert_eq!(
        record["state"], "running",
        "killed: nothing was saved at the end"
    );

    let killed_at = record["iteration"].as_u64().unwrap();

    let (mut server, addr) = serve(&dir);
    let t0 = Instant::now();
    while run_info(&addr)["iteration"].as_u64().unwrap_or(0) < killed_at + 20 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the run did not go on"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let raw = http(&addr, "POST", "/api/runs/r000001/stop", "{}");
    assert!(raw.starts_with("HTTP/1.0 200"), "{raw}");
    let info = loop {
        let info = run_info(&addr);
        if info["state"] == "stopped" {
            break info;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "{info}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let last = info["iteration"].as_u64().unwrap();
    let iterations: Vec<u64> = info["costs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iterations, (1..=last).collect::<Vec<_>>());
    // Resumed, not restarted: the image of iteration 10 was not written again.
    let late = std::fs::metadata(run.join("iter-0010.png"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(early, late);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn serve_reports_bad_flags_and_a_busy_port_clearly() {
    let dir = temp_dir("serve-errors");
    fixture(&dir);
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    for (args, expected) in [
        (vec!["--port", port.as_str()], "cannot listen on 127.0.0.1:"),
        (
            vec!["--port", "0", "--token", "short"],
            "--token must be at least 16 characters",
        ),
        (
            vec!["--port", "0", "--queue", "0"],
            "--queue must be at least 1",
        ),
        (
            vec!["--port", "0", "--checkpoint-every", "0"],
            "--checkpoint-every must be at least 1",
        ),
        (
            vec!["--port", "0", "--weights", "missing.mat"],
            "missing.mat does not exist",
        ),
    ] {
        let mut all = vec!["serve", "--out-dir", "studio"];
        if !args.contains(&"--weights") {
            all.extend(["--weights", "tiny-vgg.mat"]);
        }
        all.extend(args);
        let out = nst(&dir, &all);
        assert_eq!(out.status.code(), Some(1), "{all:?}");
        let err = stderr(&out);
        assert!(err.contains(expected), "{all:?}: {err}");
    }
}
