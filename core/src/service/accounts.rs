//! Accounts, their API keys and their sites.

use serde::Deserialize;

use super::validate::{self, MAX_NAME};
use std::time::Duration;

use super::{Actor, Credential, Hookline, ListQuery, ServiceError, keys};
use crate::id::{AccountId, KeyId, SiteId};
use crate::model::{Account, ApiKey, Page, Principal, Role, Site};
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

/// A new API key's settings (all optional): the JSON body of the key-creating routes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewKey {
    /// A name for people, e.g. `ci deploys` (default: empty).
    pub name: Option<String>,
    /// A read-only key reads what its scope may read and changes nothing (default false).
    #[serde(default)]
    pub read_only: bool,
    /// When the key stops working (default: never); must lie in the future.
    pub expires_at: Option<Timestamp>,
}

impl NewKey {
    /// A key with no name, full access, no expiry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the key read-only.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Sets when the key stops working.
    pub fn expires_at(mut self, at: Timestamp) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// A newly issued API key. The key itself is shown only here; the store keeps its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedKey {
    /// The key (`hk_…`), to hand to its holder once.
    pub key: String,
    /// What is stored of it (its id, prefix, scope, name, expiry, …).
    pub details: ApiKey,
}

/// How long a process waits before writing a key's `last_used_at` again.
const LAST_USED_GRANULARITY: Duration = Duration::from_secs(60);

impl Hookline {
    /// Who the API key `key` speaks for, or `None` for an unknown, revoked or expired key. Notes
    /// the key's use (its `last_used_at`, written at most once a minute per process).
    pub async fn authenticate(&self, key: &str) -> Result<Option<Actor>, ServiceError> {
        let Some(k) = self.store().api_key(&keys::hash(key)).await? else {
            return Ok(None);
        };
        let now = self.now();
        if k.expired(now) {
            return Ok(None);
        }
        self.note_use(&k, now).await;
        Ok(Some(Actor::Credential(
            Credential::new(Principal::Key(k.id), k.role).read_only(k.read_only),
        )))
    }

    async fn note_use(&self, k: &ApiKey, now: Timestamp) {
        let fresh = |t: Timestamp| now.since(t) < LAST_USED_GRANULARITY;
        if k.last_used_at.is_some_and(fresh) {
            return;
        }
        {
            let mut touches = self
                .inner
                .key_touches
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if touches.get(&k.hash).copied().is_some_and(fresh) {
                return;
            }
            if touches.len() >= 10_000 {
                touches.clear();
            }
            touches.insert(k.hash.clone(), now);
        }
        if let Err(e) = self.store().touch_api_key(&k.hash, now).await {
            tracing::warn!(error = %e, key = %k.id, "noting an API key's last use failed");
        }
    }

    /// Makes sure an admin key exists and the bootstrap key is `configured` (see
    /// [`keys::ensure_admin`]). Returns a generated key, which the caller shows once.
    pub async fn ensure_admin_key(
        &self,
        configured: Option<&str>,
    ) -> Result<Option<String>, ServiceError> {
        Ok(keys::ensure_admin(self.store().as_ref(), configured, self.now()).await?)
    }

    /// The scope `account` names (an account `by` may reach, or the admin keys for `None`).
    async fn key_scope(
        &self,
        by: &Actor,
        account: Option<&str>,
    ) -> Result<Option<AccountId>, ServiceError> {
        match account {
            None => {
                by.require_admin()?;
                Ok(None)
            }
            Some(a) => Ok(Some(self.reach_account(by, a).await?.id)),
        }
    }

    /// Issues a new API key: for an account (`Some`: the admin, or a full key of that account),
    /// or an admin key (`None`: the admin only). `field_too_long`, `invalid_expiry`.
    pub async fn create_key(
        &self,
        by: &Actor,
        account: Option<&str>,
        input: NewKey,
    ) -> Result<IssuedKey, ServiceError> {
        by.require_write()?;
        let scope = self.key_scope(by, account).await?;
        let name = input.name.unwrap_or_default();
        if !name.is_empty() {
            validate::text("name", &name, MAX_NAME)?;
        }
        let now = self.now();
        if input.expires_at.is_some_and(|at| at <= now) {
            return Err(ServiceError::invalid(
                "invalid_expiry",
                "expiresAt must lie in the future",
            ));
        }
        let role = match &scope {
            Some(a) => Role::Account(a.clone()),
            None => Role::Admin,
        };
        let (key, mut stored) = keys::generate(role, now);
        stored.name = name;
        stored.read_only = input.read_only;
        stored.expires_at = input.expires_at;
        self.store().put_api_key(&stored).await?;
        self.audit(by, scope.as_ref(), "key.created", stored.id.as_str())
            .await;
        Ok(IssuedKey {
            key,
            details: stored,
        })
    }

