//! Property tests (proptest) of akv-core through its public API: file
//! names against the driver's own path rules, modes, Go quoting, encodings,
//! PEM, chain order, version history, metric error codes, hostile `objects`
//! YAML, and that no parser error ever quotes a secret it was handed. A few
//! hundred cases each, so `make test` stays fast; failures print the shrunk
//! input.

use std::collections::BTreeMap;

use proptest::prelude::*;
use secrecy::SecretString;

use akv_core::object::{
    FileMode, KeyVaultObject, MAX_FILE_NAME_BYTES, ObjectSpec, VersionEntry, validate_file_name,
};
use akv_core::params::{self, ParamsError, ParseOptions};
use akv_core::render::{self, Fetched, RenderOptions, Slot, chain, pem};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The driver's `validatePath` (secrets-store-csi-driver
/// `pkg/util/fileutil`), written from its rules: not empty, not absolute,
/// at most 4096 bytes, no `..` element, elements at most 255 bytes, a first
/// element not starting with `..`, and equal to its `filepath.Clean` form.
fn driver_accepts(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.len() <= 4096
        && path.split('/').all(|e| e != ".." && e.len() <= 255)
        && !path.split('/').next().unwrap_or("").starts_with("..")
        && go_clean(path) == path
}

/// Go's `filepath.Clean` on Unix.
fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            e => out.push(e),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Paths built from the characters that matter to path rules.
fn path_like() -> impl Strategy<Value = String> {
    let element = prop_oneof![
        4 => "[a-z0-9_-]{1,12}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just(String::new()),
        1 => "\\.\\.?[a-z]{1,4}",
        1 => "[a-z]{1,3}\\.\\.[a-z]{0,3}",
        1 => "[a-zé\\x00 ]{1,6}",
        1 => "n{250,260}",
    ];
    (
        any::<bool>(),
        prop::collection::vec(element, 1..6),
        any::<bool>(),
    )
        .prop_map(|(lead, elements, trail)| {
            let mut path = elements.join("/");
            if lead {
                path.insert(0, '/');
            }
            if trail {
                path.push('/');
            }
            path
        })
}

