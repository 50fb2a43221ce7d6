//! A subprocess to run: echoed before it runs, and named in the error when it fails.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// A command line with the environment variables it sets, shown the way a user would type it.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    /// What is executed (for cargo, the path in `$CARGO`).
    program: String,
    /// What is shown for `program` (for cargo, plain `cargo`).
    shown_as: String,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    /// Set for the child but not shown: they change how output looks, not what runs.
    quiet_envs: Vec<(String, String)>,
    current_dir: Option<PathBuf>,
}

impl Cmd {
    /// A command running `program` with `args`.
    pub(crate) fn new<I, S>(program: &str, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            program: program.to_owned(),
            shown_as: program.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            envs: Vec::new(),
            quiet_envs: Vec::new(),
            current_dir: None,
        }
    }

    /// A cargo command: the cargo that runs `cargo xtask` (`$CARGO`), or `cargo` from `PATH`.
    pub(crate) fn cargo<I, S>(args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cmd = Cmd::new("cargo", args);
        if let Ok(cargo) = std::env::var("CARGO") {
            cmd.program = cargo;
        }
        cmd
    }

    /// Appends arguments.
    pub(crate) fn args<I, S>(&mut self, args: I) -> &mut Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the child (shown before the command).
    pub(crate) fn env(&mut self, key: &str, value: &str) -> &mut Cmd {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets an environment variable for the child without showing it in the command line.
    pub(crate) fn quiet_env(&mut self, key: &str, value: &str) -> &mut Cmd {
        self.quiet_envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs the child in `dir`.
    pub(crate) fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Cmd {
        self.current_dir = Some(dir.into());
        self
    }

    /// Echoes the command, runs it with inherited stdio, and fails naming it on a non-zero exit.
    pub(crate) fn run(&self) -> Result<()> {
        self.echo();
        let status = self
            .command()
            .status()
            .with_context(|| format!("could not start `{self}`"))?;
        if !status.success() {
            bail!("`{self}` failed ({status})");
        }
        Ok(())
    }

    /// Like [`Cmd::run`], but the child's stdout passes through `on_line` line by line
    /// (and is still printed), so a caller can read test counts while the user sees everything.
    pub(crate) fn run_tee(&self, on_line: impl FnMut(&str)) -> Result<()> {
        let status = self.run_tee_status(on_line)?;
        if !status.success() {
            bail!("`{self}` failed ({status})");
        }
        Ok(())
    }

    /// Like [`Cmd::run_tee`], but returns the exit status instead of failing on a non-zero one.
    pub(crate) fn run_tee_status(
        &self,
        mut on_line: impl FnMut(&str),
    ) -> Result<std::process::ExitStatus> {
        self.echo();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{self}`"))?;
        let stdout = child.stdout.take().expect("stdout was piped above");
        let mut reader = BufReader::new(stdout);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let n = reader
                .read_until(b'\n', &mut raw)
                .with_context(|| format!("reading the output of `{self}`"))?;
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            println!("{line}");
            on_line(line);
        }
        child
            .wait()
            .with_context(|| format!("waiting for `{self}`"))
    }

    /// Runs the command silently (no echo, output discarded) and says whether it exited with 0.
    /// A command that cannot be started counts as failed.
    pub(crate) fn succeeds_quietly(&self) -> bool {
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    fn echo(&self) {
        println!("$ {self}");
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in self.quiet_envs.iter().chain(&self.envs) {
            command.env(key, value);
        }
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        command
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", shell_quote(value))?;
        }
        write!(f, "{}", shell_quote(&self.shown_as))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes `s` for a POSIX shell when it holds anything but plain word characters.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_a_shell_command_line() {
        let mut cmd = Cmd::new("cargo", ["doc", "--workspace"]);
        cmd.env("RUSTDOCFLAGS", "-D warnings").args(["it's"]);
        assert_eq!(
            cmd.to_string(),
            r"RUSTDOCFLAGS='-D warnings' cargo doc --workspace 'it'\''s'"
        );
    }

    #[test]
    fn cargo_is_shown_as_cargo_whatever_its_path() {
        let cmd = Cmd::cargo(["fmt", "--all", "--check"]);
        assert_eq!(cmd.to_string(), "cargo fmt --all --check");
    }

    #[test]
    fn a_failing_command_is_named_in_the_error() {
        let err = Cmd::new("sh", ["-c", "exit 3"]).run().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`sh -c 'exit 3'`"), "{msg}");
        assert!(msg.contains('3'), "{msg}");
    }

    #[test]
    fn a_missing_program_is_an_error_naming_it() {
        let err = Cmd::new("/nonexistent/xtask-no-such-tool", ["x"])
            .run()
            .unwrap_err();
        assert!(err.to_string().contains("xtask-no-such-tool"), "{err}");
        assert!(!Cmd::new("/nonexistent/xtask-no-such-tool", ["x"]).succeeds_quietly());
    }

    #[test]
    fn run_tee_sees_every_stdout_line() {
        let mut lines = Vec::new();
        Cmd::new("sh", ["-c", "printf 'a\\nb b\\nc'"])
            .run_tee(|line| lines.push(line.to_owned()))
            .unwrap();
        assert_eq!(lines, ["a", "b b", "c"]);
    }

    #[test]
    fn run_tee_reports_failure_after_reading_everything() {
        let mut lines = Vec::new();
        let err = Cmd::new("sh", ["-c", "echo one; exit 101"])
            .run_tee(|line| lines.push(line.to_owned()))
            .unwrap_err();
        assert_eq!(lines, ["one"]);
        assert!(err.to_string().contains("101"), "{err}");
    }
}
