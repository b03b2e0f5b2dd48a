//! `jmesPath` (an extension over upstream, shaped like the AWS provider's):
//! values selected from a JSON secret, each for its own file. A selected
//! string is written as its raw text, any other value as compact JSON
//! (object keys sorted, as Go's `encoding/json` writes maps, so the AWS
//! provider's users get the same bytes).
//!
//! Pure. Errors name the entry and its path and say what is wrong with the
//! document (not JSON: line and column only), never a byte of the value.
//! The JSON is parsed by `serde_json` (nesting limited to 128) and held by
//! the JMESPath crate while the entries are evaluated; those copies are not
//! zeroized, the output buffers are.

use thiserror::Error;
use zeroize::Zeroizing;

use crate::object::{JmesPath, jmes_path_error};

/// Why an entry could not be written.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum JmesPathError {
    #[error(
        "jmesPath needs the secret to be JSON, but it is not (error at line {line} column \
         {column})"
    )]
    NotJson { line: usize, column: usize },
    #[error("jmesPath entry {index} (path {path:?}) selects nothing (null) in the secret's JSON")]
    NoMatch { index: usize, path: String },
    #[error("jmesPath entry {index} (path {path:?}) failed: {reason}")]
    Failed {
        index: usize,
        path: String,
        reason: String,
    },
}

impl JmesPathError {
    /// A short, bounded code for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson { .. } => "SecretNotJson",
            Self::NoMatch { .. } => "JmesPathNoMatch",
            Self::Failed { .. } => "JmesPathFailed",
        }
    }
}

/// The contents of each entry's file, in entry order.
pub fn select(
    document: &[u8],
    entries: &[JmesPath],
) -> Result<Vec<Zeroizing<Vec<u8>>>, JmesPathError> {
    let data: jmespath::Variable =
        serde_json::from_slice(document).map_err(|e| JmesPathError::NotJson {
            line: e.line(),
            column: e.column(),
        })?;
    let data = jmespath::Rcvar::new(data);
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| one(&data, index, entry))
        .collect()
}

