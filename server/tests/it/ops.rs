//! The operator commands (`hookline accounts`, `endpoints`, `events send`, `replay`, …) run as
//! subprocesses against a real `hookline serve` and a real receiver on 127.0.0.1.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use hookline_core::Timestamp;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::support::{ADMIN_KEY, Receiver, Server};

const WAIT: Duration = Duration::from_secs(20);

/// Runs `hookline ARGS` against `srv` with `key` in `HOOKLINE_API_KEY`, feeding `stdin`.
async fn cli(srv: &Server, key: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"));
    cmd.args(args)
        .env("HOOKLINE_URL", &srv.base)
        .env_remove("HOOKLINE_API_KEY")
        .env_remove("HOOKLINE_ACCOUNT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(key) = key {
        cmd.env("HOOKLINE_API_KEY", key);
    }
    let mut child = cmd.spawn().expect("run the hookline binary");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
        drop(pipe);
    }
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the command ended in time")
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The JSON a successful `--output json` command printed.
fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: not JSON: {}", text(&out.stdout)))
}

/// The one `error: …` line of a failed command (exit status 1, nothing else on stderr).
fn one_error_line(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_owned()
}

fn ids_of(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_manages_event_types_accounts_sites_endpoints_and_keys() {
    let rx = Receiver::start().await;
    let srv = Server::start(&[]).await;
    let admin = Some(ADMIN_KEY);
    let j = "--output=json";

    let et = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "event-types",
                "create",
                "--name",
                "rx.completed",
                "--description",
                "The write succeeded",
                j,
            ],
            None,
        )
        .await,
    );
    assert_eq!(et["name"], "rx.completed");
    assert_eq!(et["description"], "The write succeeded");
    let types = ok_json(&cli(&srv, admin, &["event-types", "list", j], None).await);
    assert_eq!(types["data"][0]["name"], "rx.completed", "{types}");

    let acct = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "accounts",
                "create",
                "--id",
                "pharma-017",
                "--name",
                "Pharmacy 017",
                j,
            ],
            None,
        )
        .await,
    );
    assert_eq!(acct["id"], "pharma-017");
    assert_eq!(acct["name"], "Pharmacy 017");
    let table = cli(&srv, admin, &["accounts", "list"], None).await;
    assert!(table.status.success());
    let table = text(&table.stdout);
    assert!(
        table.contains("pharma-017") && table.contains("Pharmacy 017"),
        "{table}"
    );

    let site = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "sites",
                "create",
                "--account",
                "pharma-017",
                "--id",
                "store-1",
                j,
            ],
            None,
        )
        .await,
    );
    assert_eq!(site["id"], "store-1");
    assert_eq!(site["account"], "pharma-017");
    let sites = ok_json(
        &cli(
            &srv,
            admin,
            &["sites", "list", "--account", "pharma-017", j],
            None,
        )
        .await,
    );
    assert_eq!(ids_of(&sites), ["store-1"]);

    let url = rx.url("/hooks");
    let ep = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "endpoints",
                "create",
                "--account",
                "pharma-017",
                &url,
                "--event-type",
                "rx.completed",
                "--site",
                "store-1",
                "--header",
                "X-Env: test",
                "--description",
                "pharmacy hooks",
                j,
            ],
            None,
        )
        .await,
    );
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    assert!(ep_id.starts_with("ep_"), "{ep}");
    assert_eq!(ep["url"], url.as_str());
    assert_eq!(ep["eventTypes"], json!(["rx.completed"]));
    assert_eq!(ep["sites"], json!(["store-1"]));
    // Header values are write-only: shown masked.
    assert_eq!(ep["headers"], json!({"x-env": "••••"}));
    assert_eq!(ep["enabled"], true);

    // The table of endpoints shows the created id (the global options may come anywhere).
    let out = cli(
        &srv,
        admin,
        &[
            "endpoints",
            "--output",
            "table",
            "list",
            "--account",
            "pharma-017",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains(&ep_id) && table.contains("rx.completed"),
        "{table}"
    );
    let listed = ok_json(
        &cli(
            &srv,
            admin,
            &["endpoints", "list", "--account", "pharma-017", j],
            None,
        )
        .await,
    );
    assert_eq!(ids_of(&listed), [ep_id.as_str()]);
    assert_eq!(listed["nextCursor"], Value::Null);

    let secret = ok_json(
        &cli(
            &srv,
            admin,
            &["endpoints", "secret", "--account", "pharma-017", &ep_id, j],
            None,
        )
        .await,
    );
    let (_, api_secret) = srv
        .get(&format!("/v1/accounts/pharma-017/endpoints/{ep_id}/secret"))
        .await;
    assert!(
        secret["secret"].as_str().unwrap().starts_with("whsec_"),
        "{secret}"
    );
    assert_eq!(secret, api_secret);
    let got = ok_json(
        &cli(
            &srv,
            admin,
            &["endpoints", "get", "--account", "pharma-017", &ep_id, j],
            None,
        )
        .await,
    );
    assert_eq!(got["description"], "pharmacy hooks");
    let off = ok_json(
        &cli(
            &srv,
            admin,
            &["endpoints", "disable", "--account", "pharma-017", &ep_id, j],
            None,
        )
        .await,
    );
    assert_eq!(off["enabled"], false);
    let (_, api_view) = srv
        .get(&format!("/v1/accounts/pharma-017/endpoints/{ep_id}"))
        .await;
    assert_eq!(api_view["enabled"], false, "the API sees it disabled");
    let on = ok_json(
        &cli(
            &srv,
            admin,
            &["endpoints", "enable", "--account", "pharma-017", &ep_id, j],
            None,
        )
        .await,
    );
    assert_eq!(on["enabled"], true);

    // An account key, created once, sees its own account and nothing of the admin's.
    let key = ok_json(
        &cli(
            &srv,
            admin,
            &["keys", "create", "--account", "pharma-017", j],
            None,
        )
        .await,
    );
    let account_key = key["key"].as_str().unwrap().to_owned();
    assert!(account_key.starts_with("hk_"), "{key}");
    assert_eq!(key["account"], "pharma-017");
    let mine = ok_json(
        &cli(
            &srv,
            Some(&account_key),
            &["endpoints", "list", "--account", "pharma-017", j],
            None,
        )
        .await,
    );
    assert_eq!(ids_of(&mine), [ep_id.as_str()]);
    let refused = cli(
        &srv,
        Some(&account_key),
        &["accounts", "create", "--id", "other"],
        None,
    )
    .await;
    let line = one_error_line(&refused);
    assert!(
        line.starts_with("error: Forbidden: ") && line.ends_with(" (forbidden)"),
        "{line}"
    );

    // Keys: listed (never the key itself), a read-only one made, revoked by id.
    let key_id = key["id"].as_str().unwrap().to_owned();
    let reader = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "keys",
                "create",
                "--account",
                "pharma-017",
                "--name",
                "reader",
                "--read-only",
                "--expires",
                "30d",
                j,
            ],
            None,
        )
        .await,
    );
    assert_eq!(
        (&reader["readOnly"], &reader["name"]),
        (&json!(true), &json!("reader"))
    );
    assert!(reader["expiresAt"].is_string(), "{reader}");
    let listed = ok_json(
        &cli(
            &srv,
            admin,
            &["keys", "list", "--account", "pharma-017", j],
            None,
        )
        .await,
    );
    let mut listed_ids = ids_of(&listed);
    listed_ids.sort();
    let mut want = vec![key_id.clone(), reader["id"].as_str().unwrap().to_owned()];
    want.sort();
    assert_eq!(listed_ids, want);
    assert!(!listed.to_string().contains(&account_key), "{listed}");
    let admin_keys = ok_json(&cli(&srv, admin, &["keys", "list", j], None).await);
    assert_eq!(admin_keys["data"][0]["bootstrap"], true, "{admin_keys}");
    let revoked = cli(
        &srv,
        admin,
        &["keys", "revoke", "--account", "pharma-017", &key_id],
        None,
    )
    .await;
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let refused = cli(
        &srv,
        Some(&account_key),
        &["endpoints", "list", "--account", "pharma-017"],
        None,
    )
    .await;
    assert!(
        one_error_line(&refused).ends_with("(unauthorized)"),
        "a revoked key is refused"
    );

    // The audit log names the revocation, by the admin key's id.
    let audit = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "audit",
                "list",
                "--account",
                "pharma-017",
                "--limit",
                "1",
                j,
            ],
            None,
        )
        .await,
    );
    assert_eq!(audit["data"][0]["action"], "key.revoked", "{audit}");
    assert_eq!(audit["data"][0]["target"], key_id.as_str(), "{audit}");
    assert_eq!(audit["data"][0]["actor"]["type"], "key", "{audit}");

    // The key as a flag works too (the environment is preferred).
    let by_flag = cli(
        &srv,
        None,
        &["accounts", "list", "--api-key", ADMIN_KEY, j],
        None,
    )
    .await;
    assert_eq!(ids_of(&ok_json(&by_flag)), ["pharma-017"]);

    let deleted = ok_json(
        &cli(
            &srv,
            admin,
            &["endpoints", "delete", "--account", "pharma-017", &ep_id, j],
            None,
        )
        .await,
    );
    assert_eq!(deleted, json!({"id": ep_id, "deleted": true}));
    let gone = cli(
        &srv,
        admin,
        &["endpoints", "get", "--account", "pharma-017", &ep_id],
        None,
    )
    .await;
    let line = one_error_line(&gone);
    assert!(
        line.starts_with("error: Not Found: ") && line.ends_with("(endpoint_not_found)"),
        "{line}"
    );
}

