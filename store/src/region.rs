//! Regions and the delays between them: every node (and every client) sits in a region, and
//! every message between two regions waits the link's one-way delay plus a random share of its
//! jitter — applied in the nodes' Raft transport ([`crate::network`]) and in the client
//! ([`crate::client::Client::in_region`]), so one machine can run a cluster whose consensus
//! round trips are continental.
//!
//! The topology is a TOML file, the same for every node:
//!
//! ```toml
//! regions = ["us-east", "eu-west", "ap-south"]
//!
//! [nodes]          # node id → region
//! 1 = "us-east"
//! 2 = "eu-west"
//! 3 = "ap-south"
//!
//! [[link]]         # both directions; every pair of regions needs one
//! between = ["us-east", "eu-west"]
//! one-way-ms = 40.0
//! jitter-ms = 1.0
//! ```
//!
//! Within a region messages are not delayed (the machine's own loopback latency remains). A
//! partition that cuts a whole region is the fault injection of [`crate::network`] applied to
//! every node of the region.

use crate::raft::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use ttsys::config::{ConfigError, InvalidKey};

/// A link's delay: every message waits `one_way` plus a uniform share of `jitter`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Link {
    /// The fixed one-way delay.
    pub one_way: Duration,
    /// The most added at random (uniform in `[0, jitter]`).
    pub jitter: Duration,
}

impl Link {
    /// One message's delay, with `u` in `[0, 1)` choosing the jitter's share.
    pub fn delay(&self, u: f64) -> Duration {
        self.one_way + self.jitter.mul_f64(u.clamp(0.0, 1.0))
    }

    /// A random message delay (the jitter's share from the system's random source).
    pub fn random_delay(&self) -> Duration {
        let u = u64::from_le_bytes(ttsys::random::bytes()) as f64 / u64::MAX as f64;
        self.delay(u)
    }

    /// No delay at all.
    pub fn is_zero(&self) -> bool {
        self.one_way.is_zero() && self.jitter.is_zero()
    }
}

/// One link in the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LinkSpec {
    /// The two regions (either order).
    pub between: [String; 2],
    /// One-way delay (ms, ≥ 0).
    pub one_way_ms: f64,
    /// Jitter (ms, ≥ 0): each message adds a uniform share of it.
    #[serde(default)]
    pub jitter_ms: f64,
}

/// The regions, where each node is, and the links between regions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Topology {
    /// The regions' names.
    pub regions: Vec<String>,
    /// Node id → region (TOML keys are strings: `1 = "us-east"`).
    pub nodes: BTreeMap<String, String>,
    /// One per pair of regions.
    #[serde(default, rename = "link")]
    pub links: Vec<LinkSpec>,
}

/// The default regions' one-way delays (ms): us-east ↔ eu-west 40, us-east ↔ ap-south 100,
/// eu-west ↔ ap-south 65, each with 1 ms of jitter.
pub const DEFAULT_LINKS: [(&str, &str, f64); 3] = [
    ("us-east", "eu-west", 40.0),
    ("us-east", "ap-south", 100.0),
    ("eu-west", "ap-south", 65.0),
];

