//! The in-memory xenstore: nodes, permissions, watches and transactions with xenstored's
//! semantics (as far as backends and toolstacks observe them).
//!
//! - Nodes hold a value, an ordered permission list and a generation; a node's children are
//!   the nodes below it. Writing a missing node creates its missing ancestors; creation needs
//!   write access to the nearest existing ancestor, and new nodes inherit its permissions,
//!   with an unprivileged creator becoming the owner.
//! - Permissions: dom0 may do anything; a node's owner (first entry) may do anything; another
//!   domain gets its own entry's access, else the first entry's. Missing access is `EACCES`;
//!   only the owner (or dom0) may change permissions, and only dom0 may change the owner.
//! - Watches fire for changes at or below the watched path, for watches below a removed
//!   subtree, once on registration, and only when the watcher may read the node.
//! - Transactions work on a private copy; at commit, if any node they read or wrote changed
//!   meanwhile (a child added or removed changes the parent) the commit fails with `EAGAIN`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xen_abi::xs_wire::{validate_path, PathKind, Perm, PermAccess};
use xen_abi::XenErrno;

use crate::platform::DomId;

/// Domain home prefix.
pub(crate) fn home(domid: DomId) -> String {
    alloc::format!("/local/domain/{domid}")
}

/// Whether `path` is `parent` or below it.
pub(crate) fn is_at_or_below(path: &str, parent: &str) -> bool {
    if parent == "/" {
        return path.starts_with('/');
    }
    path == parent || (path.starts_with(parent) && path.as_bytes().get(parent.len()) == Some(&b'/'))
}

fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

fn child_prefix(path: &str) -> String {
    if path == "/" {
        "/".to_string()
    } else {
        alloc::format!("{path}/")
    }
}

/// The access `domid` has to a node with `perms`.
pub(crate) fn access_for(domid: DomId, perms: &[Perm]) -> (bool, bool) {
    let Some(owner) = perms.first() else {
        return (domid == 0, domid == 0);
    };
    if domid == 0 || owner.domid == domid {
        return (true, true);
    }
    let access = perms[1..]
        .iter()
        .find(|p| p.domid == domid)
        .map_or(owner.access, |p| p.access);
    match access {
        PermAccess::NoAccess => (false, false),
        PermAccess::Read => (true, false),
        PermAccess::Write => (false, true),
        PermAccess::ReadWrite => (true, true),
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) value: Vec<u8>,
    pub(crate) perms: Vec<Perm>,
    gen: u64,
}

/// A change watches may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Node written, created or its permissions changed.
    Write { path: String, perms: Vec<Perm> },
    /// Subtree removed: its root and every removed node with the perms it had.
    Rm {
        path: String,
        removed: Vec<(String, Vec<Perm>)>,
    },
}

/// What an operation touched, for transaction conflicts and watch firing.
#[derive(Debug, Default)]
struct OpLog {
    /// First-seen generation of every node a transaction read or wrote (`None` = absent).
    orig: BTreeMap<String, Option<u64>>,
    changes: Vec<Change>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn children(&self, path: &str) -> Vec<String> {
        let prefix = child_prefix(path);
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    fn subtree(&self, path: &str) -> Vec<String> {
        let prefix = child_prefix(path);
        let mut out = alloc::vec![path.to_string()];
        out.extend(
            self.nodes
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, _)| k.clone()),
        );
        out
    }
}

/// One open transaction of a connection.
#[derive(Debug)]
pub(crate) struct Tx {
    tree: Tree,
    log: OpLog,
}

/// The store proper: the committed tree and the generation counter.
#[derive(Debug)]
pub(crate) struct Store {
    tree: Tree,
    gen: u64,
}

impl Default for Store {
    fn default() -> Self {
        let mut tree = Tree::default();
        let root = Node {
            value: Vec::new(),
            perms: alloc::vec![Perm {
                access: PermAccess::NoAccess,
                domid: 0
            }],
            gen: 0,
        };
        tree.nodes.insert("/".to_string(), root);
        Self { tree, gen: 1 }
    }
}

