//! The dashboard over plain HTTP: portal links, sessions, CSRF and Origin checks, the security
//! headers, account isolation and read-only sessions. (The browser flows are in `browser.rs`.)

use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode};
use serde_json::json;

use crate::support::{ADMIN_KEY, Server};

/// A cookie-carrying client of the dashboard.
pub(crate) struct Dash {
    base: String,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

/// The value of the first `name="_csrf"` field of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"_csrf\" value=\"").expect("a CSRF field") + 20;
    html[at..].split('"').next().unwrap().to_owned()
}

impl Dash {
    pub(crate) fn new(srv: &Server) -> Self {
        Self {
            base: srv.base.clone(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn keep_cookies(&mut self, res: &Response) {
        for v in res.headers().get_all("set-cookie") {
            let c = cookie_pair(v.to_str().unwrap());
            self.cookies.retain(|(n, _)| *n != c.0);
            if !c.1.is_empty() {
                self.cookies.push(c);
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(crate) async fn get(
        &mut self,
        path: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    }

    /// Posts a form with `fields`, sent from `origin` (this server's when `None`).
    pub(crate) async fn post_from(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, String, String) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("origin", origin.unwrap_or(&self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, location, res.text().await.unwrap())
    }

    pub(crate) async fn post(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        self.post_from(path, fields, None).await
    }

    /// Signs in with `key`.
    pub(crate) async fn sign_in(&mut self, key: &str) -> (StatusCode, String, String) {
        let (_, _, page) = self.get("/ui/login").await;
        let token = csrf_of(&page);
        self.post("/ui/login", &[("key", key), ("_csrf", &token)])
            .await
    }
}

fn cookie_pair(set_cookie: &str) -> (String, String) {
    let first = set_cookie.split(';').next().unwrap();
    let (n, v) = first.split_once('=').unwrap();
    (n.trim().to_owned(), v.trim().to_owned())
}

async fn portal_link(srv: &Server, account: &str, body: serde_json::Value) -> String {
    let (s, b) = srv
        .post(&format!("/v1/accounts/{account}/portal-sessions"), body)
        .await;
    assert_eq!(s, 201, "{b}");
    b["url"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_signs_in_with_a_form_and_forms_need_the_csrf_token_and_origin() {
    let srv = Server::start(&[]).await;
    let mut d = Dash::new(&srv);

    // Unsigned: redirected to the form; the form sets the security headers.
    let (s, h, _) = d.get("/ui/accounts").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/ui/login");
    let (s, h, page) = d.get("/ui/login").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("default-src 'self'")
    );
    assert!(!page.contains("<script>"), "no inline script");
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // A wrong key is refused; the right one starts a session.
    let (s, _, page) = d.sign_in("hk_wrong").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(page.contains("not the admin API key"));
    let (s, to, _) = d.sign_in(ADMIN_KEY).await;
    assert_eq!((s, to.as_str()), (StatusCode::SEE_OTHER, "/ui/accounts"));
    let (s, _, page) = d.get("/ui/accounts").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("No accounts yet"), "empty state");
    let token = csrf_of(&page);

    // Without the token, with a stale one, or from another origin: refused, nothing created.
    let (s, _, _) = d.post("/ui/accounts", &[("id", "acme")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = d
        .post("/ui/accounts", &[("id", "acme"), ("_csrf", "x")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = d
        .post_from(
            "/ui/accounts",
            &[("id", "acme"), ("_csrf", &token)],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(srv.get("/v1/accounts/acme").await.0, 404);

    // With both: created. A refusal shows the API's code next to the field.
    let (s, to, _) = d
        .post(
            "/ui/accounts",
            &[("id", "acme"), ("name", "Acme"), ("_csrf", &token)],
        )
        .await;
    assert_eq!(
        (s, to.as_str()),
        (StatusCode::SEE_OTHER, "/ui/accounts/acme/endpoints")
    );
    assert_eq!(srv.get("/v1/accounts/acme").await.0, 200);
    // The audit log names the session (by a public id, never its cookie) as who created it.
    let (s, audit) = srv.get("/v1/accounts/acme/audit").await;
    assert_eq!(s, 200, "{audit}");
    let entry = &audit["data"][0];
    assert_eq!(entry["action"], "account.created", "{audit}");
    assert_eq!(entry["actor"]["type"], "session", "{audit}");
    let session_id = entry["actor"]["id"].as_str().unwrap_or_default();
    assert!(session_id.starts_with("ses_"), "{audit}");
    let cookie = d.cookie_header();
    assert!(
        !cookie.contains(&session_id[4..]),
        "the cookie is not in the log"
    );
    let (s, _, page) = d
        .post("/ui/accounts", &[("id", "acme"), ("_csrf", &token)])
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("account_exists"), "{page}");

    // Sign-out ends the session.
    let (s, _, _) = d.post("/ui/logout", &[("_csrf", &token)]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, h, _) = d.get("/ui/accounts").await;
    assert_eq!(
        (s, h["location"].to_str().unwrap()),
        (StatusCode::SEE_OTHER, "/ui/login")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled() {
    let srv = Server::start(&[]).await;
    let mut d = Dash::new(&srv);
    for _ in 0..5 {
        assert_eq!(d.sign_in("hk_wrong").await.0, StatusCode::UNAUTHORIZED);
    }
    // Even the right key waits now.
    let (s, _, page) = d.sign_in(ADMIN_KEY).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Too many failed sign-ins"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_links_open_once_and_see_only_their_account() {
    let srv = Server::start(&[]).await;
    srv.seed("acct-a").await;
    let (s, _) = srv.post("/v1/accounts", json!({"id": "acct-b"})).await;
    assert_eq!(s, 201);
    let (_, ep_b) = srv
        .post(
            "/v1/accounts/acct-b/endpoints",
            json!({"url": "http://127.0.0.1:9/b"}),
        )
        .await;
    let ep_b = ep_b["id"].as_str().unwrap().to_owned();

    // The API: an account key may ask for its own account only; bad input has codes.
    let (_, key) = srv.post("/v1/accounts/acct-a/keys", json!({})).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let (s, b) = srv
        .call_as(
            &key,
            reqwest::Method::POST,
            "/v1/accounts/acct-b/portal-sessions",
            Some(json!({})),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")));
    let (s, b) = srv
        .post(
            "/v1/accounts/acct-a/portal-sessions",
            json!({"expiresIn": 5}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (422, Some("invalid_expiry")));
    let (s, b) = srv
        .post(
            "/v1/accounts/acct-a/portal-sessions",
            json!({"site": "nope"}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("site_not_found")));
    let (s, b) = srv
        .call_as(
            &key,
            reqwest::Method::POST,
            "/v1/accounts/acct-a/portal-sessions",
            Some(json!({"expiresIn": 60})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let link = b["url"].as_str().unwrap().to_owned();
    assert!(link.starts_with("/ui/portal/"), "{link}");

    // Opened once: a session of acct-a.
    let mut d = Dash::new(&srv);
    let (s, h, page) = d.get(&link).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(h["set-cookie"].to_str().unwrap().contains("hl_session="));
    let (s, _, page) = d.get("/ui/accounts/acct-a/endpoints").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("New endpoint"));
    // Reused: refused.
    let (s, _, _) = Dash::new(&srv).get(&link).await;
    assert_eq!(s, StatusCode::GONE);

    // Everything of acct-b, and the operator's pages, are 404 to it.
    for path in [
        "/ui/accounts/acct-b/endpoints".to_owned(),
        format!("/ui/accounts/acct-b/endpoints/{ep_b}"),
        "/ui/accounts/acct-b/events".to_owned(),
        "/ui/accounts/acct-b/sites".to_owned(),
        "/ui/accounts/acct-b/keys".to_owned(),
        "/ui/accounts".to_owned(),
        "/ui/catalog".to_owned(),
        "/ui/health".to_owned(),
    ] {
        let (s, _, _) = d.get(&path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, _, page) = d.get("/ui/accounts/acct-a/endpoints").await;
    let token = csrf_of(&page);
    let (s, _, _) = d
        .post(
            &format!("/ui/accounts/acct-b/endpoints/{ep_b}/disable"),
            &[("_csrf", &token)],
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, ep) = srv
        .get(&format!("/v1/accounts/acct-b/endpoints/{ep_b}"))
        .await;
    assert_eq!(ep["enabled"], true, "untouched");

    // A read-only session gets no form that changes anything, and its posts are refused.
    let link = portal_link(&srv, "acct-a", json!({"readOnly": true})).await;
    let mut ro = Dash::new(&srv);
    assert_eq!(ro.get(&link).await.0, StatusCode::OK);
    for path in [
        "/ui/accounts/acct-a/endpoints",
        "/ui/accounts/acct-a/events",
        "/ui/accounts/acct-a/sites",
    ] {
        let (s, _, page) = ro.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        let posts: Vec<&str> = page
            .match_indices("method=\"post\"")
            .map(|(i, _)| &page[i..])
            .collect();
        assert!(
            posts
                .iter()
                .all(|p| p.contains("action=\"/ui/logout\"") && p.find("action=").unwrap() < 40),
            "{path} has forms besides sign-out: {page}"
        );
    }
    let token = csrf_of(&ro.get("/ui/accounts/acct-a/endpoints").await.2);
    let (s, _, _) = ro
        .post(
            "/ui/accounts/acct-a/sites",
            &[("id", "s1"), ("_csrf", &token)],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(srv.get("/v1/accounts/acct-a/sites/s1").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_portal_link_is_refused() {
    let srv = Server::start(&[]).await;
    srv.seed("acct-a").await;
    // 30 s is the shortest link life the API allows; the test waits it out.
    let link = portal_link(&srv, "acct-a", json!({"expiresIn": 30})).await;
    tokio::time::sleep(std::time::Duration::from_secs(31)).await;
    let mut d = Dash::new(&srv);
    let (s, _, page) = d.get(&link).await;
    assert_eq!(s, StatusCode::GONE);
    assert!(page.contains("expired or was already used"));
    assert_eq!(
        d.get("/ui/accounts/acct-a/endpoints").await.0,
        StatusCode::SEE_OTHER
    );
}
