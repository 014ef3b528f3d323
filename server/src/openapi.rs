//! The OpenAPI 3.1 document of the API, generated from the handlers, and the pages that show it.
//!
//! Every route is registered through [`utoipa_axum::router::OpenApiRouter`] with
//! [`utoipa_axum::routes!`], so the router and the document come from the same
//! `#[utoipa::path]` attributes. Each operation lists the problem `code`s it can answer per
//! status ([`problems!`](crate::problems)); the catalogue of every code is `docs/errors.md`,
//! which the document carries as its description.
//!
//! `GET /openapi.json` serves the document; `GET /docs` renders it with a vendored Swagger UI
//! (`server/assets/swagger-ui`, embedded in the binary) under a Content-Security-Policy that
//! allows only `'self'`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The security scheme of the admin key.
pub const ADMIN_KEY: &str = "adminKey";
/// The security scheme of an account key.
pub const ACCOUNT_KEY: &str = "accountKey";

/// What the error catalogue says; the document's description.
const ERRORS_MD: &str = include_str!("../../docs/errors.md");

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Hookline API",
        description = "Webhook delivery: accounts, their endpoints, the event catalog, events and deliveries.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(crate::metrics::admin_metrics),
    components(schemas(Problem)),
    modifiers(&Document),
    tags(
        (name = "accounts", description = "Accounts (tenants) and their sites."),
        (name = "keys", description = "API keys: the admin's and each account's; list, issue, revoke."),
        (name = "audit", description = "Who changed what, and when."),
        (name = "event-types", description = "The deployment's event catalog."),
        (name = "endpoints", description = "An account's webhook endpoints, their secrets and operations."),
        (name = "events", description = "Publishing events and looking them up."),
        (name = "deliveries", description = "Deliveries of events to endpoints, and their attempts."),
        (name = "meta", description = "Health, readiness and this document."),
    )
)]
struct ApiDoc;

/// Adds what the derive cannot say: the security schemes and the error catalogue.
struct Document;

impl Modify for Document {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hk_…")
                    .description(Some(
                        "The admin key (`HOOKLINE_ADMIN_KEY`, or the one shown once at first \
                         start): may do everything.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ACCOUNT_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("hk_…")
                    .description(Some(
                        "An account key (`POST /v1/accounts/{account}/keys`): reaches only its \
                         own account, and reads the event catalog. A read-only key (of either \
                         kind) changes nothing: every changing operation answers it \
                         `read_only_key`.",
                    ))
                    .build(),
            ),
        );
        for (status, code, name) in SHARED {
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(problem_response(*status, &[code])),
            );
        }
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let lead = doc.info.description.take().unwrap_or_default();
        doc.info.description = Some(format!(
            "{lead}\n\nEvery request under `/v1` sends `Authorization: Bearer <key>`; each \
             operation names the keys it accepts. Errors are `{PROBLEM_JSON}` documents with a \
             stable `code`; each operation lists, per status, the codes it can answer.\n\n{}",
            ERRORS_MD
                .trim_start_matches("# Error catalogue")
                .trim_start()
        ));
    }
}

/// The router of every route, with the document built from the same attributes.
pub fn router(max_event_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::api::routes(max_event_bytes))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page))
        .routes(routes!(docs_asset))
}

/// The OpenAPI document, as `GET /openapi.json` serves it.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| router(0).split_for_parts().1)
}

fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().unwrap_or_default())
}

/// The problem responses of an operation, from `(status, codes)` sets (merged by status).
pub fn problem_responses(sets: &[&[(u16, &[&str])]]) -> BTreeMap<String, RefOr<ApiResponse>> {
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (status, codes) in sets.iter().flat_map(|s| s.iter()) {
        let entry = by_status.entry(*status).or_default();
        for c in *codes {
            if !entry.contains(c) {
                entry.push(c);
            }
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| {
            let shared = SHARED
                .iter()
                .find(|(s, code, _)| *s == status && codes == [*code]);
            let response = match shared {
                Some((_, _, name)) => RefOr::Ref(Ref::from_response_name(*name)),
                None => RefOr::T(problem_response(status, &codes)),
            };
            (status.to_string(), response)
        })
        .collect()
}

/// Problem responses that many operations share, kept once under `components/responses`.
const SHARED: &[(u16, &str, &str)] = &[
    (401, "unauthorized", "Unauthorized"),
    (429, "rate_limited", "RateLimited"),
    (500, "internal", "Internal"),
    (503, "store_unavailable", "StoreUnavailable"),
];

/// A problem response of `status` whose `code` is one of `codes`.
fn problem_response(status: u16, codes: &[&str]) -> ApiResponse {
    let listed = codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let schema: Schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Problem"))
        .item(
            ObjectBuilder::new()
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .enum_values(Some([status])),
                )
                .property(
                    "code",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(codes.iter().copied())),
                ),
        )
        .into();
    let mut response = ResponseBuilder::new()
        .description(format!("{reason}: {listed} (see the error catalogue)."))
        .content(
            PROBLEM_JSON,
            ContentBuilder::new().schema(Some(schema)).build(),
        );
    if status == 429 || status == 503 {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                )
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build()
}