/// Where an operation runs: the committed tree or a transaction's copy.
pub(crate) enum Scope<'a> {
    Direct,
    Tx(&'a mut Tx),
}

impl Store {
    /// Resolves a client path (relative ones against the caller's home) and validates it.
    pub(crate) fn resolve(domid: DomId, path: &str) -> Result<String, XenErrno> {
        match validate_path(path).map_err(|_| XenErrno::EINVAL)? {
            PathKind::Absolute => Ok(path.to_string()),
            PathKind::Relative => Ok(alloc::format!("{}/{path}", home(domid))),
            PathKind::Special => Err(XenErrno::EINVAL),
        }
    }

    pub(crate) fn tree(&self) -> &Tree {
        &self.tree
    }

    pub(crate) fn begin(&self) -> Tx {
        Tx {
            tree: self.tree.clone(),
            log: OpLog::default(),
        }
    }

    /// Commits `tx`, returning its changes for watch firing, or `EAGAIN` on conflict.
    pub(crate) fn commit(&mut self, tx: Tx) -> Result<Vec<Change>, XenErrno> {
        for (path, gen) in &tx.log.orig {
            if self.tree.get(path).map(|n| n.gen) != *gen {
                return Err(XenErrno::EAGAIN);
            }
        }
        for (path, gen) in &tx.log.orig {
            match tx.tree.nodes.get(path) {
                Some(n) if Some(n.gen) != *gen => {
                    self.gen += 1;
                    let mut n = n.clone();
                    n.gen = self.gen;
                    self.tree.nodes.insert(path.clone(), n);
                }
                Some(_) => {}
                None => {
                    self.tree.nodes.remove(path);
                }
            }
        }
        Ok(tx.log.changes)
    }

    /// Runs `op` on the scope's tree; direct changes are returned for firing at once,
    /// transactional ones are kept until commit.
    fn run<R>(
        &mut self,
        scope: Scope<'_>,
        op: impl FnOnce(&mut Tree, &mut OpLog, &mut u64) -> Result<R, XenErrno>,
    ) -> Result<(R, Vec<Change>), XenErrno> {
        match scope {
            Scope::Direct => {
                let mut log = OpLog::default();
                let r = op(&mut self.tree, &mut log, &mut self.gen)?;
                Ok((r, log.changes))
            }
            Scope::Tx(tx) => {
                let r = op(&mut tx.tree, &mut tx.log, &mut self.gen)?;
                Ok((r, Vec::new()))
            }
        }
    }

    pub(crate) fn read(
        &mut self,
        scope: Scope<'_>,
        domid: DomId,
        path: &str,
    ) -> Result<Vec<u8>, XenErrno> {
        self.run(scope, |tree, log, _| {
            let node = readable(tree, log, domid, path)?;
            Ok(node.value.clone())
        })
        .map(|(v, _)| v)
    }

    pub(crate) fn directory(
        &mut self,
        scope: Scope<'_>,
        domid: DomId,
        path: &str,
    ) -> Result<Vec<String>, XenErrno> {
        self.run(scope, |tree, log, _| {
            readable(tree, log, domid, path)?;
            Ok(tree.children(path))
        })
        .map(|(v, _)| v)
    }

    pub(crate) fn get_perms(
        &mut self,
        scope: Scope<'_>,
        domid: DomId,
        path: &str,
    ) -> Result<Vec<Perm>, XenErrno> {
        self.run(scope, |tree, log, _| {
            Ok(readable(tree, log, domid, path)?.perms.clone())
        })
        .map(|(v, _)| v)
    }

