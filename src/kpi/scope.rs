//! Which records count: an index of assets and repos by id that answers, for
//! a record naming an asset or repo, whether it is in scope, out of scope, or
//! names something no record defines (counted under `unmapped`).

use crate::estate::Estate;
use secmetrics_connectors::{Asset, Repo};
use std::collections::HashMap;

/// What a record's asset or repo reference resolves to.
#[derive(Debug, Clone, Copy)]
pub enum Attach<'a> {
    /// A defined, in-scope asset (for a repo: the repo's asset, if defined).
    Known(Option<&'a Asset>),
    /// Named but defined by no record: still counts, segment `unmapped`.
    Unmapped,
    /// Attached to something marked `in_scope: false`: left out everywhere.
    Out,
}

/// Scope of one repo, precomputed once.
#[derive(Debug, Clone, Copy)]
struct RepoScope<'a> {
    /// The repo and its asset are in scope.
    in_scope: bool,
    /// The repo's asset, when defined.
    asset: Option<&'a Asset>,
    /// The repo record.
    repo: &'a Repo,
}

/// When two sources define the same asset or repo id, the definition that
/// counts is the one whose source sorts last by name length, then bytes:
/// the order of the store's keys, so a store reads as it did when the last
/// definition loaded won, and now whatever order the records come in.
/// True when a definition from source `new` replaces one from `kept`.
pub fn source_wins(new: &str, kept: &str) -> bool {
    (new.len(), new.as_bytes()) > (kept.len(), kept.as_bytes())
}

/// Insert `item` under `id` unless the kept one's source wins over it.
fn keep_winner<'a, T>(
    map: &mut HashMap<&'a str, &'a T>,
    id: &'a str,
    item: &'a T,
    source: impl Fn(&T) -> &String,
) {
    match map.get(id) {
        Some(kept) if !source_wins(source(item), source(kept)) => {}
        _ => {
            map.insert(id, item);
        }
    }
}

/// Assets and repos by id.
#[derive(Debug)]
pub struct Scope<'a> {
    assets: HashMap<&'a str, &'a Asset>,
    repos: HashMap<&'a str, RepoScope<'a>>,
}

impl<'a> Scope<'a> {
    /// Index the assets and repos of an estate.
    pub fn new(estate: &'a Estate) -> Scope<'a> {
        let mut assets: HashMap<&str, &Asset> = HashMap::with_capacity(estate.assets.len());
        for a in &estate.assets {
            keep_winner(&mut assets, a.id.as_str(), a, |a| &a.source);
        }
        let mut winners: HashMap<&str, &Repo> = HashMap::with_capacity(estate.repos.len());
        for r in &estate.repos {
            keep_winner(&mut winners, r.id.as_str(), r, |r| &r.source);
        }
        let repos = winners
            .into_values()
            .map(|r| {
                let asset = r.asset.as_deref().and_then(|id| assets.get(id).copied());
                // A repo's own `in_scope` decides: the repo is the secret
                // scanning denominator, and its asset link is informational
                // (the golden estates count repos of out-of-scope assets).
                let in_scope = r.in_scope;
                (
                    r.id.as_str(),
                    RepoScope {
                        in_scope,
                        asset,
                        repo: r,
                    },
                )
            })
            .collect();
        Scope { assets, repos }
    }

    /// Resolve an asset reference.
    #[inline]
    pub fn asset(&self, id: &str) -> Attach<'a> {
        match self.assets.get(id) {
            Some(a) if a.in_scope => Attach::Known(Some(a)),
            Some(_) => Attach::Out,
            None => Attach::Unmapped,
        }
    }

    /// Every defined asset once per id (see [`source_wins`] when two sources
    /// define the same id), in no particular order.
    pub fn assets(&self) -> impl Iterator<Item = &'a Asset> + '_ {
        self.assets.values().copied()
    }

    /// Every defined repo id once with whether it counts, and its record.
    pub fn repos(&self) -> impl Iterator<Item = (&'a Repo, bool)> + '_ {
        self.repos.values().map(|r| (r.repo, r.in_scope))
    }

    /// True when an asset with this id is defined.
    pub fn has_asset(&self, id: &str) -> bool {
        self.assets.contains_key(id)
    }

    /// True when a repo with this id is defined.
    pub fn has_repo(&self, id: &str) -> bool {
        self.repos.contains_key(id)
    }

    /// Resolve a repo reference.
    #[inline]
    pub fn repo(&self, id: &str) -> Attach<'a> {
        match self.repos.get(id) {
            Some(r) if r.in_scope => Attach::Known(r.asset),
            Some(_) => Attach::Out,
            None => Attach::Unmapped,
        }
    }

    /// True when the repo with this id is defined and counts.
    pub fn repo_in_scope(&self, id: &str) -> bool {
        self.repos.get(id).is_some_and(|r| r.in_scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secmetrics_connectors::ndjson::parse_line;

    fn asset(source: &str, in_scope: bool) -> secmetrics_connectors::Record {
        parse_line(
            &format!(
                r#"{{"kind":"asset","id":"a0","source":"{source}","tier":1,"in_scope":{in_scope}}}"#
            ),
            "import",
        )
        .unwrap()
    }

    #[test]
    fn an_asset_two_sources_define_resolves_the_same_in_any_order() {
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [1, 2, 0]] {
            let all = [
                asset("inv", true),
                asset("cmdb", false),
                asset("jira", true),
            ];
            let estate = Estate::from_records(order.iter().map(|&i| all[i].clone()));
            let scope = Scope::new(&estate);
            // `cmdb` and `jira` are longer than `inv`; `jira` > `cmdb`.
            assert!(matches!(scope.asset("a0"), Attach::Known(Some(a)) if a.source == "jira"));
            assert_eq!(scope.assets().count(), 1);
        }
        assert!(source_wins("cmdb", "inv"));
        assert!(!source_wins("inv", "cmdb"));
    }
}