    /// Lists the keys of an account (`Some`: the admin, or that account's keys) or the admin
    /// keys (`None`: the admin only), newest first. Never the keys themselves.
    pub async fn list_keys(
        &self,
        by: &Actor,
        account: Option<&str>,
        paging: &ListQuery,
    ) -> Result<Page<ApiKey>, ServiceError> {
        let scope = self.key_scope(by, account).await?;
        let page = paging.request()?;
        Ok(self.store().list_api_keys(scope.as_ref(), &page).await?)
    }

    /// Revokes a key of an account or an admin key (who may: as for
    /// [`create_key`](Self::create_key)). It is refused from then on: at once in this process,
    /// and in others once their key cache expires. `invalid_id`, `key_not_found`.
    pub async fn revoke_key(
        &self,
        by: &Actor,
        account: Option<&str>,
        key: &str,
    ) -> Result<ApiKey, ServiceError> {
        by.require_write()?;
        let scope = self.key_scope(by, account).await?;
        let id = KeyId::parse(key)?;
        let gone = self
            .store()
            .delete_api_key(scope.as_ref(), &id)
            .await?
            .ok_or_else(|| ServiceError::not_found("key_not_found", format!("no key `{id}`")))?;
        self.audit(by, scope.as_ref(), "key.revoked", id.as_str())
            .await;
        Ok(gone)
    }

    /// Creates an account (admin only): `invalid_id`, `field_too_long`, `account_exists`.
    pub async fn create_account(
        &self,
        by: &Actor,
        input: NewAccount,
    ) -> Result<Account, ServiceError> {
        by.require_write()?;
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
        self.audit(
            by,
            Some(&account.id),
            "account.created",
            account.id.as_str(),
        )
        .await;
        Ok(account)
    }

    /// Lists accounts, newest first (admin only).
    pub async fn list_accounts(
        &self,
        by: &Actor,
        paging: &ListQuery,
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
        by.require_write()?;
        by.require_admin()?;
        let mut a = self.reach_account(by, account).await?;
        if let Some(name) = patch.name {
            let name = name.unwrap_or_else(|| a.id.to_string());
            validate::text("name", &name, MAX_NAME)?;
            a.name = name;
        }
        a.updated_at = self.now();
        self.store().update_account(&a).await?;
        self.audit(by, Some(&a.id), "account.updated", a.id.as_str())
            .await;
        Ok(a)
    }

    /// Deletes an account with everything it owns, its keys included (admin only).
    pub async fn delete_account(&self, by: &Actor, account: &str) -> Result<(), ServiceError> {
        by.require_write()?;
        by.require_admin()?;
        let a = self.reach_account(by, account).await?;
        self.store().delete_account(&a.id).await?;
        self.audit(by, Some(&a.id), "account.deleted", a.id.as_str())
            .await;
        Ok(())
    }

    /// Creates a site in an account: `invalid_id`, `field_too_long`, `site_exists`.
    pub async fn create_site(
        &self,
        by: &Actor,
        account: &str,
        input: NewSite,
    ) -> Result<Site, ServiceError> {
        by.require_write()?;
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
        self.audit(by, Some(&site.account), "site.created", site.id.as_str())
            .await;
        Ok(site)
    }

    /// Lists an account's sites, newest first.
    pub async fn list_sites(
        &self,
        by: &Actor,
        account: &str,
        paging: &ListQuery,
    ) -> Result<Page<Site>, ServiceError> {
        let a = self.reach_account(by, account).await?;
        Ok(self.store().list_sites(&a.id, &paging.request()?).await?)
    }

    /// Checks that `by` may hand out a customer-portal session of `account` (limited to `site`
    /// when given): it reaches the account and the site, and a read-only caller may grant
    /// read-only sessions only (`read_only_key` otherwise). Returns the account's and site's ids.
    pub async fn check_portal_grant(
        &self,
        by: &Actor,
        account: &str,
        site: Option<&str>,
        read_only: bool,
    ) -> Result<(AccountId, Option<SiteId>), ServiceError> {
        let a = self.reach_account(by, account).await?;
        if !read_only {
            by.require_write()?;
        }
        let site = match site {
            Some(s) => Some(self.site(by, account, s).await?.id),
            None => None,
        };
        Ok((a.id, site))
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
        by.require_write()?;
        let mut s = self.site(by, account, site).await?;
        if let Some(name) = patch.name {
            let name = name.unwrap_or_else(|| s.id.to_string());
            validate::text("name", &name, MAX_NAME)?;
            s.name = name;
        }
        s.updated_at = self.now();
        self.store().update_site(&s).await?;
        self.audit(by, Some(&s.account), "site.updated", s.id.as_str())
            .await;
        Ok(s)
    }

    /// Deletes a site.
    pub async fn delete_site(
        &self,
        by: &Actor,
        account: &str,
        site: &str,
    ) -> Result<(), ServiceError> {
        by.require_write()?;
        let s = self.site(by, account, site).await?;
        self.store().delete_site(&s.account, &s.id).await?;
        self.audit(by, Some(&s.account), "site.deleted", s.id.as_str())
            .await;
        Ok(())
    }
}