    /// Writes (or with `value == None`, mkdir: creates if missing, else leaves alone).
    pub(crate) fn write(
        &mut self,
        scope: Scope<'_>,
        domid: DomId,
        path: &str,
        value: Option<&[u8]>,
    ) -> Result<Vec<Change>, XenErrno> {
        self.run(scope, |tree, log, gen| {
            touch(tree, log, path);
            if let Some(node) = tree.nodes.get_mut(path) {
                if !access_for(domid, &node.perms).1 {
                    return Err(XenErrno::EACCES);
                }
                let Some(value) = value else { return Ok(()) };
                *gen += 1;
                node.value = value.to_vec();
                node.gen = *gen;
                let perms = node.perms.clone();
                log.changes.push(Change::Write {
                    path: path.to_string(),
                    perms,
                });
                return Ok(());
            }
            // Find the nearest existing ancestor; it decides access and inherited perms.
            let mut missing = alloc::vec![path.to_string()];
            let mut anc = parent_of(path).ok_or(XenErrno::EINVAL)?;
            while tree.get(anc).is_none() {
                missing.push(anc.to_string());
                anc = parent_of(anc).ok_or(XenErrno::EINVAL)?;
            }
            touch(tree, log, anc);
            let anc_node = tree.nodes.get_mut(anc).ok_or(XenErrno::ENOENT)?;
            if !access_for(domid, &anc_node.perms).1 {
                return Err(XenErrno::EACCES);
            }
            *gen += 1;
            anc_node.gen = *gen; // its child list changed
            let mut perms = anc_node.perms.clone();
            if domid != 0 {
                perms[0].domid = domid;
            }
            for p in missing.iter().rev() {
                touch(tree, log, p);
                let v = if p == path {
                    value.unwrap_or_default().to_vec()
                } else {
                    Vec::new()
                };
                tree.nodes.insert(
                    p.clone(),
                    Node {
                        value: v,
                        perms: perms.clone(),
                        gen: *gen,
                    },
                );
            }
            log.changes.push(Change::Write {
                path: path.to_string(),
                perms,
            });
            Ok(())
        })
        .map(|((), c)| c)
    }

    pub(crate) fn rm(
        &mut self,
        scope: Scope<'_>,
        domid: DomId,
        path: &str,
    ) -> Result<Vec<Change>, XenErrno> {
        self.run(scope, |tree, log, gen| {
            touch(tree, log, path);
            let parent = parent_of(path).ok_or(XenErrno::EINVAL)?;
            let Some(node) = tree.get(path) else {
                // xenstored: removing a missing node whose parent exists succeeds.
                touch(tree, log, parent);
                return if tree.get(parent).is_some() {
                    Ok(())
                } else {
                    Err(XenErrno::ENOENT)
                };
            };
            if !access_for(domid, &node.perms).1 {
                return Err(XenErrno::EACCES);
            }
            let mut removed = Vec::new();
            for p in tree.subtree(path) {
                touch(tree, log, &p);
                if let Some(n) = tree.nodes.remove(&p) {
                    removed.push((p, n.perms));
                }
            }
            touch(tree, log, parent);
            *gen += 1;
            if let Some(pn) = tree.nodes.get_mut(parent) {
                pn.gen = *gen;
            }
            log.changes.push(Change::Rm {
                path: path.to_string(),
                removed,
            });
            Ok(())
        })
        .map(|((), c)| c)
    }

    pub(crate) fn set_perms(
        &mut self,
        scope: Scope<'_>,
        domid: DomId,
        path: &str,
        perms: &[Perm],
    ) -> Result<Vec<Change>, XenErrno> {
        if perms.is_empty() {
            return Err(XenErrno::EINVAL);
        }
        self.run(scope, |tree, log, gen| {
            touch(tree, log, path);
            let node = tree.nodes.get_mut(path).ok_or(XenErrno::ENOENT)?;
            let owner = node.perms.first().map(|p| p.domid);
            if domid != 0 && owner != Some(domid) {
                return Err(XenErrno::EACCES);
            }
            if domid != 0 && owner != Some(perms[0].domid) {
                return Err(XenErrno::EPERM);
            }
            *gen += 1;
            node.perms = perms.to_vec();
            node.gen = *gen;
            log.changes.push(Change::Write {
                path: path.to_string(),
                perms: perms.to_vec(),
            });
            Ok(())
        })
        .map(|((), c)| c)
    }
}