/// `n` events of type `rx.completed` as JSON values, queue ids `{prefix}{i}`.
fn events(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"event": "rx.completed", "queueId": format!("{prefix}{i}"), "data": {"n": i}}))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_send_reads_a_json_array_file_and_ndjson_on_stdin() {
    let rx = Receiver::start().await;
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    srv.endpoint("acct", json!({"url": rx.url("/send")})).await;
    let admin = Some(ADMIN_KEY);

    // 50 events from a file holding a JSON array.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&events("f_", 50)).unwrap()).unwrap();
    let file = file.to_str().unwrap();
    let out = cli(
        &srv,
        admin,
        &[
            "events",
            "send",
            "--account",
            "acct",
            "--file",
            file,
            "--output",
            "json",
        ],
        None,
    )
    .await;
    let summary = ok_json(&out);
    assert_eq!(summary["total"], 50, "{summary}");
    assert_eq!(summary["sent"], 50);
    assert_eq!(summary["duplicates"], 0);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["deliveries"], 50);
    let ids: std::collections::HashSet<&str> = summary["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 50);
    let got = rx.wait_for("/send", 50, WAIT).await;
    let mut queues: Vec<String> = got
        .iter()
        .map(|r| r.json()["queueId"].as_str().unwrap().to_owned())
        .collect();
    queues.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("f_{i}")).collect();
    expected.sort();
    assert_eq!(
        queues, expected,
        "every event of the file was delivered once"
    );

    // NDJSON on standard input: five new events, a repeated idempotency key, an unknown type.
    let mut lines: Vec<Value> = (0..5)
        .map(|i| json!({"event": "rx.completed", "idempotencyKey": format!("k{i}"), "queueId": format!("s_{i}"), "data": {}}))
        .collect();
    lines.push(
        json!({"event": "rx.completed", "idempotencyKey": "k1", "queueId": "s_1", "data": {}}),
    );
    lines.push(json!({"event": "nope.nope", "data": {}}));
    let ndjson: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let out = cli(
        &srv,
        admin,
        &["events", "send", "--account", "acct", "--output", "json"],
        Some(ndjson.as_bytes()),
    )
    .await;
    let line = one_error_line(&out);
    assert_eq!(line, "error: 1 of 7 events failed: 1 unknown_event_type");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["sent"], 5, "{summary}");
    assert_eq!(summary["duplicates"], 1);
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["failures"][0]["index"], "7");
    assert_eq!(summary["failures"][0]["code"], "unknown_event_type");
    assert_eq!(
        summary["ids"][5], summary["ids"][1],
        "a duplicate answers the original id"
    );
    rx.wait_for("/send", 55, WAIT).await;

    // A table summary, from `--file -` (standard input).
    let three: Vec<String> = events("t_", 3).iter().map(Value::to_string).collect();
    let out = cli(
        &srv,
        admin,
        &["events", "send", "--account", "acct", "--file", "-"],
        Some(three.join("\n").as_bytes()),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let sent_row = table
        .lines()
        .find(|l| l.contains("sent"))
        .unwrap_or_default();
    assert!(sent_row.contains('3'), "{table}");
    assert!(
        !text(&out.stderr).contains('\u{1b}'),
        "no progress drawn off a terminal"
    );
    rx.wait_for("/send", 58, WAIT).await;
}

