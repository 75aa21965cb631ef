//! Rule 1 of the spec's Reconciliation: which findings are linked (same
//! asset and non-empty fingerprint, or one's `refs` naming the other's
//! `url`), and the connected components of those links (union-find).

use secmetrics_connectors::Finding;
use std::collections::HashMap;

/// Union-find over finding positions, with path halving and union by
/// smaller root, so the result does not depend on the order of unions.
struct Components {
    parent: Vec<u32>,
    /// Positions that took part in at least one link.
    touched: Vec<u32>,
    linked: Vec<bool>,
}

impl Components {
    fn new(n: usize) -> Components {
        Components {
            parent: (0..n as u32).collect(),
            touched: Vec::new(),
            linked: vec![false; n],
        }
    }

    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = self.parent[x as usize];
        }
        x
    }

    fn touch(&mut self, x: u32) {
        if !self.linked[x as usize] {
            self.linked[x as usize] = true;
            self.touched.push(x);
        }
    }

    fn union(&mut self, a: u32, b: u32) {
        if a == b {
            return;
        }
        self.touch(a);
        self.touch(b);
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

/// The groups of two or more linked findings, as positions into `findings`
/// (each group's positions ascending; groups in ascending order of their
/// first position). Findings without links are in no group.
pub fn groups(findings: &[Finding]) -> Vec<Vec<u32>> {
    let n = findings.len();
    assert!(n < u32::MAX as usize, "more findings than positions");
    let mut c = Components::new(n);

    // a. Same asset and the same non-empty fingerprint.
    let mut by_fingerprint: HashMap<(&str, &str), u32> = HashMap::new();
    for (i, f) in findings.iter().enumerate() {
        let Some(fp) = f.fingerprint.as_deref().filter(|fp| !fp.is_empty()) else {
            continue;
        };
        let i = i as u32;
        match by_fingerprint.entry((f.asset.as_str(), fp)) {
            std::collections::hash_map::Entry::Occupied(first) => c.union(*first.get(), i),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(i);
            }
        }
    }
    drop(by_fingerprint);

    // b. One lists in `refs` a string equal to the other's `url`. Refs are
    // few (tickets), so index them (first finding naming each string, and
    // whether some finding has it as url) and walk the urls once; then
    // every other finding naming a string that is a url joins the first.
    let mut referrer: HashMap<&str, (u32, bool)> = HashMap::new();
    for (i, f) in findings.iter().enumerate() {
        for r in &f.refs {
            referrer.entry(r.as_str()).or_insert((i as u32, false));
        }
    }
    if !referrer.is_empty() {
        for (j, f) in findings.iter().enumerate() {
            let Some(url) = f.url.as_deref() else {
                continue;
            };
            if let Some(e) = referrer.get_mut(url) {
                e.1 = true;
                c.union(e.0, j as u32);
            }
        }
        for (i, f) in findings.iter().enumerate() {
            for r in &f.refs {
                if let Some(&(first, true)) = referrer.get(r.as_str()) {
                    c.union(first, i as u32);
                }
            }
        }
    }

    // Components of two or more, each in ascending position order.
    let mut by_root: Vec<(u32, u32)> = std::mem::take(&mut c.touched)
        .into_iter()
        .map(|i| (c.find(i), i))
        .collect();
    by_root.sort_unstable();
    let mut out: Vec<Vec<u32>> = Vec::new();
    let mut k = 0;
    while k < by_root.len() {
        let root = by_root[k].0;
        let end = by_root[k..]
            .iter()
            .position(|(r, _)| *r != root)
            .map_or(by_root.len(), |n| k + n);
        if end - k > 1 {
            out.push(by_root[k..end].iter().map(|(_, i)| *i).collect());
        }
        k = end;
    }
    // In the order of each group's first position.
    out.sort_unstable_by_key(|g| g[0]);
    out
}
