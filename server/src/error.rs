//! The API's one error type: `application/problem+json` with a stable machine-readable `code`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookline_core::service::{ServiceError, Violation};
use hookline_core::store::StoreError;
use serde::Serialize;

/// An API error. The `code` is stable; `detail` is for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    /// For answers where the request may or may not have taken effect: `unknown`; for a 503
    /// known to have changed nothing: `not_applied`.
    outcome: Option<&'static str>,
    /// For `invalid_data` against a JSON Schema: where and how `data` breaks it.
    violations: Vec<Violation>,
    /// For a refused item of a batch: its position, from 0.
    index: Option<usize>,
}

/// An error answer (RFC 9457), `application/problem+json`. Its `code` is stable and listed in the
/// error catalogue.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "https://hookline.dev/problems/unknown_event_type",
    "title": "Unprocessable Entity",
    "status": 422,
    "code": "unknown_event_type",
    "detail": "no event type `rx.nope` in the catalog"
}))]
pub struct Problem<'a> {
    /// `https://hookline.dev/problems/<code>`: an identifier of the problem kind (see the error
    /// catalogue, where each code has its own entry).
    #[serde(rename = "type")]
    kind: String,
    /// The HTTP status's reason phrase.
    title: &'a str,
    /// The HTTP status.
    status: u16,
    /// The stable machine-readable code.
    code: &'a str,
    /// What was wrong, for people.
    detail: &'a str,
    /// On 500 and 503 answers, whether the request took effect: `not_applied` (nothing was
    /// changed) or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(not_applied|unknown)$")]
    outcome: Option<&'a str>,
    /// For an event whose `data` breaks its type's JSON Schema (`invalid_data`): up to 10
    /// violations, each with the JSON pointer (RFC 6901) of the offending part of `data`.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    #[schema(value_type = Option<Vec<Violation>>, max_items = 10)]
    violations: &'a [Violation],
    /// For a refused batch: the position (from 0) of the event that was refused; nothing of the
    /// batch was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    index: Option<usize>,
}

impl ApiError {
    /// An error with `status`, stable `code` and a human `detail`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            outcome: None,
            violations: Vec::new(),
            index: None,
        }
    }

    /// Says whether the request took effect: `unknown` or `not_applied`.
    pub fn with_outcome(mut self, outcome: &'static str) -> Self {
        self.outcome = Some(outcome);
        self
    }

    /// 400 `invalid_request`-style errors.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 422: the request parsed but its content is not acceptable.
    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 404 with a `<what>_not_found` code.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    /// 409.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    /// 401: no or unknown key.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: the key may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Problem {
            kind: format!("https://hookline.dev/problems/{}", self.code),
            title: self.title(),
            status: self.status.as_u16(),
            code: self.code,
            detail: &self.detail,
            outcome: self.outcome,
            violations: &self.violations,
            index: self.index,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut res = (self.status, bytes).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        res
    }
}

/// The HTTP status of a façade error.
fn status_of(e: &ServiceError) -> StatusCode {
    match e {
        ServiceError::NotFound { .. } => StatusCode::NOT_FOUND,
        ServiceError::Invalid { .. } | ServiceError::DataViolations { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ServiceError::BadRequest { .. } => StatusCode::BAD_REQUEST,
        ServiceError::Forbidden { .. } | ServiceError::ReadOnly { .. } => StatusCode::FORBIDDEN,
        ServiceError::Conflict { .. } => StatusCode::CONFLICT,
        ServiceError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::InBatch { error, .. } => status_of(error),
        ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let status = status_of(&e);
        if status.is_server_error() {
            tracing::error!(error = %e, source = ?std::error::Error::source(&e), "request failed");
        }
        let outcome = match &e {
            ServiceError::Unavailable(_) | ServiceError::Internal(_) if e.changed_nothing() => {
                Some("not_applied")
            }
            ServiceError::Unavailable(_) | ServiceError::Internal(_) => Some("unknown"),
            _ => None,
        };
        let mut err = Self::new(status, e.code(), e.to_string());
        err.outcome = outcome;
        let mut inner = &e;
        if let ServiceError::InBatch { index, error } = &e {
            err.index = Some(*index);
            err.detail = format!("event {index} of the batch: {error}; nothing was stored");
            inner = error;
        }
        if let ServiceError::DataViolations { violations, .. } = inner {
            err.violations = violations.clone();
        }
        err
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

/// Whether `e`, or an error it wraps, is a request body that stopped arriving for longer than
/// the body-read timeout.
fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

impl ApiError {
    /// `408 request_timeout` for a body that stopped arriving.
    fn body_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body stopped arriving for longer than the server waits; nothing was \
             done: send it again",
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        if is_body_timeout(&r) {
            return Self::body_timeout();
        }
        match &r {
            JsonRejection::JsonDataError(e) => Self::unprocessable("invalid_body", body_text(e)),
            JsonRejection::JsonSyntaxError(e) => Self::bad_request("malformed_json", body_text(e)),
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send `content-type: application/json`",
            ),
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the limit",
            ),
            _ => Self::bad_request("invalid_body", r.body_text()),
        }
    }
}

