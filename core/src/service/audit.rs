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

use super::{Actor, Hookline, Paging, ServiceError};
use crate::model::{AuditEntry, Page};

impl Hookline {
    /// An account's audit log, newest first (the admin, or that account's keys).
    pub async fn list_audit(
        &self,
        by: &Actor,
        account: &str,
        paging: &Paging,
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
        paging: &Paging,
    ) -> Result<Page<AuditEntry>, ServiceError> {
        by.require_admin()?;
        let page = paging.request()?;
        Ok(self.store().list_audit(None, &page).await?)
    }
}