fn one(
    data: &jmespath::Rcvar,
    index: usize,
    entry: &JmesPath,
) -> Result<Zeroizing<Vec<u8>>, JmesPathError> {
    let failed = |reason: String| JmesPathError::Failed {
        index,
        path: entry.path.clone(),
        reason,
    };
    // Validated when the parameters were parsed; compiled again here
    // because a compiled expression cannot cross threads.
    let expression = jmespath::compile(&entry.path).map_err(|e| failed(jmes_path_error(&e)))?;
    // `interpret` rather than `search`, which would copy the document
    // through serde for every entry.
    let mut context = jmespath::Context::new(&entry.path, &jmespath::DEFAULT_RUNTIME);
    let selected = jmespath::interpret(data, expression.as_ast(), &mut context)
        .map_err(|e| failed(jmes_path_error(&e)))?;
    match &*selected {
        jmespath::Variable::Null => Err(JmesPathError::NoMatch {
            index,
            path: entry.path.clone(),
        }),
        jmespath::Variable::String(text) => Ok(Zeroizing::new(text.as_bytes().to_vec())),
        other => serde_json::to_vec(other)
            .map(Zeroizing::new)
            .map_err(|e| failed(format!("the selected value cannot be written as JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> JmesPath {
        JmesPath {
            path: path.into(),
            alias: "out".into(),
            file_permission: None,
        }
    }

    fn texts(document: &str, paths: &[&str]) -> Result<Vec<String>, JmesPathError> {
        let entries: Vec<JmesPath> = paths.iter().map(|p| entry(p)).collect();
        select(document.as_bytes(), &entries).map(|files| {
            files
                .iter()
                .map(|f| String::from_utf8(f.to_vec()).unwrap())
                .collect()
        })
    }

    const DOC: &str = r#"{"username":"app","password":"p@ss \"quoted\"\n","port":5432,
        "ratio":1.5,"enabled":true,"empty":"","tags":["a","b"],
        "nested":{"z":1,"a":{"deep":[1,2,{"k":"v"}]}},"users":[{"name":"x","id":1},{"name":"y","id":2}]}"#;

    #[test]
    fn strings_raw_everything_else_compact_json() {
        let got = texts(
            DOC,
            &[
                "username",
                "password",
                "port",
                "ratio",
                "enabled",
                "empty",
                "tags",
                "nested",
                "nested.a.deep[2].k",
                "users[?id==`2`].name | [0]",
                "length(tags)",
                "{u: username, p: port}",
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            [
                "app",
                "p@ss \"quoted\"\n",
                "5432",
                "1.5",
                "true",
                "",
                r#"["a","b"]"#,
                r#"{"a":{"deep":[1,2,{"k":"v"}]},"z":1}"#,
                "v",
                "y",
                "2",
                r#"{"p":5432,"u":"app"}"#,
            ]
        );
    }

    #[test]
    fn a_top_level_string_or_array_is_json_too() {
        assert_eq!(texts(r#""plain""#, &["@"]).unwrap(), ["plain"]);
        assert_eq!(texts("[1, 2]", &["[1]"]).unwrap(), ["2"]);
    }

    #[test]
    fn nothing_selected_is_an_error_naming_the_entry() {
        let err = texts(DOC, &["username", "missing.key"]).unwrap_err();
        assert_eq!(
            err,
            JmesPathError::NoMatch {
                index: 1,
                path: "missing.key".into()
            }
        );
        assert_eq!(
            err.to_string(),
            r#"jmesPath entry 1 (path "missing.key") selects nothing (null) in the secret's JSON"#
        );
        assert_eq!(err.code(), "JmesPathNoMatch");
    }

    #[test]
    fn not_json_names_the_position_not_the_value() {
        let value = "user=admin;password=hunter2";
        let err = texts(value, &["user"]).unwrap_err();
        assert_eq!(err, JmesPathError::NotJson { line: 1, column: 1 });
        let text = err.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("admin"),
            "{text}"
        );
        assert_eq!(err.code(), "SecretNotJson");
        // Trailing garbage after valid JSON is not JSON either.
        assert!(matches!(
            texts(r#"{"a":"secret-value"} x"#, &["a"]),
            Err(JmesPathError::NotJson {
                line: 1,
                column: 22
            })
        ));
    }

    #[test]
    fn runtime_errors_name_types_not_values() {
        let err = texts(r#"{"n":"secret-value"}"#, &["abs(n)"]).unwrap_err();
        let JmesPathError::Failed { index, reason, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*index, 0);
        assert!(reason.contains("expects type"), "{reason}");
        assert!(!err.to_string().contains("secret-value"), "{err}");
        assert!(!err.to_string().contains('\n'), "{err}");
        assert_eq!(err.code(), "JmesPathFailed");
    }

    /// The most deeply nested paths `object` accepts (32 operators) parse
    /// and run on a thread with half a worker's stack (1 MiB), in debug
    /// builds too; ~200 levels would overflow 2 MiB.
    #[test]
    fn the_most_complex_accepted_paths_fit_in_half_a_stack() {
        let limit = crate::object::MAX_JMES_PATH_OPERATORS;
        let paths = [
            format!("a{}", "[]".repeat(limit)),
            format!("{}a", "!".repeat(limit)),
            format!("{}a{}", "(".repeat(limit), ")".repeat(limit)),
            vec!["a"; limit + 1].join("."),
            vec!["a"; limit / 2 + 1].join("||"),
            format!("{}a{}", "abs(".repeat(limit), ")".repeat(limit)),
            format!("{}@{}", "a[?".repeat(limit / 2), "]".repeat(limit / 2)),
        ];
        for path in paths {
            let spec = crate::object::ObjectSpec {
                name: "s".into(),
                object_type: "secret".into(),
                jmes_path: vec![crate::object::JmesPathSpec {
                    path: path.clone(),
                    alias: "out".into(),
                    file_permission: String::new(),
                }],
                ..Default::default()
            };
            let object = crate::object::KeyVaultObject::from_spec(spec)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            let entries = object.extensions.jmes_path;
            let ran = std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || select(br#"{"a":{"a":[1,[2]]}}"#, &entries).is_ok())
                .unwrap()
                .join();
            assert!(ran.is_ok(), "{path}");
        }
    }

    #[test]
    fn deep_json_is_refused_not_overflowed() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            texts(&deep, &["@"]),
            Err(JmesPathError::NotJson { .. })
        ));
    }
}
