//! `cargo xtask pydeps`: a Python venv with the reference `standardwebhooks` package, used by the tests
//! that check our signatures against the Standard Webhooks implementation.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, find_in_path};

const PACKAGE: &str = "standardwebhooks";
const MODULE: &str = "standardwebhooks";

/// Ensures `<target dir>/xtask/venv` exists with `standardwebhooks` installed; returns its python.
pub(crate) fn ensure() -> Result<PathBuf> {
    let venv = crate::target_dir().join("xtask").join("venv");
    let python = venv_bin(&venv, "python");
    let python_str = path_str(&python)?;
    let import_check = Cmd::new(python_str).args(["-c", &format!("import {MODULE}")]);

    if import_check.probe()? == Some(true) {
        println!(
            "pydeps: {PACKAGE} is already installed in {}",
            venv.display()
        );
        return Ok(python);
    }

    // Missing, or broken (e.g. the base python3 it was made from is gone): (re)create it.
    let usable = Cmd::new(python_str).args(["-c", "import sys"]).probe()? == Some(true);
    if !usable {
        if find_in_path("python3").is_none() {
            bail!(
                "python3 was not found on PATH; it is needed for the {PACKAGE} cross-check \
                 (install it with `apt-get install python3 python3-venv`)"
            );
        }
        if let Some(parent) = venv.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("could not create {}", parent.display()))?;
        }
        Cmd::new("python3")
            .args(["-m", "venv", "--clear", path_str(&venv)?])
            .run()
            .context(
                "could not create the Python venv (on Debian/Ubuntu: `apt-get install python3-venv`)",
            )?;
    }

    let pip = venv_bin(&venv, "pip");
    if !pip.is_file() {
        bail!(
            "the venv at {} has no pip (on Debian/Ubuntu: `apt-get install python3-venv python3-pip`, \
             then delete the venv and retry)",
            venv.display()
        );
    }
    Cmd::new(path_str(&pip)?)
        .args(["install", "--quiet", PACKAGE])
        .run()
        .with_context(|| {
            format!(
                "could not install the PyPI package `{PACKAGE}` into {}",
                venv.display()
            )
        })?;

    if import_check.probe()? != Some(true) {
        bail!("`{PACKAGE}` was installed but `{import_check}` still fails");
    }
    println!("pydeps: {PACKAGE} installed in {}", venv.display());
    Ok(python)
}

fn venv_bin(venv: &Path, name: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{name}.exe"))
    } else {
        venv.join("bin").join(name)
    }
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("path is not UTF-8: {}", path.display()))
}
