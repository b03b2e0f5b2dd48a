//! The shape scan itself: one pass over the bytes of an `objects`
//! document that follows flow and block nesting, anchors and aliases the
//! way the parser would build them, and weighs every alias by its anchor's
//! expanded size (see `yaml.rs` for the limits and why they exist).
//!
//! A scan, not a parser: it must stay linear in the input and never
//! allocate per alias.

use std::collections::HashMap;

use super::*;

/// Scans `yaml`, stopping at the first limit it goes over.
pub(super) fn measure(yaml: &str) -> Shape {
    let mut scan = Scan {
        bytes: yaml.as_bytes(),
        at: 0,
        depth: 0,
        shape: Shape::default(),
        node_start: true,
        line_start: 0,
        line_indent: 0,
        token_col: None,
        dash_col: None,
        block: Vec::new(),
        alias_bytes: 0,
        nodes: 0,
        anchors: HashMap::new(),
        open: Vec::new(),
        pending: Vec::new(),
    };
    scan.run();
    scan.shape.expanded_bytes = scan.total_bytes();
    scan.shape.expanded_nodes = scan.nodes;
    scan.shape
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    Seq,
    Map,
}

/// An anchored node being measured.
struct Anchor {
    /// Expanded bytes and nodes before the node.
    bytes: u64,
    nodes: u64,
    /// Where it was defined: flow depth, indentation of its line and the
    /// column of the `- ` it follows (a sequence entry ends at a line
    /// indented no deeper).
    depth: usize,
    line_indent: usize,
    dash_col: Option<usize>,
    /// Expanded (bytes, nodes) once its end is known.
    weight: Option<(u64, u64)>,
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Open flow collections.
    depth: usize,
    shape: Shape,
    /// A node may start here (after a line start, `- `, `: `, `? `, `,`,
    /// `[`, `{` or a node property).
    node_start: bool,
    line_start: usize,
    /// Leading spaces of the current line.
    line_indent: usize,
    /// Column where the current line's latest node began (a key's column).
    token_col: Option<usize>,
    /// Column of a `- ` directly before the current node.
    dash_col: Option<usize>,
    /// Open block collections: (column, kind).
    block: Vec<(usize, Block)>,
    /// Bytes added by aliases so far.
    alias_bytes: u64,
    /// Nodes so far, aliases' expansions included.
    nodes: u64,
    anchors: HashMap<&'a [u8], usize>,
    /// Anchors by definition order (the index `anchors` maps to).
    open: Vec<Anchor>,
    /// Anchors whose node has not ended, innermost last.
    pending: Vec<usize>,
}

