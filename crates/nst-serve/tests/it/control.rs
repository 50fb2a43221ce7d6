//! Steering runs: pause, resume, stop (the image so far is kept), continue for more iterations, the
//! queue (one run at a time, editable, bounded), and a restarted server taking its runs back.

use serde_json::json;

use super::*;

/// Long enough to be steered: stopped by every test that starts it.
const LONG: usize = 50_000;

#[test]
fn pause_resume_stop_and_continue() {
    let dir = temp_dir("control");
    let server = start(&dir, |_| {});
    let addr = server.addr();
    let mut events = Events::open(addr, "");
    let id = submit(addr, &tiny_settings(LONG));
    events.until(|e| e["type"] == "step" && e["iteration"] == 3);
    assert_eq!(
        post_json(addr, &format!("/api/runs/{id}/pause"), &json!({})).status,
        200
    );
    let paused = events.until(|e| is_state(e, &id, "paused"));
    // At most the iteration in progress finishes after the pause.
    let last = |v: &[Value]| {
        v.iter()
            .rev()
            .find(|e| e["type"] == "step")
            .map(|e| e["iteration"].as_u64().unwrap())
    };
    let at = last(&paused).unwrap_or(3);
    let info = wait_state(addr, &id, "paused");
    assert!(info["iteration"].as_u64().unwrap() <= at + 1, "{info}");
    // Paused: the iteration count stays.
    let before = get(addr, &format!("/api/runs/{id}")).json()["iteration"].clone();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        get(addr, &format!("/api/runs/{id}")).json()["iteration"],
        before
    );
    assert_eq!(
        post_json(addr, &format!("/api/runs/{id}/resume"), &json!({})).status,
        200
    );
    let n = before.as_u64().unwrap();
    events.until(|e| e["type"] == "step" && e["iteration"].as_u64() > Some(n + 2));
    assert_eq!(
        post_json(addr, &format!("/api/runs/{id}/stop"), &json!({})).status,
        200
    );
    let info = wait_state(addr, &id, "stopped");
    let stopped_at = info["iteration"].as_u64().unwrap();
    assert!(stopped_at > n && stopped_at < LONG as u64);
    assert_eq!(
        get(addr, &format!("/api/runs/{id}/result.png")).status,
        200,
        "the image so far is kept"
    );
    // Pausing a run that does not run is a conflict.
    assert_eq!(
        post_json(addr, &format!("/api/runs/{id}/pause"), &json!({})).status,
        409
    );
    // Continue for 4 more, from the checkpoint.
    let r = post_json(
        addr,
        &format!("/api/runs/{id}/continue"),
        &json!({"iterations": 4}),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let info = wait_state(addr, &id, "done");
    assert_eq!(info["iteration"].as_u64(), Some(stopped_at + 4));
    assert_eq!(
        post_json(
            addr,
            &format!("/api/runs/{id}/continue"),
            &json!({"iterations": 0})
        )
        .status,
        400
    );
    server.shutdown().unwrap();
}

#[test]
fn one_run_at_a_time_with_an_editable_bounded_queue() {
    let dir = temp_dir("queue");
    let server = start(&dir, |c| c.queue_limit = 2);
    let addr = server.addr();
    let first = submit(addr, &tiny_settings(LONG));
    wait_state(addr, &first, "running");
    let second = submit(addr, &tiny_settings(2));
    let third = submit(addr, &tiny_settings(3));
    let r = post_json(
        addr,
        "/api/runs",
        &serde_json::to_value(tiny_settings(2)).unwrap(),
    );
    assert_eq!(r.status, 429);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("queue is full")
    );
    assert_eq!(
        get(addr, "/api/state").json()["queue"],
        json!([second, third])
    );
    // Edit: the third moves up, the second leaves the queue.
    assert_eq!(
        post_json(addr, &format!("/api/runs/{third}/up"), &json!({})).status,
        200
    );
    assert_eq!(
        get(addr, "/api/state").json()["queue"],
        json!([third, second])
    );
    assert_eq!(
        post_json(addr, &format!("/api/runs/{second}/stop"), &json!({})).status,
        200
    );
    assert_eq!(get(addr, "/api/state").json()["queue"], json!([third]));
    assert_eq!(
        get(addr, &format!("/api/runs/{second}")).json()["state"],
        "stopped"
    );
    // Still one at a time: the third waits for the first.
    assert_eq!(
        get(addr, &format!("/api/runs/{third}")).json()["state"],
        "queued"
    );
    post_json(addr, &format!("/api/runs/{first}/stop"), &json!({}));
    wait_state(addr, &third, "done");
    server.shutdown().unwrap();
}

#[test]
fn a_restarted_server_shows_its_history_and_resumes_the_interrupted_run() {
    let dir = temp_dir("restart");
    let server = start(&dir, |_| {});
    let addr = server.addr();
    let done = submit(addr, &tiny_settings(2));
    wait_state(addr, &done, "done");
    let mut events = Events::open(addr, "");
    let id = submit(addr, &tiny_settings(40));
    events.until(|e| e["type"] == "checkpoint" && e["run"] == id.as_str());
    drop(events);
    server.shutdown().unwrap();
    // As after a kill: the record still says running.
    let record = dir.join("out/runs").join(&id).join("studio.json");
    let mut info: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let saved_at = info["iteration"].as_u64().unwrap();
    assert!((2..40).contains(&saved_at), "{info}");
    info["state"] = json!("running");
    std::fs::write(&record, info.to_string()).unwrap();

    let server = start(&dir, |_| {});
    let addr = server.addr();
    let state = get(addr, "/api/state").json();
    assert_eq!(state["runs"][0]["state"], "done");
    let info = wait_state(addr, &id, "done");
    assert_eq!(info["iteration"], 40);
    // The costs before the interruption are kept, not counted twice.
    let iterations: Vec<u64> = info["costs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["iteration"].as_u64().unwrap())
        .collect();
    assert_eq!(iterations, (1..=40).collect::<Vec<_>>());
    // New ids continue after the old ones.
    let next = submit(addr, &tiny_settings(1));
    assert!(next > id);
    server.shutdown().unwrap();
}
