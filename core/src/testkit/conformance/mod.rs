//! The store conformance suite: the contract of [`Store`], as tests every backend runs.
//!
//! Each case is a plain `pub async fn case(store: Arc<dyn Store>)` that gets a **fresh, isolated**
//! store, drives it with explicit [`Timestamp`](crate::Timestamp)s (never the wall clock, never sleeping) and panics
//! when the store breaks the contract. [`store_conformance!`](crate::store_conformance) turns every
//! case into its own test, so one failure cannot hide the others:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use hookline_core::store::Store;
//! # async fn connect_fresh_store() -> Arc<dyn Store> { unimplemented!() }
//! mod conformance {
//!     use super::*;
//!
//!     async fn fresh() -> Arc<dyn Store> {
//!         connect_fresh_store().await // a new database, schema or key prefix per call
//!     }
//!
//!     hookline_core::store_conformance!(fresh);
//! }
//! # fn main() {}
//! ```
//!
//! A factory may also return `(Arc<dyn Store>, guard)`: the guard (a temporary directory, a
//! schema-dropping handle, …) lives until the case has finished. See [`Fixture`].
//!
//! The cases live in one module per concern (catalog, endpoints, enqueue, batches, claims,
//! settling, limits, ordering, manual sends, listings, retention, backlog, API keys, the audit
//! log) and are re-exported
//! here; the shared fixtures are in `support`.
//!
//! The generated tests are plain `#[test]` functions that run the case on a two-worker
//! multi-threaded tokio runtime (see [`run`]), so the calling crate needs no tokio macros and the
//! concurrency cases really race.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;

mod audit;
mod backlog;
mod batches;
mod catalog;
mod claims;
mod endpoints;
mod enqueue;
mod keys;
mod limits;
mod listings;
mod manual;
mod ordering;
mod purge;
mod settle;
mod support;

pub use audit::*;
pub use backlog::*;
pub use batches::*;
pub use catalog::*;
pub use claims::*;
pub use endpoints::*;
pub use enqueue::*;
pub use keys::*;
pub use limits::*;
pub use listings::*;
pub use manual::*;
pub use ordering::*;
pub use purge::*;
pub use settle::*;

/// What a conformance factory returns: the store, plus whatever must live until the case ends.
pub trait Fixture: Send + 'static {
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;
}

impl Fixture for Arc<dyn Store> {
    fn store(&self) -> Arc<dyn Store> {
        self.clone()
    }
}

impl<G: Send + 'static> Fixture for (Arc<dyn Store>, G) {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
}

/// How long one case may run before it fails as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one case against a store made by `factory`, on a fresh two-worker tokio runtime.
///
/// Used by [`store_conformance!`](crate::store_conformance); call it directly to run a single case.
pub fn run<F, Fut, X, C, CFut>(factory: F, case: C)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = X>,
    X: Fixture,
    C: FnOnce(Arc<dyn Store>) -> CFut,
    CFut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a tokio runtime for the conformance case");
    rt.block_on(async move {
        let fixture = factory().await;
        if tokio::time::timeout(CASE_TIMEOUT, case(fixture.store()))
            .await
            .is_err()
        {
            panic!("the conformance case did not finish within {CASE_TIMEOUT:?}");
        }
        drop(fixture);
    });
}

/// Generates one `#[test]` per conformance case, each with a fresh store from `$factory`.
///
/// `$factory` is an expression callable with no arguments that returns a future of a
/// [`Fixture`](crate::testkit::conformance::Fixture): usually the path of an
/// `async fn() -> Arc<dyn Store>` (or `-> (Arc<dyn Store>, Guard)`), or an `|| async { … }`
/// closure. Invoke the macro inside its own module; the tests are named after the cases.
#[macro_export]
macro_rules! store_conformance {
    ($factory:expr $(,)?) => {
        $crate::store_conformance!(@cases $factory;
            enqueue_is_idempotent_per_event_id,
            idempotency_key_returns_original_event,
            events_are_found_by_idempotency_key_until_purged,
            enqueue_writes_event_and_deliveries_atomically,
            enqueue_to_an_unknown_endpoint_writes_nothing,
            claim_returns_only_due_in_due_order,
            claim_skips_disabled_endpoints,
            concurrent_claims_are_disjoint,
            expired_lease_is_reclaimable,
            settle_with_stale_lease_is_lease_lost,
            retry_at_reschedules_and_counts_attempt,
            exhausted_is_terminal,
            subscribers_merge_account_and_site_scope,
            attempt_history_is_ordered,
            payload_bytes_round_trip,
            account_crud_and_conflicts,
            site_crud_is_scoped_to_account,
            event_type_crud_and_conflicts,
            api_keys_are_found_by_hash,
            api_keys_round_trip_and_list_per_scope,
            api_keys_are_revoked_per_scope_and_touched,
            audit_entries_are_listed_per_account,
            purge_audit_deletes_old_entries,
            delete_account_cascades,
            endpoint_crud_round_trips_all_fields,
            endpoints_are_tenant_isolated,
            remove_endpoint_cancels_pending_deliveries,
            list_events_filters_are_exact,
            cursor_pagination_returns_every_row_once,
            list_deliveries_filter_by_event_endpoint_status,
            list_deliveries_filter_by_event_type_and_time,
            list_attempts_pages_newest_first_by_outcome,
            retry_deliveries_requeues_a_batch,
            retry_delivery_makes_failed_pending_with_manual_trigger,
            manual_enqueue_is_claimed_once_with_trigger_manual,
            recover_failed_requeues_since,
            next_due_reports_earliest,
            ordered_endpoint_claims_only_the_head_of_each_queue_id,
            claim_due_except_skips_the_given_endpoints,
            defer_gives_a_claim_back_without_an_attempt,
            purge_deletes_old_events_with_their_deliveries_and_attempts,
            max_concurrency_bounds_live_leases,
            concurrent_claims_respect_max_concurrency,
            rate_limit_reserves_spaced_send_times,
            failure_clock_is_kept_by_the_store,
            disable_endpoint_is_one_step,
            hold_endpoint_makes_its_backlog_wait,
            backlog_counts_pending_deliveries,
            hourly_counters_add_up,
            enqueue_batch_stores_every_event_with_its_deliveries,
            enqueue_batch_with_an_unknown_target_writes_nothing,
            enqueue_batch_answers_duplicates_inside_and_across_batches,
            enqueue_batch_racing_single_enqueues_stores_each_key_once,
            enqueue_batch_dropped_midway_is_stored_whole_or_not_at_all,
            settings_keep_the_last_value,
            replace_event_data_changes_only_the_data,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::conformance::run($factory, $crate::testkit::conformance::$case);
            }
        )*
    };
}
