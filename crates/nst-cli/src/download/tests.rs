//! Download tests against a tiny HTTP server on 127.0.0.1 (never the real network).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use super::*;
use crate::testing::TempDir;

/// How the test server behaves.
#[derive(Clone, Copy)]
struct ServerMode {
    honour_range: bool,
}

/// A one-file HTTP/1.1 server; returns the URL and the log of `Range` headers it saw.
fn serve(body: Vec<u8>, mode: ServerMode) -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&ranges);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = Some(v.trim().trim_end_matches('-').to_owned());
                }
            }
            log.lock().unwrap().push(range.clone());
            let start = range
                .and_then(|r| r.parse::<usize>().ok())
                .filter(|_| mode.honour_range);
            let (status, slice) = match start {
                Some(s) if s >= body.len() => ("416 Range Not Satisfiable", &body[0..0]),
                Some(s) => ("206 Partial Content", &body[s..]),
                None => ("200 OK", &body[..]),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                slice.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(slice);
        }
    });
    (format!("http://127.0.0.1:{port}/weights.mat"), ranges)
}

fn payload() -> Vec<u8> {
    (0..200_000_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn source(url: String, body: &[u8]) -> WeightsSource {
    let md5 = hex(&Md5::digest(body));
    WeightsSource {
        url,
        file_name: "weights.mat",
        md5: Some(Box::leak(md5.into_boxed_str())),
        size: Some(body.len() as u64),
    }
}

#[test]
fn full_download_is_verified_and_renamed() {
    let body = payload();
    let (url, ranges) = serve(body.clone(), ServerMode { honour_range: true });
    let dir = TempDir::new("download-full");
    let dest = dir.path().join("sub/weights.mat");
    let out = fetch(&source(url, &body), &dest, false, &mut NoProgress).unwrap();
    match out {
        Outcome::Downloaded {
            verified,
            resumed_from,
            checksums,
        } => {
            assert!(verified);
            assert_eq!(resumed_from, 0);
            assert_eq!(checksums.bytes, body.len() as u64);
            assert_eq!(checksums.sha256.len(), 64);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert!(!part_path(&dest).exists());
    assert_eq!(ranges.lock().unwrap().as_slice(), &[None]);
    // A second call finds the file and does not touch the network.
    let again = fetch(
        &source("http://127.0.0.1:9/x".into(), &body),
        &dest,
        true,
        &mut NoProgress,
    );
    assert!(matches!(again, Ok(Outcome::AlreadyPresent(_))), "{again:?}");
}

#[test]
fn partial_file_is_resumed_with_a_range_request() {
    let body = payload();
    let (url, ranges) = serve(body.clone(), ServerMode { honour_range: true });
    let dir = TempDir::new("download-resume");
    let dest = dir.path().join("weights.mat");
    fs::write(part_path(&dest), &body[..70_000]).unwrap();
    let out = fetch(&source(url, &body), &dest, false, &mut NoProgress).unwrap();
    assert!(
        matches!(
            out,
            Outcome::Downloaded {
                resumed_from: 70_000,
                verified: true,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert_eq!(
        ranges.lock().unwrap().as_slice(),
        &[Some("70000".to_owned())]
    );
}

#[test]
fn complete_partial_file_is_verified_after_416() {
    let body = payload();
    let (url, _) = serve(body.clone(), ServerMode { honour_range: true });
    let dir = TempDir::new("download-416");
    let dest = dir.path().join("weights.mat");
    fs::write(part_path(&dest), &body).unwrap();
    let out = fetch(&source(url, &body), &dest, false, &mut NoProgress).unwrap();
    assert!(
        matches!(out, Outcome::Downloaded { verified: true, .. }),
        "{out:?}"
    );
    assert_eq!(fs::read(&dest).unwrap(), body);
}

#[test]
fn server_ignoring_range_restarts_the_download() {
    let body = payload();
    let (url, ranges) = serve(
        body.clone(),
        ServerMode {
            honour_range: false,
        },
    );
    let dir = TempDir::new("download-norange");
    let dest = dir.path().join("weights.mat");
    // A stale partial file whose bytes are wrong: appending to it would corrupt the result.
    fs::write(part_path(&dest), vec![0xAA_u8; 5_000]).unwrap();
    let out = fetch(&source(url, &body), &dest, false, &mut NoProgress).unwrap();
    assert!(
        matches!(
            out,
            Outcome::Downloaded {
                resumed_from: 0,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(fs::read(&dest).unwrap(), body);
    assert_eq!(
        ranges.lock().unwrap().as_slice(),
        &[Some("5000".to_owned())]
    );
}

#[test]
fn wrong_checksum_deletes_the_part_file() {
    let body = payload();
    let (url, _) = serve(body.clone(), ServerMode { honour_range: true });
    let dir = TempDir::new("download-md5");
    let dest = dir.path().join("weights.mat");
    let mut src = source(url, &body);
    src.md5 = Some("00000000000000000000000000000000");
    let err = fetch(&src, &dest, false, &mut NoProgress).unwrap_err();
    assert!(matches!(err, DownloadError::Checksum { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("00000000000000000000000000000000") && msg.contains("deleted"),
        "{msg}"
    );
    assert!(!dest.exists());
    assert!(!part_path(&dest).exists());
}

#[test]
fn unknown_checksum_downloads_unverified() {
    let body = payload();
    let (url, _) = serve(body.clone(), ServerMode { honour_range: true });
    let dir = TempDir::new("download-nomd5");
    let dest = dir.path().join("weights.mat");
    let mut src = source(url, &body);
    src.md5 = None;
    let out = fetch(&src, &dest, false, &mut NoProgress).unwrap();
    assert!(
        matches!(
            out,
            Outcome::Downloaded {
                verified: false,
                ..
            }
        ),
        "{out:?}"
    );
}

#[test]
fn server_down_names_the_url_and_the_destination() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/imagenet-vgg-verydeep-19.mat");
    let dir = TempDir::new("download-down");
    let dest = dir.path().join("weights.mat");
    let err = fetch(&source(url.clone(), b"x"), &dest, false, &mut NoProgress).unwrap_err();
    assert!(matches!(err, DownloadError::Network { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&url) && msg.contains(&dest.display().to_string()),
        "{msg}"
    );
}

#[test]
fn offline_gives_one_message_with_url_and_place() {
    let dir = TempDir::new("download-offline");
    let dest = dir.path().join("imagenet-vgg-verydeep-19.mat");
    let err = fetch(
        &WeightsSource::default_vgg19(),
        &dest,
        true,
        &mut NoProgress,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(VGG19_CURRENT_URL), "{msg}");
    assert!(msg.contains(&dest.display().to_string()), "{msg}");
    assert!(msg.contains(VGG19_CURRENT_MD5), "{msg}");
}

#[test]
fn existing_file_with_wrong_checksum_is_refused() {
    let dir = TempDir::new("download-existing");
    let dest = dir.path().join("w.mat");
    fs::write(&dest, b"not the weights").unwrap();
    let err = fetch(
        &WeightsSource::default_vgg19(),
        &dest,
        true,
        &mut NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(err, DownloadError::ExistingMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn published_sources() {
    let s = WeightsSource::published(Model::Vgg19, Variant::Beta16).unwrap();
    assert_eq!(s.md5, Some("8ee3263992981a1d26e73b3ca028a123"));
    assert!(WeightsSource::published(Model::Vgg16, Variant::Beta16).is_none());
    assert_eq!(
        WeightsSource::published(Model::Vgg16, Variant::Current)
            .unwrap()
            .md5,
        None
    );
    assert_eq!(
        hex(&Md5::digest(b"abc")),
        "900150983cd24fb0d6963f7d28e17f72"
    );
}
