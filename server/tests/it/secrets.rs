//! Secrets stay out of logs: the generated admin key is shown once on standard output, never
//! through the text or JSON logs on standard error.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{KillOnDrop, free_port};

/// What one `hookline serve` run wrote before it was stopped.
struct Output {
    stdout: String,
    stderr: String,
}

/// Starts the binary on `store` with no configured admin key and `RUST_LOG=debug`; once it is
/// healthy, checks that `admin_key` (if given) opens an admin route, then stops it with SIGTERM.
/// Returns the key it showed on standard output, if any, and everything it wrote.
async fn serve_once(
    dir: &tempfile::TempDir,
    store: &str,
    log_format: &str,
    admin_key: Option<&str>,
) -> (Option<String>, Output) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_hookline"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--store", store])
            .args(["--log-format", log_format])
            .env_remove("HOOKLINE_ADMIN_KEY")
            .env("RUST_LOG", "debug")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the hookline binary"),
    );
    // Drained on threads so that a chatty log can never fill the pipe and stall the server.
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let stdout = drain(Box::new(child.0.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.0.stderr.take().unwrap()));

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "hookline exited early: {status}\n{}",
                stderr.join().unwrap()
            );
        }
        assert!(Instant::now() < deadline, "hookline did not become healthy");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if let Some(key) = admin_key {
        let r = http
            .get(format!("{base}/v1/accounts"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "the key shown on stdout opens admin routes"
        );
    }
    // Stopping the process closes the pipes and ends the readers.
    let ok = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.0.wait().unwrap();
    assert!(
        status.success(),
        "hookline exited with {status} after SIGTERM"
    );
    let out = Output {
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    let key = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("admin_key="))
        .map(str::to_owned);
    if let Some(key) = &key {
        assert!(
            key.starts_with("hk_") && key.len() == 46,
            "key shape: {key}"
        );
    }
    (key, out)
}

async fn admin_key_shown_once_on_stdout_never_in_logs(log_format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("hookline.db").display());

    let (key, first) = serve_once(&dir, &store, log_format, None).await;
    let key = key.unwrap_or_else(|| {
        panic!(
            "no `admin_key=` line on stdout:\n{}\n--- stderr:\n{}",
            first.stdout, first.stderr
        )
    });
    assert!(
        first.stdout.contains("shown only this once"),
        "the key comes with a word that it is shown once: {}",
        first.stdout
    );
    assert!(
        first.stderr.contains("hookline listening"),
        "the logs were captured at all ({log_format}): {}",
        first.stderr
    );
    if log_format == "json" {
        for line in first.stderr.lines().filter(|l| !l.trim().is_empty()) {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("a JSON log line that is not JSON ({e}): {line}"));
        }
    }
    assert!(
        !first.stderr.contains(&key),
        "the admin key leaked into the {log_format} logs:\n{}",
        first.stderr
    );
    assert!(
        !first.stderr.contains("admin_key"),
        "the {log_format} logs mention the admin key:\n{}",
        first.stderr
    );

    // A second start on the same store shows no key, and the key shown first opens admin routes.
    let (again, second) = serve_once(&dir, &store, log_format, Some(&key)).await;
    assert_eq!(again, None, "the key is shown only once: {}", second.stdout);
    assert!(
        !second.stderr.contains(&key),
        "the admin key leaked into the {log_format} logs on restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_admin_key_is_on_stdout_not_in_text_logs() {
    admin_key_shown_once_on_stdout_never_in_logs("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_admin_key_is_on_stdout_not_in_json_logs() {
    admin_key_shown_once_on_stdout_never_in_logs("json").await;
}