proptest! {
    #![proptest_config(config())]

    /// Every file name we accept, the driver writes (we are never more
    /// lenient; `..` inside an element is our own, stricter rule).
    #[test]
    fn accepted_file_names_pass_the_driver(path in path_like()) {
        if validate_file_name(&path).is_ok() {
            prop_assert!(driver_accepts(&path), "{path:?}");
            prop_assert!(!path.contains(".."));
            prop_assert!(!path.contains('\0'));
        }
    }

    /// Clean relative paths of ordinary elements are accepted; the reason
    /// for a refusal is one of the driver's rules or our `..`/NUL rule.
    #[test]
    fn driver_valid_names_are_accepted_unless_dotdot(path in path_like()) {
        // The driver lets "." through (it equals its clean form); we do not.
        let plain = !path.contains("..") && !path.contains('\0') && path != ".";
        if driver_accepts(&path) && plain {
            prop_assert_eq!(validate_file_name(&path), Ok(()));
        }
    }

    #[test]
    fn long_paths_are_refused_by_length(n in 1usize..40) {
        let path = vec!["d".repeat(200); n].join("/");
        let result = validate_file_name(&path);
        prop_assert_eq!(result.is_ok(), path.len() <= MAX_FILE_NAME_BYTES);
    }

    #[test]
    fn octal_modes_round_trip(mode in 0u32..0o1000, zeros in 0usize..4) {
        let text = format!("{}{mode:o}", "0".repeat(zeros));
        prop_assert_eq!(FileMode::from_octal_str(&text).map(FileMode::bits), Some(mode));
        prop_assert_eq!(FileMode::from_octal_str(&format!("{:o}", mode + 0o1000)), None);
    }

    #[test]
    fn go_quote_is_one_printable_line(s in any::<String>()) {
        let quoted = akv_core::go::quote(&s);
        prop_assert!(quoted.starts_with('"') && quoted.ends_with('"') && quoted.len() >= 2);
        prop_assert!(!quoted.chars().any(char::is_control), "{quoted:?}");
        if s.bytes().all(|b| b.is_ascii_alphanumeric()) {
            prop_assert_eq!(quoted, format!("\"{s}\""));
        }
    }

    /// `objectEncoding: base64` decodes like Go's StdEncoding, with CR and
    /// LF anywhere in the value.
    #[test]
    fn base64_values_decode_with_line_breaks(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        breaks in prop::collection::vec((any::<prop::sample::Index>(), prop_oneof!["\n", "\r\n", "\r"]), 0..6),
    ) {
        use base64::Engine as _;
        let mut text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        for (at, brk) in breaks {
            let i = at.index(text.len() + 1);
            text.insert_str(i, &brk);
        }
        let contents = render_secret("base64", &text).expect("valid base64");
        prop_assert_eq!(contents, bytes);
    }

    /// A bad byte is reported at its offset in the value as stored.
    #[test]
    fn base64_errors_point_at_the_bad_byte(
        bytes in prop::collection::vec(any::<u8>(), 3..60),
        bad in any::<prop::sample::Index>(),
    ) {
        use base64::Engine as _;
        let mut text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let at = bad.index(text.trim_end_matches('=').len());
        text.replace_range(at..=at, "*");
        let err = render_secret("base64", &text).unwrap_err();
        prop_assert_eq!(err, format!("illegal base64 data at input byte {at}"));
    }

    #[test]
    fn hex_values_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..200), upper in any::<bool>()) {
        let mut text = hex::encode(&bytes);
        if upper {
            text = text.to_uppercase();
        }
        prop_assert_eq!(render_secret("hex", &text).expect("valid hex"), bytes);
    }

    #[test]
    fn pem_blocks_round_trip(kind in "[A-Z0-9 ]{0,24}", der in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = pem::encode(&kind, &der);
        let blocks = pem::decode_all(&text);
        prop_assert_eq!(blocks.len(), 1);
        prop_assert_eq!(&blocks[0].kind, &kind);
        prop_assert_eq!(&*blocks[0].bytes, &der);
        // Lines are at most 64 columns, as Go writes them.
        prop_assert!(std::str::from_utf8(&text).unwrap().lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
    }

    /// `.crt`/`.key` splitting keeps every block, in order, on its side.
    #[test]
    fn split_keeps_every_block_in_order(
        kinds in prop::collection::vec(prop_oneof![Just("CERTIFICATE"), Just("PRIVATE KEY"), Just("EC PARAMETERS")], 0..8),
        noise in "[a-z \\n]{0,20}",
    ) {
        let mut bundle = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            // Text between blocks (a block starts a line, as in Go).
            bundle.extend_from_slice(noise.as_bytes());
            bundle.push(b'\n');
            pem::encode_into(&mut bundle, kind, &[i as u8; 5]);
        }
        let (certs, keys) = pem::split_cert_and_key(&bundle);
        let tags = |text: &[u8]| pem::decode_all(text).iter().map(|b| (b.kind.clone(), b.bytes[0])).collect::<Vec<_>>();
        let expect = |cert: bool| kinds.iter().enumerate()
            .filter(|(_, k)| (**k == "CERTIFICATE") == cert)
            .map(|(i, k)| ((*k).to_owned(), i as u8))
            .collect::<Vec<_>>();
        prop_assert_eq!(tags(&certs), expect(true));
        prop_assert_eq!(tags(&keys), expect(false));
    }

    /// Any corruption of a chain still gives a permutation (never a panic,
    /// never a lost or repeated certificate).
    #[test]
    fn chain_order_is_always_a_permutation(
        family in prop_oneof![Just("rsa"), Just("ec"), Just("noaki")],
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut certs = chain_of(family);
        for (at, byte) in flips {
            let cert = &mut certs[at.index(3)];
            let i = at.index(cert.len());
            cert[i] ^= byte;
        }
        if let Some(cut) = truncate {
            let cert = &mut certs[cut.index(3)];
            let len = cut.index(cert.len());
            cert.truncate(len);
        }
        let (order, _) = chain::order(&certs);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, vec![0, 1, 2]);
    }

    /// `objectVersionHistory`: at most N, newest first, ties in listing
    /// order, starting at the named version.
    #[test]
    fn history_is_newest_first_and_bounded(
        created in prop::collection::vec(0i64..5, 0..12),
        n in 2i32..8,
        start in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let entries: Vec<VersionEntry> = created.iter().enumerate()
            .map(|(i, &c)| VersionEntry { version: format!("v{i}"), created: c })
            .collect();
        let version = match (start, entries.is_empty()) {
            (Some(i), false) => entries[i.index(entries.len())].version.clone(),
            _ => String::new(),
        };
        let object = KeyVaultObject::from_spec(ObjectSpec {
            name: "s".into(),
            object_type: "secret".into(),
            version: version.clone(),
            version_history: n,
            ..ObjectSpec::default()
        }).unwrap();
        let chosen = object.history(entries.clone());
        prop_assert!(chosen.len() <= n as usize);
        let index = |v: &str| v[1..].parse::<usize>().unwrap();
        for pair in chosen.windows(2) {
            let (a, b) = (index(&pair[0]), index(&pair[1]));
            prop_assert!(created[a] > created[b] || (created[a] == created[b] && a < b), "{chosen:?}");
        }
        if !version.is_empty() {
            prop_assert_eq!(chosen.first(), Some(&version));
        } else {
            prop_assert_eq!(chosen.len(), entries.len().min(n as usize));
        }
    }

    #[test]
    fn error_codes_cannot_carry_text(s in any::<String>()) {
        let code = akv_core::labels::ErrorCode::new(s.clone());
        let code = code.as_str();
        prop_assert!(code.len() <= 48 && !code.is_empty());
        prop_assert!(code.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
        prop_assert!(code == s || code == "Other");
    }

    /// Whatever shape `attributes` and `secrets` take, an error never
    /// quotes the service-account token or the client secret in them.
    #[test]
    fn params_errors_never_quote_credentials(
        canary in "[A-Za-z0-9]{16}",
        token_shape in 0usize..6,
        secret_shape in 0usize..6,
        extra in prop::collection::btree_map("[a-zA-Z./]{1,12}", "[a-z0-9]{0,6}", 0..4),
        mode in 0usize..4,
        permission in prop_oneof![Just("420".to_owned()), "[0-9a-z\"]{0,6}"],
    ) {
        let token = format!("TOKEN{canary}");
        let secret = format!("SECRET{canary}");
        let tokens = match token_shape {
            0 => serde_json::json!({ "api://AzureADTokenExchange": { "token": token } }).to_string(),
            1 => serde_json::json!({ "api://AzureADTokenExchange": { "token": [token] } }).to_string(),
            2 => serde_json::json!({ "api://AKSIdentityBinding": token }).to_string(),
            3 => format!("{{\"api://AzureADTokenExchange\": {{\"token\": \"{token}"),
            4 => token.clone(),
            _ => serde_json::json!([token]).to_string(),
        };
        let mut attributes: BTreeMap<String, serde_json::Value> = extra
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        for (k, v) in [
            ("csi.storage.k8s.io/pod.name", "p"),
            ("csi.storage.k8s.io/pod.namespace", "n"),
            ("keyvaultName", "kv"),
            ("tenantId", "t"),
            ("objects", "array:\n  - |\n    objectName: s\n    objectType: secret\n"),
        ] {
            attributes.insert(k.into(), v.into());
        }
        attributes.insert("csi.storage.k8s.io/serviceAccount.tokens".into(), tokens.clone().into());
        match mode {
            0 => { attributes.insert("clientID".into(), "c".into()); }
            1 => { attributes.insert("useAzureTokenProxy".into(), "true".into()); attributes.insert("clientID".into(), "c".into()); }
            _ => {}
        }
        // Kubernetes >= 1.35 may send the tokens in `secrets` instead.
        let tokens_in_secrets = mode == 2;
        let tokens = if tokens_in_secrets {
            attributes.remove("csi.storage.k8s.io/serviceAccount.tokens");
            attributes.insert("clientID".into(), "c".into());
            Some(serde_json::Value::String(tokens))
        } else {
            None
        };
        let mut secrets = match secret_shape {
            0 => serde_json::json!({ "clientid": "c", "clientsecret": secret }),
            1 => serde_json::json!({ "clientid": "c", "clientsecret": [secret] }),
            2 => serde_json::json!({ "clientsecret": secret }),
            _ => serde_json::json!({}),
        };
        if let Some(tokens) = tokens {
            secrets["csi.storage.k8s.io/serviceAccount.tokens"] = tokens;
        }
        let secrets = match secret_shape {
            3 => format!("{{\"clientsecret\": \"{secret}"),
            4 => secret.clone(),
            _ => secrets.to_string(),
        };
        let attributes = serde_json::to_string(&attributes).unwrap();
        if let Err(e) = params::parse(&attributes, &secrets, &permission, &ParseOptions::default()) {
            let text = e.to_string();
            prop_assert!(!text.contains(&canary), "{text}");
        }
        // Debug of a parsed request hides them too.
        if let Ok(parsed) = params::parse(&attributes, &secrets, "420", &ParseOptions::default()) {
            let debug = format!("{parsed:?}");
            prop_assert!(!debug.contains(&canary), "{debug}");
        }
    }

    /// Generated object lists parse in order; a file where another object
    /// needs a directory is refused by name (the same file twice passes, as
    /// upstream).
    #[test]
    fn generated_object_lists_parse_in_order(
        specs in prop::collection::vec(("[a-z]{1,3}", prop_oneof![Just("secret"), Just("key"), Just("cert")], prop::option::of("[a-z]{1,3}(/[a-z]{1,3})?")), 0..12),
    ) {
        let mut yaml = String::from("array:\n");
        for (name, kind, alias) in &specs {
            yaml.push_str(&format!("  - |\n    objectName: {name}\n    objectType: {kind}\n"));
            if let Some(alias) = alias {
                yaml.push_str(&format!("    objectAlias: {alias}\n"));
            }
        }
        let attributes = serde_json::json!({
            "csi.storage.k8s.io/pod.name": "p",
            "csi.storage.k8s.io/pod.namespace": "n",
            "keyvaultName": "kv",
            "tenantId": "t",
            "usePodIdentity": "true",
            "objects": yaml,
        }).to_string();
        let files: Vec<String> = specs.iter().map(|(n, _, a)| a.clone().unwrap_or_else(|| n.clone())).collect();
        let clash = files.iter().enumerate().any(|(i, f)| {
            files[..i].iter().any(|g| f.starts_with(&format!("{g}/")) || g.starts_with(&format!("{f}/")))
        });
        match params::parse(&attributes, "", "420", &ParseOptions::default()) {
            Ok(parsed) => {
                prop_assert!(!clash);
                let names: Vec<&str> = parsed.objects.iter().map(|o| o.name.as_str()).collect();
                let expected: Vec<&str> = specs.iter().map(|(n, _, _)| n.as_str()).collect();
                prop_assert_eq!(names, expected);
            }
            Err(ParamsError::FileDirectoryConflict { .. }) => prop_assert!(clash),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}

/// Renders a plain secret with an `objectEncoding`; the file contents or
/// the error text.
fn render_secret(encoding: &str, value: &str) -> Result<Vec<u8>, String> {
    let object = KeyVaultObject::from_spec(ObjectSpec {
        name: "s".into(),
        object_type: "secret".into(),
        encoding: encoding.into(),
        ..ObjectSpec::default()
    })
    .unwrap();
    let fetched = Fetched::Secret {
        value: SecretString::from(value),
        version: "v".into(),
        content_type: None,
        certificate_backed: false,
    };
    render::render(
        &object,
        Slot::Single,
        fetched,
        FileMode::DEFAULT,
        RenderOptions::default(),
    )
    .map(|mut out| out.files.remove(0).file.contents.to_vec())
    .map_err(|e| e.to_string())
}

/// A family's leaf, intermediate and root (DER), in that order.
fn chain_of(family: &str) -> Vec<Vec<u8>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/pki/");
    ["leaf", "int", "root"]
        .iter()
        .map(|name| {
            let text = std::fs::read(format!("{root}{family}/{name}.pem")).unwrap();
            pem::decode_all(&text).remove(0).bytes.to_vec()
        })
        .collect()
}

/// Every order of a real chain comes out leaf → root (not random: all six
/// permutations of each family).
#[test]
fn every_shuffle_of_a_chain_is_ordered() {
    let permutations = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for family in ["rsa", "ec", "noaki"] {
        let chain = chain_of(family);
        for p in permutations {
            let shuffled: Vec<Vec<u8>> = p.iter().map(|&i| chain[i].clone()).collect();
            let (order, outcome) = chain::order(&shuffled);
            let ordered: Vec<&Vec<u8>> = order.iter().map(|&i| &shuffled[i]).collect();
            assert_eq!(
                ordered,
                chain.iter().collect::<Vec<_>>(),
                "{family} {p:?}: {outcome:?}"
            );
        }
    }
}

fn objects_attributes(yaml: &str) -> String {
    serde_json::json!({
        "csi.storage.k8s.io/pod.name": "p",
        "csi.storage.k8s.io/pod.namespace": "n",
        "keyvaultName": "kv",
        "tenantId": "t",
        "usePodIdentity": "true",
        "objects": yaml,
    })
    .to_string()
}

/// The number of objects parsed from an `objects` YAML.
fn parse_objects(yaml: &str) -> Result<usize, ParamsError> {
    params::parse(
        &objects_attributes(yaml),
        "",
        "420",
        &ParseOptions::default(),
    )
    .map(|p| p.objects.len())
}

/// Hostile `objects` YAML is refused by name, without the parser's
/// quadratic walk over deep flow nesting (minutes for 1 MiB of `[`) or an
/// expansion of aliases.
#[test]
fn yaml_bombs_are_refused() {
    let deep = "[".repeat((1 << 20) - 16);
    assert!(matches!(
        parse_objects(&format!("array: {deep}")),
        Err(ParamsError::ObjectsTooDeep)
    ));
    assert!(matches!(
        parse_objects(&format!("x: {deep}")),
        Err(ParamsError::ObjectsTooDeep)
    ));
    // Nesting hidden in a double-quoted element is caught when that
    // element is read.
    let escaped = format!("array:\n  - \"objectName: {}\"\n", "[".repeat(100_000));
    let err = parse_objects(&escaped).unwrap_err();
    assert!(matches!(err, ParamsError::ObjectTooDeep(0)), "{err}");
    assert_eq!(
        err.to_string(),
        "unmarshal failed for keyVaultObjects at index 0, error: it nests flow collections ([…] or {…}) more than 64 levels deep"
    );
    // Billion laughs: aliases of aliases, weighed before anything is built.
    let mut laughs = String::from("a0: &a0 \"lol\"\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let err = parse_objects(&format!("{laughs}array: *a9\n")).unwrap_err();
    assert!(matches!(err, ParamsError::ObjectsOverLimit(_)), "{err}");
    assert!(
        err.to_string().starts_with(
            "objects is refused before parsing: its aliases (*name) expand it to more than"
        ),
        "{err}"
    );
    let nested = laughs
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>();
    let err = parse_objects(&format!("array:\n  - |\n{nested}")).unwrap_err();
    assert!(
        matches!(err, ParamsError::ObjectOverLimit { index: 0, .. }),
        "{err}"
    );
    // One large scalar aliased many times: bytes (yaml.v3 would count
    // nodes only, Go strings share their bytes).
    let amplified = format!(
        "a: &a {}\narray: [{}]",
        "x".repeat(100_000),
        vec!["*a"; 1000].join(",")
    );
    assert!(matches!(
        parse_objects(&amplified),
        Err(ParamsError::ObjectsOverLimit(
            params::YamlLimit::ExpandedBytes
        ))
    ));
    // Many aliases of one scalar: nodes.
    let many = format!("a: &a x\narray: [{}]", vec!["*a"; 200_000].join(","));
    assert!(matches!(
        parse_objects(&many),
        Err(ParamsError::ObjectsOverLimit(
            params::YamlLimit::ExpandedNodes
        ))
    ));
    // Block nesting: 1 MiB of `- - - …`.
    let block = format!("array:\n{}x", "- ".repeat((1 << 20) / 2 - 8));
    let err = parse_objects(&block).unwrap_err();
    assert_eq!(
        err.to_string(),
        "objects is refused before parsing: it nests block collections (`- ` or `key:`) more than 64 levels deep"
    );
    // Depth up to the limit is fine.
    let ok = format!(
        "x: {}{}\narray: []",
        "[".repeat(params::MAX_FLOW_DEPTH),
        "]".repeat(params::MAX_FLOW_DEPTH)
    );
    assert_eq!(parse_objects(&ok).unwrap(), 0);
}

/// A flow-style YAML value nested `depth` levels, with brackets in quoted
/// scalars that are no collections.
fn nested_flow(depth: usize, noise: &[u8]) -> String {
    let mut text = String::new();
    for level in 0..depth {
        let distractor = match noise.get(level).copied().unwrap_or(0) % 4 {
            0 => "v",
            1 => "'[[{'",
            2 => "\"]{[\\\"[\"",
            _ => "'it''s [ {'",
        };
        if level % 2 == 0 {
            text.push_str(&format!("[{distractor}, "));
        } else {
            text.push_str(&format!("{{d: {distractor}, a: "));
        }
    }
    text.push('x');
    for level in (0..depth).rev() {
        text.push(if level % 2 == 0 { ']' } else { '}' });
    }
    text
}

proptest! {
    #![proptest_config(config())]

    /// The depth guard counts collections exactly through quoted scalars
    /// and other brackets: well-formed nesting up to the limit parses,
    /// beyond it is refused before parsing.
    #[test]
    fn flow_depth_is_counted_through_distractors(
        depth in 1usize..80,
        noise in prop::collection::vec(any::<u8>(), 80),
        comment in any::<bool>(),
    ) {
        let mut yaml = String::new();
        if comment {
            yaml.push_str("# [[[[[[[[ {{{{{{\nalias: a[1]{2}\n");
        }
        yaml.push_str(&format!("x: {}\narray: []\n", nested_flow(depth, &noise)));
        match parse_objects(&yaml) {
            Err(ParamsError::ObjectsTooDeep) => prop_assert!(depth > params::MAX_FLOW_DEPTH, "{yaml}"),
            Ok(0) => prop_assert!(depth <= params::MAX_FLOW_DEPTH),
            other => prop_assert!(false, "{other:?} for {yaml}"),
        }
    }
}
