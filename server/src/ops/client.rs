//! The operator commands' HTTP client: the JSON API, its problem documents and its pages.

use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, header};
use serde_json::Value;
use url::Url;

/// Rows per page when a command follows every page.
pub(crate) const MAX_PAGE: usize = 250;

/// A problem document (`application/problem+json`) the API answered with.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    /// The status's name, e.g. `Not Found`.
    pub(crate) title: String,
    /// What went wrong, for people.
    pub(crate) detail: String,
    /// The stable machine-readable code, e.g. `endpoint_not_found`.
    pub(crate) code: String,
}

impl Problem {
    /// The problem of a non-2xx answer: its problem document, or (from something that is not
    /// the API, such as a proxy) the status and the start of the body.
    fn from_answer(status: reqwest::StatusCode, body: &[u8]) -> Self {
        let title = status.canonical_reason().unwrap_or("Error").to_owned();
        let doc: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            doc.as_ref()
                .and_then(|d| d.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match field("code") {
            Some(code) => Self {
                title: field("title").unwrap_or(title),
                detail: field("detail").unwrap_or_default(),
                code,
            },
            None => {
                let text = String::from_utf8_lossy(body);
                let detail: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                Self {
                    title,
                    detail: detail.chars().take(200).collect(),
                    code: format!("http_{}", status.as_u16()),
                }
            }
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{} ({})", self.title, self.code)
        } else {
            write!(f, "{}: {} ({})", self.title, self.detail, self.code)
        }
    }
}

impl std::error::Error for Problem {}

/// Why one item of a bulk command failed: the API's code and detail, or the transport error.
pub(crate) fn reason(e: &anyhow::Error) -> (String, String) {
    match e.downcast_ref::<Problem>() {
        Some(p) => (p.code.clone(), p.detail.clone()),
        None => ("request_failed".to_owned(), format!("{e:#}")),
    }
}

/// A client of one Hookline API with one key.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: Url,
    key: String,
}

impl Api {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8080`) using `key`.
    pub(crate) fn new(base: Url, key: String) -> anyhow::Result<Self> {
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("--url {base} is not an http(s) URL");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("hookline-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base, key })
    }

    /// The URL of `segments` (each percent-encoded) under the base URL, with `query`.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// `POST` of a JSON body with an optional `Idempotency-Key`: the JSON answer.
    pub(crate) async fn send_keyed(
        &self,
        segments: &[&str],
        body: &[u8],
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Option<Value>> {
        let headers: Vec<(&str, &str)> = idempotency_key
            .map(|k| ("idempotency-key", k))
            .into_iter()
            .collect();
        self.request(Method::POST, segments, &[], Some(body), &headers)
            .await
    }

    /// Sends one request; a 2xx answer's JSON body (`None` when empty), any other answer a
    /// [`Problem`].
    pub(crate) async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<Option<Value>> {
        self.request(method, segments, query, body, &[]).await
    }

    async fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Option<Value>> {
        let url = self.url(segments, query);
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(&self.key)
            .header(header::ACCEPT, "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = res.status();
        let bytes = res
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        if !status.is_success() {
            return Err(Problem::from_answer(status, &bytes).into());
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let v = serde_json::from_slice(&bytes)
            .with_context(|| format!("the answer to {method} {url} is not JSON"))?;
        Ok(Some(v))
    }

    /// `GET`: the JSON answer.
    pub(crate) async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<Value> {
        Ok(self
            .send(Method::GET, segments, query, None)
            .await?
            .unwrap_or(Value::Null))
    }

    /// `POST` of a JSON value: the JSON answer.
    pub(crate) async fn post(&self, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        let bytes = serde_json::to_vec(body)?;
        Ok(self
            .send(Method::POST, segments, &[], Some(&bytes))
            .await?
            .unwrap_or(Value::Null))
    }

    /// One page of a list: its rows and the cursor of the next page.
    pub(crate) async fn page(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<(Vec<Value>, Option<String>)> {
        let mut v = self.get(segments, query).await?;
        let rows = match v.get_mut("data").map(Value::take) {
            Some(Value::Array(rows)) => rows,
            _ => anyhow::bail!("the answer to GET {} is not a list", segments.join("/")),
        };
        let next = v
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((rows, next))
    }

    /// Every row of a list, following its pages (`query` without `limit` or `cursor`).
    pub(crate) async fn all(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<Vec<Value>> {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            q.push(("limit", MAX_PAGE.to_string()));
            if let Some(c) = cursor.take() {
                q.push(("cursor", c));
            }
            let (page, next) = self.page(segments, &q).await?;
            rows.extend(page);
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok(rows),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_is_one_line_with_its_code() {
        let body = br#"{"type":"x","title":"Not Found","status":404,"code":"endpoint_not_found","detail":"no endpoint ep_1"}"#;
        let p = Problem::from_answer(reqwest::StatusCode::NOT_FOUND, body);
        assert_eq!(
            p.to_string(),
            "Not Found: no endpoint ep_1 (endpoint_not_found)"
        );
        let p = Problem::from_answer(
            reqwest::StatusCode::BAD_GATEWAY,
            b"<html>\n bad\n gateway</html>",
        );
        assert_eq!(
            p.to_string(),
            "Bad Gateway: <html> bad gateway</html> (http_502)"
        );
    }

    #[test]
    fn path_segments_are_encoded_under_the_base_path() {
        let api = Api::new(Url::parse("http://h:1/prefix/").unwrap(), "k".into()).unwrap();
        let url = api.url(
            &["v1", "accounts", "a b/c"],
            &[("since", "2026-01-01T00:00:00Z".into())],
        );
        assert_eq!(
            url.as_str(),
            "http://h:1/prefix/v1/accounts/a%20b%2Fc?since=2026-01-01T00%3A00%3A00Z"
        );
    }
}