/// The most precise message of a JSON rejection: the innermost cause that says where and what
/// (`missing field \`since\` at line 1 column 2`), prefixed by the field path when the layer
/// above names one, each message once.
fn body_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = vec![e.to_string()];
    let mut src = e.source();
    while let Some(inner) = src {
        chain.push(inner.to_string());
        src = inner.source();
    }
    // Each layer tends to repeat the one below it (`path: message`, then `message`): keep the
    // deepest message, and the layer above it when that one adds a path in front.
    let deepest = chain.pop().unwrap_or_default();
    match chain.pop() {
        Some(above) if above != deepest && above.ends_with(&deepest) => above,
        _ => deepest,
    }
}

/// Gives a problem+json body to error responses that the HTTP layers produce without one: 405
/// from the router, 408 from the request timeout, 413 from the body limit and any other status
/// that middleware answers on its own. Responses that already carry a body type are left alone.
pub async fn problem_for_bare_errors<B>(res: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res.map(axum::body::Body::new);
    }
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not answer to that method",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took longer than the server allows; whether it took effect is unknown: \
             retry with the same Idempotency-Key",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is larger than the limit",
        ),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request URI is too long"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "the request headers are too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send `content-type: application/json`",
        ),
        StatusCode::NOT_FOUND => ("route_not_found", "no such route"),
        StatusCode::SERVICE_UNAVAILABLE => {
            ("unavailable", "the server cannot answer now; retry later")
        }
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("bad_request", "the request was refused"),
    };
    let mut problem = ApiError::new(status, code, detail);
    if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        problem = problem.with_outcome("unknown");
    }
    let mut problem = problem.into_response();
    for (name, value) in res.headers() {
        if name != header::CONTENT_LENGTH && !problem.headers().contains_key(name) {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        Self::bad_request("invalid_id", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(r: axum::extract::rejection::BytesRejection) -> Self {
        if is_body_timeout(&r) {
            Self::body_timeout()
        } else if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the limit",
            )
        } else {
            Self::bad_request("invalid_body", r.body_text())
        }
    }
}

impl ApiError {
    /// A request body that is not the JSON expected: `malformed_json` (400) when it is not
    /// JSON, `invalid_body` (422) when it is JSON of the wrong shape, as with JSON extractors.
    pub fn from_json(e: serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => Self::unprocessable("invalid_body", e.to_string()),
            _ => Self::bad_request("malformed_json", e.to_string()),
        }
    }
}

/// The result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn problem_of(res: Response) -> (StatusCode, serde_json::Value) {
        let status = res.status();
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn bare_error_statuses_become_problems() {
        for (status, code) in [
            (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            (StatusCode::URI_TOO_LONG, "uri_too_long"),
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            (StatusCode::BAD_GATEWAY, "internal"),
            (StatusCode::IM_A_TEAPOT, "bad_request"),
        ] {
            let mut bare = status.into_response();
            bare.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            let mapped = problem_for_bare_errors(bare).await;
            assert_eq!(mapped.headers()["retry-after"], "1", "headers are kept");
            let (got, body) = problem_of(mapped).await;
            assert_eq!(got, status);
            assert_eq!(body["code"], code, "{status}");
            assert_eq!(body["status"], status.as_u16());
            assert!(!body["detail"].as_str().unwrap().is_empty());
        }
        let timeout =
            problem_of(problem_for_bare_errors(StatusCode::REQUEST_TIMEOUT.into_response()).await)
                .await
                .1;
        assert!(
            timeout["detail"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "a timeout does not claim nothing happened"
        );
    }

    #[tokio::test]
    async fn responses_with_a_body_type_are_left_alone() {
        let own = ApiError::conflict("endpoint_exists", "x").into_response();
        let out = problem_for_bare_errors(own).await;
        let (_, body) = problem_of(out).await;
        assert_eq!(body["code"], "endpoint_exists");
        let ok = problem_for_bare_errors(StatusCode::OK.into_response()).await;
        assert!(!ok.headers().contains_key(header::CONTENT_TYPE));
    }
}
