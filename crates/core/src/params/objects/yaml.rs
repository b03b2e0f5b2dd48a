//! A guard run before YAML reaches the parser: how deep flow collections
//! (`[…]`, `{…}`) nest. libyaml (under `serde_yaml_ng`) checks every open
//! flow level on every token, so nesting costs quadratic time: a 1 MiB
//! `[[[[…` keeps a CPU busy for minutes. Aliases cannot blow up here (the
//! parser bounds their expansion, and our types only accept scalars where
//! they could be used), and block nesting costs its indentation in bytes.
//!
//! This is a light scan, not a parser. It skips comments, quoted scalars
//! and block scalars (`|`, `>`), and outside flow collections counts
//! `[`/`{` only where a node may start, so brackets inside plain scalars
//! (`alias: a[1]`) do not count.
//! Where it cannot tell, it counts: it may over-count a document that is
//! unusual anyway, never under-count one the parser would nest.
//!
//! Pure: bytes in, a number out.

/// Deepest flow nesting accepted. The `objects` parameter needs two levels
/// at most; a SecretProviderClass is written by hand.
pub const MAX_FLOW_DEPTH: usize = 64;

/// The deepest flow nesting of `yaml`, counted up to one past
/// [`MAX_FLOW_DEPTH`] (the scan stops there).
pub fn flow_depth(yaml: &str) -> usize {
    let bytes = yaml.as_bytes();
    let mut scan = Scan {
        bytes,
        at: 0,
        depth: 0,
        deepest: 0,
        node_start: true,
        line_indent: 0,
    };
    scan.run();
    scan.deepest
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
    deepest: usize,
    /// A node may start here (after a line start, `- `, `: `, `? `, `,`,
    /// `[`, `{` or a node property).
    node_start: bool,
    /// Leading spaces of the current line.
    line_indent: usize,
}

impl Scan<'_> {
    fn run(&mut self) {
        while self.at < self.bytes.len() && self.deepest <= MAX_FLOW_DEPTH {
            let b = self.bytes[self.at];
            match b {
                b'\n' | b'\r' => {
                    self.at += 1;
                    self.start_line();
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
                    self.depth += 1;
                    self.deepest = self.deepest.max(self.depth);
                }
                b']' | b'}' => {
                    self.depth = self.depth.saturating_sub(1);
                    self.node_start = false;
                }
                b',' if self.depth > 0 => self.node_start = true,
                b':' | b'?' | b'-' => {
                    // An indicator when followed by a blank, or (`:`) right
                    // after a JSON-style key inside a flow collection.
                    self.node_start = self.blank_at(self.at + 1) || (b == b':' && self.depth > 0);
                }
                b'\'' if self.node_start => {
                    self.skip_single_quoted();
                    self.node_start = false;
                    continue;
                }
                b'"' if self.node_start => {
                    self.skip_double_quoted();
                    self.node_start = false;
                    continue;
                }
                b'!' | b'&' if self.node_start => {
                    // A tag or anchor: the node itself follows.
                    while self.at < self.bytes.len() && !self.blank_at(self.at) {
                        self.at += 1;
                    }
                    continue;
                }
                b'|' | b'>' if self.node_start && self.depth == 0 => {
                    self.skip_block_scalar();
                    continue;
                }
                _ => self.node_start = false,
            }
            self.at += 1;
        }
    }

    /// At a line start: measures its indentation; a node may start.
    fn start_line(&mut self) {
        self.node_start = true;
        self.line_indent = self.spaces_at(self.at);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_flow_nesting() {
        assert_eq!(flow_depth(""), 0);
        assert_eq!(flow_depth("array: []"), 1);
        assert_eq!(flow_depth("a: [[1], {b: [2]}]"), 3);
        assert_eq!(flow_depth(r#"{"a":[{"b":[1]}]}"#), 4);
        assert_eq!(flow_depth("- [\n  [\n    [x]]]"), 3);
        assert_eq!(flow_depth("a: &x [!!seq [*x]]"), 2);
        assert_eq!(
            flow_depth("[a[b{c"),
            3,
            "a plain scalar in a flow ends at a bracket"
        );
        assert_eq!(flow_depth(&"[".repeat(10_000)), MAX_FLOW_DEPTH + 1);
    }

    #[test]
    fn brackets_that_are_not_collections_do_not_count() {
        let yaml = "\
# [[[[ a comment
objectAlias: a[1]{2}
quoted: '[[[['
double: \"[[[\\\"[[\"
array:
  - |
    objectName: x
    note: [[[[ inside a block scalar
    another: '
  - >-
    [[[[ folded
key: value # [[[[
";
        assert_eq!(flow_depth(yaml), 0);
    }

    /// What follows a block scalar is scanned again: its content cannot
    /// hide nesting the parser would see.
    #[test]
    fn a_block_scalar_ends_where_its_indentation_does() {
        let deep = "[".repeat(100);
        let yaml = format!("a: |\n  '\n\n  x\nb: {deep}");
        assert_eq!(flow_depth(&yaml), MAX_FLOW_DEPTH + 1);
        let yaml = format!("a: |\n      x\n   {deep}");
        assert_eq!(flow_depth(&yaml), MAX_FLOW_DEPTH + 1);
        // An explicit indentation indicator: the content is scanned.
        let yaml = format!("a: |2\n  {deep}");
        assert_eq!(flow_depth(&yaml), MAX_FLOW_DEPTH + 1);
        // Unterminated quotes swallow the rest, as they do for the parser.
        assert_eq!(flow_depth(&format!("a: '{deep}")), 0);
    }
}
