//! # hookline-store-sql
//!
//! What Hookline's two SQL stores, `hookline-store-sqlite` and `hookline-store-postgres`,
//! share: row decoding into the model (one function per model type, [`sqlite::rows`] /
//! [`postgres::rows`]), error classification ([`DbError`]: a unique violation is `Conflict`;
//! pool timeouts, I/O failures, SQLite's `BUSY`/`LOCKED` and PostgreSQL's "not now" SQLSTATEs are
//! `Unavailable`), newest-first pagination, the CRUD of accounts, sites, event types, API keys
//! (listed per scope, revoked by id with `DELETE … RETURNING`) and endpoints, the history
//! listings, the audit log (`audit_log`: record, list, purge), the queue statements both write alike (defer, manual
//! requeues, the failure clock, auto-disable), what a claim does around its own statement
//! (limited-endpoint bookkeeping, one fetch of the batch's events and endpoints), and the write
//! group that lets concurrent writes share one transaction ([`group::Group`]). Each store keeps
//! what truly differs: claims, enqueue fan-out, settle, holds, purges, and its migrations.
//!
//! The queries are written once (`src/queries/`) and compiled for each dialect its feature
//! turns on: [`sqlite`] with `sqlite`, [`postgres`] with `postgres`; a small `dialect` module in
//! each says how that database's schema differs (how an endpoint's lists are stored, JSON
//! casts, how a write transaction starts, the lease columns). Statements are built with sqlx's
//! [`QueryBuilder`](sqlx::QueryBuilder), which writes each dialect's placeholders. (Generic code
//! over `sqlx::Database` cannot bind borrowed values through `QueryBuilder`: the argument
//! buffer's lifetime is invariant behind the associated type, so compiling the same source
//! per dialect keeps the queries plain and borrow-friendly.)
//!
//! A store implements [`SqlStore`] (its pools and a hook) and [`SqlQueue`] (the queue operations
//! it writes its own way), and gets `CatalogStore`, `EndpointStore`, `HistoryStore` (with
//! `AuditStore`) and `QueueStore` with [`impl_catalog_store!`], [`impl_endpoint_store!`],
//! [`impl_history_store!`] and [`impl_queue_store!`].
//!
//! ## Features
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `sqlite` | no | the [`sqlite`] dialect (sqlx's SQLite driver) |
//! | `postgres` | no | the [`postgres`] dialect (sqlx's PostgreSQL driver) |
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod error;
pub mod group;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::future::Future;

use hookline_core::model::{Attempt, Event, Trigger};
use hookline_core::store::{Claimed, LeaseToken, Next, Receipt, StoreError, WorkListener};
use hookline_core::{EndpointId, Timestamp};

pub use error::{CLOSED_AT_SSL_REQUEST, DbError, DbResult, is_unavailable};

/// A SQL store: where its queries run.
pub trait SqlStore: Send + Sync {
    /// The database.
    type Db: sqlx::Database;

    /// The pool reads use.
    fn read_pool(&self) -> &sqlx::Pool<Self::Db>;

    /// The pool writes use (the same as [`read_pool`](Self::read_pool) unless the store keeps
    /// writers apart).
    fn write_pool(&self) -> &sqlx::Pool<Self::Db>;

    /// Called before an endpoint is created or changed, for what the store remembers about
    /// endpoints.
    fn endpoints_changed(&self) {}
}

/// The [`QueueStore`](hookline_core::store::QueueStore) operations a SQL store writes its own
/// way; [`impl_queue_store!`] implements `QueueStore` with these and the shared statements of
/// the dialect's `queue` module. Each method is the `QueueStore` method of the same name.
pub trait SqlQueue: SqlStore {
    /// `QueueStore::enqueue_with`.
    fn enqueue_with(
        &self,
        event: &Event,
        targets: &[EndpointId],
        now: Timestamp,
        trigger: Trigger,
    ) -> impl Future<Output = Result<Receipt, StoreError>> + Send;

    /// `QueueStore::enqueue_batch`.
    fn enqueue_batch(
        &self,
        items: &[(Event, Vec<EndpointId>)],
        now: Timestamp,
        trigger: Trigger,
    ) -> impl Future<Output = Result<Vec<Receipt>, StoreError>> + Send;

    /// `QueueStore::claim_due_except` for `max > 0`, the leases ending at `lease_end`.
    fn claim(
        &self,
        now: Timestamp,
        max: usize,
        lease_end: Timestamp,
        skip: &[EndpointId],
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;

    /// `QueueStore::hold_endpoint`.
    fn hold_endpoint(
        &self,
        endpoint: &EndpointId,
        until: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `QueueStore::settle`.
    fn settle(
        &self,
        lease: &LeaseToken,
        attempt: &Attempt,
        next: Next,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `QueueStore::next_due`.
    fn next_due(&self) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;

    /// `QueueStore::purge`.
    fn purge(
        &self,
        before: Timestamp,
        max: usize,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// `QueueStore::listen_for_work` (none by default).
    fn listen_for_work(&self) -> Option<WorkListener> {
        None
    }
}

/// A `LIMIT` for fetching one row more than `limit` (to know whether a next page exists).
pub fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

/// `cols` with every column qualified by `alias` (`id, name` → `d.id, d.name`).
pub fn qualified(alias: &str, cols: &str) -> String {
    cols.split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use hookline_core::model::{
        Account, ApiKey, Attempt, AuditEntry, Delivery, DeliveryFilter, Endpoint, Event,
        EventFilter, EventType, HourlyStats, Page, PageRequest, Site, Trigger,
    };
    pub use hookline_core::store::{
        AuditStore, Backlog, CatalogStore, Claimed, EndpointStore, HistoryStore, LeaseToken, Next,
        QueueStore, Receipt, StoreError, WorkListener,
    };
    pub use hookline_core::{
        AccountId, DeliveryId, EndpointId, EventId, EventTypeName, KeyId, SiteId, Timestamp,
    };
    pub use serde_json::value::RawValue;
    pub use std::time::Duration;
}

/// Implements `hookline_core::store::CatalogStore` for a [`SqlStore`] with the shared queries
/// of a dialect module: `impl_catalog_store!(SqliteStore, sqlite)`.
#[macro_export]
macro_rules! impl_catalog_store {
    ($store:ty, $dialect:ident) => {
        #[$crate::__private::async_trait]
        impl $crate::__private::CatalogStore for $store {
            async fn create_account(
                &self,
                account: &$crate::__private::Account,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::create_account(self, account).await
            }

            async fn update_account(
                &self,
                account: &$crate::__private::Account,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::update_account(self, account).await
            }

            async fn account(
                &self,
                id: &$crate::__private::AccountId,
            ) -> Result<Option<$crate::__private::Account>, $crate::__private::StoreError> {
                $crate::$dialect::catalog::account(self, id).await
            }

            async fn list_accounts(
                &self,
                page: &$crate::__private::PageRequest,
            ) -> Result<
                $crate::__private::Page<$crate::__private::Account>,
                $crate::__private::StoreError,
            > {
                $crate::$dialect::catalog::list_accounts(self, page).await
            }

            async fn delete_account(
                &self,
                id: &$crate::__private::AccountId,
            ) -> Result<bool, $crate::__private::StoreError> {
                $crate::$dialect::catalog::delete_account(self, id).await
            }

            async fn create_site(
                &self,
                site: &$crate::__private::Site,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::create_site(self, site).await
            }

            async fn update_site(
                &self,
                site: &$crate::__private::Site,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::update_site(self, site).await
            }

            async fn site(
                &self,
                account: &$crate::__private::AccountId,
                id: &$crate::__private::SiteId,
            ) -> Result<Option<$crate::__private::Site>, $crate::__private::StoreError> {
                $crate::$dialect::catalog::site(self, account, id).await
            }

            async fn list_sites(
                &self,
                account: &$crate::__private::AccountId,
                page: &$crate::__private::PageRequest,
            ) -> Result<
                $crate::__private::Page<$crate::__private::Site>,
                $crate::__private::StoreError,
            > {
                $crate::$dialect::catalog::list_sites(self, account, page).await
            }

            async fn delete_site(
                &self,
                account: &$crate::__private::AccountId,
                id: &$crate::__private::SiteId,
            ) -> Result<bool, $crate::__private::StoreError> {
                $crate::$dialect::catalog::delete_site(self, account, id).await
            }

            async fn create_event_type(
                &self,
                et: &$crate::__private::EventType,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::create_event_type(self, et).await
            }

            async fn update_event_type(
                &self,
                et: &$crate::__private::EventType,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::update_event_type(self, et).await
            }

            async fn event_type(
                &self,
                name: &$crate::__private::EventTypeName,
            ) -> Result<Option<$crate::__private::EventType>, $crate::__private::StoreError> {
                $crate::$dialect::catalog::event_type(self, name).await
            }

            async fn list_event_types(
                &self,
                page: &$crate::__private::PageRequest,
            ) -> Result<
                $crate::__private::Page<$crate::__private::EventType>,
                $crate::__private::StoreError,
            > {
                $crate::$dialect::catalog::list_event_types(self, page).await
            }

            async fn delete_event_type(
                &self,
                name: &$crate::__private::EventTypeName,
            ) -> Result<bool, $crate::__private::StoreError> {
                $crate::$dialect::catalog::delete_event_type(self, name).await
            }

            async fn put_api_key(
                &self,
                key: &$crate::__private::ApiKey,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::put_api_key(self, key).await
            }

            async fn api_key(
                &self,
                hash: &str,
            ) -> Result<Option<$crate::__private::ApiKey>, $crate::__private::StoreError> {
                $crate::$dialect::catalog::api_key(self, hash).await
            }

            async fn has_admin_key(&self) -> Result<bool, $crate::__private::StoreError> {
                $crate::$dialect::catalog::has_admin_key(self).await
            }

            async fn setting(
                &self,
                name: &str,
            ) -> Result<Option<String>, $crate::__private::StoreError> {
                $crate::$dialect::catalog::setting(self, name).await
            }

            async fn put_setting(
                &self,
                name: &str,
                value: &str,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::put_setting(self, name, value).await
            }

            async fn list_api_keys(
                &self,
                account: Option<&$crate::__private::AccountId>,
                page: &$crate::__private::PageRequest,
            ) -> Result<
                $crate::__private::Page<$crate::__private::ApiKey>,
                $crate::__private::StoreError,
            > {
                $crate::$dialect::catalog::list_api_keys(self, account, page).await
            }

            async fn delete_api_key(
                &self,
                account: Option<&$crate::__private::AccountId>,
                id: &$crate::__private::KeyId,
            ) -> Result<Option<$crate::__private::ApiKey>, $crate::__private::StoreError> {
                $crate::$dialect::catalog::delete_api_key(self, account, id).await
            }

            async fn touch_api_key(
                &self,
                hash: &str,
                at: $crate::__private::Timestamp,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::catalog::touch_api_key(self, hash, at).await
            }
        }
    };
}

/// Implements `hookline_core::store::EndpointStore` for a [`SqlStore`] with the shared queries
/// of a dialect module: `impl_endpoint_store!(SqliteStore, sqlite)`.
#[macro_export]
macro_rules! impl_endpoint_store {
    ($store:ty, $dialect:ident) => {
        #[$crate::__private::async_trait]
        impl $crate::__private::EndpointStore for $store {
            async fn create_endpoint(
                &self,
                ep: &$crate::__private::Endpoint,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::endpoints::create_endpoint(self, ep).await
            }

            async fn update_endpoint(
                &self,
                ep: &$crate::__private::Endpoint,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::endpoints::update_endpoint(self, ep).await
            }

            async fn endpoint(
                &self,
                account: &$crate::__private::AccountId,
                id: &$crate::__private::EndpointId,
            ) -> Result<Option<$crate::__private::Endpoint>, $crate::__private::StoreError> {
                $crate::$dialect::endpoints::endpoint(self, account, id).await
            }

            async fn list_endpoints(
                &self,
                account: &$crate::__private::AccountId,
                page: &$crate::__private::PageRequest,
            ) -> Result<
                $crate::__private::Page<$crate::__private::Endpoint>,
                $crate::__private::StoreError,
            > {
                $crate::$dialect::endpoints::list_endpoints(self, account, page).await
            }

            async fn remove_endpoint(
                &self,
                account: &$crate::__private::AccountId,
                id: &$crate::__private::EndpointId,
            ) -> Result<bool, $crate::__private::StoreError> {
                $crate::$dialect::endpoints::remove_endpoint(self, account, id).await
            }

            async fn subscribers(
                &self,
                account: &$crate::__private::AccountId,
                site: Option<&$crate::__private::SiteId>,
                kind: &$crate::__private::EventTypeName,
            ) -> Result<Vec<$crate::__private::Endpoint>, $crate::__private::StoreError> {
                $crate::$dialect::endpoints::subscribers(self, account, site, kind).await
            }
        }
    };
}

/// Implements `hookline_core::store::HistoryStore` (and `AuditStore`) for a [`SqlStore`] with the shared queries
/// of a dialect module: `impl_history_store!(SqliteStore, sqlite)`.
#[macro_export]
macro_rules! impl_history_store {
    ($store:ty, $dialect:ident) => {
        #[$crate::__private::async_trait]
        impl $crate::__private::HistoryStore for $store {
            async fn event(
                &self,
                account: &$crate::__private::AccountId,
                id: &$crate::__private::EventId,
            ) -> Result<Option<$crate::__private::Event>, $crate::__private::StoreError> {
                $crate::$dialect::history::event(self, account, id).await
            }

            async fn event_by_idempotency_key(
                &self,
                account: &$crate::__private::AccountId,
                key: &str,
            ) -> Result<Option<$crate::__private::Event>, $crate::__private::StoreError> {
                $crate::$dialect::history::event_by_idempotency_key(self, account, key).await
            }

            async fn list_events(
                &self,
                account: &$crate::__private::AccountId,
                filter: &$crate::__private::EventFilter,
                page: &$crate::__private::PageRequest,
            ) -> Result<
                $crate::__private::Page<$crate::__private::Event>,
                $crate::__private::StoreError,
            > {
                $crate::$dialect::history::list_events(self, account, filter, page).await
            }

            async fn delivery(
                &self,
                account: &$crate::__private::AccountId,
                id: &$crate::__private::DeliveryId,
            ) -> Result<Option<$crate::__private::Delivery>, $crate::__private::StoreError> {
                $crate::$dialect::history::delivery(self, account, id).await
            }

            async fn list_deliveries(
                &self,
                account: &$crate::__private::AccountId,
                filter: &$crate::__private::DeliveryFilter,
                page: &$crate::__private::PageRequest,
            ) -> Result<
                $crate::__private::Page<$crate::__private::Delivery>,
                $crate::__private::StoreError,
            > {
                $crate::$dialect::history::list_deliveries(self, account, filter, page).await
            }

            async fn attempts(
                &self,
                account: &$crate::__private::AccountId,
                delivery: &$crate::__private::DeliveryId,
            ) -> Result<Vec<$crate::__private::Attempt>, $crate::__private::StoreError> {
                $crate::$dialect::history::attempts(self, account, delivery).await
            }

            async fn hourly(
                &self,
                endpoint: &$crate::__private::EndpointId,
                since: $crate::__private::Timestamp,
            ) -> Result<Vec<$crate::__private::HourlyStats>, $crate::__private::StoreError> {
                $crate::$dialect::history::hourly(self, endpoint, since).await
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::AuditStore for $store {
            async fn record_audit(
                &self,
                entry: &$crate::__private::AuditEntry,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::audit::record_audit(self, entry).await
            }

            async fn list_audit(
                &self,
                account: Option<&$crate::__private::AccountId>,
                page: &$crate::__private::PageRequest,
            ) -> Result<
                $crate::__private::Page<$crate::__private::AuditEntry>,
                $crate::__private::StoreError,
            > {
                $crate::$dialect::audit::list_audit(self, account, page).await
            }

            async fn purge_audit(
                &self,
                before: $crate::__private::Timestamp,
                max: usize,
            ) -> Result<u64, $crate::__private::StoreError> {
                $crate::$dialect::audit::purge_audit(self, before, max).await
            }
        }
    };
}

/// Implements `hookline_core::store::QueueStore` for a [`SqlQueue`] with the shared statements
/// of a dialect module: `impl_queue_store!(SqliteStore, sqlite)`.
#[macro_export]
macro_rules! impl_queue_store {
    ($store:ty, $dialect:ident) => {
        #[$crate::__private::async_trait]
        impl $crate::__private::QueueStore for $store {
            async fn enqueue_with(
                &self,
                event: &$crate::__private::Event,
                targets: &[$crate::__private::EndpointId],
                now: $crate::__private::Timestamp,
                trigger: $crate::__private::Trigger,
            ) -> Result<$crate::__private::Receipt, $crate::__private::StoreError> {
                <Self as $crate::SqlQueue>::enqueue_with(self, event, targets, now, trigger).await
            }

            async fn enqueue_batch(
                &self,
                items: &[($crate::__private::Event, Vec<$crate::__private::EndpointId>)],
                now: $crate::__private::Timestamp,
                trigger: $crate::__private::Trigger,
            ) -> Result<Vec<$crate::__private::Receipt>, $crate::__private::StoreError> {
                <Self as $crate::SqlQueue>::enqueue_batch(self, items, now, trigger).await
            }

            async fn claim_due_except(
                &self,
                now: $crate::__private::Timestamp,
                max: usize,
                lease: $crate::__private::Duration,
                skip: &[$crate::__private::EndpointId],
            ) -> Result<Vec<$crate::__private::Claimed>, $crate::__private::StoreError> {
                if max == 0 {
                    return Ok(Vec::new());
                }
                <Self as $crate::SqlQueue>::claim(self, now, max, now.add(lease), skip).await
            }

            async fn defer(
                &self,
                lease: &$crate::__private::LeaseToken,
                until: $crate::__private::Timestamp,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::queue::defer(self, lease, until).await
            }

            async fn hold_endpoint(
                &self,
                endpoint: &$crate::__private::EndpointId,
                until: $crate::__private::Timestamp,
                now: $crate::__private::Timestamp,
            ) -> Result<(), $crate::__private::StoreError> {
                <Self as $crate::SqlQueue>::hold_endpoint(self, endpoint, until, now).await
            }

            async fn settle(
                &self,
                lease: &$crate::__private::LeaseToken,
                attempt: &$crate::__private::Attempt,
                next: $crate::__private::Next,
            ) -> Result<(), $crate::__private::StoreError> {
                <Self as $crate::SqlQueue>::settle(self, lease, attempt, next).await
            }

            async fn next_due(
                &self,
            ) -> Result<Option<$crate::__private::Timestamp>, $crate::__private::StoreError> {
                <Self as $crate::SqlQueue>::next_due(self).await
            }

            async fn backlog(
                &self,
            ) -> Result<$crate::__private::Backlog, $crate::__private::StoreError> {
                let pending = $crate::$dialect::queue::pending(self).await?;
                let oldest_due = <Self as $crate::SqlQueue>::next_due(self).await?;
                Ok($crate::__private::Backlog::new(pending, oldest_due))
            }

            fn listen_for_work(&self) -> Option<$crate::__private::WorkListener> {
                <Self as $crate::SqlQueue>::listen_for_work(self)
            }

            async fn purge(
                &self,
                before: $crate::__private::Timestamp,
                max: usize,
            ) -> Result<u64, $crate::__private::StoreError> {
                <Self as $crate::SqlQueue>::purge(self, before, max).await
            }

            async fn add_hourly(
                &self,
                stats: &[$crate::__private::HourlyStats],
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::queue::add_hourly(self, stats).await
            }

            async fn record_failing(
                &self,
                id: &$crate::__private::EndpointId,
                at: $crate::__private::Timestamp,
            ) -> Result<Option<$crate::__private::Timestamp>, $crate::__private::StoreError> {
                $crate::$dialect::queue::record_failing(self, id, at).await
            }

            async fn record_healthy(
                &self,
                id: &$crate::__private::EndpointId,
            ) -> Result<(), $crate::__private::StoreError> {
                $crate::$dialect::queue::record_healthy(self, id).await
            }

            async fn disable_endpoint(
                &self,
                id: &$crate::__private::EndpointId,
                reason: &str,
                now: $crate::__private::Timestamp,
            ) -> Result<bool, $crate::__private::StoreError> {
                $crate::$dialect::queue::disable_endpoint(self, id, reason, now).await
            }

            async fn retry_delivery(
                &self,
                account: &$crate::__private::AccountId,
                id: &$crate::__private::DeliveryId,
                now: $crate::__private::Timestamp,
            ) -> Result<$crate::__private::Delivery, $crate::__private::StoreError> {
                $crate::$dialect::queue::retry_delivery(self, account, id, now).await
            }

            async fn retry_deliveries(
                &self,
                account: &$crate::__private::AccountId,
                ids: &[$crate::__private::DeliveryId],
                now: $crate::__private::Timestamp,
            ) -> Result<u64, $crate::__private::StoreError> {
                $crate::$dialect::queue::retry_deliveries(self, account, ids, now).await
            }

            async fn recover_failed(
                &self,
                account: &$crate::__private::AccountId,
                endpoint: &$crate::__private::EndpointId,
                since: $crate::__private::Timestamp,
                now: $crate::__private::Timestamp,
            ) -> Result<u64, $crate::__private::StoreError> {
                $crate::$dialect::queue::recover_failed(self, account, endpoint, since, now).await
            }

            async fn replace_event_data(
                &self,
                account: &$crate::__private::AccountId,
                id: &$crate::__private::EventId,
                data: &$crate::__private::RawValue,
            ) -> Result<bool, $crate::__private::StoreError> {
                $crate::$dialect::history::replace_event_data(self, account, id, data).await
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::{fetch_limit, qualified};

    #[test]
    fn qualifies_column_lists() {
        assert_eq!(qualified("d", "id, a,\n b"), "d.id, d.a, d.b");
    }

    #[test]
    fn pages_fetch_one_row_more() {
        assert_eq!(fetch_limit(50), 51);
        assert_eq!(fetch_limit(usize::MAX), i64::MAX);
    }
}