impl<'a> Scan<'a> {
    fn run(&mut self) {
        let mut fresh_line = true;
        while self.at < self.bytes.len() && self.within_limits() {
            let b = self.bytes[self.at];
            if fresh_line && !matches!(b, b' ' | b'\t') {
                fresh_line = false;
                if !matches!(b, b'#' | b'\n' | b'\r') && self.depth == 0 {
                    self.close_on_line(b == b'-');
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.at += 1;
                    self.start_line();
                    fresh_line = true;
                    continue;
                }
                b' ' | b'\t' => {}
                b'#' if self.after_blank() => {
                    self.skip_line();
                    continue;
                }
                // Inside a flow collection a plain scalar ends at a bracket,
                // so every bracket there opens a collection.
                b'[' | b'{' if self.node_start || self.depth > 0 => {
                    self.begin_node();
                    self.depth += 1;
                    self.shape.flow_depth = self.shape.flow_depth.max(self.depth);
                }
                b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    let depth = self.depth;
                    self.close_while(|a| a.depth > depth);
                    self.node_start = false;
                }
                b',' if self.depth > 0 => {
                    let depth = self.depth;
                    self.close_while(|a| a.depth >= depth);
                    self.node_start = true;
                }
                b':' | b'?' | b'-' => self.indicator(b),
                b'\'' if self.node_start => {
                    self.begin_node();
                    self.skip_single_quoted();
                    self.node_start = false;
                    continue;
                }
                b'"' if self.node_start => {
                    self.begin_node();
                    self.skip_double_quoted();
                    self.node_start = false;
                    continue;
                }
                b'&' if self.node_start => {
                    self.anchor();
                    continue;
                }
                b'*' if self.node_start => {
                    self.alias();
                    continue;
                }
                b'!' if self.node_start => {
                    // A tag: the node itself follows.
                    self.skip_tag();
                    continue;
                }
                b'|' | b'>' if self.node_start && self.depth == 0 => {
                    self.begin_node();
                    self.skip_block_scalar();
                    continue;
                }
                _ => {
                    if self.node_start {
                        self.begin_node();
                    }
                    self.node_start = false;
                }
            }
            self.at += 1;
        }
    }

    fn within_limits(&self) -> bool {
        let mut shape = self.shape;
        shape.expanded_bytes = self.total_bytes();
        shape.expanded_nodes = self.nodes;
        shape.over_limit().is_none()
    }

    /// Bytes scanned plus what aliases added.
    fn total_bytes(&self) -> u64 {
        (self.at as u64).saturating_add(self.alias_bytes)
    }

    fn column(&self) -> usize {
        self.at - self.line_start
    }

    /// A scalar or collection starts here.
    fn begin_node(&mut self) {
        self.nodes = self.nodes.saturating_add(1);
        self.token_col = Some(self.column());
    }

    /// `:`, `?` or `-`: an indicator when followed by a blank, or (`:`)
    /// right after a JSON-style key inside a flow collection.
    fn indicator(&mut self, b: u8) {
        let blank = self.blank_at(self.at + 1);
        if blank && self.depth == 0 {
            let col = self.column();
            match b {
                b'-' if self.node_start => {
                    self.nodes = self.nodes.saturating_add(1);
                    self.open_block(col, Block::Seq);
                    self.dash_col = Some(col);
                }
                b'?' if self.node_start => self.open_block(col, Block::Map),
                b':' => self.open_block(self.token_col.unwrap_or(col), Block::Map),
                _ => {}
            }
        }
        self.node_start = blank || (b == b':' && self.depth > 0);
    }

    /// A block collection entry at `col`: closes deeper collections, and
    /// opens one unless it continues the collection there.
    fn open_block(&mut self, col: usize, kind: Block) {
        while let Some(&(open, open_kind)) = self.block.last() {
            if open > col {
                self.block.pop();
            } else if open == col && open_kind == kind {
                return;
            } else if open == col && open_kind == Block::Seq {
                // A key where a sequence was: the sequence ended.
                self.block.pop();
            } else {
                // A sequence as a mapping's value may share its column.
                break;
            }
        }
        self.block.push((col, kind));
        self.shape.block_depth = self.shape.block_depth.max(self.block.len());
    }

    /// `&name`: remembers where the anchored node starts.
    fn anchor(&mut self) {
        let name = self.name();
        let anchor = Anchor {
            bytes: self.total_bytes(),
            nodes: self.nodes,
            depth: self.depth,
            line_indent: self.line_indent,
            dash_col: self.dash_col,
            weight: None,
        };
        self.anchors.insert(name, self.open.len());
        self.pending.push(self.open.len());
        self.open.push(anchor);
        self.shape.anchors = self.open.len();
    }

    /// `*name`: the anchored node again, as the parser will replay it.
    fn alias(&mut self) {
        let name = self.name();
        self.node_start = false;
        self.nodes = self.nodes.saturating_add(1);
        let Some(&index) = self.anchors.get(name) else {
            return; // The parser refuses an unknown alias.
        };
        let (bytes, nodes) = self.weight(index);
        self.alias_bytes = self.alias_bytes.saturating_add(bytes);
        self.nodes = self.nodes.saturating_add(nodes);
    }

    /// An anchored node's expanded size: measured if it has ended, else
    /// everything since it began.
    fn weight(&self, index: usize) -> (u64, u64) {
        let anchor = &self.open[index];
        anchor.weight.unwrap_or_else(|| {
            (
                self.total_bytes().saturating_sub(anchor.bytes),
                self.nodes.saturating_sub(anchor.nodes),
            )
        })
    }

    /// A line with content outside flow collections ends the anchored
    /// nodes it is not indented into.
    fn close_on_line(&mut self, dash: bool) {
        let indent = self.line_indent;
        self.close_while(|a| {
            a.depth == 0
                && match a.dash_col {
                    Some(col) => indent <= col,
                    None => indent < a.line_indent || (indent == a.line_indent && !dash),
                }
        });
    }

    /// Measures the latest open anchors while `ended` says they ended.
    fn close_while(&mut self, ended: impl Fn(&Anchor) -> bool) {
        while let Some(&index) = self.pending.last() {
            if !ended(&self.open[index]) {
                return;
            }
            self.open[index].weight = Some(self.weight(index));
            self.pending.pop();
        }
    }

    /// The name after `&` or `*` (libyaml's rule: ASCII letters, digits,
    /// `_` and `-`), moving past it.
    fn name(&mut self) -> &'a [u8] {
        let bytes: &'a [u8] = self.bytes;
        self.at += 1;
        let start = self.at;
        while bytes
            .get(self.at)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            self.at += 1;
        }
        &bytes[start..self.at]
    }

    /// Past a tag: to a blank, or in a flow collection to a flow indicator.
    fn skip_tag(&mut self) {
        self.at += 1;
        while self.at < self.bytes.len()
            && !self.blank_at(self.at)
            && !(self.depth > 0 && matches!(self.bytes[self.at], b',' | b'[' | b']' | b'{' | b'}'))
        {
            self.at += 1;
        }
    }

    /// At a line start: measures its indentation; a node may start.
    fn start_line(&mut self) {
        self.node_start = true;
        self.line_start = self.at;
        self.line_indent = self.spaces_at(self.at);
        self.token_col = None;
        self.dash_col = None;
    }

    fn spaces_at(&self, from: usize) -> usize {
        self.bytes[from..]
            .iter()
            .take_while(|&&b| b == b' ')
            .count()
    }

    fn blank_at(&self, i: usize) -> bool {
        self.bytes
            .get(i)
            .is_none_or(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    }

    fn after_blank(&self) -> bool {
        self.at == 0 || self.blank_at(self.at - 1)
    }

    /// Moves to the line break (not past it).
    fn skip_line(&mut self) {
        while self.at < self.bytes.len() && !matches!(self.bytes[self.at], b'\n' | b'\r') {
            self.at += 1;
        }
    }

    /// `'…'`, where `''` is a quote; to EOF when unterminated.
    fn skip_single_quoted(&mut self) {
        self.at += 1;
        while self.at < self.bytes.len() {
            if self.bytes[self.at] == b'\'' {
                if self.bytes.get(self.at + 1) == Some(&b'\'') {
                    self.at += 2;
                    continue;
                }
                self.at += 1;
                return;
            }
            self.at += 1;
        }
    }

    /// `"…"` with backslash escapes; to EOF when unterminated.
    fn skip_double_quoted(&mut self) {
        self.at += 1;
        while self.at < self.bytes.len() {
            match self.bytes[self.at] {
                b'\\' => self.at += 2,
                b'"' => {
                    self.at += 1;
                    return;
                }
                _ => self.at += 1,
            }
        }
    }

    /// A literal or folded block scalar: its header line, then every line
    /// indented at least as much as its first non-empty line (which must be
    /// indented more than the line of the header). With an explicit
    /// indentation digit the content is scanned like YAML instead (this may
    /// over-count, never under-count).
    fn skip_block_scalar(&mut self) {
        let header_start = self.at;
        self.skip_line();
        let header = &self.bytes[header_start..self.at];
        let explicit = header
            .iter()
            .take_while(|&&b| !matches!(b, b' ' | b'\t' | b'#'))
            .any(u8::is_ascii_digit);
        if explicit {
            self.node_start = false;
            return;
        }
        let parent = self.line_indent;
        let mut content_indent = None;
        loop {
            // At the line break ending the previous line.
            let next = match self.bytes.get(self.at) {
                Some(b'\r') if self.bytes.get(self.at + 1) == Some(&b'\n') => self.at + 2,
                Some(_) => self.at + 1,
                None => return,
            };
            let spaces = self.spaces_at(next);
            let rest = &self.bytes[next + spaces..];
            let empty = rest.first().is_none_or(|b| matches!(b, b'\n' | b'\r'));
            let inside = if empty {
                true
            } else {
                match content_indent {
                    None if spaces > parent => {
                        content_indent = Some(spaces);
                        true
                    }
                    None => false,
                    Some(indent) => spaces >= indent,
                }
            };
            if !inside {
                return;
            }
            self.at = next;
            self.skip_line();
        }
    }
}
