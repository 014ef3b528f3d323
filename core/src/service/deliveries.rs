//! Deliveries: looking them up, their attempts, and manual retries.

use serde::Deserialize;

use super::{Actor, Hookline, ServiceError, page_request};
use crate::id::DeliveryId;
use crate::model::{Attempt, Delivery, DeliveryFilter, DeliveryStatus, Page, PageRequest};

/// Filter and paging of a delivery listing, as received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct DeliveryQuery {
    /// Only deliveries in this state: `pending`, `succeeded`, `failed` or `cancelled`.
    #[cfg_attr(feature = "openapi", param(value_type = Option<crate::model::DeliveryStatus>))]
    pub status: Option<String>,
    /// Rows at most, 1 to 250 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 250))]
    pub limit: Option<usize>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

impl DeliveryQuery {
    /// Every delivery, first page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only deliveries in this state.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Asks for at most `limit` rows.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continues after `cursor`.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    fn checked(&self) -> Result<(Option<DeliveryStatus>, PageRequest), ServiceError> {
        let status = match &self.status {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                ServiceError::bad_request(
                    "invalid_query",
                    "status is one of pending, succeeded, failed, cancelled",
                )
            })?),
        };
        Ok((status, page_request(self.limit, self.cursor.as_deref())?))
    }
}

impl Hookline {
    /// Lists the deliveries of one event, newest first.
    pub async fn event_deliveries(
        &self,
        by: &Actor,
        account: &str,
        event: &str,
        query: &DeliveryQuery,
    ) -> Result<Page<Delivery>, ServiceError> {
        let ev = self.event(by, account, event).await?;
        let (status, page) = query.checked()?;
        let filter = DeliveryFilter {
            event: Some(ev.id),
            status,
            ..DeliveryFilter::default()
        };
        Ok(self
            .store()
            .list_deliveries(&ev.account, &filter, &page)
            .await?)
    }

    /// Lists the deliveries to one endpoint, newest first.
    pub async fn endpoint_deliveries(
        &self,
        by: &Actor,
        account: &str,
        endpoint: &str,
        query: &DeliveryQuery,
    ) -> Result<Page<Delivery>, ServiceError> {
        let ep = self.endpoint(by, account, endpoint).await?;
        let (status, page) = query.checked()?;
        let filter = DeliveryFilter {
            endpoint: Some(ep.id),
            status,
            ..DeliveryFilter::default()
        };
        Ok(self
            .store()
            .list_deliveries(&ep.account, &filter, &page)
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

    /// A delivery's attempts, oldest first.
    pub async fn attempts(
        &self,
        by: &Actor,
        account: &str,
        delivery: &str,
    ) -> Result<Vec<Attempt>, ServiceError> {
        let d = self.delivery(by, account, delivery).await?;
        Ok(self.store().attempts(&d.account, &d.id).await?)
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
