//! `nst`: neural style transfer from the command line. Parses the flags, sets up the thread pool and
//! the Ctrl-C handler, calls [`nst_cli::app::run`] and turns the outcome into an exit code:
//! 0 success, 1 error, 2 usage (clap), 130 interrupted.
#![allow(clippy::print_stderr, reason = "the binary reports errors on stderr")]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser as _;
use nst_cli::app::{self, Ended};
use nst_cli::cli::Cli;

/// Raised by Ctrl-C or SIGTERM; the run loop finishes its iteration, saves, and returns.
static STOP: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        pool = pool.num_threads(n);
    }
    if let Err(e) = pool.build_global() {
        eprintln!("error: cannot start the thread pool: {e}");
        return ExitCode::from(1);
    }
    let threads = rayon::current_num_threads();
    if let Err(e) = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: the user wants out now, without a half-written temporary file.
            nst_cli::image_io::exit_removing_pending_temps(130);
        }
    }) {
        eprintln!("warning: Ctrl-C will not save the run: {e}");
    }
    match app::run(&cli, threads, &STOP) {
        Ok(Ended::Completed) => ExitCode::SUCCESS,
        Ok(Ended::Interrupted) => ExitCode::from(130),
        Err(e) => {
            // `{:#}` would repeat a cause that an error's own message already ends with.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1).map(ToString::to_string) {
                if !msg.ends_with(&cause) {
                    msg.push_str(": ");
                    msg.push_str(&cause);
                }
            }
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
