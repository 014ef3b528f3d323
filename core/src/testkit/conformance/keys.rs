//! API keys beyond look-up by hash: every field, listing per scope, revocation, last use.

use std::sync::Arc;

use crate::id::KeyId;
use crate::model::{ApiKey, PageRequest, Role};
use crate::store::Store;

use super::support::{at, new_account};

fn key(fill: char, role: Role, created: i64) -> ApiKey {
    ApiKey::new(
        fill.to_string().repeat(64),
        format!("hk_{fill}"),
        role,
        at(created),
    )
}

/// Every field of a key round-trips; each scope (the admin's, each account's) lists only its
/// own keys, newest first, page by page.
pub async fn api_keys_round_trip_and_list_per_scope(store: Arc<dyn Store>) {
    let s = &*store;
    let acme = new_account(s, "acme").await;
    let globex = new_account(s, "globex").await;
    let mut full = key('1', Role::Account(acme.clone()), 10);
    full.name = "ci deploys — ünïcode".into();
    full.read_only = true;
    full.expires_at = Some(at(5_000));
    full.last_used_at = Some(at(20));
    s.put_api_key(&full).await.expect("put_api_key");
    assert_eq!(
        s.api_key(&full.hash).await.expect("api_key"),
        Some(full.clone())
    );
    let mut boot = key('2', Role::Admin, 1);
    boot.bootstrap = true;
    s.put_api_key(&boot).await.expect("put_api_key");
    assert_eq!(
        s.api_key(&boot.hash).await.expect("api_key"),
        Some(boot.clone())
    );
    let other_admin = key('3', Role::Admin, 2);
    s.put_api_key(&other_admin).await.expect("put_api_key");
    let acme_keys: Vec<ApiKey> = (0..5)
        .map(|i| {
            key(
                char::from(b'a' + i),
                Role::Account(acme.clone()),
                100 + i64::from(i),
            )
        })
        .collect();
    for k in &acme_keys {
        s.put_api_key(k).await.expect("put_api_key");
    }
    let globex_key = key('f', Role::Account(globex.clone()), 50);
    s.put_api_key(&globex_key).await.expect("put_api_key");

    // Admin scope: the two admin keys, newest first.
    let admins = s
        .list_api_keys(None, &PageRequest::first(10))
        .await
        .expect("list_api_keys");
    assert_eq!(admins.items, vec![other_admin.clone(), boot.clone()]);
    assert!(admins.next.is_none());
    // Globex sees only its own.
    let g = s
        .list_api_keys(Some(&globex), &PageRequest::first(10))
        .await
        .expect("list_api_keys");
    assert_eq!(g.items, vec![globex_key.clone()]);
    // Acme, two at a time: every key once, newest first.
    let mut seen = Vec::new();
    let mut page = PageRequest::first(2);
    for _ in 0..10 {
        let p = s
            .list_api_keys(Some(&acme), &page)
            .await
            .expect("list_api_keys");
        assert!(p.items.len() <= 2);
        seen.extend(p.items.into_iter().map(|k| k.id));
        match p.next {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    let mut expected: Vec<KeyId> = acme_keys.iter().rev().map(|k| k.id.clone()).collect();
    expected.push(full.id.clone());
    assert_eq!(seen, expected, "acme's keys, newest first, each once");
}

/// A key is revoked only in its own scope, and is then not found by hash; last use is
/// written, and never brings a revoked key back.
pub async fn api_keys_are_revoked_per_scope_and_touched(store: Arc<dyn Store>) {
    let s = &*store;
    let acme = new_account(s, "acme").await;
    let globex = new_account(s, "globex").await;
    let acme_key = key('a', Role::Account(acme.clone()), 1);
    let admin_key = key('b', Role::Admin, 2);
    s.put_api_key(&acme_key).await.expect("put_api_key");
    s.put_api_key(&admin_key).await.expect("put_api_key");

    // Not in another account's scope, nor in the admin's.
    for scope in [Some(&globex), None] {
        assert_eq!(
            s.delete_api_key(scope, &acme_key.id)
                .await
                .expect("delete_api_key"),
            None
        );
    }
    assert_eq!(
        s.delete_api_key(Some(&acme), &admin_key.id)
            .await
            .expect("delete_api_key"),
        None,
        "an account scope does not reach admin keys"
    );
    assert!(s.api_key(&acme_key.hash).await.expect("api_key").is_some());

    s.touch_api_key(&acme_key.hash, at(500))
        .await
        .expect("touch_api_key");
    let touched = s.api_key(&acme_key.hash).await.expect("api_key").unwrap();
    assert_eq!(touched.last_used_at, Some(at(500)));
    assert_eq!(touched.created_at, acme_key.created_at);

    let gone = s
        .delete_api_key(Some(&acme), &acme_key.id)
        .await
        .expect("delete_api_key")
        .expect("acme's key, in acme's scope");
    assert_eq!(
        (gone.id, gone.hash),
        (acme_key.id.clone(), acme_key.hash.clone())
    );
    assert_eq!(s.api_key(&acme_key.hash).await.expect("api_key"), None);
    assert!(
        s.list_api_keys(Some(&acme), &PageRequest::first(10))
            .await
            .expect("list_api_keys")
            .items
            .is_empty()
    );
    assert_eq!(
        s.delete_api_key(Some(&acme), &acme_key.id)
            .await
            .expect("delete_api_key"),
        None,
        "revoking twice finds nothing"
    );
    s.touch_api_key(&acme_key.hash, at(600))
        .await
        .expect("touching a revoked key is no error");
    assert_eq!(
        s.api_key(&acme_key.hash).await.expect("api_key"),
        None,
        "touching does not bring a revoked key back"
    );
    let gone = s
        .delete_api_key(None, &admin_key.id)
        .await
        .expect("delete_api_key");
    assert_eq!(gone.map(|k| k.hash), Some(admin_key.hash.clone()));
    assert!(!s.has_admin_key().await.expect("has_admin_key"));
}
