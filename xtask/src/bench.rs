//! `cargo xtask bench`: the delivery benchmark (see the performance issue). Not written yet.

use anyhow::{Result, bail};

pub(crate) fn bench(_args: &[String]) -> Result<()> {
    println!("cargo xtask bench: not implemented yet");
    bail!("`cargo xtask bench` is not implemented yet")
}
