//! `nst`: neural style transfer from the command line. Parses the flags, sets up the thread pool and
//! the Ctrl-C handler, calls [`nst_cli::app::run`] and turns the outcome into an exit code:
//! 0 success, 1 error, 2 usage (clap), 3 a batch not finished yet (`nst batch status`), 130 interrupted.
#![allow(clippy::print_stderr, reason = "the binary reports errors on stderr")]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser as _;
use nst_cli::app::{self, Ended};
use nst_cli::cli::Cli;

mod huge_pages;

#[global_allocator]
static ALLOCATOR: huge_pages::HugePages = huge_pages::HugePages;

/// Raised by the first Ctrl-C or SIGTERM (the run finishes its iteration, saves and returns); a second
/// exits at once.
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
    let control = nst_engine::Control::new();
    let for_handler = control.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        if STOP.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C: the user wants out now, without a half-written temporary file.
            nst_engine::image_io::remove_pending_temps_then(|| std::process::exit(130));
        }
        for_handler.cancel();
    }) {
        eprintln!("warning: Ctrl-C will not save the run: {e}");
    }
    match app::run(&cli, threads, &control) {
        Ok(Ended::Completed) => ExitCode::SUCCESS,
        Ok(Ended::Interrupted) => ExitCode::from(130),
        Ok(Ended::Unfinished) => ExitCode::from(3),
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
