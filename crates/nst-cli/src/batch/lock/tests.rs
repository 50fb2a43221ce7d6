//! Job locks: exclusive while held, released on drop, taken over from a dead process or a stale
//! heartbeat, never from a live one; the heartbeat notices a lock taken away.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::testing::TempDir;

fn plant(dir: &Path, host: &str, pid: u32, age: Duration) {
    let h = Holder {
        host: host.into(),
        pid,
        since: 1,
        token: "t0".into(),
    };
    let path = dir.join(LOCK_FILE);
    fs::write(&path, h.text()).unwrap();
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn acquired(a: Attempt) -> JobLock {
    match a {
        Attempt::Acquired(l) => l,
        Attempt::Held(h) => panic!("held by {h:?}"),
    }
}

/// A process id that no process has (Linux caps ids at 2^22).
const DEAD_PID: u32 = 4_194_304 + 17;

#[test]
fn a_held_lock_is_exclusive_until_dropped() {
    let dir = TempDir::new("lock-exclusive");
    let cfg = LockConfig::default();
    let lock = acquired(try_lock(dir.path(), &cfg).unwrap());
    assert_eq!(lock.holder().pid, std::process::id());
    assert!(lock.took_over.is_none());
    match try_lock(dir.path(), &cfg).unwrap() {
        Attempt::Held(Some(h)) => assert_eq!(h, *lock.holder()),
        other => panic!("{other:?}"),
    }
    assert_eq!(holder_of(dir.path(), &cfg).as_ref(), Some(lock.holder()));
    drop(lock);
    assert!(!dir.path().join(LOCK_FILE).exists(), "released on drop");
    assert!(holder_of(dir.path(), &cfg).is_none());
    acquired(try_lock(dir.path(), &cfg).unwrap());
}

#[test]
fn stale_locks_are_taken_over_and_live_ones_are_not() {
    let dir = TempDir::new("lock-stale");
    let cfg = LockConfig::stale_after(60);
    let here = host_name();
    // A dead process on this host: taken over at once, whatever the heartbeat's age.
    plant(dir.path(), &here, DEAD_PID, Duration::ZERO);
    let lock = acquired(try_lock(dir.path(), &cfg).unwrap());
    assert_eq!(lock.took_over.as_ref().map(|h| h.pid), Some(DEAD_PID));
    drop(lock);
    // Another host with a fresh heartbeat: held, named.
    plant(dir.path(), "node-7", 42, Duration::from_secs(5));
    match try_lock(dir.path(), &cfg).unwrap() {
        Attempt::Held(Some(h)) => {
            assert_eq!((h.host.as_str(), h.pid), ("node-7", 42));
            assert!(h.to_string().starts_with("node-7:42 for "), "{h}");
        }
        other => panic!("{other:?}"),
    }
    // The same host with a live process (this one) and a fresh heartbeat: held; with a heartbeat
    // that stopped, taken over (the process id may have been reused by another program).
    plant(
        dir.path(),
        &here,
        std::process::id(),
        Duration::from_secs(5),
    );
    assert!(matches!(
        try_lock(dir.path(), &cfg).unwrap(),
        Attempt::Held(Some(_))
    ));
    plant(
        dir.path(),
        &here,
        std::process::id(),
        Duration::from_secs(3600),
    );
    drop(acquired(try_lock(dir.path(), &cfg).unwrap()));
    // Another host whose heartbeat stopped: taken over.
    plant(dir.path(), "node-7", 42, Duration::from_secs(120));
    let lock = acquired(try_lock(dir.path(), &cfg).unwrap());
    assert_eq!(
        lock.took_over.as_ref().map(|h| h.host.as_str()),
        Some("node-7")
    );
    assert!(
        fs::read_dir(dir.path()).unwrap().count() == 1,
        "nothing left aside"
    );
}

#[test]
fn a_lock_file_being_written_counts_as_held_for_a_few_seconds() {
    let dir = TempDir::new("lock-torn");
    let cfg = LockConfig::default();
    fs::write(dir.path().join(LOCK_FILE), "").unwrap();
    assert!(matches!(
        try_lock(dir.path(), &cfg).unwrap(),
        Attempt::Held(None)
    ));
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join(LOCK_FILE))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(30))
        .unwrap();
    acquired(try_lock(dir.path(), &cfg).unwrap());
}

#[test]
fn the_heartbeat_touches_its_own_lock_and_notices_a_lost_one() {
    let dir = TempDir::new("lock-beat");
    let lock = acquired(try_lock(dir.path(), &LockConfig::default()).unwrap());
    let path = dir.path().join(LOCK_FILE);
    let old = SystemTime::now() - Duration::from_secs(600);
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert!(beat(&path, &lock.holder().token));
    assert!(
        fs::metadata(&path).unwrap().modified().unwrap() > old,
        "touched"
    );
    plant(dir.path(), "node-2", 9, Duration::ZERO);
    assert!(!beat(&path, &lock.holder().token), "someone else's lock");
    drop(lock);
    assert!(
        path.exists(),
        "a lock that is no longer ours is left to its holder"
    );
}

#[test]
fn holders_read_back_what_they_wrote_and_refuse_garbage() {
    let h = Holder::me();
    assert_eq!(Holder::parse(&h.text()), Some(h.clone()));
    assert_eq!(Holder::parse("host=a\npid=x\nsince=1\ntoken=t\n"), None);
    assert_ne!(Holder::me().token, h.token, "tokens differ");
    let cfg = LockConfig::stale_after(50);
    assert_eq!(cfg.heartbeat, Duration::from_secs(5));
    assert_eq!(
        LockConfig::stale_after(1000).heartbeat,
        Duration::from_secs(30)
    );
}
