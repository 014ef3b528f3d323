//! Tenant isolation, proven over every route of the router's own route table (the one
//! `openapi.rs` reads), not over a hand-written list: a route added later is checked as soon as
//! it exists, and one the generator cannot fill in fails the test with a message saying how to
//! add it.
//!
//! For every route under `/v1/accounts/{account}` and every method it serves:
//! 1. account B's key on account A's path (with A's object ids) is refused (403 or 404, never
//!    2xx) and the answer holds none of A's data;
//! 2. account A's key on its own path with B's object ids answers 404 (routes with an object
//!    id), and A's lists hold none of B's objects (routes without one);
//! 3. a read-only key of A is refused with `read_only_key` on every changing route.
//!
//! Every other `/v1` route is either the admin's (refused to account keys) or the shared event
//! catalog (readable by any key), as [`NON_ACCOUNT`] says. Afterwards both accounts' objects are
//! all still there: no refused request changed anything.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::Server;

/// The JSON body each changing route is called with (`None`: it takes none). A `POST`, `PUT` or
/// `PATCH` route missing here fails the test.
const BODIES: &[(&str, &str, Option<&str>)] = &[
    ("POST", "/v1/accounts", Some(r#"{"id": "iso-new"}"#)),
    (
        "PATCH",
        "/v1/accounts/{account}",
        Some(r#"{"name": "renamed"}"#),
    ),
    (
        "POST",
        "/v1/accounts/{account}/sites",
        Some(r#"{"id": "s-new"}"#),
    ),
    (
        "PATCH",
        "/v1/accounts/{account}/sites/{site}",
        Some(r#"{"name": "renamed"}"#),
    ),
    (
        "POST",
        "/v1/accounts/{account}/endpoints",
        Some(r#"{"url": "http://127.0.0.1:9/new"}"#),
    ),
    (
        "PATCH",
        "/v1/accounts/{account}/endpoints/{endpoint}",
        Some(r#"{"description": "changed"}"#),
    ),
    (
        "POST",
        "/v1/accounts/{account}/endpoints/{endpoint}/enable",
        None,
    ),
    (
        "POST",
        "/v1/accounts/{account}/endpoints/{endpoint}/disable",
        None,
    ),
    (
        "POST",
        "/v1/accounts/{account}/endpoints/{endpoint}/test",
        None,
    ),
    (
        "POST",
        "/v1/accounts/{account}/endpoints/{endpoint}/recover",
        Some(r#"{"since": "2020-01-01T00:00:00Z"}"#),
    ),
    (
        "POST",
        "/v1/accounts/{account}/endpoints/{endpoint}/secret/rotate",
        None,
    ),
    (
        "POST",
        "/v1/accounts/{account}/events",
        Some(r#"{"event": "rx.completed", "data": {"n": 1}}"#),
    ),
    (
        "POST",
        "/v1/accounts/{account}/events/batch",
        Some(r#"[{"event": "rx.completed", "data": {"n": 1}}]"#),
    ),
    (
        "POST",
        "/v1/accounts/{account}/deliveries/{delivery}/retry",
        None,
    ),
    ("POST", "/v1/accounts/{account}/keys", None),
    (
        "POST",
        "/v1/accounts/{account}/replay",
        Some(r#"{"since": "2020-01-01T00:00:00Z"}"#),
    ),
    ("POST", "/v1/accounts/{account}/portal-sessions", Some("{}")),
    (
        "POST",
        "/v1/event-types",
        Some(r#"{"name": "iso.new", "description": "x"}"#),
    ),
    (
        "PATCH",
        "/v1/event-types/{name}",
        Some(r#"{"description": "changed"}"#),
    ),
    ("POST", "/v1/keys", None),
];

/// Who may use the `/v1` routes outside `/v1/accounts/{account}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The admin only: account keys are refused with 403.
    Admin,
    /// Any key (the deployment's event catalog, which holds no account's data).
    Shared,
}

/// Every `/v1` route outside `/v1/accounts/{account}`; one missing here fails the test.
const NON_ACCOUNT: &[(&str, &str, Reach)] = &[
    ("GET", "/v1/accounts", Reach::Admin),
    ("POST", "/v1/accounts", Reach::Admin),
    ("GET", "/v1/event-types", Reach::Shared),
    ("POST", "/v1/event-types", Reach::Admin),
    ("GET", "/v1/event-types/{name}", Reach::Shared),
    ("PATCH", "/v1/event-types/{name}", Reach::Admin),
    ("DELETE", "/v1/event-types/{name}", Reach::Admin),
    ("GET", "/v1/keys", Reach::Admin),
    ("POST", "/v1/keys", Reach::Admin),
    ("DELETE", "/v1/keys/{key}", Reach::Admin),
    ("GET", "/v1/audit", Reach::Admin),
];

/// One account's objects: what fills the path parameters, and values that must never show in
/// another account's answers.
#[derive(Debug)]
struct Tenant {
    account: String,
    /// Path parameter name → this account's object id.
    ids: BTreeMap<&'static str, String>,
    /// A full key and a read-only key of the account.
    key: String,
    read_only: String,
    /// Data of this account that no other account's answer may contain.
    secrets: Vec<String>,
}

impl Tenant {
    async fn create(srv: &Server, account: &str) -> Self {
        let (s, b) = srv
            .post(
                "/v1/accounts",
                json!({"id": account, "name": format!("{account} name")}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        // Site ids are chosen per account; distinct ones, so that B's is not also A's.
        let site = format!("{account}-site");
        let (s, b) = srv
            .post(
                &format!("/v1/accounts/{account}/sites"),
                json!({"id": site}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let url = format!("http://127.0.0.1:9/{account}-hook");
        let (endpoint, secret) = srv
            .endpoint(
                account,
                json!({"url": url, "description": format!("{account}-desc")}),
            )
            .await;
        let marker = format!("{account}-payload-marker");
        let (s, ev) = srv
            .post(
                &format!("/v1/accounts/{account}/events"),
                json!({"event": "rx.completed", "site": site, "data": {"m": marker}}),
            )
            .await;
        assert_eq!(s, 202, "{ev}");
        let event = ev["id"].as_str().unwrap().to_owned();
        let (s, ds) = srv
            .get(&format!("/v1/accounts/{account}/events/{event}/deliveries"))
            .await;
        assert_eq!(s, 200, "{ds}");
        let delivery = ds["data"][0]["id"].as_str().unwrap().to_owned();
        let issue = |body: Value| async move {
            let (s, k) = srv
                .post(&format!("/v1/accounts/{account}/keys"), body)
                .await;
            assert_eq!(s, 201, "{k}");
            k
        };
        let key = issue(json!({})).await["key"].as_str().unwrap().to_owned();
        let read_only = issue(json!({"readOnly": true})).await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        // A key that only stands as an object: the id the `{key}` routes are called with.
        let victim = issue(json!({"name": format!("{account}-victim")})).await;
        let mut ids = BTreeMap::new();
        ids.insert("account", account.to_owned());
        ids.insert("site", site);
        ids.insert("endpoint", endpoint.clone());
        ids.insert("event", event.clone());
        ids.insert("delivery", delivery.clone());
        ids.insert("key", victim["id"].as_str().unwrap().to_owned());
        // A replay job of the account (kept by the server process), for the `{job}` routes.
        let (s, job) = srv
            .post(
                &format!("/v1/accounts/{account}/replay"),
                json!({"since": "2020-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(s, 202, "{job}");
        ids.insert("job", job["id"].as_str().unwrap().to_owned());
        let secrets = vec![
            secret,
            url,
            marker,
            format!("{account}-desc"),
            format!("{account}-victim"),
            endpoint,
            event,
            delivery,
            victim["id"].as_str().unwrap().to_owned(),
            victim["prefix"].as_str().unwrap().to_owned(),
        ];
        Self {
            account: account.to_owned(),
            ids,
            key,
            read_only,
            secrets,
        }
    }

    /// `template` with `{account}` filled with this account and every object id with
    /// `objects`' (the same tenant, or another one), or a
    /// message saying how to teach the generator a new parameter.
    fn path(&self, template: &str, objects: &Tenant) -> Result<String, String> {
        let mut out = Vec::new();
        for seg in template.split('/') {
            match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some("account") => out.push(self.account.clone()),
                Some("name") => out.push("rx.completed".to_owned()),
                Some(param) => match objects.ids.get(param) {
                    Some(id) => out.push(id.clone()),
                    None => {
                        return Err(format!(
                            "the isolation test cannot fill `{{{param}}}` in `{template}`: create \
                             such an object in `Tenant::create` (server/tests/it/isolation.rs) \
                             and add its id to `ids` under \"{param}\""
                        ));
                    }
                },
                None => out.push(seg.to_owned()),
            }
        }
        Ok(out.join("/"))
    }
}

fn body_for(method: &str, template: &str) -> Result<Option<Value>, String> {
    match BODIES
        .iter()
        .find(|(m, p, _)| *m == method && *p == template)
    {
        Some((_, _, b)) => Ok(b.map(|b| serde_json::from_str(b).expect("a JSON body"))),
        None if method == "GET" || method == "DELETE" => Ok(None),
        None => Err(format!(
            "the isolation test has no body for `{method} {template}`: add one to `BODIES` in \
             server/tests/it/isolation.rs (`None` if the route takes no body)"
        )),
    }
}

async fn call(
    srv: &Server,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = srv.http.request(m, srv.url(path)).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// `of`'s values in an answer to a request for `path`, except those the path itself names (a
/// 404's detail may repeat the id asked for).
fn leaked<'a>(text: &str, path: &str, of: &'a Tenant) -> Vec<&'a str> {
    of.secrets
        .iter()
        .filter(|s| text.contains(s.as_str()) && !path.contains(s.as_str()))
        .map(String::as_str)
        .collect()
}

/// Runs every check on `srv` (a fresh store). Counts what it checked, so a route table that
/// could not be read fails loudly.
pub(crate) async fn every_route_is_isolated(srv: &Server) {
    srv.seed("iso-seed").await;
    let a = Tenant::create(srv, "iso-a").await;
    let b = Tenant::create(srv, "iso-b").await;
    let routes = crate::openapi::served().await;
    let mut problems: Vec<String> = Vec::new();
    let mut checked = 0usize;

    for (method, template) in &routes {
        if !template.starts_with("/v1/") {
            continue; // health, readiness, the document, metrics: no account data.
        }
        let body = match body_for(method, template) {
            Ok(b) => b,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let changing = method != "GET";

        if !template.starts_with("/v1/accounts/{account}") {
            let Some((_, _, reach)) = NON_ACCOUNT
                .iter()
                .find(|(m, p, _)| m == method && p == template)
            else {
                problems.push(format!(
                    "`{method} {template}` is neither under /v1/accounts/{{account}} nor in \
                     `NON_ACCOUNT` (server/tests/it/isolation.rs): say whether it is the \
                     admin's or shared by every key"
                ));
                continue;
            };
            let path = match a.path(template, &a) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let (s, text) = call(srv, &b.key, method, &path, body.clone()).await;
            checked += 1;
            match reach {
                Reach::Admin if s != 403 => problems.push(format!(
                    "{method} {path} with an account key: {s} (expected 403): {text:.300}"
                )),
                Reach::Shared if !(200..300).contains(&s) => problems.push(format!(
                    "{method} {path} (shared) with an account key: {s}: {text:.300}"
                )),
                _ => {}
            }
            for l in leaked(&text, &path, &a) {
                problems.push(format!("{method} {path} with B's key shows A's `{l}`"));
            }
            continue;
        }

        // 1. B's key on A's path, with A's ids.
        let path_a = match a.path(template, &a) {
            Ok(p) => p,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let (s, text) = call(srv, &b.key, method, &path_a, body.clone()).await;
        checked += 1;
        if !(s == 403 || s == 404) {
            problems.push(format!(
                "{method} {path_a} with B's key: {s} (expected 403 or 404): {text:.300}"
            ));
        }
        for l in leaked(&text, &path_a, &a) {
            problems.push(format!("{method} {path_a} with B's key shows A's `{l}`"));
        }

        // 2. A's key on its own path with B's object ids.
        let has_object = template.matches('{').count() > 1;
        if has_object {
            let path = match a.path(template, &b) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let (s, text) = call(srv, &a.key, method, &path, body.clone()).await;
            checked += 1;
            if s != 404 {
                problems.push(format!(
                    "{method} {path} (A's key, B's ids): {s} (expected 404): {text:.300}"
                ));
            }
            for l in leaked(&text, &path, &b) {
                problems.push(format!("{method} {path} with A's key shows B's `{l}`"));
            }
        } else if !changing {
            let (s, text) = call(srv, &a.key, method, &path_a, None).await;
            checked += 1;
            if s != 200 {
                problems.push(format!(
                    "{method} {path_a} with A's own key: {s}: {text:.300}"
                ));
            }
            for l in leaked(&text, &path_a, &b) {
                problems.push(format!("{method} {path_a} (A's own list) shows B's `{l}`"));
            }
        }

        // 3. A read-only key of A changes nothing.
        if changing {
            let (s, text) = call(srv, &a.read_only, method, &path_a, body.clone()).await;
            checked += 1;
            let code = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned));
            if s != 403 || code.as_deref() != Some("read_only_key") {
                problems.push(format!(
                    "{method} {path_a} with A's read-only key: {s} {code:?} (expected 403 \
                     read_only_key): {text:.300}"
                ));
            }
        }
    }

    // Nothing that was refused changed anything: every object of both accounts is still there.
    for t in [&a, &b] {
        for (what, path) in [
            (
                "site",
                format!("/v1/accounts/{}/sites/{}", t.account, t.ids["site"]),
            ),
            (
                "endpoint",
                format!("/v1/accounts/{}/endpoints/{}", t.account, t.ids["endpoint"]),
            ),
            (
                "event",
                format!("/v1/accounts/{}/events/{}", t.account, t.ids["event"]),
            ),
            (
                "delivery",
                format!(
                    "/v1/accounts/{}/deliveries/{}",
                    t.account, t.ids["delivery"]
                ),
            ),
        ] {
            let (s, v) = srv.call(Method::GET, &path, None).await;
            if s != 200 {
                problems.push(format!(
                    "{}'s {what} is gone after the refused calls: {s} {v}",
                    t.account
                ));
            }
        }
        let (s, keys) = srv
            .call(
                Method::GET,
                &format!("/v1/accounts/{}/keys", t.account),
                None,
            )
            .await;
        assert_eq!(s, 200);
        let n = keys["data"].as_array().map_or(0, Vec::len);
        if n != 3 {
            problems.push(format!(
                "{} has {n} keys after the refused calls, not 3: {keys}",
                t.account
            ));
        }
        let (s, ep) = srv
            .get(&format!(
                "/v1/accounts/{}/endpoints/{}",
                t.account, t.ids["endpoint"]
            ))
            .await;
        assert_eq!(s, 200);
        if ep["description"] != format!("{}-desc", t.account) || ep["enabled"] != true {
            problems.push(format!("{}'s endpoint was changed: {ep}", t.account));
        }
    }
    let (s, _) = srv.get("/v1/accounts/iso-new").await;
    assert_eq!(s, 404, "no account was created by an account key");

    assert!(
        problems.is_empty(),
        "tenant isolation failed on {} of {checked} checks:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let account_routes = routes
        .iter()
        .filter(|(_, p)| p.starts_with("/v1/accounts/{account}"))
        .count();
    assert!(
        account_routes >= 30 && checked > account_routes,
        "only {account_routes} account routes and {checked} checks: was the route table read?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_route_is_isolated() {
    every_route_is_isolated(&Server::start(&[]).await).await;
}

/// The generator refuses what it cannot fill in, saying how to add it: a changing route without
/// a body entry, and a path parameter no fixture provides.
#[test]
fn a_route_the_generator_cannot_fill_in_fails_with_instructions() {
    let e = body_for("POST", "/v1/accounts/{account}/widgets").unwrap_err();
    assert!(e.contains("add one to `BODIES`"), "{e}");
    assert_eq!(body_for("GET", "/v1/accounts/{account}/widgets"), Ok(None));
    let t = Tenant {
        account: "a".into(),
        ids: BTreeMap::from([("endpoint", "ep_1".to_owned())]),
        key: String::new(),
        read_only: String::new(),
        secrets: Vec::new(),
    };
    assert_eq!(
        t.path("/v1/accounts/{account}/endpoints/{endpoint}", &t),
        Ok("/v1/accounts/a/endpoints/ep_1".to_owned())
    );
    let e = t
        .path("/v1/accounts/{account}/widgets/{widget}", &t)
        .unwrap_err();
    assert!(
        e.contains("`Tenant::create`") && e.contains("\"widget\""),
        "{e}"
    );
}
