//! A guard run before YAML reaches the parser: a light scan that bounds
//! what the parser would build, so a hostile `objects` costs neither
//! minutes of CPU nor the node's memory.
//!
//! - **Flow nesting** (`[…]`, `{…}`): libyaml checks every open flow level
//!   on every token, so nesting costs quadratic time (a 1 MiB `[[[[…` keeps
//!   a CPU busy for minutes).
//! - **Block nesting** (`- - - x`, `a:\n  b:\n    c:`): every level is an
//!   event the loader keeps, and 1 MiB of `- - - …` cost 166 MiB.
//! - **Alias expansion**: `serde_yaml_ng` replays an anchored node for
//!   every alias and our types copy each replayed scalar, so `&a <100 KB>`
//!   with a thousand `*a` is 100 MB. The scan weighs every alias by the
//!   expanded size of its anchor (bytes and nodes, aliases inside it
//!   included) and sums them, before anything is built.
//!
//! This is a scan, not a parser. It skips comments, quoted scalars and
//! block scalars (`|`, `>`), and counts `[`/`{`, `- `, `key: ` and `*alias`
//! only where a node may start, so brackets inside plain scalars
//! (`alias: a[1]`) do not count. An anchor's node is taken to end where
//! the indentation or the flow collection says so; where it cannot tell,
//! the node runs to the alias. So it may over-count a document that is
//! unusual anyway, never under-count one the parser would build.
//!
//! Pure: bytes in, a [`Shape`] out. The limits and the result are here; the
//! scanner itself is `yaml/scan.rs`.

use std::fmt;

/// Deepest flow nesting accepted. The `objects` parameter needs two levels
/// at most; a SecretProviderClass is written by hand.
pub const MAX_FLOW_DEPTH: usize = 64;
/// Deepest block nesting accepted (`- ` and `key:` levels), for the same
/// reason.
pub const MAX_BLOCK_DEPTH: usize = 64;
/// Most bytes a document may stand for once its aliases are expanded: the
/// document itself and at most as much again from aliases.
pub const MAX_EXPANDED_BYTES: u64 = 2 << 20;
/// Most nodes a document may stand for once its aliases are expanded.
/// `objects` holds at most 1000 elements; yaml.v3 allows 400,000 decodes,
/// but a Go string shares its bytes where our copies do not.
pub const MAX_EXPANDED_NODES: u64 = 100_000;
/// Most anchors in one document (each one is remembered by the scan).
pub const MAX_ANCHORS: usize = 1000;

/// The limit a document is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YamlLimit {
    FlowDepth,
    BlockDepth,
    ExpandedBytes,
    ExpandedNodes,
    Anchors,
}

// === impl YamlLimit ===

impl fmt::Display for YamlLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FlowDepth => write!(
                f,
                "it nests flow collections ([…] or {{…}}) more than {MAX_FLOW_DEPTH} levels deep"
            ),
            Self::BlockDepth => write!(
                f,
                "it nests block collections (`- ` or `key:`) more than {MAX_BLOCK_DEPTH} levels deep"
            ),
            Self::ExpandedBytes => write!(
                f,
                "its aliases (*name) expand it to more than {MAX_EXPANDED_BYTES} bytes; \
                 write the values out instead of aliasing them"
            ),
            Self::ExpandedNodes => write!(
                f,
                "its aliases (*name) expand it to more than {MAX_EXPANDED_NODES} values; \
                 write the values out instead of aliasing them"
            ),
            Self::Anchors => write!(f, "it defines more than {MAX_ANCHORS} anchors (&name)"),
        }
    }
}

/// What the scan measured, each counted up to just past its limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub flow_depth: usize,
    pub block_depth: usize,
    pub expanded_bytes: u64,
    pub expanded_nodes: u64,
    pub anchors: usize,
}

// === impl Shape ===

impl Shape {
    /// The first limit `self` is over, if any.
    pub fn over_limit(&self) -> Option<YamlLimit> {
        if self.flow_depth > MAX_FLOW_DEPTH {
            Some(YamlLimit::FlowDepth)
        } else if self.block_depth > MAX_BLOCK_DEPTH {
            Some(YamlLimit::BlockDepth)
        } else if self.anchors > MAX_ANCHORS {
            Some(YamlLimit::Anchors)
        } else if self.expanded_bytes > MAX_EXPANDED_BYTES {
            Some(YamlLimit::ExpandedBytes)
        } else if self.expanded_nodes > MAX_EXPANDED_NODES {
            Some(YamlLimit::ExpandedNodes)
        } else {
            None
        }
    }
}

/// Scans `yaml`, stopping at the first limit it goes over.
pub fn shape(yaml: &str) -> Shape {
    scan::measure(yaml)
}

mod scan;

#[cfg(test)]
mod tests;