fn touch(tree: &Tree, log: &mut OpLog, path: &str) {
    if !log.orig.contains_key(path) {
        log.orig
            .insert(path.to_string(), tree.get(path).map(|n| n.gen));
    }
}

fn readable<'t>(
    tree: &'t Tree,
    log: &mut OpLog,
    domid: DomId,
    path: &str,
) -> Result<&'t Node, XenErrno> {
    touch(tree, log, path);
    let Some(node) = tree.get(path) else {
        return Err(missing_node_errno(tree, domid, path));
    };
    if !access_for(domid, &node.perms).0 {
        return Err(XenErrno::EACCES);
    }
    Ok(node)
}

/// xenstored's answer for a node that does not exist (`errno_from_parents`): `ENOENT` if the
/// nearest existing ancestor is readable by `domid`, else `EACCES`, so that a domain cannot
/// probe for paths it may not see. A driver domain reading below a destroyed guest's
/// /local/domain/<id> therefore gets `EACCES`.
fn missing_node_errno(tree: &Tree, domid: DomId, path: &str) -> XenErrno {
    let mut p = path;
    while let Some(parent) = parent_of(p) {
        if let Some(anc) = tree.get(parent) {
            return if access_for(domid, &anc.perms).0 {
                XenErrno::ENOENT
            } else {
                XenErrno::EACCES
            };
        }
        p = parent;
    }
    XenErrno::ENOENT
}

/// The watch events a change produces for a watch on `watch` (absolute) held by `domid`:
/// the absolute paths to report.
pub(crate) fn matches(change: &Change, watch: &str, domid: DomId) -> Option<String> {
    match change {
        Change::Write { path, perms } => {
            (is_at_or_below(path, watch) && access_for(domid, perms).0).then(|| path.clone())
        }
        Change::Rm { path, removed } => {
            if is_at_or_below(path, watch) {
                let perms = removed
                    .first()
                    .map(|(_, p)| p.as_slice())
                    .unwrap_or_default();
                return access_for(domid, perms).0.then(|| path.clone());
            }
            removed
                .iter()
                .find(|(p, _)| p == watch)
                .and_then(|(p, perms)| access_for(domid, perms).0.then(|| p.clone()))
        }
    }
}

