//! What the `hookline` command prints on the way in: errors, version, refused settings, migrate.

use std::process::{Command, Output, Stdio};

fn hookline(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(args)
        .env_remove("HOOKLINE_ADMIN_KEY")
        .env_remove("HOOKLINE_STORE")
        .env_remove("HOOKLINE_CONFIG")
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run hookline")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_startup_error_is_one_error_line_with_its_causes_and_no_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookline(
        &[
            "serve",
            "--config",
            "missing.toml",
            "--listen",
            "127.0.0.1:0",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert_eq!(lines[0], "error: invalid configuration");
    assert!(
        lines[1].starts_with("  caused by: reading config file missing.toml"),
        "{err}"
    );
    assert!(lines[2].starts_with("  caused by: "), "{err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{err}");

    let out = hookline(&["serve", "--store", "nope://x"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("error:").count(), 1, "{err}");
    assert!(
        err.starts_with("error: store `nope://x`: unknown scheme"),
        "{err}"
    );
    assert!(!err.contains("stack backtrace"), "{err}");
}

#[test]
fn version_names_the_compiled_backends() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookline(&["--version"], dir.path());
    assert!(out.status.success());
    let mut backends = Vec::new();
    if cfg!(feature = "sqlite") {
        backends.push("sqlite");
    }
    if cfg!(feature = "postgres") {
        backends.push("postgres");
    }
    if cfg!(feature = "redis") {
        backends.push("redis");
    }
    assert_eq!(
        text(&out.stdout).trim(),
        format!(
            "hookline {} (stores: {})",
            env!("CARGO_PKG_VERSION"),
            backends.join(", ")
        )
    );
    let help = text(&hookline(&["serve", "--help"], dir.path()).stdout);
    assert!(help.contains("--admin-key"), "{help}");
    for b in backends {
        assert!(
            help.contains(&format!("{b}://")),
            "{b} not in --store help:\n{help}"
        );
    }
}

#[test]
fn a_short_admin_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("HOOKLINE_ADMIN_KEY", "hk_my_admin_key")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: invalid configuration"), "{err}");
    assert!(err.contains("admin_key: too short"), "{err}");
    assert!(
        !dir.path().join("hookline.db").exists(),
        "refused before opening the store"
    );
}

#[test]
fn migrate_takes_only_its_flags_and_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let help = text(&hookline(&["migrate", "--help"], dir.path()).stdout);
    assert!(help.contains("--store"), "{help}");
    assert!(!help.contains("--allow-http"), "{help}");
    assert!(!help.contains("--admin-key"), "{help}");
    let store = format!("sqlite://{}", dir.path().join("m.db").display());
    for _ in 0..2 {
        let out = hookline(&["migrate", "--store", &store], dir.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout).trim(),
            format!("migrated {store}: schema up to date")
        );
    }
    assert!(dir.path().join("m.db").exists());
}

#[test]
fn logs_to_a_pipe_have_no_colours() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("c.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["migrate", "--store", &store])
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("DEBUG"), "no log lines to check:\n{err}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escapes in piped logs:\n{err}"
    );
}
