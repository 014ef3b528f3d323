//! Every `PATCH` route is a JSON Merge Patch (RFC 7396): absent fields stay, `null` resets a
//! field to its default, objects merge member by member, required fields cannot be removed, and
//! both `application/merge-patch+json` and `application/json` are accepted. Run here on SQLite,
//! and on PostgreSQL and Redis from their modules.

use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, Server};

/// Sends `body` to `path` as a merge patch, with `content_type`; the status and the answer
/// (read back with GET too, so that what the store kept is checked, not only the answer).
async fn patch_as(srv: &Server, path: &str, content_type: &str, body: Value) -> (u16, Value) {
    let res = srv
        .http
        .patch(srv.url(path))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let answer: Value = res.json().await.unwrap();
    if status == 200 {
        let (s, stored) = srv.get(path).await;
        assert_eq!(s, 200, "{stored}");
        assert_eq!(stored, answer, "the answer is what was stored");
    }
    (status, answer)
}

const MERGE: &str = "application/merge-patch+json";
const JSON: &str = "application/json";

/// The whole scenario, on a server seeded with account `acct`.
pub(crate) async fn merge_patches(srv: &Server) {
    // Accounts and sites: `null` gives the name back its default, the id.
    let (s, a) = patch_as(srv, "/v1/accounts/acct", MERGE, json!({"name": "Main"})).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["name"], "Main");
    let (s, a) = patch_as(srv, "/v1/accounts/acct", JSON, json!({})).await;
    assert_eq!((s, &a["name"]), (200, &json!("Main")), "absent stays");
    let (s, a) = patch_as(srv, "/v1/accounts/acct", MERGE, json!({"name": null})).await;
    assert_eq!((s, &a["name"]), (200, &json!("acct")), "{a}");
    let (s, _) = srv
        .post(
            "/v1/accounts/acct/sites",
            json!({"id": "s1", "name": "One"}),
        )
        .await;
    assert_eq!(s, 201);
    let site = "/v1/accounts/acct/sites/s1";
    let (s, st) = patch_as(srv, site, MERGE, json!({"name": null})).await;
    assert_eq!((s, &st["name"]), (200, &json!("s1")), "{st}");

    // Event types: description, schema and archived reset by `null`.
    let (s, _) = srv
        .post(
            "/v1/event-types",
            json!({"name": "rx.patched", "description": "d", "schema": {"type": "object"}, "archived": true}),
        )
        .await;
    assert_eq!(s, 201);
    let et = "/v1/event-types/rx.patched";
    let (s, e) = patch_as(srv, et, MERGE, json!({"description": "kept"})).await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["schema"], json!({"type": "object"}), "absent stays");
    assert_eq!(e["archived"], true);
    let (s, e) = patch_as(
        srv,
        et,
        MERGE,
        json!({"description": null, "schema": null, "archived": null}),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["description"], "");
    assert!(e.get("schema").is_none_or(Value::is_null), "{e}");
    assert_eq!(e["archived"], false);

    // Endpoints: every optional field reset by `null`, headers merged, the url required.
    let (s, ep) = srv
        .post(
            "/v1/accounts/acct/endpoints",
            json!({
                "url": "https://hooks.example.com/a", "description": "d",
                "eventTypes": ["rx.completed"], "sites": ["s1"],
                "headers": {"x-a": "value-one-000001", "x-b": "value-one-000001", "x-c": "value-one-000001"},
                "rateLimit": 5, "maxConcurrency": 2, "ordered": true, "enabled": false
            }),
        )
        .await;
    assert_eq!(s, 201, "{ep}");
    let path = format!("/v1/accounts/acct/endpoints/{}", ep["id"].as_str().unwrap());
    let (s, e) = patch_as(
        srv,
        &path,
        MERGE,
        json!({"headers": {"X-A": "value-two-000002", "x-b": null, "x-d": "value-four-00004"}}),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(
        e["headers"],
        // Header values are write-only: shown masked, with the last four characters.
        json!({"x-a": "••••0002", "x-c": "••••0001", "x-d": "••••0004"}),
        "set, removed, kept, added"
    );
    assert_eq!(e["description"], "d", "absent stays");
    assert_eq!(e["rateLimit"], 5);
    let (s, p) = patch_as(srv, &path, MERGE, json!({"url": null})).await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["code"], "invalid_body", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("url"), "{p}");
    let (s, e) = patch_as(
        srv,
        &path,
        JSON,
        json!({
            "description": null, "eventTypes": null, "sites": null, "headers": null,
            "rateLimit": null, "maxConcurrency": null, "ordered": null, "enabled": null
        }),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["url"], "https://hooks.example.com/a");
    assert!(e.get("description").is_none_or(Value::is_null), "{e}");
    for empty in ["eventTypes", "sites"] {
        assert!(
            e.get(empty)
                .is_none_or(|v| v.as_array().is_some_and(Vec::is_empty)),
            "{empty}: {e}"
        );
    }
    assert!(
        e.get("headers")
            .is_none_or(|v| v.as_object().is_some_and(|o| o.is_empty())),
        "{e}"
    );
    assert!(e.get("rateLimit").is_none_or(Value::is_null), "{e}");
    assert!(e.get("maxConcurrency").is_none_or(Value::is_null), "{e}");
    assert_eq!(e["ordered"], false);
    assert_eq!(e["enabled"], true);

    // A patch that is not an object (it would replace the whole resource) is refused.
    for not_object in [json!([null, null]), json!(null), json!("x")] {
        let (s, p) = patch_as(srv, et, MERGE, not_object.clone()).await;
        assert_eq!(s, 422, "{not_object}: {p}");
        assert_eq!(p["code"], "invalid_body", "{p}");
    }

    // Another media type is refused.
    let (s, p) = patch_as(srv, "/v1/accounts/acct", "text/plain", json!({"name": "x"})).await;
    assert_eq!(s, 415, "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_routes_are_json_merge_patches() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    merge_patches(&srv).await;
}
