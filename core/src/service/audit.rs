//! The audit log: who changed what, and when.
//!
//! Every operation of [`Hookline`] that changes something — accounts, sites, the event-type
//! catalog, endpoints (and their secrets, enabling, disabling, test events, recoveries), API
//! keys, manual retries — appends one [`AuditEntry`] right after the change: the account it
//! belongs to (none for deployment-wide changes), the actor's [`Principal`](crate::model::Principal)
//! (a key id, a session, or the system), the action (`endpoint.created`, `secret.rotated`, …)
//! and the changed object's id, never a secret value or an event's data. Publishing events is
//! not audited: events are their own record. Entries are kept as long as events (the
//! dispatcher's retention purge removes both).

use super::{Actor, Hookline, ListQuery, ServiceError};
use crate::model::{AuditEntry, Page};

impl Hookline {
    /// An account's audit log, newest first (the admin, or that account's keys).
    pub async fn list_audit(
        &self,
        by: &Actor,
        account: &str,
        paging: &ListQuery,
    ) -> Result<Page<AuditEntry>, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let page = paging.request()?;
        Ok(self.store().list_audit(Some(&a.id), &page).await?)
    }

    /// The whole deployment's audit log, newest first: deployment-wide entries and every
    /// account's (admin only).
    pub async fn list_all_audit(
        &self,
        by: &Actor,
        paging: &ListQuery,
    ) -> Result<Page<AuditEntry>, ServiceError> {
        by.require_admin()?;
        let page = paging.request()?;
        Ok(self.store().list_audit(None, &page).await?)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::Principal;
    use crate::service::{NewAccount, NewKey, NewSite};
    use crate::testkit::MemoryStore;
    use crate::time::Timestamp;
    use crate::transport::{BoxTransport, DeliveryRequest, DeliveryResponse, TransportError};

    fn hookline() -> Hookline {
        let transport: BoxTransport =
            crate::transport::boxed(tower::service_fn(|_: DeliveryRequest| async {
                Err::<DeliveryResponse, _>(TransportError::Connect("no network in tests".into()))
            }));
        Hookline::builder(Arc::new(MemoryStore::new()), transport).build()
    }

    #[tokio::test]
    async fn changes_are_audited_with_their_actor_and_read_only_keys_change_nothing() {
        let h = hookline();
        h.create_account(&Actor::Admin, NewAccount::new("acme"))
            .await
            .unwrap();
        let full = h
            .create_key(&Actor::Admin, Some("acme"), NewKey::new().name("app"))
            .await
            .unwrap();
        let reader = h
            .create_key(&Actor::Admin, Some("acme"), NewKey::new().read_only(true))
            .await
            .unwrap();
        let by = h
            .authenticate(&full.key)
            .await
            .unwrap()
            .expect("a known key");
        assert_eq!(by.principal(), Principal::Key(full.details.id.clone()));
        h.create_site(&by, "acme", NewSite::new("s1"))
            .await
            .unwrap();
        let ro = h.authenticate(&reader.key).await.unwrap().unwrap();
        assert!(ro.is_read_only());
        let e = h
            .create_site(&ro, "acme", NewSite::new("s2"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "read_only_key");
        assert!(h.list_audit(&ro, "acme", &ListQuery::new()).await.is_ok());
        let e = h.list_all_audit(&ro, &ListQuery::new()).await.unwrap_err();
        assert_eq!(e.code(), "forbidden");

        let log = h
            .list_audit(&Actor::Admin, "acme", &ListQuery::new())
            .await
            .unwrap();
        let seen: Vec<(&str, &str, &Principal)> = log
            .items
            .iter()
            .map(|e| (e.action.as_str(), e.target.as_str(), &e.actor))
            .collect();
        let key_actor = Principal::Key(full.details.id.clone());
        assert_eq!(
            seen,
            vec![
                ("site.created", "s1", &key_actor),
                (
                    "key.created",
                    reader.details.id.as_str(),
                    &Principal::System
                ),
                ("key.created", full.details.id.as_str(), &Principal::System),
                ("account.created", "acme", &Principal::System),
            ]
        );
    }

    #[tokio::test]
    async fn revoked_and_expired_keys_are_refused() {
        let h = hookline();
        h.create_account(&Actor::Admin, NewAccount::new("acme"))
            .await
            .unwrap();
        let past = h
            .create_key(
                &Actor::Admin,
                Some("acme"),
                NewKey::new().expires_at(Timestamp::EPOCH),
            )
            .await
            .unwrap_err();
        assert_eq!(past.code(), "invalid_expiry");
        let k = h
            .create_key(&Actor::Admin, Some("acme"), NewKey::new())
            .await
            .unwrap();
        assert!(h.authenticate(&k.key).await.unwrap().is_some());
        let listed = h
            .list_keys(&Actor::Admin, Some("acme"), &ListQuery::new())
            .await
            .unwrap();
        assert!(listed.items[0].last_used_at.is_some(), "use is noted");
        // Another scope does not find it; its own does, once.
        let e = h
            .revoke_key(&Actor::Admin, None, k.details.id.as_str())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "key_not_found");
        h.revoke_key(&Actor::Admin, Some("acme"), k.details.id.as_str())
            .await
            .unwrap();
        assert!(h.authenticate(&k.key).await.unwrap().is_none());
        let e = h
            .revoke_key(&Actor::Admin, Some("acme"), k.details.id.as_str())
            .await
            .unwrap_err();
        assert_eq!(e.code(), "key_not_found");

        // Expired: stored with an expiry already past (as time moves on).
        let (key, mut stored) = crate::service::keys::generate(
            crate::model::Role::Account(crate::AccountId::parse("acme").unwrap()),
            Timestamp::EPOCH,
        );
        stored.expires_at = Some(Timestamp::from_millis(1));
        h.store().put_api_key(&stored).await.unwrap();
        assert!(h.authenticate(&key).await.unwrap().is_none());
    }
}