/// Declares a type whose `utoipa::IntoResponses` are the problem responses of an operation:
/// `problems!(Name = [SET, SET, &[(422, &["code"])]]);`.
#[macro_export]
#[doc(hidden)]
macro_rules! problems {
    ($name:ident = [$($set:expr),* $(,)?]) => {
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::openapi::problem_responses(&[$($set),*])
            }
        }
    };
}

/// One status and the codes it carries.
pub type Codes = &'static [(u16, &'static [&'static str])];

/// Every route under `/v1`: the key is checked first, and the store may fail.
pub const AUTH: Codes = &[
    (401, &["unauthorized"]),
    (429, &["rate_limited"]),
    (500, &["internal"]),
    (503, &["store_unavailable"]),
];
/// Routes only the admin key may use.
pub const ADMIN: Codes = &[(403, &["forbidden"])];
/// Routes under `/v1/accounts/{account}`.
pub const ACCOUNT: Codes = &[
    (400, &["invalid_id"]),
    (403, &["forbidden"]),
    (404, &["account_not_found"]),
];
/// Routes that change something: a read-only key is refused.
pub const WRITE: Codes = &[(403, &["read_only_key"])];
/// Routes with a JSON request body.
pub const JSON_BODY: Codes = &[
    (400, &["malformed_json", "invalid_body"]),
    (413, &["payload_too_large"]),
    (415, &["unsupported_media_type"]),
    (422, &["invalid_body"]),
];
/// Routes taking `limit` and `cursor`.
pub const PAGING: Codes = &[(400, &["invalid_query", "invalid_limit", "invalid_cursor"])];
/// Routes that check free text (names, descriptions).
pub const TEXT: Codes = &[(422, &["field_too_long", "invalid_text"])];
/// Routes that change something a concurrent request may have removed meanwhile.
pub const GONE: Codes = &[(404, &["not_found"])];

problems!(HealthProblems = []);
problems!(ReadyProblems = [&[(500, &["internal"]), (503, &["store_unavailable"])]]);
problems!(AssetProblems = [&[(400, &["invalid_id"]), (404, &["route_not_found"])]]);

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "meta", operation_id = "healthz",
    responses((status = 200, description = "The process is up.", body = String, content_type = "text/plain", example = "ok"), HealthProblems))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "meta", operation_id = "readyz",
    responses((status = 200, description = "The store answers.", body = String, content_type = "text/plain", example = "ready"), ReadyProblems))]
async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.store().next_due().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object), HealthProblems))]
async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document_json(),
    )
        .into_response()
}

/// The Content-Security-Policy of `/docs`: only this origin, no inline script or style.
const DOCS_CSP: &str = "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// A vendored file of the documentation page, with its media type.
fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    Some(match name {
        "index.html" => (
            "text/html; charset=utf-8",
            include_bytes!("../assets/swagger-ui/index.html").as_slice(),
        ),
        "init.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/swagger-ui/init.js").as_slice(),
        ),
        "swagger-ui-bundle.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js").as_slice(),
        ),
        "swagger-ui.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../assets/swagger-ui/swagger-ui.css").as_slice(),
        ),
        _ => return None,
    })
}

fn serve_asset(name: &str) -> Response {
    match asset(name) {
        Some((media_type, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(media_type)),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(DOCS_CSP),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                ),
            ],
            body,
        )
            .into_response(),
        None => ApiError::not_found("route_not_found", "no such file").into_response(),
    }
}

/// The API reference: this document rendered by Swagger UI (vendored, no CDN).
#[utoipa::path(get, path = "/docs", tag = "meta", operation_id = "docs",
    responses((status = 200, description = "The HTML page.", body = String, content_type = "text/html"), HealthProblems))]
async fn docs_page() -> Response {
    serve_asset("index.html")
}

/// A file of the `/docs` page.
#[utoipa::path(get, path = "/docs/{asset}", tag = "meta", operation_id = "docsAsset",
    params(("asset" = String, Path, description = "`swagger-ui-bundle.js`, `swagger-ui.css`, `init.js` or `index.html`.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/javascript"), (String = "text/css"), (String = "text/html"))),
        AssetProblems))]
async fn docs_asset(crate::api::Path(name): crate::api::Path<String>) -> Response {
    serve_asset(&name)
}
