//! `cargo xtask browser`: makes sure Chromium and ChromeDriver are installed for the dashboard's
//! browser tests (`server/tests/it/browser.rs`), installing Debian's `chromium` and
//! `chromium-driver` packages when they are missing and this runs as root with `apt-get`.

use anyhow::{Result, bail};

use crate::cmd::{Cmd, find_in_path};

/// How to install them by hand.
pub(crate) const INSTALL_HINT: &str =
    "install them with `apt-get install -y chromium chromium-driver` (Debian's packages)";

/// Installs the browser and its driver if needed.
pub(crate) fn ensure() -> Result<()> {
    if present() {
        println!("chromium and chromedriver are installed");
        return Ok(());
    }
    if find_in_path("apt-get").is_none() || !is_root() {
        bail!(
            "chromium or chromedriver is missing and this is not root with apt-get; {INSTALL_HINT}"
        );
    }
    println!("chromium or chromedriver is missing: installing Debian's packages");
    Cmd::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Cmd::new("apt-get")
        .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    if !present() {
        bail!("chromium or chromedriver is still missing after apt-get install; {INSTALL_HINT}");
    }
    Ok(())
}

fn present() -> bool {
    find_in_path("chromium").is_some() && find_in_path("chromedriver").is_some()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}
