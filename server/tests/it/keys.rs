//! API keys over HTTP: listing, issuing, revoking (in this process at once, in others within
//! the key cache's 10 s), expiry, read-only keys, the bootstrap key's replacement, and the
//! audit log those changes leave. The store-generic checks run on SQLite here and on
//! PostgreSQL and Redis in their modules.

use std::time::{Duration, Instant};

use hookline_core::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Server};

/// The id of the key `key`: `key_` + the first 16 hex digits of its SHA-256.
fn id_of(key: &str) -> String {
    format!("key_{}", &hookline_core::service::keys::hash(key)[..16])
}

fn rows(v: &Value) -> &Vec<Value> {
    v["data"]
        .as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
}

fn find<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    rows(list).iter().find(|k| k["id"] == id)
}

/// Issues a key: `(key, its JSON)`.
async fn issue(srv: &Server, by: &str, path: &str, body: Value) -> (String, Value) {
    let (s, k) = srv.call_as(by, Method::POST, path, Some(body)).await;
    assert_eq!(s, 201, "{path}: {k}");
    (k["key"].as_str().unwrap().to_owned(), k)
}

/// Asserts a problem answer: status, `code`, and the problem media type.
async fn assert_problem(
    srv: &Server,
    key: &str,
    m: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
    code: &str,
) {
    let mut req = srv.http.request(m.clone(), srv.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status().as_u16(), status, "{m} {path}");
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "{m} {path}"
    );
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["code"], code, "{m} {path}: {p}");
}

