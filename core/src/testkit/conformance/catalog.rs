//! The catalog: accounts, sites, event types, API keys and account deletion.

use std::sync::Arc;

use crate::model::{
    Account, ApiKey, DeliveryFilter, EventFilter, EventType, PageRequest, Role, Site,
};
use crate::store::{Next, Store, StoreError};

use super::support::{
    account_id, at, claim, deliveries_of, enqueue_new, events_of, ids, kind, new_account,
    new_endpoint, set, settle, site_id,
};

/// Accounts: create, `Conflict` on a taken id, update (`NotFound` when missing), list, delete.
pub async fn account_crud_and_conflicts(store: Arc<dyn Store>) {
    let s = &*store;
    let mut acme = Account {
        id: account_id("acme"),
        name: "Acme Pharmacies".into(),
        created_at: at(0),
        updated_at: at(0),
    };
    s.create_account(&acme).await.expect("create_account");
    assert_eq!(
        s.account(&acme.id).await.expect("account"),
        Some(acme.clone())
    );
    let mut dup = acme.clone();
    dup.name = "Impostor".into();
    assert!(matches!(
        s.create_account(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.account(&acme.id).await.expect("account"),
        Some(acme.clone())
    );

    acme.name = "Acme Pharmacy Banner".into();
    acme.updated_at = at(10);
    s.update_account(&acme).await.expect("update_account");
    assert_eq!(
        s.account(&acme.id).await.expect("account"),
        Some(acme.clone())
    );
    let ghost = Account {
        id: account_id("ghost"),
        name: "Ghost".into(),
        created_at: at(0),
        updated_at: at(0),
    };
    assert!(matches!(
        s.update_account(&ghost).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.account(&ghost.id).await.expect("account"), None);

    for (i, id) in ["b1", "b2", "b3"].iter().enumerate() {
        let t = at(100 * (i as i64 + 1));
        s.create_account(&Account {
            id: account_id(id),
            name: id.to_string(),
            created_at: t,
            updated_at: t,
        })
        .await
        .expect("create_account");
    }
    let page = s
        .list_accounts(&PageRequest::first(10))
        .await
        .expect("list_accounts");
    let names: Vec<&str> = page.items.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(names, vec!["b3", "b2", "b1", "acme"], "newest first");
    assert!(page.next.is_none());

    assert!(s.delete_account(&acme.id).await.expect("delete_account"));
    assert!(!s.delete_account(&acme.id).await.expect("delete_account"));
    assert_eq!(s.account(&acme.id).await.expect("account"), None);
    // The id is free again.
    s.create_account(&acme).await.expect("re-create_account");
}

/// Sites are keyed by account and id: the same id may exist in two accounts.
pub async fn site_crud_is_scoped_to_account(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    let b = new_account(s, "globex").await;
    let mut s1 = Site {
        account: a.clone(),
        id: site_id("store-1"),
        name: "Main Street".into(),
        created_at: at(0),
        updated_at: at(0),
    };
    s.create_site(&s1).await.expect("create_site");
    let b1 = Site {
        account: b.clone(),
        ..s1.clone()
    };
    s.create_site(&b1)
        .await
        .expect("the same site id in another account");
    assert!(matches!(
        s.create_site(&s1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.site(&a, &s1.id).await.expect("site"), Some(s1.clone()));
    assert_eq!(s.site(&b, &s1.id).await.expect("site"), Some(b1.clone()));

    s1.name = "Main Street (renovated)".into();
    s1.updated_at = at(5);
    s.update_site(&s1).await.expect("update_site");
    assert_eq!(s.site(&a, &s1.id).await.expect("site"), Some(s1.clone()));
    assert_eq!(
        s.site(&b, &s1.id).await.expect("site"),
        Some(b1.clone()),
        "updating one account's site leaves the other's alone"
    );
    let missing = Site {
        id: site_id("store-404"),
        ..s1.clone()
    };
    assert!(matches!(
        s.update_site(&missing).await,
        Err(StoreError::NotFound(_))
    ));

    let s2 = Site {
        id: site_id("store-2"),
        created_at: at(100),
        updated_at: at(100),
        ..s1.clone()
    };
    s.create_site(&s2).await.expect("create_site");
    let page = s
        .list_sites(&a, &PageRequest::first(10))
        .await
        .expect("list_sites");
    assert_eq!(page.items, vec![s2.clone(), s1.clone()], "newest first");
    let page = s
        .list_sites(&b, &PageRequest::first(10))
        .await
        .expect("list_sites");
    assert_eq!(page.items, vec![b1.clone()]);

    assert!(s.delete_site(&a, &s1.id).await.expect("delete_site"));
    assert!(!s.delete_site(&a, &s1.id).await.expect("delete_site"));
    assert_eq!(s.site(&a, &s1.id).await.expect("site"), None);
    assert_eq!(s.site(&b, &s1.id).await.expect("site"), Some(b1));
}

/// Event types: create, `Conflict` on a taken name, update (`NotFound` when missing), list, delete.
pub async fn event_type_crud_and_conflicts(store: Arc<dyn Store>) {
    let s = &*store;
    let mut done = EventType {
        name: kind("rx.completed"),
        description: "The write succeeded.".into(),
        schema: Some(serde_json::json!({
            "type": "object",
            "required": ["patientId"],
            "properties": {"patientId": {"type": "string"}, "din": {"type": "string"}}
        })),
        archived: false,
        created_at: at(0),
        updated_at: at(0),
    };
    s.create_event_type(&done).await.expect("create_event_type");
    assert_eq!(
        s.event_type(&done.name).await.expect("event_type"),
        Some(done.clone())
    );
    assert!(matches!(
        s.create_event_type(&done).await,
        Err(StoreError::Conflict(_))
    ));

    done.archived = true;
    done.schema = None;
    done.description = "Retired.".into();
    done.updated_at = at(50);
    s.update_event_type(&done).await.expect("update_event_type");
    assert_eq!(
        s.event_type(&done.name).await.expect("event_type"),
        Some(done.clone())
    );
    let missing = EventType {
        name: kind("rx.nope"),
        ..done.clone()
    };
    assert!(matches!(
        s.update_event_type(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.event_type(&missing.name).await.expect("event_type"), None);

    let failed = EventType {
        name: kind("rx.failed"),
        description: "The write failed.".into(),
        schema: None,
        archived: false,
        created_at: at(10),
        updated_at: at(10),
    };
    s.create_event_type(&failed)
        .await
        .expect("create_event_type");
    let page = s
        .list_event_types(&PageRequest::first(10))
        .await
        .expect("list_event_types");
    assert_eq!(
        page.items,
        vec![failed.clone(), done.clone()],
        "newest first"
    );

    assert!(s.delete_event_type(&done.name).await.expect("delete"));
    assert!(!s.delete_event_type(&done.name).await.expect("delete"));
    assert_eq!(s.event_type(&done.name).await.expect("event_type"), None);
}

/// API keys are stored by hash (idempotently) and found by it; admin keys are reported.
pub async fn api_keys_are_found_by_hash(store: Arc<dyn Store>) {
    let s = &*store;
    let a = new_account(s, "acme").await;
    assert!(!s.has_admin_key().await.expect("has_admin_key"));
    let account_key = ApiKey::new(
        "a".repeat(64),
        "hk_acc".into(),
        Role::Account(a.clone()),
        at(0),
    );
    s.put_api_key(&account_key).await.expect("put_api_key");
    assert!(
        !s.has_admin_key().await.expect("has_admin_key"),
        "an account key is not an admin key"
    );
    let admin_key = ApiKey::new("b".repeat(64), "hk_adm".into(), Role::Admin, at(1));
    s.put_api_key(&admin_key).await.expect("put_api_key");
    s.put_api_key(&admin_key)
        .await
        .expect("put_api_key is idempotent on the hash");
    assert!(s.has_admin_key().await.expect("has_admin_key"));
    assert_eq!(
        s.api_key(&account_key.hash).await.expect("api_key"),
        Some(account_key.clone())
    );
    assert_eq!(
        s.api_key(&admin_key.hash).await.expect("api_key"),
        Some(admin_key)
    );
    assert_eq!(s.api_key(&"c".repeat(64)).await.expect("api_key"), None);
    assert_eq!(s.api_key("").await.expect("api_key"), None);
}

/// Deleting an account removes everything it owns and nothing of other accounts.
pub async fn delete_account_cascades(store: Arc<dyn Store>) {
    let s = &*store;
    let mut owned = Vec::new();
    for name in ["acme", "globex"] {
        let acc = new_account(s, name).await;
        let site = Site {
            account: acc.clone(),
            id: site_id("store-1"),
            name: "Main".into(),
            created_at: at(0),
            updated_at: at(0),
        };
        s.create_site(&site).await.expect("create_site");
        let key = ApiKey::new(
            crate::service::keys::hash(name),
            "hk_".into(),
            Role::Account(acc.clone()),
            at(0),
        );
        s.put_api_key(&key).await.expect("put_api_key");
        let ep = new_endpoint(s, &acc, &[], &[]).await;
        let (ev, ds) = enqueue_new(s, &acc, &[&ep], at(0)).await;
        let (_, pending) = enqueue_new(s, &acc, &[&ep], at(100_000)).await;
        owned.push((acc, site, key, ep, ev, ds[0].clone(), pending[0].clone()));
    }
    for c in claim(s, at(0), 10).await {
        settle(s, &c, at(1), Some(500), Next::RetryAt(at(200_000))).await;
    }

    let (acme, site, key, ep, ev, d, _) = &owned[0];
    assert!(s.delete_account(acme).await.expect("delete_account"));
    assert_eq!(s.account(acme).await.expect("account"), None);
    assert_eq!(s.site(acme, &site.id).await.expect("site"), None);
    assert_eq!(s.api_key(&key.hash).await.expect("api_key"), None);
    assert_eq!(s.endpoint(acme, &ep.id).await.expect("endpoint"), None);
    assert_eq!(s.event(acme, &ev.id).await.expect("event"), None);
    assert_eq!(s.delivery(acme, d).await.expect("delivery"), None);
    assert!(s.attempts(acme, d).await.expect("attempts").is_empty());
    assert!(
        s.list_sites(acme, &PageRequest::first(10))
            .await
            .expect("list_sites")
            .items
            .is_empty()
    );
    assert!(
        s.list_endpoints(acme, &PageRequest::first(10))
            .await
            .expect("list_endpoints")
            .items
            .is_empty()
    );
    assert!(events_of(s, acme, &EventFilter::default()).await.is_empty());
    assert!(
        deliveries_of(s, acme, &DeliveryFilter::default())
            .await
            .is_empty()
    );

    // Only the other account's work is left.
    let (globex, site, key, ep, ev, d, pending) = &owned[1];
    assert!(s.account(globex).await.expect("account").is_some());
    assert!(s.site(globex, &site.id).await.expect("site").is_some());
    assert!(s.api_key(&key.hash).await.expect("api_key").is_some());
    assert!(
        s.endpoint(globex, &ep.id)
            .await
            .expect("endpoint")
            .is_some()
    );
    assert!(s.event(globex, &ev.id).await.expect("event").is_some());
    assert_eq!(s.attempts(globex, d).await.expect("attempts").len(), 1);
    let left = claim(s, at(1_000_000), 10).await;
    assert_eq!(set(&ids(&left)), set(&[d.clone(), pending.clone()]));
}

/// Settings: `None` until written, then the last value written.
pub async fn settings_keep_the_last_value(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(s.setting("conformance.check").await.expect("setting"), None);
    s.put_setting("conformance.check", "{\"keys\":{}}")
        .await
        .expect("put_setting");
    s.put_setting("other", "x").await.expect("put_setting");
    assert_eq!(
        s.setting("conformance.check")
            .await
            .expect("setting")
            .as_deref(),
        Some("{\"keys\":{}}")
    );
    s.put_setting("conformance.check", "second ✓")
        .await
        .expect("put_setting");
    assert_eq!(
        s.setting("conformance.check")
            .await
            .expect("setting")
            .as_deref(),
        Some("second ✓")
    );
    assert_eq!(
        s.setting("other").await.expect("setting").as_deref(),
        Some("x")
    );
}
