//! The security cases: path traversal in every shape, symbolic links in the output folder, foreign
//! hosts and origins, the token, CORS, malformed requests, oversized bodies, slow clients and many
//! open sockets, each checking that nothing outside the output folder changed and that a run in
//! progress goes on.

use std::io::Write as _;

use serde_json::json;

use super::*;

#[test]
fn no_client_path_reaches_the_filesystem() {
    let dir = temp_dir("traversal");
    let secret = dir.join("secret.png");
    let server = start(&dir, |_| {});
    std::fs::copy(dir.join("samples/content.png"), &secret).unwrap();
    let addr = server.addr();
    let before = listing(&dir, &dir.join("out"));
    for path in [
        "/api/images/sample:..%2Fsecret.png",
        "/api/images/sample:..%2f..%2fsecret.png",
        "/api/images/sample:%2e%2e%2fsecret.png",
        "/api/images/sample:%2Fetc%2Fpasswd",
        "/api/images/upload:..%2F..%2Fsecret.png",
        "/api/images/%2Fetc%2Fpasswd",
        "/api/images/..%2F..%2Fsecret.png",
        "/api/images/run:..%2Fsecret",
        "/api/runs/..%2F..%2Fsecret/result.png",
        "/api/runs/r000001%2F..%2F..%2Fsecret/result.png",
        "/api/runs/r000001/..%2F..%2F..%2Fsecret.png",
        "/../secret.png",
        "/%2e%2e/secret.png",
        "/app.js/../../secret.png",
        "//etc/passwd",
    ] {
        let r = get(addr, path);
        assert!(
            [400, 404].contains(&r.status),
            "{path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert!(!r.body.starts_with(b"\x89PNG"), "{path} served a file");
    }
    // Settings that name files outside the folder.
    for content in [
        "../secret.png",
        "/etc/passwd",
        "sample:../secret.png",
        "upload:/etc/passwd",
        "run:../../x",
    ] {
        let mut s = tiny_settings(1);
        s.content = content.into();
        let r = post_json(addr, "/api/runs", &serde_json::to_value(&s).unwrap());
        assert!([400, 404].contains(&r.status), "{content}: {}", r.status);
    }
    // A symbolic link planted in the output folder is never followed.
    let planted = dir.join("out/runs/r000077");
    std::fs::create_dir_all(&planted).unwrap();
    std::os::unix::fs::symlink(&secret, planted.join("result.png")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("out/uploads/u0123456789abcdef.png")).unwrap();
    assert_eq!(get(addr, "/api/runs/r000077/result.png").status, 404);
    assert_eq!(get(addr, "/api/images/run:r000077").status, 404);
    assert_eq!(
        get(addr, "/api/images/upload:u0123456789abcdef.png").status,
        404
    );
    let mut s = tiny_settings(1);
    s.content = "upload:u0123456789abcdef.png".into();
    assert_eq!(
        post_json(addr, "/api/runs", &serde_json::to_value(&s).unwrap()).status,
        404
    );
    server.shutdown().unwrap();
    assert_eq!(
        listing(&dir, &dir.join("out")),
        before,
        "nothing outside the output folder changed"
    );
}

#[test]
fn foreign_hosts_and_origins_are_refused_and_no_cors_is_offered() {
    let dir = temp_dir("origins");
    let server = start(&dir, |_| {});
    let addr = server.addr();
    let before = listing(&dir, &dir.join("out"));
    // DNS rebinding: a page of evil.example resolved to 127.0.0.1.
    let r = request(
        addr,
        "GET",
        "/api/state",
        &[("Host", "evil.example:8080")],
        b"",
    );
    assert_eq!(r.status, 403);
    let body = serde_json::to_value(tiny_settings(1)).unwrap().to_string();
    let r = request(
        addr,
        "POST",
        "/api/runs",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
    let r = request(
        addr,
        "POST",
        "/api/runs",
        &[("Origin", "null")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 403);
    let r = request(
        addr,
        "OPTIONS",
        "/api/runs",
        &[
            ("Origin", "http://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert!(
        !r.headers.contains_key("access-control-allow-origin"),
        "{r:?}"
    );
    assert_ne!(r.status / 100, 2);
    let own = format!("http://{addr}");
    let r = request(
        addr,
        "POST",
        "/api/runs",
        &[("Origin", &own)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201);
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    let id = r.json()["id"].as_str().unwrap().to_owned();
    wait_state(addr, &id, "done");
    server.shutdown().unwrap();
    assert_eq!(listing(&dir, &dir.join("out")), before);
}

#[test]
fn with_a_token_every_request_needs_it() {
    let dir = temp_dir("token");
    let token = nst_serve::new_token();
    assert_eq!(token.len(), 32);
    let server = start(&dir, |c| c.token = Some(token.clone()));
    let addr = server.addr();
    let before = listing(&dir, &dir.join("out"));
    assert!(server.url().ends_with(&format!("/?token={token}")));
    for path in ["/", "/api/state", "/api/events", "/app.js"] {
        assert_eq!(get(addr, path).status, 401, "{path}");
    }
    assert_eq!(get(addr, "/api/state?token=wrong").status, 401);
    let bearer = format!("Bearer {token}");
    assert_eq!(
        request(
            addr,
            "GET",
            "/api/state",
            &[("Authorization", &bearer)],
            b""
        )
        .status,
        200
    );
    let r = get(addr, &format!("/?token={token}"));
    assert_eq!(r.status, 200);
    let cookie = r.headers["set-cookie"].clone();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        request(addr, "GET", "/api/state", &[("Cookie", pair)], b"").status,
        200
    );
    // With a token, any Host is fine (the server is meant to be reached from elsewhere).
    let r = request(
        addr,
        "GET",
        "/api/state",
        &[("Cookie", pair), ("Host", "studio.lan:8080")],
        b"",
    );
    assert_eq!(r.status, 200);
    let mut events = Events::open(addr, &format!("Authorization: {bearer}\r\n"));
    let r = request(
        addr,
        "POST",
        "/api/runs",
        &[("Authorization", &bearer)],
        serde_json::to_value(tiny_settings(2))
            .unwrap()
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201);
    events.until(|e| e["type"] == "step");
    server.shutdown().unwrap();
    assert_eq!(listing(&dir, &dir.join("out")), before);
}

#[test]
fn hostile_clients_do_not_stop_a_run_or_the_server() {
    let dir = temp_dir("hostile");
    let server = start(&dir, |_| {});
    let addr = server.addr();
    let before = listing(&dir, &dir.join("out"));
    let id = submit(addr, &tiny_settings(300));
    wait_state(addr, &id, "running");
    // Many idle sockets, and slow clients that send half a request and wait.
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    for s in idle.iter_mut().take(50) {
        s.write_all(
            b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n{\"con",
        )
        .unwrap();
    }
    // Garbage and malformed requests.
    for raw in [
        &b"\x00\x01\x02garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
        b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(raw);
        drop(s);
    }
    // Oversized JSON and upload bodies.
    assert_eq!(
        request(addr, "POST", "/api/runs", &[], &vec![b' '; 100_000]).status,
        413
    );
    assert_eq!(
        request(
            addr,
            "POST",
            "/api/runs/r000001/continue",
            &[],
            &vec![b' '; 100_000]
        )
        .status,
        413
    );
    // The server still answers, and the run finishes.
    assert_eq!(get(addr, "/api/state").status, 200);
    let info = wait_state(addr, &id, "done");
    assert_eq!(info["iteration"], 300);
    drop(idle);
    assert_eq!(
        post_json(addr, "/api/runs/r000001/nonsense", &json!({})).status,
        404
    );
    server.shutdown().unwrap();
    assert_eq!(listing(&dir, &dir.join("out")), before);
}

#[test]
fn a_client_that_never_finishes_its_headers_is_closed() {
    let dir = temp_dir("header-timeout");
    let server = start(&dir, |c| c.header_timeout = Duration::from_millis(500));
    let addr = server.addr();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let t0 = Instant::now();
    let mut rest = Vec::new();
    // The server closes the connection (after at most a 408): the read ends, not the 20 s timeout.
    let ended = std::io::Read::read_to_end(&mut slow, &mut rest);
    assert!(ended.is_ok(), "{ended:?}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(get(addr, "/api/state").status, 200);
    server.shutdown().unwrap();
}
