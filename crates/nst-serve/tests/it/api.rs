//! The happy path: the page and its assets, uploads, a run and its events in order, the history and
//! its files, a run from a run's image, and the queue's limit.

use serde_json::json;

use super::*;

#[test]
fn the_page_and_its_assets_are_served_from_the_binary() {
    let dir = temp_dir("assets");
    let server = start(&dir, |_| {});
    let addr = server.addr();
    for (path, kind) in [
        ("/", "text/html"),
        ("/app.js", "text/javascript"),
        ("/style.css", "text/css"),
        ("/icon.svg", "image/svg+xml"),
    ] {
        let r = get(addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.headers["content-type"].starts_with(kind), "{path}");
        assert!(!r.headers.contains_key("access-control-allow-origin"));
    }
    let page = String::from_utf8(get(addr, "/").body).unwrap();
    // No asset from another host: the page works offline.
    assert!(!page.contains("http://") && !page.contains("https://"));
    let state = get(addr, "/api/state").json();
    assert_eq!(state["samples"], json!(["content.png", "style.jpg"]));
    assert_eq!(state["defaults"]["iterations"], 6);
    assert_eq!(
        get(addr, "/api/defaults/gatys").json()["optimizer"],
        "lbfgs"
    );
    assert_eq!(get(addr, "/api/defaults/nonsense").status, 404);
    server.shutdown().unwrap();
}

#[test]
fn uploads_are_sniffed_checked_and_renamed() {
    let dir = temp_dir("uploads");
    let server = start(&dir, |_| {});
    let addr = server.addr();
    let before = listing(&dir, &dir.join("out"));
    let png = std::fs::read(dir.join("samples/content.png")).unwrap();
    let r = request(addr, "POST", "/api/uploads", &[], &png);
    assert_eq!(r.status, 201);
    let v = r.json();
    let name = v["image"].as_str().unwrap();
    assert!(
        name.starts_with("upload:u") && name.ends_with(".png"),
        "{name}"
    );
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(40), Some(32))
    );
    assert_eq!(get(addr, &format!("/api/images/{name}")).body, png);
    // A photo larger than the JSON routes' 64 KiB limit is still an upload.
    let photo = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/hokusai_great_wave.jpg"),
    )
    .unwrap();
    assert!(photo.len() > 100_000);
    let r = request(addr, "POST", "/api/uploads", &[], &photo);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["image"].as_str().unwrap().ends_with(".jpg"));
    // Not an image, whatever it is called.
    let r = request(
        addr,
        "POST",
        "/api/uploads",
        &[("Content-Type", "image/png")],
        b"<script>",
    );
    assert_eq!(r.status, 415);
    // A PNG header claiming 100000 x 100000 pixels: refused from the header, before decoding.
    let mut huge = png[..33].to_vec();
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let r = request(addr, "POST", "/api/uploads", &[], &huge);
    assert_eq!(r.status, 415, "{}", String::from_utf8_lossy(&r.body));
    // A truncated image.
    let r = request(addr, "POST", "/api/uploads", &[], &png[..png.len() / 2]);
    assert_eq!(r.status, 415);
    // Over the size limit: refused by length, the body is never stored.
    let big = vec![0u8; nst_serve::UPLOAD_LIMIT + 1];
    let r = request(addr, "POST", "/api/uploads", &[], &big);
    assert_eq!(r.status, 413);
    let stored: Vec<_> = std::fs::read_dir(dir.join("out/uploads"))
        .unwrap()
        .collect();
    assert_eq!(
        stored.len(),
        2,
        "only the good uploads are kept, no temporary file"
    );
    server.shutdown().unwrap();
    assert_eq!(listing(&dir, &dir.join("out")), before);
}

#[test]
fn a_run_reports_its_progress_in_order_and_lands_in_the_history() {
    let dir = temp_dir("run");
    let server = start(&dir, |_| {});
    let addr = server.addr();
    let mut events = Events::open(addr, "");
    let id = submit(addr, &tiny_settings(6));
    let seen = events.until(|e| is_state(e, &id, "done"));
    let kinds: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let steps: Vec<u64> = seen
        .iter()
        .filter(|e| e["type"] == "step")
        .map(|e| e["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5, 6], "{kinds:?}");
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(pos("started") < pos("step"), "{kinds:?}");
    assert!(
        kinds.contains(&"preview"),
        "a watched run sends previews: {kinds:?}"
    );
    let step = seen.iter().find(|e| e["type"] == "step").unwrap();
    assert!(step["costs"]["total"].as_f64().unwrap() > 0.0);
    let preview = get(addr, &format!("/api/runs/{id}/preview.jpg"));
    assert_eq!(preview.status, 200);
    assert_eq!(&preview.body[..3], &[0xff, 0xd8, 0xff]);

    let info = get(addr, &format!("/api/runs/{id}")).json();
    assert_eq!(
        (
            info["iteration"].as_u64(),
            info["costs"].as_array().unwrap().len()
        ),
        (Some(6), 6)
    );
    let png = get(addr, &format!("/api/runs/{id}/result.png"));
    assert_eq!((png.status, &png.body[1..4]), (200, &b"PNG"[..]));
    let gif = get(addr, &format!("/api/runs/{id}/run.gif"));
    assert_eq!((gif.status, &gif.body[..3]), (200, &b"GIF"[..]));
    let state = get(addr, "/api/state").json();
    assert_eq!(state["runs"][0]["id"], id.as_str());
    assert_eq!(state["runs"][0]["state"], "done");

    // A new run from this run's image.
    let mut s = tiny_settings(2);
    s.content = format!("run:{id}");
    let second = submit(addr, &s);
    wait_state(addr, &second, "done");
    server.shutdown().unwrap();
}

#[test]
fn bad_settings_are_a_400_that_names_the_field() {
    let dir = temp_dir("bad-settings");
    let server = start(&dir, |_| {});
    let addr = server.addr();
    let mut s = tiny_settings(2);
    s.beta = -1.0;
    let r = post_json(addr, "/api/runs", &serde_json::to_value(&s).unwrap());
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"].as_str().unwrap().contains("beta"),
        "{}",
        r.json()
    );
    let r = request(addr, "POST", "/api/runs", &[], b"{not json");
    assert_eq!(r.status, 400);
    let r = post_json(
        addr,
        "/api/runs",
        &json!({"content": "sample:content.png", "styles": ["sample:nope.png"]}),
    );
    assert_eq!(r.status, 404);
    let r = post_json(addr, "/api/runs", &json!({"unknown_field": 1}));
    assert_eq!(r.status, 400);
    assert_eq!(get(addr, "/api/runs/r999999").status, 404);
    server.shutdown().unwrap();
}
