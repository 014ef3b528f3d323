//! Accounts, their API keys and their sites.

use serde::Deserialize;

use super::validate::{self, MAX_NAME};
use super::{Actor, Hookline, Paging, ServiceError, keys};
use crate::id::{AccountId, SiteId};
use crate::model::{Account, Page, Role, Site};
use crate::time::Timestamp;

/// A new account: its id (chosen by the producer) and an optional display name (default: the
/// id).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAccount {
    /// The id, e.g. `acme`.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::id::AccountId))]
    pub id: String,
    /// The display name.
    pub name: Option<String>,
}

impl NewAccount {
    /// An account with id `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
        }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Changes to an account; absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountPatch {
    /// A new display name, or `Some(None)` (`null`) for the default, the account's id.
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Option<Option<String>>,
}

impl AccountPatch {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Some(name.into()));
        self
    }
}

/// A new site: its id (unique within the account) and an optional display name (default: the
/// id).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewSite {
    /// The id, e.g. `store-1`.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::id::SiteId))]
    pub id: String,
    /// The display name.
    pub name: Option<String>,
}

impl NewSite {
    /// A site with id `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
        }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Changes to a site; absent fields stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SitePatch {
    /// A new display name, or `Some(None)` (`null`) for the default, the site's id.
    #[serde(default, deserialize_with = "super::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Option<Option<String>>,
}

impl SitePatch {
    /// No change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Some(name.into()));
        self
    }
}

/// A newly issued API key. The key itself is shown only here; the store keeps its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedKey {
    /// The key (`hk_…`), to hand to its holder once.
    pub key: String,
    /// Its first characters, for display.
    pub prefix: String,
    /// The account it speaks for.
    pub account: AccountId,
    /// When it was issued.
    pub created_at: Timestamp,
}

impl Hookline {
    /// Who the API key `key` speaks for, or `None` for an unknown key.
    pub async fn authenticate(&self, key: &str) -> Result<Option<Actor>, ServiceError> {
        Ok(self
            .store()
            .api_key(&keys::hash(key))
            .await?
            .map(|k| Actor::from(k.role)))
    }

    /// Makes sure an admin key exists (see [`keys::ensure_admin`]). Returns a generated key,
    /// which the caller shows once.
    pub async fn ensure_admin_key(
        &self,
        configured: Option<&str>,
    ) -> Result<Option<String>, ServiceError> {
        Ok(keys::ensure_admin(self.store().as_ref(), configured, self.now()).await?)
    }

    /// Creates an account (admin only): `invalid_id`, `field_too_long`, `account_exists`.
    pub async fn create_account(
        &self,
        by: &Actor,
        input: NewAccount,
    ) -> Result<Account, ServiceError> {
        by.require_admin()?;
        let id = AccountId::parse(&input.id)?;
        let name = input.name.unwrap_or_else(|| id.to_string());
        validate::text("name", &name, MAX_NAME)?;
        let account = Account::new(id, name, self.now());
        self.store()
            .create_account(&account)
            .await
            .map_err(ServiceError::conflict_as("account_exists", || {
                format!("account `{}` exists", account.id)
            }))?;
        Ok(account)
    }

    /// Lists accounts, newest first (admin only).
    pub async fn list_accounts(
        &self,
        by: &Actor,
        paging: &Paging,
    ) -> Result<Page<Account>, ServiceError> {
        by.require_admin()?;
        Ok(self.store().list_accounts(&paging.request()?).await?)
    }

    /// One account (the admin, or the account itself).
    pub async fn account(&self, by: &Actor, account: &str) -> Result<Account, ServiceError> {
        self.reach_account(by, account).await
    }

    /// Changes an account (admin only).
    pub async fn update_account(
        &self,
        by: &Actor,
        account: &str,
        patch: AccountPatch,
    ) -> Result<Account, ServiceError> {
        by.require_admin()?;
        let mut a = self.reach_account(by, account).await?;
        if let Some(name) = patch.name {
            let name = name.unwrap_or_else(|| a.id.to_string());
            validate::text("name", &name, MAX_NAME)?;
            a.name = name;
        }
        a.updated_at = self.now();
        self.store().update_account(&a).await?;
        Ok(a)
    }

    /// Deletes an account with everything it owns, its keys included (admin only).
    pub async fn delete_account(&self, by: &Actor, account: &str) -> Result<(), ServiceError> {
        by.require_admin()?;
        let a = self.reach_account(by, account).await?;
        self.store().delete_account(&a.id).await?;
        Ok(())
    }

    /// Issues a new API key for an account (admin only).
    pub async fn create_key(&self, by: &Actor, account: &str) -> Result<IssuedKey, ServiceError> {
        by.require_admin()?;
        let a = self.reach_account(by, account).await?;
        let (key, stored) = keys::generate(Role::Account(a.id.clone()), self.now());
        self.store().put_api_key(&stored).await?;
        Ok(IssuedKey {
            key,
            prefix: stored.prefix,
            account: a.id,
            created_at: stored.created_at,
        })
    }

    /// Creates a site in an account: `invalid_id`, `field_too_long`, `site_exists`.
    pub async fn create_site(
        &self,
        by: &Actor,
        account: &str,
        input: NewSite,
    ) -> Result<Site, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let id = SiteId::parse(&input.id)?;
        let name = input.name.unwrap_or_else(|| id.to_string());
        validate::text("name", &name, MAX_NAME)?;
        let site = Site::new(a.id, id, name, self.now());
        self.store()
            .create_site(&site)
            .await
            .map_err(ServiceError::conflict_as("site_exists", || {
                format!("site `{}` exists", site.id)
            }))?;
        Ok(site)
    }

    /// Lists an account's sites, newest first.
    pub async fn list_sites(
        &self,
        by: &Actor,
        account: &str,
        paging: &Paging,
    ) -> Result<Page<Site>, ServiceError> {
        let a = self.reach_account(by, account).await?;
        Ok(self.store().list_sites(&a.id, &paging.request()?).await?)
    }

    /// One site of an account: `site_not_found`.
    pub async fn site(&self, by: &Actor, account: &str, site: &str) -> Result<Site, ServiceError> {
        let a = self.reach_account(by, account).await?;
        let id = SiteId::parse(site)?;
        self.store().site(&a.id, &id).await?.ok_or_else(|| {
            ServiceError::not_found(
                "site_not_found",
                format!("no site `{id}` in account `{}`", a.id),
            )
        })
    }

    /// Changes a site.
    pub async fn update_site(
        &self,
        by: &Actor,
        account: &str,
        site: &str,
        patch: SitePatch,
    ) -> Result<Site, ServiceError> {
        let mut s = self.site(by, account, site).await?;
        if let Some(name) = patch.name {
            let name = name.unwrap_or_else(|| s.id.to_string());
            validate::text("name", &name, MAX_NAME)?;
            s.name = name;
        }
        s.updated_at = self.now();
        self.store().update_site(&s).await?;
        Ok(s)
    }

    /// Deletes a site.
    pub async fn delete_site(
        &self,
        by: &Actor,
        account: &str,
        site: &str,
    ) -> Result<(), ServiceError> {
        let s = self.site(by, account, site).await?;
        self.store().delete_site(&s.account, &s.id).await?;
        Ok(())
    }
}
