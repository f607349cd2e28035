//! The dependency graph of an appliance: which domain needs which driver domains, the start
//! order (waves of domains that can start together), the stop order and cycle detection.

use std::collections::BTreeSet;

/// Domains (by index) and the domains each one depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    names: Vec<String>,
    deps: Vec<Vec<usize>>,
}

impl Graph {
    /// Builds the graph from `(name, dependency names)`; every dependency must be a node.
    pub fn new(nodes: &[(String, Vec<String>)]) -> Result<Graph, String> {
        let names: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
        let mut deps = Vec::with_capacity(nodes.len());
        for (name, ds) in nodes {
            let mut idx: Vec<usize> = Vec::new();
            for d in ds {
                let i = names
                    .iter()
                    .position(|n| n == d)
                    .ok_or_else(|| format!("`{name}` depends on unknown domain `{d}`"))?;
                if !idx.contains(&i) {
                    idx.push(i);
                }
            }
            deps.push(idx);
        }
        Ok(Graph { names, deps })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// A node's name.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The index of a name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// What node `i` depends on.
    pub fn deps(&self, i: usize) -> &[usize] {
        &self.deps[i]
    }

    /// The nodes that depend on node `i`.
    pub fn dependents(&self, i: usize) -> Vec<usize> {
        (0..self.len())
            .filter(|&j| self.deps[j].contains(&i))
            .collect()
    }

    /// A dependency cycle, if there is one, as names from a node back to itself
    /// (`["a", "b", "a"]`: a needs b, b needs a).
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark = vec![Mark::New; self.len()];
        for root in 0..self.len() {
            if mark[root] != Mark::New {
                continue;
            }
            // Iterative depth-first search; `path` is the chain of open nodes.
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            mark[root] = Mark::Open;
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                if let Some(&d) = self.deps[node].get(*next) {
                    *next += 1;
                    match mark[d] {
                        Mark::Open => {
                            let start = path.iter().position(|&(n, _)| n == d).unwrap_or(0);
                            let mut cycle: Vec<String> = path[start..]
                                .iter()
                                .map(|&(n, _)| self.names[n].clone())
                                .collect();
                            cycle.push(self.names[d].clone());
                            return Some(cycle);
                        }
                        Mark::New => {
                            mark[d] = Mark::Open;
                            path.push((d, 0));
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[node] = Mark::Done;
                    path.pop();
                }
            }
        }
        None
    }

    /// Start waves: wave 0 has no dependencies, wave k depends only on earlier waves.
    /// Panics on a cycle (check [`Graph::find_cycle`] first).
    pub fn start_waves(&self) -> Vec<Vec<usize>> {
        let mut done = vec![false; self.len()];
        let mut waves = Vec::new();
        while done.iter().any(|d| !d) {
            let wave: Vec<usize> = (0..self.len())
                .filter(|&i| !done[i] && self.deps[i].iter().all(|&d| done[d]))
                .collect();
            assert!(!wave.is_empty(), "dependency cycle");
            for &i in &wave {
                done[i] = true;
            }
            waves.push(wave);
        }
        waves
    }

    /// Stop waves for the nodes in `set`: `first` (the guests) all together, then the others
    /// once nothing in `set` that depends on them is left. Panics on a cycle.
    pub fn stop_waves(&self, set: &BTreeSet<usize>, first: &BTreeSet<usize>) -> Vec<Vec<usize>> {
        let mut left: BTreeSet<usize> = set.clone();
        let mut waves = Vec::new();
        let head: Vec<usize> = left.intersection(first).copied().collect();
        if !head.is_empty() {
            for i in &head {
                left.remove(i);
            }
            waves.push(head);
        }
        while !left.is_empty() {
            let wave: Vec<usize> = left
                .iter()
                .copied()
                .filter(|&i| !left.iter().any(|&j| self.deps[j].contains(&i)))
                .collect();
            assert!(!wave.is_empty(), "dependency cycle");
            for i in &wave {
                left.remove(i);
            }
            waves.push(wave);
        }
        waves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        let nodes: Vec<(String, Vec<String>)> = edges
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect();
        Graph::new(&nodes).unwrap()
    }

    fn names(g: &Graph, waves: Vec<Vec<usize>>) -> Vec<Vec<&str>> {
        waves
            .into_iter()
            .map(|w| w.into_iter().map(|i| g.name(i)).collect())
            .collect()
    }

    #[test]
    fn starts_in_dependency_waves() {
        let g = graph(&[
            ("web", &["netdd", "blkdd"]),
            ("blkdd", &["netdd"]),
            ("netdd", &[]),
            ("hello", &[]),
            ("db", &["blkdd"]),
        ]);
        assert_eq!(g.find_cycle(), None);
        assert_eq!(
            names(&g, g.start_waves()),
            [vec!["netdd", "hello"], vec!["blkdd"], vec!["web", "db"]]
        );
        assert_eq!(g.dependents(2), [0, 1]);
    }

    #[test]
    fn stops_guests_first_then_driver_domains_in_reverse() {
        let g = graph(&[
            ("web", &["netdd", "blkdd"]),
            ("blkdd", &["netdd"]),
            ("netdd", &[]),
            ("hello", &[]),
            ("db", &["blkdd"]),
        ]);
        let all: BTreeSet<usize> = (0..5).collect();
        let guests: BTreeSet<usize> = [0, 4].into();
        assert_eq!(
            names(&g, g.stop_waves(&all, &guests)),
            [vec!["web", "db"], vec!["blkdd", "hello"], vec!["netdd"]]
        );
        // Only part of the appliance running (a rollback): the same rule on the subset.
        let some: BTreeSet<usize> = [1, 2].into();
        assert_eq!(
            names(&g, g.stop_waves(&some, &guests)),
            [vec!["blkdd"], vec!["netdd"]]
        );
    }

    #[test]
    fn names_the_cycle() {
        let g = graph(&[
            ("web", &["stordd"]),
            ("netdd", &["stordd"]),
            ("stordd", &["fwdd"]),
            ("fwdd", &["netdd"]),
        ]);
        assert_eq!(
            g.find_cycle().unwrap(),
            ["stordd", "fwdd", "netdd", "stordd"]
        );
        let selfish = graph(&[("netdd", &["netdd"])]);
        assert_eq!(selfish.find_cycle().unwrap(), ["netdd", "netdd"]);
    }

    #[test]
    fn rejects_unknown_dependencies() {
        let nodes = vec![("web".to_string(), vec!["ghost".to_string()])];
        assert_eq!(
            Graph::new(&nodes).unwrap_err(),
            "`web` depends on unknown domain `ghost`"
        );
    }
}
