//! Per-job lock files that work on a folder shared by several machines: `<job>/.job.lock`, created
//! with `O_EXCL` (`create_new`, which NFSv3+ honours where `flock` may not), holding the host, the
//! process id, the start time and a random token. While a job runs, a watchdog touches the file (its
//! modification time is the heartbeat) and checks that the token is still there. A lock whose process
//! is gone (same host) or whose heartbeat is older than `stale_after` (any host) is taken over: it is
//! renamed aside, checked to be the stale file and not a fresh one that replaced it meanwhile, then
//! created anew. A worker whose lock was taken from it stops its job.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nst_engine::Control;

/// The lock file's name in a job's folder.
pub const LOCK_FILE: &str = ".job.lock";

/// How locks age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    /// A lock whose heartbeat is older than this is taken over (from any host).
    pub stale_after: Duration,
    /// How often a running job's lock is touched.
    pub heartbeat: Duration,
}

impl LockConfig {
    /// The default staleness (`--stale-after`): long enough for a shared file system's attribute
    /// caches (NFS keeps them up to a minute), short enough that a lost node's jobs move on.
    pub const DEFAULT_STALE_SECONDS: u64 = 300;

    /// Locks stale after `seconds`, touched every tenth of that (between 1 and 30 s).
    pub fn stale_after(seconds: u64) -> LockConfig {
        let stale_after = Duration::from_secs(seconds.max(1));
        LockConfig {
            stale_after,
            heartbeat: (stale_after / 10).clamp(Duration::from_secs(1), Duration::from_secs(30)),
        }
    }
}

impl Default for LockConfig {
    fn default() -> LockConfig {
        LockConfig::stale_after(LockConfig::DEFAULT_STALE_SECONDS)
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// When it took the lock (seconds since the Unix epoch).
    pub since: u64,
    /// A random token that tells this holder from a later one.
    pub token: String,
}

impl Holder {
    /// This process, now.
    fn me() -> Holder {
        let now = SystemTime::now();
        let nanos = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        Holder {
            host: host_name(),
            pid: std::process::id(),
            since: nanos.as_secs(),
            token: format!("{:016x}{:08x}", random_u64(), nanos.subsec_nanos()),
        }
    }

    fn text(&self) -> String {
        format!(
            "host={}\npid={}\nsince={}\ntoken={}\n",
            self.host, self.pid, self.since, self.token
        )
    }

    fn parse(text: &str) -> Option<Holder> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_owned)
        };
        Some(Holder {
            host: field("host")?,
            pid: field("pid")?.parse().ok()?,
            since: field("since")?.parse().ok()?,
            token: field("token")?,
        })
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write!(
            f,
            "{}:{} for {} s",
            self.host,
            self.pid,
            now.saturating_sub(self.since)
        )
    }
}

/// The outcome of [`try_lock`].
#[derive(Debug)]
pub enum Attempt {
    /// The lock is ours.
    Acquired(JobLock),
    /// Another live worker holds it (`None`: a lock file being written right now).
    Held(Option<Holder>),
}

/// A job's lock, held until dropped.
#[derive(Debug)]
pub struct JobLock {
    path: PathBuf,
    holder: Holder,
    /// Whether it was taken over from a stale holder.
    pub took_over: Option<Holder>,
    watch: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    lost: Arc<AtomicBool>,
}

