//! A small wrapper over [`std::process::Command`] that prints what it runs.

use std::env;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

/// A child process to run with inherited stdio, echoed as `$ KEY=value program args`.
#[derive(Debug, Clone)]
pub(crate) struct Cmd {
    program: String,
    /// What to print instead of `program` (e.g. `cargo` for the full path in `$CARGO`).
    shown_as: Option<String>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    dir: Option<PathBuf>,
}

impl Cmd {
    pub(crate) fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            shown_as: None,
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
        }
    }

    pub(crate) fn shown_as(mut self, name: impl Into<String>) -> Self {
        self.shown_as = Some(name.into());
        self
    }

    pub(crate) fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub(crate) fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub(crate) fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    /// Prints the command, runs it with inherited stdio and fails unless it exits successfully.
    pub(crate) fn run(&self) -> Result<()> {
        println!("$ {self}");
        let status = self
            .command()
            .status()
            .map_err(|err| self.spawn_error(err))?;
        if !status.success() {
            bail!("`{self}` failed ({status})");
        }
        Ok(())
    }

    /// Like [`Cmd::run`], but kills the command and fails when it runs longer than `limit`.
    pub(crate) fn run_within(&self, limit: std::time::Duration) -> Result<()> {
        println!("$ {self}  (at most {}s)", limit.as_secs());
        let mut child = self
            .command()
            .spawn()
            .map_err(|err| self.spawn_error(err))?;
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("`{self}` failed ({status})");
                }
                return Ok(());
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                bail!("`{self}` did not finish within {}s", limit.as_secs());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Runs the command silently (no echo, no output) and reports whether it succeeded.
    /// `Ok(None)` means the program could not be found.
    pub(crate) fn probe(&self) -> Result<Option<bool>> {
        let result = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match result {
            Ok(status) => Ok(Some(status.success())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.spawn_error(err)),
        }
    }

    fn spawn_error(&self, err: io::Error) -> anyhow::Error {
        let hint = if err.kind() == io::ErrorKind::NotFound {
            format!(
                " (`{}` was not found; is it installed and on PATH?)",
                self.program
            )
        } else {
            String::new()
        };
        anyhow::Error::new(err).context(format!("could not start `{self}`{hint}"))
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", quote(value))?;
        }
        f.write_str(&quote(self.shown_as.as_ref().unwrap_or(&self.program)))?;
        for arg in &self.args {
            write!(f, " {}", quote(arg))?;
        }
        Ok(())
    }
}

/// Quotes a word the way a POSIX shell would need it, for display only.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Looks `program` up on `PATH`, like `command -v`.
pub(crate) fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_file(candidate))
}

fn is_file(path: &Path) -> bool {
    path.metadata().map(|m| m.is_file()).unwrap_or(false)
}