impl Topology {
    /// Three regions with [`DEFAULT_LINKS`]; node `i` (1-based) of `nodes` in region
    /// `(i − 1) mod 3` (us-east, eu-west, ap-south), so node 1 — the initialiser, the first
    /// leader — is in us-east.
    pub fn three_regions(nodes: u64) -> Topology {
        let regions: Vec<String> = ["us-east", "eu-west", "ap-south"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Topology {
            nodes: (1..=nodes)
                .map(|i| (i.to_string(), regions[((i - 1) % 3) as usize].clone()))
                .collect(),
            regions,
            links: DEFAULT_LINKS
                .iter()
                .map(|(a, b, ms)| LinkSpec {
                    between: [a.to_string(), b.to_string()],
                    one_way_ms: *ms,
                    jitter_ms: 1.0,
                })
                .collect(),
        }
    }

    /// Parses a topology file's text (`path` names it in errors, with the line of a bad key).
    pub fn parse(src: &str, path: &str) -> Result<Topology, ConfigError> {
        ttsys::config::parse(src, path, Topology::validate)
    }

    /// Reads and parses a topology file.
    pub fn load(path: &Path) -> Result<Topology, ConfigError> {
        ttsys::config::load(path, Topology::validate)
    }

    /// The topology as TOML (what [`Topology::load`] reads).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), InvalidKey> {
        let known = |r: &str| self.regions.iter().any(|x| x == r);
        for (i, r) in self.regions.iter().enumerate() {
            if r.is_empty() || self.regions[..i].contains(r) {
                return Err(InvalidKey::new(
                    "regions",
                    format!("region names must be non-empty and distinct ({r:?})"),
                ));
            }
        }
        for (id, r) in &self.nodes {
            if id.parse::<NodeId>().map_or(true, |n| n == 0) {
                return Err(InvalidKey::new(
                    format!("nodes.{id}"),
                    "a node id is a positive integer",
                ));
            }
            if !known(r) {
                return Err(InvalidKey::new(
                    format!("nodes.{id}"),
                    format!("unknown region {r:?} (not in `regions`)"),
                ));
            }
        }
        for (i, l) in self.links.iter().enumerate() {
            let key = |k: &str| format!("link[{i}].{k}");
            for r in &l.between {
                if !known(r) {
                    return Err(InvalidKey::new(
                        key("between"),
                        format!("unknown region {r:?} (not in `regions`)"),
                    ));
                }
            }
            if l.between[0] == l.between[1] {
                return Err(InvalidKey::new(
                    key("between"),
                    "a link joins two different regions (within a region there is no delay)",
                ));
            }
            for (k, v) in [("one-way-ms", l.one_way_ms), ("jitter-ms", l.jitter_ms)] {
                if !(0.0..=60_000.0).contains(&v) {
                    return Err(InvalidKey::new(
                        key(k),
                        format!("{v} ms: must be within 0–60,000 ms"),
                    ));
                }
            }
            let same = |m: &LinkSpec| {
                (m.between[0] == l.between[0] && m.between[1] == l.between[1])
                    || (m.between[0] == l.between[1] && m.between[1] == l.between[0])
            };
            if self.links[..i].iter().any(same) {
                return Err(InvalidKey::new(
                    key("between"),
                    "a second link between the same two regions",
                ));
            }
        }
        for (i, a) in self.regions.iter().enumerate() {
            for b in &self.regions[i + 1..] {
                if self.spec(a, b).is_none() {
                    return Err(InvalidKey::new(
                        "link",
                        format!("no link between {a} and {b}: every pair of regions needs one"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn spec(&self, a: &str, b: &str) -> Option<&LinkSpec> {
        self.links.iter().find(|l| {
            (l.between[0] == a && l.between[1] == b) || (l.between[0] == b && l.between[1] == a)
        })
    }

    /// The link between two regions (zero within one region or for a region not in the file).
    pub fn link(&self, a: &str, b: &str) -> Link {
        if a == b {
            return Link::default();
        }
        self.spec(a, b)
            .map(|l| Link {
                one_way: Duration::from_secs_f64(l.one_way_ms / 1e3),
                jitter: Duration::from_secs_f64(l.jitter_ms / 1e3),
            })
            .unwrap_or_default()
    }

    /// The region of node `id`, if the file places it.
    pub fn region_of(&self, id: NodeId) -> Option<&str> {
        self.nodes.get(&id.to_string()).map(String::as_str)
    }

    /// The link between nodes `a` and `b` (zero when either is not placed).
    pub fn node_link(&self, a: NodeId, b: NodeId) -> Link {
        match (self.region_of(a), self.region_of(b)) {
            (Some(x), Some(y)) => self.link(x, y),
            _ => Link::default(),
        }
    }

    /// The longest one-way delay plus jitter between any two regions.
    pub fn max_one_way(&self) -> Duration {
        self.links
            .iter()
            .map(|l| Duration::from_secs_f64((l.one_way_ms + l.jitter_ms) / 1e3))
            .max()
            .unwrap_or_default()
    }

    /// The nodes in `region`.
    pub fn nodes_in(&self, region: &str) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, r)| *r == region)
            .filter_map(|(id, _)| id.parse().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_three_regions_round_trip_and_give_the_issue_s_delays() {
        let t = Topology::three_regions(3);
        let back = Topology::parse(&t.to_toml(), "t.toml").unwrap();
        assert_eq!(back, t);
        assert_eq!(t.region_of(1), Some("us-east"));
        assert_eq!(t.node_link(1, 2).one_way, Duration::from_millis(40));
        assert_eq!(t.node_link(3, 1).one_way, Duration::from_millis(100));
        assert_eq!(t.node_link(2, 3).one_way, Duration::from_millis(65));
        assert!(t.node_link(2, 2).is_zero());
        assert_eq!(t.max_one_way(), Duration::from_millis(101));
        assert_eq!(t.nodes_in("eu-west"), vec![2]);
        let l = t.node_link(1, 2);
        assert_eq!(l.delay(0.0), Duration::from_millis(40));
        assert_eq!(l.delay(1.0), Duration::from_millis(41));
        let range = Duration::from_millis(40)..=Duration::from_millis(41);
        assert!((0..100).all(|_| range.contains(&l.random_delay())));
    }

    #[test]
    fn the_shipped_example_is_the_default() {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/three-regions.toml");
        let t = Topology::load(std::path::Path::new(p)).unwrap();
        assert_eq!(t, Topology::three_regions(3));
    }

    #[test]
    fn bad_topologies_are_refused_naming_the_key_and_line() {
        let base = "regions = [\"a\", \"b\"]\n[nodes]\n1 = \"a\"\n2 = \"b\"\n";
        let link = "[[link]]\nbetween = [\"a\", \"b\"]\none-way-ms = 10.0\n";
        assert!(Topology::parse(&format!("{base}{link}"), "t").is_ok());
        for (src, want) in [
            (base.to_string(), "no link between a and b"),
            (format!("{base}{link}{link}"), "link[1].between"),
            (
                format!("{base}[[link]]\nbetween = [\"a\", \"c\"]\none-way-ms = 1.0\n"),
                "unknown region \"c\"",
            ),
            (
                format!("{base}[[link]]\nbetween = [\"a\", \"b\"]\none-way-ms = -1.0\n"),
                "link[0].one-way-ms",
            ),
            (
                "regions = [\"a\"]\n[nodes]\n1 = \"z\"\n".to_string(),
                "nodes.1: unknown region",
            ),
            (
                "regions = [\"a\"]\n[nodes]\nx = \"a\"\n".to_string(),
                "nodes.x: a node id",
            ),
            (format!("{base}{link}bogus = 1\n"), "unknown field `bogus`"),
        ] {
            let e = Topology::parse(&src, "t.toml").unwrap_err().to_string();
            assert!(e.contains(want), "{src}\n→ {e}\n(wanted {want:?})");
            assert!(e.starts_with("t.toml"), "{e}");
        }
        // The line of the offending key is named.
        let e = Topology::parse(
            &format!("{base}[[link]]\nbetween = [\"a\", \"b\"]\none-way-ms = -1.0\n"),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 7"), "{e}");
    }
}
