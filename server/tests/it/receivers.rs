//! The receiver snippets of docs/receivers.md, run against requests a real server delivered.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Received, Receiver, Server, free_port};

#[allow(unreachable_pub)]
#[path = "../../../docs/receivers/verify.rs"]
mod snippet;

const WAIT: Duration = Duration::from_secs(20);

fn snippets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/receivers")
}

fn python() -> String {
    let python = std::env::var("HOOKLINE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .output();
    match probe {
        Ok(o) if o.status.success() => python,
        _ => panic!(
            "the PyPI package `standardwebhooks` is not importable with `{python}`: run the tests \
             with `cargo xtask test` (it installs it), or `pip install standardwebhooks` and set \
             HOOKLINE_TEST_PYTHON"
        ),
    }
}

fn node() -> &'static str {
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => "node",
        _ => panic!(
            "Node.js is needed to run the JavaScript receiver snippet: `apt-get install nodejs`"
        ),
    }
}

#[test]
fn the_page_holds_every_snippet_verbatim() {
    let page = std::fs::read_to_string(snippets_dir().join("../receivers.md")).unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(snippets_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            page.contains(text.trim_end()),
            "docs/receivers.md must contain {} verbatim",
            path.display()
        );
        files += 1;
    }
    assert_eq!(files, 5, "every snippet file is checked");
}

