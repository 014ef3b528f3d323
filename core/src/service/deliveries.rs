//! Deliveries: looking them up, their attempts, and manual retries.

use super::lists::{Checked, Filter, ListQuery};
use super::{Actor, Hookline, ServiceError};
use crate::id::{AccountId, DeliveryId};
use crate::model::{Attempt, AttemptFilter, Delivery, DeliveryFilter, Page};

/// The delivery filter of a checked list query.
fn delivery_filter(q: &Checked) -> DeliveryFilter {
    DeliveryFilter {
        endpoint: q.endpoint.clone(),
        status: q.status,
        event_types: q.event_type.iter().cloned().collect(),
        since: q.since,
        until: q.until,
        ..DeliveryFilter::default()
    }
}

impl Hookline {
    /// Lists an account's deliveries matching `query` (state, endpoint, event type, creation
    /// time), newest first.
    pub async fn list_deliveries(
        &self,
        by: &Actor,
        account: &str,
        query: &ListQuery,
    ) -> Result<Page<Delivery>, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let q = query.check(&[
            Filter::Status,
            Filter::Endpoint,
            Filter::EventType,
            Filter::Time,
        ])?;
        self.deliveries_page(&a.id, delivery_filter(&q), &q).await
    }

    /// Lists the deliveries of one event matching `query` (state, endpoint, creation time),
    /// newest first.
    pub async fn event_deliveries(
        &self,
        by: &Actor,
        account: &str,
        event: &str,
        query: &ListQuery,
    ) -> Result<Page<Delivery>, ServiceError> {
        let ev = self.event(by, account, event).await?;
        let q = query.check(&[Filter::Status, Filter::Endpoint, Filter::Time])?;
        let filter = DeliveryFilter {
            event: Some(ev.id),
            ..delivery_filter(&q)
        };
        self.deliveries_page(&ev.account, filter, &q).await
    }

    /// Lists the deliveries to one endpoint matching `query` (state, event type, creation
    /// time), newest first.
    pub async fn endpoint_deliveries(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
        query: &ListQuery,
    ) -> Result<Page<Delivery>, ServiceError> {
        let ep = self.endpoint(by, account, endpoint).await?;
        let q = query.check(&[Filter::Status, Filter::EventType, Filter::Time])?;
        let filter = DeliveryFilter {
            endpoint: Some(ep.id),
            ..delivery_filter(&q)
        };
        self.deliveries_page(&ep.account, filter, &q).await
    }

    async fn deliveries_page(
        &self,
        account: &AccountId,
        filter: DeliveryFilter,
        q: &Checked,
    ) -> Result<Page<Delivery>, ServiceError> {
        Ok(self
            .store()
            .list_deliveries(account, &filter, &q.page)
            .await?)
    }

    /// One delivery of an account: `delivery_not_found`.
    pub async fn delivery(
        &self,
        by: &Actor,
        account: &str,
        delivery: &str,
    ) -> Result<Delivery, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let id = DeliveryId::parse(delivery)?;
        self.store().delivery(&a.id, &id).await?.ok_or_else(|| {
            ServiceError::not_found(
                "delivery_not_found",
                format!("no delivery `{id}` in account `{}`", a.id),
            )
        })
    }

    /// A delivery's attempts matching `query` (outcome), newest first.
    pub async fn attempts(
        &self,
        by: &Actor,
        account: &str,
        delivery: &str,
        query: &ListQuery,
    ) -> Result<Page<Attempt>, ServiceError> {
        let d = self.delivery(by, account, delivery).await?;
        let q = query.check(&[Filter::Outcome])?;
        let filter = AttemptFilter { outcome: q.outcome };
        Ok(self
            .store()
            .list_attempts(&d.account, &d.id, &filter, &q.page)
            .await?)
    }

    /// Makes a delivery pending and due now, as a manual attempt, whatever its state.
    pub async fn retry_delivery(
        &self,
        by: &Actor,
        account: &str,
        delivery: &str,
    ) -> Result<Delivery, ServiceError> {
        by.require_write()?;
        let d = self.delivery(by, account, delivery).await?;
        let d = self
            .store()
            .retry_delivery(&d.account, &d.id, self.now())
            .await?;
        self.dispatcher().wake();
        self.audit(by, Some(&d.account), "delivery.retried", d.id.as_str())
            .await;
        Ok(d)
    }
}