/// The whole key lifecycle on one server: the bootstrap key listed, admin and account keys
/// issued, listed (never the key, never its hash), used (last use noted), read-only keys
/// refused on changes, scopes kept apart, keys revoked and refused at once, expiry, and the
/// audit entries of it all (with the key ids as actors, never a secret).
pub(crate) async fn key_lifecycle(srv: &Server) {
    srv.seed("a").await;
    let (s, _) = srv.post("/v1/accounts", json!({"id": "b"})).await;
    assert_eq!(s, 201);

    // The bootstrap key is listed among the admin keys.
    let (s, admins) = srv.get("/v1/keys").await;
    assert_eq!(s, 200, "{admins}");
    let boot = find(&admins, &id_of(ADMIN_KEY)).unwrap_or_else(|| panic!("{admins}"));
    assert_eq!(boot["bootstrap"], true);
    assert_eq!(boot["scope"], "admin");
    assert_eq!(boot["prefix"], ADMIN_KEY[..10]);
    assert!(
        boot["lastUsedAt"].is_string(),
        "the key of this request: {boot}"
    );
    for k in rows(&admins) {
        assert!(k.get("key").is_none() && k.get("hash").is_none(), "{k}");
    }

    // A second admin key, with a name and an expiry, works.
    let later = Timestamp::now().add(Duration::from_secs(3600));
    let (ops, ops_json) = issue(
        srv,
        ADMIN_KEY,
        "/v1/keys",
        json!({"name": "ops laptop", "expiresAt": later.to_rfc3339()}),
    )
    .await;
    assert!(ops.starts_with("hk_"));
    assert_eq!(ops_json["id"], id_of(&ops));
    assert_eq!(ops_json["name"], "ops laptop");
    assert_eq!(ops_json["expiresAt"], later.to_rfc3339());
    assert_eq!(ops_json["bootstrap"], false);
    let (s, _) = srv.call_as(&ops, Method::GET, "/v1/accounts", None).await;
    assert_eq!(s, 200);
    assert_problem(
        srv,
        ADMIN_KEY,
        Method::POST,
        "/v1/keys",
        Some(json!({"expiresAt": "2001-01-01T00:00:00Z"})),
        422,
        "invalid_expiry",
    )
    .await;

    // Account keys: a full one and a read-only one; an empty body is a plain key.
    let res = srv
        .http
        .post(srv.url("/v1/accounts/a/keys"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "no body at all is a plain key");
    let full: Value = res.json().await.unwrap();
    let key_a = full["key"].as_str().unwrap().to_owned();
    assert_eq!(
        (&full["scope"], &full["account"], &full["readOnly"]),
        (&json!("account"), &json!("a"), &json!(false))
    );
    let (reader, reader_json) = issue(
        srv,
        &key_a,
        "/v1/accounts/a/keys",
        json!({"name": "dashboard reader", "readOnly": true}),
    )
    .await;
    assert_eq!(reader_json["readOnly"], true);
    let (key_b, _) = issue(srv, ADMIN_KEY, "/v1/accounts/b/keys", json!({})).await;

    // A read-only key reads, and every change is refused with `read_only_key`.
    let (s, _) = srv
        .call_as(&reader, Method::GET, "/v1/accounts/a/endpoints", None)
        .await;
    assert_eq!(s, 200);
    let (s, listed) = srv
        .call_as(&reader, Method::GET, "/v1/accounts/a/keys", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(rows(&listed).len(), 2, "{listed}");
    for (m, path, body) in [
        (
            Method::POST,
            "/v1/accounts/a/endpoints",
            Some(json!({"url": "http://127.0.0.1:9/x"})),
        ),
        (
            Method::POST,
            "/v1/accounts/a/sites",
            Some(json!({"id": "s1"})),
        ),
        (Method::POST, "/v1/accounts/a/keys", Some(json!({}))),
        (
            Method::DELETE,
            &format!("/v1/accounts/a/keys/{}", id_of(&key_a)),
            None,
        ),
    ] {
        assert_problem(srv, &reader, m, path, body, 403, "read_only_key").await;
    }

    // Scopes stay apart: account keys reach neither another account's keys nor the admin's.
    for (key, path) in [
        (&key_a, "/v1/accounts/b/keys"),
        (&key_b, "/v1/accounts/a/keys"),
        (&key_a, "/v1/keys"),
        (&key_a, "/v1/audit"),
    ] {
        let (s, body) = srv.call_as(key, Method::GET, path, None).await;
        assert_eq!(s, 403, "{path}: {body}");
    }
    assert_problem(
        srv,
        &key_b,
        Method::DELETE,
        &format!("/v1/accounts/b/keys/{}", id_of(&key_a)),
        None,
        404,
        "key_not_found",
    )
    .await;
    assert_problem(
        srv,
        ADMIN_KEY,
        Method::DELETE,
        &format!("/v1/keys/{}", id_of(&key_a)),
        None,
        404,
        "key_not_found",
    )
    .await;
    assert_problem(
        srv,
        ADMIN_KEY,
        Method::DELETE,
        "/v1/keys/nope",
        None,
        400,
        "invalid_id",
    )
    .await;

    // Use is noted.
    let (_, listed) = srv
        .call_as(&key_a, Method::GET, "/v1/accounts/a/keys", None)
        .await;
    let mine = find(&listed, &id_of(&key_a)).unwrap();
    assert!(mine["lastUsedAt"].is_string(), "{mine}");
    assert!(
        mine.get("key").is_none() && mine.get("hash").is_none(),
        "{mine}"
    );

    // Revoked: refused at once by this process; a second revocation finds nothing.
    let (s, _) = srv
        .call(
            Method::DELETE,
            &format!("/v1/accounts/a/keys/{}", id_of(&key_a)),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_problem(
        srv,
        &key_a,
        Method::GET,
        "/v1/accounts/a",
        None,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        srv,
        ADMIN_KEY,
        Method::DELETE,
        &format!("/v1/accounts/a/keys/{}", id_of(&key_a)),
        None,
        404,
        "key_not_found",
    )
    .await;
    let (s, _) = srv
        .call_as(&key_b, Method::GET, "/v1/accounts/b", None)
        .await;
    assert_eq!(s, 200, "other keys are untouched");

    // Expiry: a key that expires soon works, then is refused. (The wait is the point of the
    // check; the margin is generous for a loaded machine.)
    let soon = Timestamp::now().add(Duration::from_secs(2));
    let (brief, _) = issue(
        srv,
        ADMIN_KEY,
        "/v1/accounts/b/keys",
        json!({"expiresAt": soon.to_rfc3339()}),
    )
    .await;
    let (s, _) = srv
        .call_as(&brief, Method::GET, "/v1/accounts/b", None)
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_problem(
        srv,
        &brief,
        Method::GET,
        "/v1/accounts/b",
        None,
        401,
        "unauthorized",
    )
    .await;

    // The audit log: every change with its actor, never a secret value.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (s, ep) = srv
        .post(
            "/v1/accounts/a/endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "secret": secret}),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    let ep_id = ep["id"].as_str().unwrap();
    let (s, _) = srv
        .post(
            &format!("/v1/accounts/a/endpoints/{ep_id}/secret/rotate"),
            json!({"secret": "whsec_dGhpcyBpcyBhIHNlY29uZCBzZWNyZXQga2V5ISE="}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, audit) = srv
        .call_as(&key_b, Method::GET, "/v1/accounts/a/audit", None)
        .await;
    assert_eq!(s, 403, "another account's audit log: {audit}");
    let (s, audit) = srv
        .call_as(&reader, Method::GET, "/v1/accounts/a/audit", None)
        .await;
    assert_eq!(s, 200, "{audit}");
    let text = audit.to_string();
    assert!(!text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{text}");
    assert!(
        !text.contains("dGhpcyBpcyBhIHNlY29uZCBzZWNyZXQga2V5ISE"),
        "{text}"
    );
    let entries: Vec<(String, String, Value)> = rows(&audit)
        .iter()
        .map(|e| {
            assert_eq!(e["account"], "a", "{e}");
            (
                e["action"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
                e["actor"].clone(),
            )
        })
        .collect();
    let admin_actor = json!({"type": "key", "id": id_of(ADMIN_KEY)});
    let expect = [
        ("secret.rotated", ep_id.to_owned(), admin_actor.clone()),
        ("endpoint.created", ep_id.to_owned(), admin_actor.clone()),
        ("key.revoked", id_of(&key_a), admin_actor.clone()),
        (
            "key.created",
            id_of(&reader),
            json!({"type": "key", "id": id_of(&key_a)}),
        ),
        ("key.created", id_of(&key_a), admin_actor.clone()),
        ("account.created", "a".to_owned(), admin_actor.clone()),
    ];
    let expect: Vec<(String, String, Value)> = expect
        .into_iter()
        .map(|(a, t, who)| (a.to_owned(), t, who))
        .collect();
    assert_eq!(entries, expect, "newest first: {audit}");
    // Paged, one at a time, it is the same list.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            Some(c) => format!("/v1/accounts/a/audit?limit=1&cursor={c}"),
            None => "/v1/accounts/a/audit?limit=1".to_owned(),
        };
        let (s, page) = srv.get(&path).await;
        assert_eq!(s, 200, "{page}");
        paged.extend(rows(&page).iter().map(|e| e["id"].clone()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let ids: Vec<Value> = rows(&audit).iter().map(|e| e["id"].clone()).collect();
    assert_eq!(paged, ids);
    // The deployment's log has the catalog's changes (no account) and the admin keys'.
    let (s, all) = srv.get("/v1/audit?limit=250").await;
    assert_eq!(s, 200);
    let has = |action: &str, target: &str| {
        rows(&all)
            .iter()
            .any(|e| e["action"] == action && e["target"] == target)
    };
    assert!(has("event_type.created", "rx.completed"), "{all}");
    assert!(has("key.created", &id_of(&ops)), "{all}");
    assert!(has("endpoint.created", ep_id), "{all}");
    let catalog = rows(&all)
        .iter()
        .find(|e| e["action"] == "event_type.created")
        .unwrap();
    assert!(
        catalog.get("account").is_none() || catalog["account"].is_null(),
        "{catalog}"
    );
}

/// Starting with another `HOOKLINE_ADMIN_KEY` revokes the old bootstrap key; admin keys issued
/// through the API stay.
pub(crate) async fn bootstrap_key_is_replaced(srv: &mut Server) {
    let (ops, _) = issue(srv, ADMIN_KEY, "/v1/keys", json!({"name": "ops"})).await;
    let new_boot = "hk_another_bootstrap_key_0123456789abcdefghijklmno";
    srv.set_env("HOOKLINE_ADMIN_KEY", new_boot);
    srv.restart().await;
    assert_problem(
        srv,
        ADMIN_KEY,
        Method::GET,
        "/v1/accounts",
        None,
        401,
        "unauthorized",
    )
    .await;
    let (s, admins) = srv.call_as(new_boot, Method::GET, "/v1/keys", None).await;
    assert_eq!(s, 200, "{admins}");
    let ids: Vec<&str> = rows(&admins)
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id_of(new_boot).as_str()), "{admins}");
    assert!(ids.contains(&id_of(&ops).as_str()), "{admins}");
    assert!(!ids.contains(&id_of(ADMIN_KEY).as_str()), "{admins}");
    let (s, _) = srv.call_as(&ops, Method::GET, "/v1/accounts", None).await;
    assert_eq!(s, 200, "an API-issued admin key survives");
    // Restarting with the same key changes nothing.
    srv.restart().await;
    let (s, again) = srv.call_as(new_boot, Method::GET, "/v1/keys", None).await;
    assert_eq!(s, 200);
    assert_eq!(rows(&again).len(), rows(&admins).len(), "{again}");
}

/// A key revoked through one process is refused by another within the key cache's time
/// (10 s), which had accepted (and cached) it before.
pub(crate) async fn revocation_reaches_other_processes(a: &Server) {
    let b = a.another().await;
    a.seed("x").await;
    let (key, _) = issue(a, ADMIN_KEY, "/v1/accounts/x/keys", json!({})).await;
    let (s, _) = b.call_as(&key, Method::GET, "/v1/accounts/x", None).await;
    assert_eq!(s, 200, "the other process accepts (and caches) the key");
    let (s, _) = a
        .call(
            Method::DELETE,
            &format!("/v1/accounts/x/keys/{}", id_of(&key)),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let revoked = Instant::now();
    // The cache keeps a key for 10 s; the limit adds a generous margin for a loaded machine.
    let limit = Duration::from_secs(20);
    loop {
        let (s, _) = b.call_as(&key, Method::GET, "/v1/accounts/x", None).await;
        if s == 401 {
            break;
        }
        assert_eq!(s, 200);
        assert!(
            revoked.elapsed() < limit,
            "the other process still accepts the revoked key after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_key_lifecycle_and_audit() {
    key_lifecycle(&Server::start(&[]).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_bootstrap_key_is_replaced_on_restart() {
    let mut srv = Server::start(&[]).await;
    bootstrap_key_is_replaced(&mut srv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_revocation_reaches_other_processes() {
    revocation_reaches_other_processes(&Server::start(&[]).await).await;
}
