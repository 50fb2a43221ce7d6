//! `nst serve`: checks the flags, makes sure the model is there (the same first-use download as
//! `nst stylize`), starts the studio (`nst-serve`), prints its URL and serves until Ctrl-C.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use nst_engine::Control;

use crate::args::default_weights;
use crate::cli::ServeArgs;
use crate::stylize::{Ended, ensure_weights};

/// Runs the studio until `control` is cancelled (Ctrl-C, SIGTERM); the run in progress then writes
/// a checkpoint and resumes at the next start.
///
/// # Errors
/// Bad flags, a missing model, an address in use, an unusable output folder.
pub fn run(args: &ServeArgs, quiet: bool, threads: usize, control: &Control) -> Result<Ended> {
    let addr = address(&args.host, args.port)?;
    let token = token_for(addr, args.token.as_deref())?;
    if args.queue == 0 {
        bail!("--queue must be at least 1");
    }
    if args.checkpoint_every == 0 {
        bail!(
            "--checkpoint-every must be at least 1: the studio resumes and continues runs from their checkpoints"
        );
    }
    let weights = args.weights.clone().unwrap_or_else(default_weights);
    ensure_weights(&weights, args.offline.unwrap_or(false), quiet)?;
    let mut config = nst_serve::Config::new(args.out_dir.clone(), weights);
    config.samples = args.samples.clone().or_else(|| {
        Path::new("images")
            .is_dir()
            .then(|| PathBuf::from("images"))
    });
    config.token = token;
    config.queue_limit = args.queue;
    config.checkpoint_every = args.checkpoint_every;
    config.threads = threads;
    let server = nst_serve::Server::start(config, addr)
        .with_context(|| format!("starting the studio in {}", args.out_dir.display()))?;
    let url = server.url();
    println!("nst studio: {url}");
    if !quiet {
        eprintln!(
            "runs and history in {}; press Ctrl-C to stop (the run in progress resumes at the next start)",
            args.out_dir.display()
        );
    }
    if args.open {
        open_browser(&url, quiet);
    }
    while !control.is_cancelled() && !server.has_failed() {
        std::thread::sleep(Duration::from_millis(200));
    }
    server.shutdown().context("the studio's server failed")?;
    Ok(Ended::Completed)
}

/// The socket address of `--host` and `--port`.
fn address(host: &str, port: u16) -> Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| anyhow!("--host {host}: not an address or a known host name"))
}

/// The token: the one given, or a fresh one for a non-loopback address; loopback needs none.
fn token_for(addr: SocketAddr, given: Option<&str>) -> Result<Option<String>> {
    match given {
        Some(t)
            if t.len() < 16
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            bail!(
                "--token must be at least 16 characters of letters, digits, `-` and `_` (it goes into a URL and a cookie)"
            )
        }
        Some(t) => Ok(Some(t.to_owned())),
        None if addr.ip().is_loopback() => Ok(None),
        None => Ok(Some(nst_serve::new_token())),
    }
}

/// Opens `url` in the desktop's browser; a failure is only a warning (the URL is printed).
fn open_browser(url: &str, quiet: bool) {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(windows) {
        ("cmd", vec!["/C", "start", "", url])
    } else {
        ("xdg-open", vec![url])
    };
    let ok = std::process::Command::new(program)
        .args(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok();
    if !ok && !quiet {
        eprintln!("warning: could not start a browser ({program}); open the URL above");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_hosts_than_loopback_get_a_token() {
        let lo = address("127.0.0.1", 0).unwrap();
        assert_eq!(token_for(lo, None).unwrap(), None);
        let any = address("0.0.0.0", 0).unwrap();
        assert_eq!(token_for(any, None).unwrap().unwrap().len(), 32);
        assert!(token_for(any, Some("short")).is_err());
        assert!(token_for(any, Some("a/b/../cdefghijklmnop")).is_err());
        let t = "abcdefghijklmnop-_123";
        assert_eq!(token_for(lo, Some(t)).unwrap().as_deref(), Some(t));
    }
}