/// Tries to take the lock of the job folder `dir` (which must exist), taking over a stale one.
///
/// # Errors
/// The I/O error of creating or reading the lock file.
pub fn try_lock(dir: &Path, cfg: &LockConfig) -> std::io::Result<Attempt> {
    let path = dir.join(LOCK_FILE);
    let me = Holder::me();
    let mut took_over = None;
    for _ in 0..4 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(me.text().as_bytes())?;
                f.sync_all()?;
                return Ok(Attempt::Acquired(JobLock {
                    path,
                    holder: me,
                    took_over,
                    watch: None,
                    lost: Arc::new(AtomicBool::new(false)),
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let Some((text, age)) = read_lock(&path)? else {
            continue; // released meanwhile
        };
        let holder = Holder::parse(&text);
        if !is_stale(holder.as_ref(), age, cfg) {
            return Ok(Attempt::Held(holder));
        }
        if take_aside(&path, &text, &me)? {
            took_over = holder;
        }
    }
    Ok(Attempt::Held(
        read_lock(&path)?.and_then(|(t, _)| Holder::parse(&t)),
    ))
}

/// Who holds `dir`'s lock now, if anyone does and is not stale.
pub fn holder_of(dir: &Path, cfg: &LockConfig) -> Option<Holder> {
    let (text, age) = read_lock(&dir.join(LOCK_FILE)).ok()??;
    let holder = Holder::parse(&text)?;
    (!is_stale(Some(&holder), age, cfg)).then_some(holder)
}

/// The lock file's text and the age of its heartbeat; `None` when there is no lock file.
fn read_lock(path: &Path) -> std::io::Result<Option<(String, Duration)>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let age = match fs::metadata(path).and_then(|m| m.modified()) {
        Ok(t) => SystemTime::now().duration_since(t).unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some((text, age)))
}

/// Whether a lock can be taken over: its process is gone (on this host), or its heartbeat is older
/// than `stale_after`; a file not yet written counts as fresh for a few seconds.
fn is_stale(holder: Option<&Holder>, age: Duration, cfg: &LockConfig) -> bool {
    match holder {
        Some(h) if h.host == host_name() && !process_alive(h.pid) => true,
        Some(_) => age > cfg.stale_after,
        None => age > cfg.stale_after.min(Duration::from_secs(10)),
    }
}

/// Moves the stale lock file (whose text is `stale`) out of the way. Returns whether it was that file;
/// a fresh lock that replaced it meanwhile is put back (unless yet another was created, whose holder
/// then wins and the displaced one finds out at its next heartbeat).
fn take_aside(path: &Path, stale: &str, me: &Holder) -> std::io::Result<bool> {
    let aside = path.with_file_name(format!(
        "{LOCK_FILE}.stale-{}-{}-{}",
        me.host, me.pid, me.token
    ));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let moved = fs::read_to_string(&aside).unwrap_or_default();
    if moved != stale {
        let _ = fs::hard_link(&aside, path);
    }
    let _ = fs::remove_file(&aside);
    Ok(moved == stale)
}

impl JobLock {
    /// Who holds it (this process).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Starts the watchdog: every tenth of a second it passes a cancellation of `batch` on to `job`;
    /// every heartbeat it touches the lock file, or, when the file is no longer ours, cancels `job`
    /// and marks the lock lost.
    pub fn watch(&mut self, cfg: &LockConfig, batch: &Control, job: &Control) {
        let stop = Arc::new(AtomicBool::new(false));
        let (path, token, heartbeat) =
            (self.path.clone(), self.holder.token.clone(), cfg.heartbeat);
        let (batch, job, lost, stop2) =
            (batch.clone(), job.clone(), self.lost.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let tick = Duration::from_millis(100);
            let mut since_beat = Duration::ZERO;
            while !stop2.load(Ordering::SeqCst) {
                // Parked rather than asleep, so that dropping the lock wakes it at once.
                std::thread::park_timeout(tick);
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if batch.is_cancelled() {
                    job.cancel();
                }
                since_beat += tick;
                if since_beat >= heartbeat {
                    since_beat = Duration::ZERO;
                    if !beat(&path, &token) {
                        lost.store(true, Ordering::SeqCst);
                        job.cancel();
                    }
                }
            }
        });
        self.watch = Some((stop, handle));
    }

    /// Whether the lock was taken from this process while it ran.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

/// Touches the lock file if it still holds `token`; false when it does not.
fn beat(path: &Path, token: &str) -> bool {
    let ours = fs::read_to_string(path)
        .ok()
        .and_then(|t| Holder::parse(&t))
        .is_some_and(|h| h.token == token);
    if ours && let Ok(f) = OpenOptions::new().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
    ours
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.watch.take() {
            stop.store(true, Ordering::SeqCst);
            handle.thread().unpark();
            let _ = handle.join();
        }
        let still_ours = fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| Holder::parse(&t))
            .is_some_and(|h| h.token == self.holder.token);
        if still_ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`, else `HOSTNAME`, else `localhost`).
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process with this id runs on this machine (on Linux, `/proc/<pid>` exists; elsewhere
/// assume it does, so that a live worker's lock is never taken).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// 64 random bits for a token, from the standard library's randomly seeded hasher.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests;
