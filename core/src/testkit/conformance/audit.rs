//! The audit log: entries listed per account or all together, newest first; retention.

use std::sync::Arc;

use crate::KeyId;
use crate::model::{AuditEntry, PageRequest, Principal};
use crate::store::Store;

use super::support::{account_id, at};

/// Entries round-trip whole; an account's list holds only its entries, the deployment's list
/// all of them, newest first, page by page.
pub async fn audit_entries_are_listed_per_account(store: Arc<dyn Store>) {
    let s = &*store;
    let acme = account_id("acme");
    let globex = account_id("globex");
    let key = Principal::Key(KeyId::of_hash(&"ab".repeat(32)));
    let mut written = Vec::new();
    for i in 0..7i64 {
        let (account, actor) = match i % 3 {
            0 => (Some(acme.clone()), key.clone()),
            1 => (Some(globex.clone()), Principal::Session("sess-1".into())),
            _ => (None, Principal::System),
        };
        let e = AuditEntry::new(
            account,
            actor,
            "endpoint.created",
            format!("ep_{i}"),
            at(100 + i),
        );
        s.record_audit(&e).await.expect("record_audit");
        written.push(e);
    }
    let acme_list = s
        .list_audit(Some(&acme), &PageRequest::first(50))
        .await
        .expect("list_audit");
    let expected: Vec<AuditEntry> = written
        .iter()
        .rev()
        .filter(|e| e.account.as_ref() == Some(&acme))
        .cloned()
        .collect();
    assert_eq!(
        acme_list.items, expected,
        "acme's entries only, whole, newest first"
    );
    assert!(acme_list.next.is_none());

    let mut all = Vec::new();
    let mut page = PageRequest::first(3);
    for _ in 0..10 {
        let p = s.list_audit(None, &page).await.expect("list_audit");
        assert!(p.items.len() <= 3);
        all.extend(p.items);
        match p.next {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    let expected: Vec<AuditEntry> = written.iter().rev().cloned().collect();
    assert_eq!(all, expected, "every entry once, newest first");
}

/// `purge_audit` deletes entries made before the cut-off, at most `max` a call.
pub async fn purge_audit_deletes_old_entries(store: Arc<dyn Store>) {
    let s = &*store;
    let acme = account_id("acme");
    for i in 0..5i64 {
        let e = AuditEntry::new(
            Some(acme.clone()),
            Principal::System,
            "site.created",
            "s",
            at(i * 10),
        );
        s.record_audit(&e).await.expect("record_audit");
    }
    assert_eq!(s.purge_audit(at(30), 2).await.expect("purge_audit"), 2);
    assert_eq!(s.purge_audit(at(30), 2).await.expect("purge_audit"), 1);
    assert_eq!(s.purge_audit(at(30), 2).await.expect("purge_audit"), 0);
    let left = s
        .list_audit(Some(&acme), &PageRequest::first(10))
        .await
        .expect("list_audit");
    let times: Vec<_> = left.items.iter().map(|e| e.at).collect();
    assert_eq!(
        times,
        vec![at(40), at(30)],
        "entries at or after the cut-off stay"
    );
    let all = s
        .list_audit(None, &PageRequest::first(10))
        .await
        .expect("list_audit");
    assert_eq!(all.items.len(), 2, "gone from the deployment's list too");
}
