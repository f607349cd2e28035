//! Simulated grant tables: per-domain v1 entries over [`HostPage`]s, with the status codes
//! Xen's `GNTTABOP_map_grant_ref` / `GNTTABOP_copy` return.

use alloc::collections::BTreeMap;

use xen_abi::grant::GNTTAB_NR_RESERVED_ENTRIES;
use xen_abi::hypercall::grant_table::{
    GNTST_BAD_DOMAIN, GNTST_BAD_GNTREF, GNTST_GENERAL_ERROR, GNTST_NO_SPACE,
};

use super::page::HostPage;
use crate::platform::{Access, DomId, GrantError, GrantRef};

/// Default grant table size: 32 frames of 512 v1 entries (Xen's default `max_grant_frames`).
pub const DEFAULT_GRANT_ENTRIES: u32 = 32 * 512;

#[derive(Debug)]
struct Entry {
    grantee: DomId,
    access: Access,
    page: HostPage,
    /// Live mappings of this entry by the grantee.
    maps: u32,
    /// False once the granter ended or revoked access: no new maps or copies.
    valid: bool,
}

#[derive(Debug)]
struct Table {
    entries: BTreeMap<GrantRef, Entry>,
    limit: u32,
}

/// All domains' grant tables plus per-domain mapping counts.
#[derive(Debug, Default)]
pub(crate) struct GrantTables {
    tables: BTreeMap<DomId, Table>,
    /// Live mappings held by each mapping domain.
    mapped_by: BTreeMap<DomId, usize>,
}

impl GrantTables {
    pub(crate) fn add_domain(&mut self, domid: DomId) {
        self.tables.entry(domid).or_insert(Table {
            entries: BTreeMap::new(),
            limit: DEFAULT_GRANT_ENTRIES,
        });
    }

    pub(crate) fn set_limit(&mut self, domid: DomId, limit: u32) {
        if let Some(t) = self.tables.get_mut(&domid) {
            t.limit = limit;
        }
    }

    /// `owner` grants `grantee` access to `page`; returns the lowest free reference after the
    /// reserved ones.
    pub(crate) fn grant(
        &mut self,
        owner: DomId,
        grantee: DomId,
        page: HostPage,
        access: Access,
    ) -> Result<GrantRef, GrantError> {
        let table = self
            .tables
            .get_mut(&owner)
            .ok_or(GrantError::Status(GNTST_BAD_DOMAIN))?;
        let mut gref = GNTTAB_NR_RESERVED_ENTRIES;
        for &used in table
            .entries
            .range(GNTTAB_NR_RESERVED_ENTRIES..)
            .map(|(k, _)| k)
        {
            if used != gref {
                break;
            }
            gref += 1;
        }
        if gref >= table.limit {
            return Err(GrantError::Exhausted);
        }
        table.entries.insert(
            gref,
            Entry {
                grantee,
                access,
                page,
                maps: 0,
                valid: true,
            },
        );
        Ok(gref)
    }

    /// Ends access: no new maps; the entry (and its reference) stays reserved until the last
    /// mapping goes, like Linux's deferred `gnttab_end_foreign_access`.
    pub(crate) fn end(&mut self, owner: DomId, gref: GrantRef) {
        let Some(table) = self.tables.get_mut(&owner) else {
            return;
        };
        if let Some(e) = table.entries.get_mut(&gref) {
            e.valid = false;
            if e.maps == 0 {
                table.entries.remove(&gref);
            }
        }
    }

    /// A dying domain's grants: no new maps or copies; existing mappings stay valid until
    /// unmapped (Xen keeps the pages referenced).
    pub(crate) fn revoke_all(&mut self, owner: DomId) {
        if let Some(table) = self.tables.get_mut(&owner) {
            table.entries.retain(|_, e| {
                e.valid = false;
                e.maps > 0
            });
        }
    }

    /// Looks up an entry `mapper` may use, as Xen's `_set_status` / `acquire_grant_for_copy`.
    fn usable(
        &mut self,
        mapper: DomId,
        owner: DomId,
        gref: GrantRef,
        access: Access,
    ) -> Result<&mut Entry, i16> {
        let table = self.tables.get_mut(&owner).ok_or(GNTST_BAD_DOMAIN)?;
        if gref >= table.limit {
            return Err(GNTST_BAD_GNTREF);
        }
        let entry = table.entries.get_mut(&gref).ok_or(GNTST_GENERAL_ERROR)?;
        let writable_needed = access == Access::ReadWrite;
        if !entry.valid
            || entry.grantee != mapper
            || (writable_needed && entry.access == Access::ReadOnly)
        {
            return Err(GNTST_GENERAL_ERROR);
        }
        Ok(entry)
    }

    /// Maps `owner`'s `gref` for `mapper`; the caller must call [`unmap`](Self::unmap) later.
    pub(crate) fn map(
        &mut self,
        mapper: DomId,
        owner: DomId,
        gref: GrantRef,
        access: Access,
        map_limit: usize,
    ) -> Result<HostPage, GrantError> {
        if self.mapped_by.get(&mapper).copied().unwrap_or(0) >= map_limit {
            return Err(GrantError::Status(GNTST_NO_SPACE));
        }
        let entry = self
            .usable(mapper, owner, gref, access)
            .map_err(GrantError::Status)?;
        entry.maps += 1;
        let page = entry.page.clone();
        *self.mapped_by.entry(mapper).or_default() += 1;
        Ok(page)
    }

    pub(crate) fn unmap(&mut self, mapper: DomId, owner: DomId, gref: GrantRef) {
        if let Some(n) = self.mapped_by.get_mut(&mapper) {
            *n = n.saturating_sub(1);
        }
        let Some(table) = self.tables.get_mut(&owner) else {
            return;
        };
        if let Some(e) = table.entries.get_mut(&gref) {
            e.maps = e.maps.saturating_sub(1);
            if !e.valid && e.maps == 0 {
                table.entries.remove(&gref);
            }
        }
    }

    /// The page behind a grant `mapper` may copy from/to (no mapping kept).
    pub(crate) fn for_copy(
        &mut self,
        mapper: DomId,
        owner: DomId,
        gref: GrantRef,
        access: Access,
    ) -> Result<HostPage, GrantError> {
        self.usable(mapper, owner, gref, access)
            .map(|e| e.page.clone())
            .map_err(GrantError::Status)
    }

    /// The page of `owner`'s entry `gref`, valid or not (test access).
    pub(crate) fn page(&self, owner: DomId, gref: GrantRef) -> Option<HostPage> {
        self.tables
            .get(&owner)?
            .entries
            .get(&gref)
            .map(|e| e.page.clone())
    }

    /// Live mappings held by `mapper`.
    pub(crate) fn mapped_by(&self, mapper: DomId) -> usize {
        self.mapped_by.get(&mapper).copied().unwrap_or(0)
    }

    /// Entries in `owner`'s table (including ended ones still mapped).
    pub(crate) fn granted_by(&self, owner: DomId) -> usize {
        self.tables.get(&owner).map_or(0, |t| t.entries.len())
    }
}
