//! Property tests (proptest) of the provider crate's public API that the
//! fuzz targets lean on: the driver's `grpc-timeout` header, the one-line
//! bounded messages `server` shows, the Key Vault and token decoders never
//! quoting a value, and the response size a mount counts. A few hundred
//! cases each; failures print the shrunk input.

use akv_core::object::FileMode;
use akv_core::render;
use akv_csi_provider::{auth, budget, keyvault, mount, proto, server};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn grpc_timeouts_parse_every_unit(n in 0u64..100_000_000, unit in 0usize..6) {
        use std::time::Duration;
        let (suffix, expected) = [
            ("H", Duration::from_secs(n * 3600)),
            ("M", Duration::from_secs(n * 60)),
            ("S", Duration::from_secs(n)),
            ("m", Duration::from_millis(n)),
            ("u", Duration::from_micros(n)),
            ("n", Duration::from_nanos(n)),
        ][unit];
        prop_assert_eq!(budget::parse_grpc_timeout(&format!("{n}{suffix}")), Some(expected));
    }

    #[test]
    fn grpc_timeout_never_panics(s in any::<String>()) {
        let _ = budget::parse_grpc_timeout(&s);
    }

    #[test]
    fn user_messages_are_one_bounded_line(s in any::<String>(), repeat in 1usize..3000) {
        let long = s.repeat(repeat.min(8192 / (s.len() + 1) + 1));
        for message in [&s, &long] {
            let shown = server::one_line(message);
            prop_assert!(!shown.chars().any(char::is_control), "{shown:?}");
            prop_assert!(shown.len() <= server::MAX_MESSAGE_BYTES);
            if !message.chars().any(char::is_control) && message.len() <= 4000 {
                prop_assert_eq!(&shown, message);
            }
        }
    }

    /// An answer cut anywhere (or with the value mistyped) is an error that
    /// never quotes the secret or token it carried.
    #[test]
    fn answer_errors_never_quote_values(canary in "[A-Za-z0-9]{16}", cut in any::<prop::sample::Index>(), status in prop_oneof![Just(200u16), Just(400), Just(401), Just(500)]) {
        let value = format!("VALUE{canary}");
        let answers = [
            serde_json::json!({ "value": value, "id": "https://kv.vault.azure.net/secrets/s/v1" }).to_string(),
            serde_json::json!({ "value": [value], "id": "x" }).to_string(),
            serde_json::json!({ "error": { "code": "Forbidden", "message": 5, "x": value } }).to_string(),
        ];
        for body in &answers {
            let body = &body.as_bytes()[..cut.index(body.len() + 1)];
            if let Err(e) = keyvault::decode_secret("kv", status, body) {
                prop_assert!(!e.to_string().contains(&canary), "{e}");
            }
            if let Err(e) = auth::aad::decode(status, body) {
                prop_assert!(!e.to_string().contains(&canary), "{e}");
            }
        }
        let token = serde_json::json!({ "access_token": value, "expires_in": "x" }).to_string();
        let body = &token.as_bytes()[..cut.index(token.len() + 1)];
        // NMI's error text quotes its (bounded) body, as upstream's does:
        // only its 200 answers carry a token.
        let nmi = (status == 200).then(|| {
            auth::pod_identity::decode(status, body, std::time::SystemTime::now()).err().map(|e| e.to_string())
        });
        let errors = [
            auth::aad::decode(status, body).err().map(|e| e.to_string()),
            auth::imds::decode(status, body).err().map(|e| e.to_string()),
            nmi.flatten(),
        ];
        for text in errors.into_iter().flatten() {
            prop_assert!(!text.contains(&canary), "{text}");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// The size a mount counts per file is never less than what the file
    /// and its object version add to the encoded `MountResponse`, so a
    /// response within `--max-call-send-msg-size` is within the driver's
    /// receive limit too.
    #[test]
    fn response_size_bound_covers_the_encoding(
        files in prop::collection::vec(
            ("[a-z/._-]{0,300}", 0usize..70_000, 0u32..0o1000, "[a-z/#@.-]{0,200}", "[a-f0-9]{0,40}"),
            0..6,
        ),
    ) {
        use prost::Message as _;
        let mut bound = 0;
        let mut response = proto::MountResponse::default();
        for (path, len, mode, id, version) in files {
            let rendered = render::Rendered {
                file: render::File {
                    path: path.clone(),
                    mode: FileMode::new(mode).unwrap(),
                    contents: zeroize::Zeroizing::new(vec![7; len]),
                },
                version: render::ObjectVersion { id: id.clone(), version: version.clone() },
            };
            bound += mount::encoded_size_bound(&rendered);
            response.files.push(proto::File { path, mode: mode as i32, contents: vec![7; len] });
            response.object_version.push(proto::ObjectVersion { id, version });
        }
        prop_assert!(response.encoded_len() <= bound, "{} > {bound}", response.encoded_len());
    }
}
