//! The shape scan's unit tests: what it counts and what it must not.

use super::*;

fn flow_depth(yaml: &str) -> usize {
    shape(yaml).flow_depth
}

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

#[test]
fn counts_block_nesting() {
    let depth = |yaml: &str| shape(yaml).block_depth;
    assert_eq!(depth("array:\n  - |\n    objectName: a\n  - b\n"), 2);
    assert_eq!(
        depth("a:\n- x\n- y\nb: z\n"),
        2,
        "a sequence sharing its key's column"
    );
    assert_eq!(depth("- - - x\n"), 3);
    assert_eq!(depth("a:\n  b:\n    c: x\nd: y\n"), 3);
    assert_eq!(depth("- a: x\n  b:\n  - c\n"), 3);
    assert_eq!(
        depth("a: x - y\nb: 'c: d'\n"),
        1,
        "no indicators inside scalars"
    );
    let bomb = "- ".repeat(1000) + "x";
    assert_eq!(depth(&bomb), MAX_BLOCK_DEPTH + 1);
    let stairs: String = (0..100)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert_eq!(depth(&stairs), MAX_BLOCK_DEPTH + 1);
    assert_eq!(shape(&bomb).over_limit(), Some(YamlLimit::BlockDepth));
}

/// An alias costs what its anchor's node expands to, measured where the
/// node ends (indentation, `,` or a closing bracket).
#[test]
fn weighs_aliases_by_their_anchors() {
    let big = "x".repeat(1000);
    let one = shape(&format!("a: &a {big}\nb: *a\n"));
    assert!((2000..2100).contains(&one.expanded_bytes), "{one:?}");
    assert_eq!(one.expanded_nodes, 5);
    // A node ended by a comma in a flow collection.
    let flow = shape(&format!("[&a {big}, {big}, *a]"));
    assert!((3000..3100).contains(&flow.expanded_bytes), "{flow:?}");
    // Aliases inside an anchored node count at their expanded size.
    let nested = shape(&format!("a: &a {big}\nb: &b [*a, *a]\nc: [*b, *b]\n"));
    assert!(nested.expanded_bytes > 7000, "{nested:?}");
    // A sequence entry ends at the next entry.
    let entries = shape(&format!("- &a {big}\n- {big}\n- *a\n"));
    assert!(
        (3000..3100).contains(&entries.expanded_bytes),
        "{entries:?}"
    );
    // An unknown alias costs nothing more (the parser refuses it).
    assert_eq!(shape("a: *nope").expanded_nodes, 2);
}

#[test]
fn alias_bombs_are_over_the_limit() {
    let scalar = "x".repeat(50_000);
    let amplified = format!("a: &a {scalar}\narray: [{}]", vec!["*a"; 100].join(", "));
    assert_eq!(
        shape(&amplified).over_limit(),
        Some(YamlLimit::ExpandedBytes)
    );
    let mut laughs = String::from("a0: &a0 lol\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    assert!(
        shape(&laughs).over_limit().is_some(),
        "{:?}",
        shape(&laughs)
    );
    let many = format!("a: &a x\narray: [{}]", vec!["*a"; 200_000].join(","));
    assert_eq!(shape(&many).over_limit(), Some(YamlLimit::ExpandedNodes));
    let anchors: String = (0..=MAX_ANCHORS)
        .map(|i| format!("k{i}: &a{i} v\n"))
        .collect();
    assert_eq!(shape(&anchors).over_limit(), Some(YamlLimit::Anchors));
    // A few aliases of small values are fine.
    let fine = format!("p: &p \"755\"\narray: [{}]", vec!["*p"; 1000].join(", "));
    assert_eq!(shape(&fine).over_limit(), None);
}
