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

/// Assets and repos by id.
#[derive(Debug)]
pub struct Scope<'a> {
    assets: HashMap<&'a str, &'a Asset>,
    repos: HashMap<&'a str, RepoScope<'a>>,
}

impl<'a> Scope<'a> {
    /// Index the assets and repos of an estate.
    pub fn new(estate: &'a Estate) -> Scope<'a> {
        let assets: HashMap<&str, &Asset> =
            estate.assets.iter().map(|a| (a.id.as_str(), a)).collect();
        let repos = estate
            .repos
            .iter()
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

    /// Every defined asset once per id (the last record wins when two
    /// sources define the same id), in no particular order.
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