/// Polls the API until the endpoint has a delivery in `status`.
async fn wait_for_status(srv: &Server, account: &str, endpoint: &str, status: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, ds) = srv
            .get(&format!(
                "/v1/accounts/{account}/endpoints/{endpoint}/deliveries?status={status}"
            ))
            .await;
        if let Some(d) = ds["data"].as_array().and_then(|a| a.first()) {
            return d["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no {status} delivery on {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The event ids received on `path` after the first `skip` requests.
fn received_ids(rx: &Receiver, path: &str, skip: usize) -> Vec<String> {
    let mut ids: Vec<String> = rx.received_on(path)[skip..]
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resends_a_time_range_and_retry_and_recover_resend_by_hand() {
    let rx = Receiver::start().await;
    rx.script("/c", &[500, 500]);
    let srv = Server::start(&["--retry-schedule", "50ms"]).await;
    srv.seed("acct").await;
    let subscribed = json!(["rx.completed", "rx.failed"]);
    let (ep_a, _) = srv
        .endpoint(
            "acct",
            json!({"url": rx.url("/a"), "eventTypes": subscribed}),
        )
        .await;
    let (_ep_b, _) = srv
        .endpoint(
            "acct",
            json!({"url": rx.url("/b"), "eventTypes": subscribed}),
        )
        .await;
    let (ep_c, _) = srv
        .endpoint(
            "acct",
            json!({"url": rx.url("/c"), "eventTypes": ["rx.excepted"]}),
        )
        .await;
    let admin = Some(ADMIN_KEY);
    let post = |event: &'static str| {
        let srv = &srv;
        async move {
            let (s, r) = srv
                .post(
                    "/v1/accounts/acct/events",
                    json!({"event": event, "data": {}}),
                )
                .await;
            assert_eq!(s, 202, "{r}");
            r["id"].as_str().unwrap().to_owned()
        }
    };
    let pause = || tokio::time::sleep(Duration::from_millis(30));

    // Before the range, in it (two of each type), after it.
    for _ in 0..3 {
        post("rx.completed").await;
    }
    pause().await;
    let since = Timestamp::now().to_rfc3339();
    pause().await;
    let mut completed = vec![post("rx.completed").await, post("rx.completed").await];
    let failed_type = vec![post("rx.failed").await, post("rx.failed").await];
    pause().await;
    let until = Timestamp::now().to_rfc3339();
    pause().await;
    post("rx.completed").await;
    post("rx.completed").await;
    rx.wait_for("/a", 9, WAIT).await;
    rx.wait_for("/b", 9, WAIT).await;
    completed.sort();

    // One endpoint, one type: only those deliveries are sent again.
    let out = cli(
        &srv,
        admin,
        &[
            "replay",
            "--account",
            "acct",
            "--since",
            &since,
            "--until",
            &until,
            "--endpoint",
            &ep_a,
            "--event-type",
            "rx.completed",
            "--output",
            "json",
        ],
        None,
    )
    .await;
    let summary = ok_json(&out);
    assert_eq!(summary["state"], "completed", "{summary}");
    assert!(
        summary["job"].as_str().unwrap().starts_with("rpl_"),
        "a server-side job: {summary}"
    );
    assert_eq!(summary["deliveries"], 2);
    assert_eq!(summary["resent"], 2);
    assert_eq!(summary["skipped"], 0);
    rx.wait_for("/a", 11, WAIT).await;
    assert_eq!(received_ids(&rx, "/a", 9), completed);

    // A dry run sends nothing and counts every delivery of the range.
    let dry = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "replay",
                "--account",
                "acct",
                "--since",
                &since,
                "--until",
                &until,
                "--dry-run",
                "--output",
                "json",
            ],
            None,
        )
        .await,
    );
    assert_eq!(dry["deliveries"], 8, "{dry}");
    assert_eq!(dry["resent"], 0);

    // The whole range, to every endpoint, with a table summary.
    let out = cli(
        &srv,
        admin,
        &[
            "replay",
            "--account",
            "acct",
            "--since",
            &since,
            "--until",
            &until,
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("re-sent"))
        .unwrap_or_default();
    assert!(row.contains('8'), "{table}");
    let got_b = rx.wait_for("/b", 13, WAIT).await;
    let mut in_range = [completed.clone(), failed_type.clone()].concat();
    in_range.sort();
    assert_eq!(
        received_ids(&rx, "/b", 9),
        in_range,
        "exactly the range was sent again"
    );
    assert!(
        got_b[9..]
            .iter()
            .all(|r| r.json()["attempt"]["number"] == 2),
        "each is a second attempt"
    );
    rx.wait_for("/a", 15, WAIT).await;

    // One delivery by hand.
    let (_, ds) = srv
        .get(&format!(
            "/v1/accounts/acct/events/{}/deliveries",
            failed_type[0]
        ))
        .await;
    let dlv = ds["data"][0]["id"].as_str().unwrap().to_owned();
    let sends_of = |id: &str| {
        rx.received()
            .iter()
            .filter(|r| r.json()["id"] == id)
            .count()
    };
    let before = sends_of(&failed_type[0]);
    let retried = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "deliveries",
                "retry",
                "--account",
                "acct",
                &dlv,
                "--output",
                "json",
            ],
            None,
        )
        .await,
    );
    assert_eq!(retried["id"], dlv.as_str());
    assert_eq!(retried["status"], "pending");
    let deadline = Instant::now() + WAIT;
    while sends_of(&failed_type[0]) <= before {
        assert!(
            Instant::now() < deadline,
            "the retried delivery did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An endpoint's failed deliveries, recovered.
    let recover_since = Timestamp::now().to_rfc3339();
    let excepted = post("rx.excepted").await;
    rx.wait_for("/c", 2, WAIT).await;
    wait_for_status(&srv, "acct", &ep_c, "failed").await;
    let out = cli(
        &srv,
        admin,
        &[
            "recover",
            "--account",
            "acct",
            "--endpoint",
            &ep_c,
            "--since",
            &recover_since,
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("re-queued 1 failed deliveries of {ep_c}")),
        "{}",
        text(&out.stdout)
    );
    let got = rx.wait_for("/c", 3, WAIT).await;
    assert_eq!(got[2].json()["id"], excepted.as_str());
    let again = ok_json(
        &cli(
            &srv,
            admin,
            &[
                "recover",
                "--account",
                "acct",
                "--endpoint",
                &ep_c,
                "--since",
                "1h",
                "--output",
                "json",
            ],
            None,
        )
        .await,
    );
    assert_eq!(again["recovered"], 0, "nothing is failed any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_one_line_and_exit_status_1() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;

    let out = cli(
        &srv,
        Some("hk_wrong_key_0123456789abcdefghijklmnopqrstuv"),
        &["accounts", "list"],
        None,
    )
    .await;
    assert_eq!(
        one_error_line(&out),
        "error: Unauthorized: unknown API key (never issued, revoked or expired) (unauthorized)"
    );
    assert!(out.stdout.is_empty());

    let out = cli(&srv, None, &["accounts", "list", "--output", "json"], None).await;
    assert!(one_error_line(&out).starts_with("error: no API key: set HOOKLINE_API_KEY"));

    let out = cli(
        &srv,
        Some(ADMIN_KEY),
        &["endpoints", "list", "--account", "nope"],
        None,
    )
    .await;
    let line = one_error_line(&out);
    assert!(
        line.starts_with("error: Not Found: ") && line.ends_with("(account_not_found)"),
        "{line}"
    );

    let out = cli(
        &srv,
        Some(ADMIN_KEY),
        &["accounts", "create", "--id", "acct", "--output", "json"],
        None,
    )
    .await;
    let line = one_error_line(&out);
    assert!(
        line.starts_with("error: Conflict: ") && line.ends_with(')'),
        "{line}"
    );
    assert!(out.stdout.is_empty(), "nothing on standard output");
}
