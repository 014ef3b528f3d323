//! JSON Schema validation of event data: schemas checked when written, events (single and in
//! batches) refused with their violations, a changed schema taking effect at once. Run here on
//! SQLite, and on PostgreSQL and Redis from their modules.

use serde_json::{Value, json};

use crate::support::Server;

const EVENTS: &str = "/v1/accounts/acct/events";
const BATCH: &str = "/v1/accounts/acct/events/batch";

/// The schema of `rx.dispensed` in these tests.
fn dispensed_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["patientId", "din"],
        "properties": {
            "patientId": {"type": "string"},
            "din": {"type": "string", "pattern": "^[0-9]{8}$"},
            "qty": {"type": "integer", "minimum": 1},
            "lines": {"type": "array", "items": {"type": "integer"}}
        }
    })
}

/// The pointers of a problem's violations.
fn pointers(problem: &Value) -> Vec<String> {
    problem["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations: {problem}"))
        .iter()
        .map(|v| {
            assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
            v["pointer"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// How many events of the account carry `queue_id`.
async fn stored(srv: &Server, queue_id: &str) -> usize {
    let (s, page) = srv
        .get(&format!("{EVENTS}?queueId={queue_id}&limit=250"))
        .await;
    assert_eq!(s, 200, "{page}");
    page["data"].as_array().unwrap().len()
}

/// The whole scenario, on a server seeded with account `acct`.
pub(crate) async fn validation(srv: &Server) {
    // Schemas that are not JSON Schema are refused, at creation and at update.
    for bad in [
        json!(3),
        json!({"type": "nothing"}),
        json!({"type": "string", "pattern": "(unclosed"}),
        json!({"$ref": "https://schemas.example.com/remote.json"}),
    ] {
        let (s, p) = srv
            .post(
                "/v1/event-types",
                json!({"name": "rx.bad", "description": "", "schema": bad}),
            )
            .await;
        assert_eq!(s, 422, "{bad}: {p}");
        assert_eq!(p["code"], "invalid_schema", "{p}");
    }
    let (s, _) = srv.get("/v1/event-types/rx.bad").await;
    assert_eq!(s, 404, "a refused event type is not stored");
    let (s, et) = srv
        .post(
            "/v1/event-types",
            json!({"name": "rx.dispensed", "description": "", "schema": dispensed_schema()}),
        )
        .await;
    assert_eq!(s, 201, "{et}");
    let (s, p) = srv
        .patch(
            "/v1/event-types/rx.dispensed",
            json!({"schema": {"minimum": "one"}}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["code"], "invalid_schema", "{p}");

    // Valid data is accepted.
    let valid = json!({"patientId": "p_77", "din": "02242903", "qty": 2});
    let (s, r) = srv
        .post(
            EVENTS,
            json!({"event": "rx.dispensed", "queueId": "ok", "data": valid}),
        )
        .await;
    assert_eq!(s, 202, "{r}");

    // Invalid data: every violation with its pointer, nothing stored.
    let (s, p) = srv
        .post(
            EVENTS,
            json!({"event": "rx.dispensed", "queueId": "bad", "data": {"patientId": 7, "din": "x", "qty": 0}}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["code"], "invalid_data", "{p}");
    let mut at = pointers(&p);
    at.sort();
    assert_eq!(at, ["/din", "/patientId", "/qty"], "{p}");
    assert!(p.get("index").is_none(), "{p}");
    let (s, p) = srv
        .post(
            EVENTS,
            json!({"event": "rx.dispensed", "queueId": "bad", "data": {"din": "02242903"}}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(
        pointers(&p),
        [""],
        "a missing property is reported on its parent"
    );

    // At most 10 violations.
    let lines: Vec<String> = (0..25).map(|i| format!("l{i}")).collect();
    let (s, p) = srv
        .post(
            EVENTS,
            json!({"event": "rx.dispensed", "queueId": "bad", "data": {"patientId": "p", "din": "02242903", "lines": lines}}),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    let at = pointers(&p);
    assert_eq!(at.len(), 10, "{p}");
    assert!(at.iter().all(|a| a.starts_with("/lines/")), "{p}");
    assert_eq!(stored(srv, "bad").await, 0);

    // A batch with one invalid event is refused whole, naming its index.
    let (s, p) = srv
        .post(
            BATCH,
            json!([
                {"event": "rx.dispensed", "queueId": "batch", "data": valid},
                {"event": "rx.completed", "queueId": "batch", "data": {"any": "thing"}},
                {"event": "rx.dispensed", "queueId": "batch", "data": {"patientId": "p_1", "din": 2242903}},
            ]),
        )
        .await;
    assert_eq!(s, 422, "{p}");
    assert_eq!(p["code"], "invalid_data", "{p}");
    assert_eq!(p["index"], 2, "{p}");
    assert_eq!(pointers(&p), ["/din"], "{p}");
    assert!(p["detail"].as_str().unwrap().contains("event 2"), "{p}");
    assert_eq!(stored(srv, "batch").await, 0, "nothing of the batch stored");

    // A changed schema applies to the next event; a removed one accepts anything again.
    let mut stricter = dispensed_schema();
    stricter["required"] = json!(["patientId", "din", "qty"]);
    let (s, et) = srv
        .patch("/v1/event-types/rx.dispensed", json!({"schema": stricter}))
        .await;
    assert_eq!(s, 200, "{et}");
    let no_qty = json!({"patientId": "p_77", "din": "02242903"});
    let (s, p) = srv
        .post(
            EVENTS,
            json!({"event": "rx.dispensed", "queueId": "later", "data": no_qty}),
        )
        .await;
    assert_eq!(s, 422, "the new version applies: {p}");
    let (s, et) = srv
        .patch("/v1/event-types/rx.dispensed", json!({"schema": null}))
        .await;
    assert_eq!(s, 200, "{et}");
    assert!(et.get("schema").is_none() || et["schema"].is_null(), "{et}");
    let (s, r) = srv
        .post(
            EVENTS,
            json!({"event": "rx.dispensed", "queueId": "later", "data": {"anything": true}}),
        )
        .await;
    assert_eq!(s, 202, "no schema, no check: {r}");
    assert_eq!(stored(srv, "ok").await, 1);
    assert_eq!(stored(srv, "later").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_data_is_validated_against_the_type_schema() {
    let srv = Server::start(&[]).await;
    srv.seed("acct").await;
    validation(&srv).await;
}
