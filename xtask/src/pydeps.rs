//! `cargo xtask pydeps`: a Python venv with the PyPI packages the tests drive: the reference
//! `standardwebhooks` (our signatures against the Standard Webhooks implementation), and
//! `openapi-spec-validator`, `schemathesis` and `openapi-python-client` (the OpenAPI document
//! against independent tools). Versions are pinned so that runs compare like with like.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, find_in_path};

/// The pinned packages (pip requirement, module to import).
const PACKAGES: &[(&str, &str)] = &[
    ("standardwebhooks==1.1.0", "standardwebhooks"),
    ("openapi-spec-validator==0.9.0", "openapi_spec_validator"),
    ("schemathesis==4.32.5", "schemathesis"),
    ("openapi-python-client==0.29.1", "openapi_python_client"),
];

/// Ensures `<target dir>/xtask/venv` exists with [`PACKAGES`] installed at their pinned
/// versions; returns its python.
pub(crate) fn ensure() -> Result<PathBuf> {
    let venv = crate::target_dir().join("xtask").join("venv");
    let python = venv_bin(&venv, "python");
    let python_str = path_str(&python)?;
    let requirements: Vec<&str> = PACKAGES.iter().map(|(req, _)| *req).collect();
    let summary = requirements.join(", ");
    // Imports every module and checks every pinned version.
    let check_script = format!(
        "import importlib.metadata as m\n{}",
        PACKAGES
            .iter()
            .map(|(req, module)| {
                let (name, version) = req.split_once("==").unwrap_or((req, ""));
                format!("import {module}\nassert m.version('{name}') == '{version}', '{name}'\n")
            })
            .collect::<String>()
    );
    let import_check = Cmd::new(python_str).args(["-c", &check_script]);

    if import_check.probe()? == Some(true) {
        println!("pydeps: {summary} already installed in {}", venv.display());
        return Ok(python);
    }

    // Missing, or broken (e.g. the base python3 it was made from is gone): (re)create it.
    let usable = Cmd::new(python_str).args(["-c", "import sys"]).probe()? == Some(true);
    if !usable {
        if find_in_path("python3").is_none() {
            bail!(
                "python3 was not found on PATH; it is needed for the Python cross-checks \
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
        .args(["install", "--quiet"])
        .args(requirements.iter().copied())
        .run()
        .with_context(|| {
            format!(
                "could not install the PyPI packages {summary} into {}",
                venv.display()
            )
        })?;

    if import_check.probe()? != Some(true) {
        bail!("{summary} were installed but importing them still fails");
    }
    println!("pydeps: {summary} installed in {}", venv.display());
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