/// One delivered request, signed with two secrets (a rotation in progress), and its secrets.
async fn a_delivered_request() -> (Received, String, String) {
    let rx = Receiver::start().await;
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    let (ep, old) = srv.endpoint("acct", json!({"url": rx.url("/hook")})).await;
    let (s, rotated) = srv
        .post(
            &format!("/v1/accounts/acct/endpoints/{ep}/secret/rotate"),
            json!({}),
        )
        .await;
    assert!(s == 200 || s == 201, "{rotated}");
    let (_, secrets) = srv
        .get(&format!("/v1/accounts/acct/endpoints/{ep}/secret"))
        .await;
    let new = secrets["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old, "rotation made a new secret: {secrets}");
    let (s, b) = srv
        .post(
            "/v1/accounts/acct/events",
            json!({"event": "rx.completed", "data": {"patientId": "p_77", "note": "é ü"}}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let got = rx.wait_for("/hook", 1, WAIT).await;
    (got[0].clone(), old, new)
}

fn header(r: &Received, name: &str) -> String {
    r.headers[name].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_python_and_node_snippets_verify_a_real_delivery() {
    let (r, old, new) = a_delivered_request().await;
    let mut tampered = r.body.to_vec();
    tampered.push(b' ');
    let sig = header(&r, "x-hookline-signature");
    assert!(
        sig.contains(','),
        "two secrets sign during a rotation: {sig}"
    );

    // Rust.
    for secret in [&old, &new] {
        assert!(snippet::verify_standard(secret, &r.headers, &r.body));
        assert!(snippet::verify_hookline_signature(secret, &sig, &r.body));
        assert!(!snippet::verify_standard(secret, &r.headers, &tampered));
        assert!(!snippet::verify_hookline_signature(secret, &sig, &tampered));
    }
    let stranger = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(!snippet::verify_standard(stranger, &r.headers, &r.body));
    assert!(!snippet::verify_hookline_signature(stranger, &sig, &r.body));

    // The request, as files the Python and Node drivers read.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &r.body).unwrap();
    std::fs::write(dir.path().join("tampered"), &tampered).unwrap();
    let headers: serde_json::Map<String, Value> = [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "x-hookline-signature",
    ]
    .iter()
    .map(|h| (h.to_string(), json!(header(&r, h))))
    .collect();
    std::fs::write(
        dir.path().join("request.json"),
        json!({"headers": headers, "secrets": [old, new, stranger]}).to_string(),
    )
    .unwrap();
    let expected = "True True True,True True True,False False False,False False False";

    // Python: each secret → [library, plain Standard Webhooks, plain X-Hookline-Signature];
    // then the tampered body under the first secret.
    let py = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
from verify_standard import verify
from verify_hmac import verify_standard_webhooks, verify_hookline_signature
d = sys.argv[2]
req = json.load(open(d + "/request.json"))
h = req["headers"]
def check(secret, body):
    return " ".join(str(x) for x in [
        verify(secret, h, body) is not None,
        verify_standard_webhooks(secret, h, body),
        verify_hookline_signature(secret, h["x-hookline-signature"], body),
    ])
body = open(d + "/body", "rb").read()
tampered = open(d + "/tampered", "rb").read()
s = req["secrets"]
print(",".join([check(s[0], body), check(s[1], body), check(s[2], body), check(s[0], tampered)]))
"#;
    let out = Command::new(python())
        .args(["-c", py])
        .arg(snippets_dir())
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);

    // Node: [plain Standard Webhooks, plain X-Hookline-Signature], printed in the same shape
    // (the library column is the plain Standard Webhooks check again).
    let js = r#"
const fs = require("node:fs");
const { verifyStandardWebhooks, verifyHooklineSignature } = require(process.argv[1] + "/verify.js");
const d = process.argv[2];
const req = JSON.parse(fs.readFileSync(d + "/request.json", "utf8"));
const h = req.headers;
const py = (b) => (b ? "True" : "False");
const check = (secret, body) => {
  const std = verifyStandardWebhooks(secret, h, body);
  return [std, std, verifyHooklineSignature(secret, h["x-hookline-signature"], body)].map(py).join(" ");
};
const body = fs.readFileSync(d + "/body");
const tampered = fs.readFileSync(d + "/tampered");
const s = req.secrets;
console.log([check(s[0], body), check(s[1], body), check(s[2], body), check(s[0], tampered)].join(","));
"#;
    let out = Command::new(node())
        .args(["-e", js])
        .arg(snippets_dir())
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_receiver_takes_each_event_once() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    let port = free_port();
    let (ep, secret) = srv
        .endpoint(
            "acct",
            json!({"url": format!("http://127.0.0.1:{port}/webhooks")}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.jsonl");
    let mut child = Command::new(python())
        .arg(snippets_dir().join("receiver.py"))
        .args([&secret, &port.to_string()])
        .arg(&outbox)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _guard = KillOnDrop(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let (s, sent) = srv
        .post(
            "/v1/accounts/acct/events",
            json!({"event": "rx.completed", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(s, 202, "{sent}");
    let event = sent["id"].as_str().unwrap().to_owned();
    let (_, deliveries) = srv
        .get(&format!("/v1/accounts/acct/events/{event}/deliveries"))
        .await;
    let delivery = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    let attempts = |n: usize| {
        let srv = &srv;
        let delivery = delivery.clone();
        async move {
            let deadline = Instant::now() + WAIT;
            loop {
                let (_, a) = srv
                    .get(&format!("/v1/accounts/acct/deliveries/{delivery}/attempts"))
                    .await;
                let list = a["data"].as_array().cloned().unwrap_or_default();
                if list.len() >= n {
                    return list;
                }
                assert!(Instant::now() < deadline, "{n} attempts of {delivery}: {a}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let first = attempts(1).await;
    assert_eq!(first[0]["statusCode"], 204, "{first:?}");

    // The same event again (a manual retry): answered 2xx, not processed twice.
    let (s, b) = srv
        .post(
            &format!("/v1/accounts/acct/deliveries/{delivery}/retry"),
            json!({}),
        )
        .await;
    assert!(s < 300, "{b}");
    let both = attempts(2).await;
    assert!(
        both.iter().all(|a| a["statusCode"] == 204),
        "both answered 204: {both:?}"
    );
    let deadline = Instant::now() + WAIT;
    let processed = loop {
        let text = std::fs::read_to_string(&outbox).unwrap_or_default();
        if !text.is_empty() || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let processed = std::fs::read_to_string(&outbox).unwrap_or(processed);
    let lines: Vec<Value> = processed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "processed once: {processed}");
    assert_eq!(lines[0]["id"], event.as_str());
    assert_eq!(lines[0]["attempt"], 1);
    let _ = ep;
}
