//! docs/operations.md: the files it quotes are the ones in deploy/, the sample configuration names
//! every `serve` setting, and a server starts from it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_guide_quotes_the_deploy_files_verbatim() {
    let page = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    for file in ["hookline.toml", "hookline.service", "Containerfile"] {
        let text = std::fs::read_to_string(root().join("deploy").join(file)).unwrap();
        assert!(
            page.contains(text.trim_end()),
            "docs/operations.md must quote deploy/{file} verbatim"
        );
    }
}

/// The settings `serve --help` lists, by their environment variable (`HOOKLINE_LOG_FORMAT` →
/// `log_format`), which is also their key in the configuration file.
fn serve_settings() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut keys: Vec<String> = help
        .split("[env: HOOKLINE_")
        .skip(1)
        .map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            name.to_ascii_lowercase()
        })
        .filter(|k| k != "config")
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn the_sample_configuration_names_every_setting() {
    let sample = std::fs::read_to_string(root().join("deploy/hookline.toml")).unwrap();
    let keys = serve_settings();
    assert!(keys.len() >= 18, "{keys:?}");
    for key in &keys {
        let named = sample.lines().any(|line| {
            let line = line.trim_start_matches("# ");
            line.starts_with(&format!("{key} ="))
        });
        assert!(named, "deploy/hookline.toml does not name `{key}`");
    }
}

#[test]
fn a_server_starts_from_the_sample_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--config"])
        .arg(root().join("deploy/hookline.toml"))
        // Flags win over the file: a free port and a private store.
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--store")
        .arg(format!("sqlite://{}", dir.path().join("h.db").display()))
        .env_remove("HOOKLINE_ADMIN_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let healthy = loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("serve exited with {status}: {err}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read as _, Write as _};
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                break true;
            }
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(healthy, "serve did not answer /healthz");
}