/// Every path in the committed tree, for debugging dumps.
pub(crate) fn all_paths(tree: &Tree) -> BTreeSet<String> {
    tree.nodes.keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn p(access: PermAccess, domid: DomId) -> Perm {
        Perm { access, domid }
    }

    #[test]
    fn implicit_parents_and_ownership() {
        let mut s = Store::default();
        s.write(Scope::Direct, 0, "/local/domain/5", Some(b""))
            .unwrap();
        s.set_perms(
            Scope::Direct,
            0,
            "/local/domain/5",
            &[p(PermAccess::NoAccess, 5)],
        )
        .unwrap();
        // Domain 5 owns its home: it may create below it; ownership is inherited.
        s.write(Scope::Direct, 5, "/local/domain/5/a/b", Some(b"x"))
            .unwrap();
        assert_eq!(s.read(Scope::Direct, 5, "/local/domain/5/a").unwrap(), b"");
        assert_eq!(
            s.get_perms(Scope::Direct, 0, "/local/domain/5/a").unwrap()[0].domid,
            5
        );
        // Domain 6 has no access there.
        assert_eq!(
            s.read(Scope::Direct, 6, "/local/domain/5/a/b"),
            Err(XenErrno::EACCES)
        );
        assert_eq!(
            s.write(Scope::Direct, 6, "/local/domain/5/c", Some(b"")),
            Err(XenErrno::EACCES)
        );
        assert_eq!(
            s.write(Scope::Direct, 6, "/local/x", Some(b"")),
            Err(XenErrno::EACCES)
        );
        assert_eq!(
            s.directory(Scope::Direct, 0, "/local/domain").unwrap(),
            vec!["5"]
        );
        // Only dom0 may give a node away.
        let give = [p(PermAccess::NoAccess, 6)];
        assert_eq!(
            s.set_perms(Scope::Direct, 5, "/local/domain/5/a", &give),
            Err(XenErrno::EPERM)
        );
        // rm of a missing child of an existing parent succeeds; of a missing parent fails.
        s.rm(Scope::Direct, 5, "/local/domain/5/a/zz").unwrap();
        assert_eq!(
            s.rm(Scope::Direct, 5, "/local/domain/5/q/zz"),
            Err(XenErrno::ENOENT)
        );
        s.rm(Scope::Direct, 5, "/local/domain/5/a").unwrap();
        assert_eq!(
            s.read(Scope::Direct, 5, "/local/domain/5/a/b"),
            Err(XenErrno::ENOENT)
        );
    }

    #[test]
    fn transactions_conflict_on_touched_nodes() {
        let mut s = Store::default();
        s.write(Scope::Direct, 0, "/a", Some(b"1")).unwrap();
        let mut tx = s.begin();
        assert_eq!(s.read(Scope::Tx(&mut tx), 0, "/a").unwrap(), b"1");
        s.write(Scope::Tx(&mut tx), 0, "/b", Some(b"2")).unwrap();
        assert_eq!(
            s.read(Scope::Direct, 0, "/b"),
            Err(XenErrno::ENOENT),
            "isolated"
        );
        s.write(Scope::Direct, 0, "/a", Some(b"3")).unwrap();
        assert_eq!(s.commit(tx).err(), Some(XenErrno::EAGAIN));
        assert_eq!(s.read(Scope::Direct, 0, "/b"), Err(XenErrno::ENOENT));

        let mut tx = s.begin();
        s.write(Scope::Tx(&mut tx), 0, "/b", Some(b"2")).unwrap();
        // An unrelated existing node may change; creating a sibling would conflict, since it
        // changes the parent's child list (as in xenstored).
        s.write(Scope::Direct, 0, "/a", Some(b"4")).unwrap();
        let changes = s.commit(tx).unwrap();
        assert_eq!(changes.len(), 1);
        assert_eq!(s.read(Scope::Direct, 0, "/b").unwrap(), b"2");

        let mut tx = s.begin();
        s.write(Scope::Tx(&mut tx), 0, "/d", Some(b"")).unwrap();
        s.write(Scope::Direct, 0, "/e", Some(b"")).unwrap();
        assert_eq!(
            s.commit(tx).err(),
            Some(XenErrno::EAGAIN),
            "sibling created meanwhile"
        );
    }

    #[test]
    fn watch_matching() {
        let w = Change::Write {
            path: "/a/b/c".into(),
            perms: vec![p(PermAccess::NoAccess, 3)],
        };
        assert_eq!(matches(&w, "/a/b", 3).as_deref(), Some("/a/b/c"));
        assert_eq!(matches(&w, "/a/b", 4), None, "unreadable");
        assert_eq!(matches(&w, "/a/bc", 3), None);
        assert_eq!(matches(&w, "/", 0).as_deref(), Some("/a/b/c"));
        let rm = Change::Rm {
            path: "/a".into(),
            removed: vec![
                ("/a".into(), vec![p(PermAccess::Read, 0)]),
                ("/a/b".into(), vec![p(PermAccess::Read, 0)]),
            ],
        };
        assert_eq!(matches(&rm, "/a/b", 7).as_deref(), Some("/a/b"));
        assert_eq!(
            matches(&rm, "/a/x", 7),
            None,
            "watch below, node never existed"
        );
        assert_eq!(matches(&rm, "/", 7).as_deref(), Some("/a"));
    }
}
