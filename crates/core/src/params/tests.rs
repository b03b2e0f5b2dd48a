use std::collections::BTreeMap;

use secrecy::ExposeSecret as _;
use serde_json::json;

use super::*;
use crate::cloud::Cloud;
use crate::object::{ObjectEncoding, ObjectFormat, ObjectType};

const WI_TOKEN: &str = "eyJ-workload-token-SECRET";
const IB_TOKEN: &str = "eyJ-binding-token-SECRET";
const CLIENT_SECRET: &str = "sp-client-SECRET-value";
/// The shape the upstream docs and blog posts use: block scalar strings.
const OBJECTS: &str = "array:\n  - |\n    objectName: MySecretPassword\n    objectType: secret\n";

type Attrs = BTreeMap<&'static str, String>;

fn base() -> Attrs {
    [
        (POD_NAME, "pod1"),
        (POD_NAMESPACE, "ns1"),
        (KEYVAULT_NAME, "kv1"),
        (TENANT_ID, "tenant1"),
        (super::OBJECTS, OBJECTS),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

fn with(changes: &[(&'static str, &str)]) -> Attrs {
    let mut attrs = base();
    for &(k, v) in changes {
        attrs.insert(k, v.to_owned());
    }
    attrs
}

fn without(keys: &[&str]) -> Attrs {
    let mut attrs = base();
    attrs.retain(|k, _| !keys.contains(k));
    attrs
}

fn tokens() -> String {
    json!({
        WORKLOAD_IDENTITY_AUDIENCE: {"token": WI_TOKEN, "expirationTimestamp": "2030-01-01T00:00:00Z"},
        IDENTITY_BINDING_AUDIENCE: {"token": IB_TOKEN, "expirationTimestamp": "2030-01-01T00:00:00Z"},
    })
    .to_string()
}

fn sp_secrets() -> String {
    json!({"clientid": "sp-id", "clientsecret": CLIENT_SECRET}).to_string()
}

fn run_with(attrs: &Attrs, secrets: &str, permission: &str) -> Result<MountParams, ParamsError> {
    let attributes = serde_json::to_string(attrs).unwrap();
    parse(&attributes, secrets, permission, &ParseOptions::default())
}

fn run(attrs: &Attrs, secrets: &str) -> Result<MountParams, ParamsError> {
    run_with(attrs, secrets, "420")
}

fn err(attrs: &Attrs, secrets: &str) -> String {
    run(attrs, secrets).unwrap_err().to_string()
}

fn objects_err(yaml: &str) -> String {
    err(&with(&[(super::OBJECTS, yaml)]), &sp_secrets())
}

#[test]
fn parses_a_complete_request() {
    let attrs = with(&[
        (POD_UID, "uid-1"),
        (SERVICE_ACCOUNT_NAME, "sa1"),
        (SECRET_PROVIDER_CLASS, "spc1"),
        ("resourceGroup", "ignored"),
    ]);
    let params = run(&attrs, &sp_secrets()).unwrap();
    assert_eq!(params.pod.name, "pod1");
    assert_eq!(params.pod.namespace, "ns1");
    assert_eq!(params.pod.uid.as_deref(), Some("uid-1"));
    assert_eq!(params.pod.service_account.as_deref(), Some("sa1"));
    assert_eq!(params.secret_provider_class.as_deref(), Some("spc1"));
    assert_eq!(params.keyvault_name, "kv1");
    assert_eq!(params.tenant_id, "tenant1");
    assert_eq!(params.cloud, CloudSpec::Known(Cloud::public()));
    assert_eq!(params.default_mode, FileMode::DEFAULT);
    assert_eq!(params.objects.len(), 1);
    let object = &params.objects[0];
    assert_eq!(
        (object.name.as_str(), object.object_type),
        ("MySecretPassword", ObjectType::Secret)
    );
    assert_eq!(object.uid(), "secret/MySecretPassword");
    let Identity::ServicePrincipal {
        client_id,
        client_secret,
    } = &params.identity
    else {
        panic!("{:?}", params.identity);
    };
    assert_eq!(client_id, "sp-id");
    assert_eq!(client_secret.expose_secret(), CLIENT_SECRET);
}

#[test]
fn json_inputs() {
    let ok = serde_json::to_string(&base()).unwrap();
    let opts = ParseOptions::default();
    let e = parse("{", &sp_secrets(), "420", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("failed to unmarshal attributes, error: EOF while parsing"),
        "{e}"
    );
    let e = parse(r#"{"a": 5}"#, "", "420", &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "failed to unmarshal attributes, error: unexpected value type at line 1 column 7, expected a JSON object of strings"
    );
    // `null` attributes are an empty map, as in Go.
    assert_eq!(
        parse("null", "", "420", &opts).unwrap_err().to_string(),
        "pod name is not provided"
    );
    let e = parse(&ok, "[1]", "420", &opts).unwrap_err().to_string();
    assert!(
        e.starts_with("failed to unmarshal secrets, error: unexpected value type"),
        "{e}"
    );
    let e = parse(&ok, &sp_secrets(), "", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("failed to unmarshal file permission, error: EOF"),
        "{e}"
    );
    for bad in ["-1", "4.5", "\"420\"", "null"] {
        let e = parse(&ok, &sp_secrets(), bad, &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("failed to unmarshal file permission, error: "),
            "{bad}: {e}"
        );
    }
    let e = parse(&ok, &sp_secrets(), "4096", &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "failed to unmarshal file permission, error: file mode 4096 (0o10000) is outside the permission range 0..=0o7777"
    );
    // Attributes come first, then secrets, then permission.
    assert!(
        parse("x", "x", "x", &opts)
            .unwrap_err()
            .to_string()
            .contains("attributes")
    );
    assert!(
        parse(&ok, "x", "x", &opts)
            .unwrap_err()
            .to_string()
            .contains("secrets")
    );
}

#[test]
fn permission_values() {
    for (raw, bits) in [
        ("420", 0o644),
        ("493", 0o755),
        ("0", 0),
        (" 384 ", 0o600),
        ("2541", 0o755),
        ("4095", 0o777),
    ] {
        let params = run_with(&base(), &sp_secrets(), raw).unwrap();
        assert_eq!(params.default_mode.bits(), bits, "{raw}");
    }
}

#[test]
fn secrets_forms() {
    let cases = [
        (
            "null",
            "failed to get credentials, nodePublishSecretRef secret is not set",
        ),
        (
            "",
            "failed to get credentials, nodePublishSecretRef secret is not set",
        ),
        (
            "  ",
            "failed to get credentials, nodePublishSecretRef secret is not set",
        ),
        ("{}", "could not find clientid in secrets"),
        (
            r#"{"clientid": "id"}"#,
            "could not find clientsecret in secrets",
        ),
        (
            r#"{"clientid": "", "clientsecret": "s"}"#,
            "could not find clientid in secrets",
        ),
        (
            r#"{"clientsecret": "s", "other": "x"}"#,
            "could not find clientid in secrets",
        ),
    ];
    for (secrets, cause) in cases {
        assert_eq!(
            err(&base(), secrets),
            format!("failed to build auth config for mode None: {cause}"),
            "{secrets:?}"
        );
    }
    // Keys match case-insensitively; the exact lower-case key is preferred.
    let mixed = json!({"ClientID": "id-1", "CLIENTSECRET": "s-1"}).to_string();
    let Identity::ServicePrincipal {
        client_id,
        client_secret,
    } = run(&base(), &mixed).unwrap().identity
    else {
        panic!()
    };
    assert_eq!(
        (client_id.as_str(), client_secret.expose_secret()),
        ("id-1", "s-1")
    );
    let both = json!({"ClientId": "other", "clientid": "exact", "clientsecret": "s"}).to_string();
    let Identity::ServicePrincipal { client_id, .. } = run(&base(), &both).unwrap().identity else {
        panic!()
    };
    assert_eq!(client_id, "exact");
    // A secrets map holding only the SA tokens (Kubernetes >= 1.35, no
    // nodePublishSecretRef) means "no secret".
    let only_tokens = json!({ SERVICE_ACCOUNT_TOKENS: tokens() }).to_string();
    assert_eq!(
        err(&base(), &only_tokens),
        "failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set"
    );
}

#[test]
fn check_order() {
    let mut attrs: Attrs = [
        (USE_POD_IDENTITY, "yes"),
        (USE_VM_MANAGED_IDENTITY, "maybe"),
        (USE_AZURE_TOKEN_PROXY, "nope"),
        (CLOUD_ENV_FILE_NAME, "a\0b"),
        (CLOUD_NAME, "Mars"),
        (CLIENT_ID, "wi-client"),
        (super::OBJECTS, ""),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let steps: [(&'static str, &str, &str); 16] = [
        ("", "", "pod name is not provided"),
        (POD_NAME, "pod1", "pod namespace is not provided"),
        (
            POD_NAMESPACE,
            "ns1",
            r#"failed to parse usePodIdentity flag, error: strconv.ParseBool: parsing "yes": invalid syntax"#,
        ),
        (
            USE_POD_IDENTITY,
            "true",
            r#"failed to parse useVMManagedIdentity flag, error: strconv.ParseBool: parsing "maybe": invalid syntax"#,
        ),
        (
            USE_VM_MANAGED_IDENTITY,
            "1",
            r#"failed to parse useAzureTokenProxy flag, error: strconv.ParseBool: parsing "nope": invalid syntax"#,
        ),
        (
            USE_AZURE_TOKEN_PROXY,
            "False",
            "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy",
        ),
        (USE_VM_MANAGED_IDENTITY, "0", "keyvaultName is not provided"),
        (KEYVAULT_NAME, "kv1", "tenantId is not provided"),
        (
            TENANT_ID_LEGACY,
            "t1",
            "failed to set AZURE_ENVIRONMENT_FILEPATH env to a\0b, error invalid argument",
        ),
        (
            CLOUD_ENV_FILE_NAME,
            "",
            r#"cloudName Mars is not valid, error: autorest/azure: There is no cloud environment matching the name "MARS""#,
        ),
        (
            CLOUD_NAME,
            "azurechinacloud",
            "failed to build auth config for mode PodIdentity: failed to parse workload identity tokens, error: service account tokens not found",
        ),
        (CLIENT_ID, "", "objects is not set"),
        (
            super::OBJECTS,
            "array: [",
            "failed to yaml unmarshal objects, error: ",
        ),
        (
            super::OBJECTS,
            "array:\n  - 'objectName: a\n\n    objectType: secret'\n  - 'objectName: [b'\n",
            "unmarshal failed for keyVaultObjects at index 1, error: ",
        ),
        (
            super::OBJECTS,
            "array:\n  - 'objectName: a'\n  - 'objectName: b'\n",
            "failed to get objectType:, objectName:a, objectVersion:: Invalid vaultObjectTypes. Should be secret, key, or cert",
        ),
        (super::OBJECTS, OBJECTS, ""),
    ];
    for (key, value, want) in steps {
        if !key.is_empty() {
            attrs.insert(key, value.to_owned());
        }
        match run(&attrs, "null") {
            Ok(params) => {
                assert_eq!(want, "", "after {key}={value:?}");
                assert_eq!(params.identity.kind(), IdentityKind::PodIdentity);
                assert_eq!(params.cloud, CloudSpec::Known(Cloud::china()));
                assert_eq!(params.tenant_id, "t1");
            }
            Err(e) => {
                assert!(
                    !want.is_empty() && e.to_string().starts_with(want),
                    "after {key}={value:?}: {e}"
                );
            }
        }
    }
}

#[test]
fn tenant_precedence_and_trimming() {
    let params = run(
        &with(&[(TENANT_ID, "  new  "), (TENANT_ID_LEGACY, "old")]),
        &sp_secrets(),
    )
    .unwrap();
    assert_eq!(params.tenant_id, "new");
    let params = run(
        &with(&[(TENANT_ID, " "), (TENANT_ID_LEGACY, " old ")]),
        &sp_secrets(),
    )
    .unwrap();
    assert_eq!(params.tenant_id, "old");
    assert_eq!(
        err(&without(&[TENANT_ID]), &sp_secrets()),
        "tenantId is not provided"
    );
    // Keys are case-sensitive: `tenantid` is an unknown key (upstream's
    // text, then a hint).
    assert_eq!(
        err(&with(&[(TENANT_ID, ""), ("tenantid", "x")]), &sp_secrets()),
        "tenantId is not provided (did you mean \"tenantID\"? \"tenantid\" is not a parameter; parameter names are case-sensitive)"
    );
    let params = run(
        &with(&[(KEYVAULT_NAME, "\tkv2\n"), (POD_NAME, " p ")]),
        &sp_secrets(),
    )
    .unwrap();
    assert_eq!(
        (params.keyvault_name.as_str(), params.pod.name.as_str()),
        ("kv2", "p")
    );
    assert_eq!(
        err(&with(&[(POD_NAMESPACE, "  ")]), &sp_secrets()),
        "pod namespace is not provided"
    );
    // Missing keyvaultName AND tenant: keyvaultName is reported first.
    assert_eq!(
        err(&without(&[KEYVAULT_NAME, TENANT_ID]), &sp_secrets()),
        "keyvaultName is not provided"
    );
}

#[test]
fn parse_bool_variants() {
    for t in ["1", "t", "T", "TRUE", "true", "True", " true "] {
        let params = run(&with(&[(USE_VM_MANAGED_IDENTITY, t)]), "null").unwrap();
        assert_eq!(
            params.identity.kind(),
            IdentityKind::VmManagedIdentity,
            "{t:?}"
        );
    }
    for f in ["0", "f", "F", "FALSE", "false", "False", ""] {
        let params = run(&with(&[(USE_VM_MANAGED_IDENTITY, f)]), &sp_secrets()).unwrap();
        assert_eq!(
            params.identity.kind(),
            IdentityKind::ServicePrincipal,
            "{f:?}"
        );
    }
    for (bad, quoted) in [
        ("yes", r#""yes""#),
        ("tRUE", r#""tRUE""#),
        ("a\"b", r#""a\"b""#),
        ("x\u{1}", r#""x\x01""#),
    ] {
        assert_eq!(
            err(&with(&[(USE_AZURE_TOKEN_PROXY, bad)]), "null"),
            format!(
                "failed to parse useAzureTokenProxy flag, error: strconv.ParseBool: parsing {quoted}: invalid syntax"
            )
        );
    }
}

#[test]
fn identity_modes() {
    let tokens = tokens();
    let wi = run(
        &with(&[(CLIENT_ID, "wi-client"), (SERVICE_ACCOUNT_TOKENS, &tokens)]),
        "null",
    )
    .unwrap();
    let Identity::WorkloadIdentity { client_id, token } = &wi.identity else {
        panic!("{:?}", wi.identity)
    };
    assert_eq!(
        (client_id.as_str(), token.token.expose_secret()),
        ("wi-client", WI_TOKEN)
    );
    assert_eq!(token.expiration.as_deref(), Some("2030-01-01T00:00:00Z"));

    let proxy = with(&[
        (USE_AZURE_TOKEN_PROXY, "true"),
        (CLIENT_ID, "ib-client"),
        (SERVICE_ACCOUNT_TOKENS, &tokens),
    ]);
    let Identity::TokenProxy { client_id, token } = run(&proxy, "null").unwrap().identity else {
        panic!()
    };
    assert_eq!(
        (client_id.as_str(), token.token.expose_secret()),
        ("ib-client", IB_TOKEN)
    );

    let vm = run(
        &with(&[
            (USE_VM_MANAGED_IDENTITY, "true"),
            (USER_ASSIGNED_IDENTITY_ID, " uami "),
        ]),
        "null",
    )
    .unwrap();
    let Identity::VmManagedIdentity {
        user_assigned_identity_id,
    } = &vm.identity
    else {
        panic!()
    };
    assert_eq!(user_assigned_identity_id, "uami");
    let vm = run(&with(&[(USE_VM_MANAGED_IDENTITY, "true")]), "null").unwrap();
    assert!(
        matches!(&vm.identity, Identity::VmManagedIdentity { user_assigned_identity_id } if user_assigned_identity_id.is_empty())
    );

    let pod = run(&with(&[(USE_POD_IDENTITY, "true")]), "null").unwrap();
    assert!(matches!(pod.identity, Identity::PodIdentity));
    assert_eq!(
        IdentityKind::VmManagedIdentity.upstream_mode_name(),
        "VMManagedIdentity"
    );

    // Without clientID, tokens are ignored and the service principal is used.
    let sp = run(&with(&[(SERVICE_ACCOUNT_TOKENS, &tokens)]), &sp_secrets()).unwrap();
    assert_eq!(sp.identity.kind(), IdentityKind::ServicePrincipal);
    assert!(matches!(sp.identity, Identity::ServicePrincipal { .. }));
    // clientID wins over a service principal secret when a token is present.
    let both = run(
        &with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, &tokens)]),
        &sp_secrets(),
    )
    .unwrap();
    assert!(matches!(both.identity, Identity::WorkloadIdentity { .. }));
}

#[test]
fn identity_errors() {
    let tokens = tokens();
    let wi_only = json!({WORKLOAD_IDENTITY_AUDIENCE: {"token": WI_TOKEN}}).to_string();
    let empty_token = json!({WORKLOAD_IDENTITY_AUDIENCE: {"token": ""}}).to_string();
    let null_entry = json!({WORKLOAD_IDENTITY_AUDIENCE: null}).to_string();
    let cases: [(Attrs, &str); 12] = [
        (
            with(&[(CLIENT_ID, "c")]),
            "None: failed to parse workload identity tokens, error: service account tokens not found",
        ),
        (
            with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, "{}")]),
            "None: failed to parse workload identity tokens, error: token for audience api://AzureADTokenExchange not found",
        ),
        (
            with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, &empty_token)]),
            "None: failed to parse workload identity tokens, error: token for audience api://AzureADTokenExchange not found",
        ),
        (
            with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, &null_entry)]),
            "None: failed to parse workload identity tokens, error: token for audience api://AzureADTokenExchange not found",
        ),
        (
            with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, "null")]),
            "None: failed to parse workload identity tokens, error: token for audience api://AzureADTokenExchange not found",
        ),
        (
            with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, "{")]),
            "None: failed to parse workload identity tokens, error: failed to unmarshal service account tokens, error: EOF while parsing",
        ),
        // The upstream quirk: clientID forces token parsing under VM MI and pod identity.
        (
            with(&[(CLIENT_ID, "c"), (USE_VM_MANAGED_IDENTITY, "true")]),
            "VMManagedIdentity: failed to parse workload identity tokens, error: service account tokens not found",
        ),
        (
            with(&[
                (CLIENT_ID, "c"),
                (USE_POD_IDENTITY, "true"),
                (SERVICE_ACCOUNT_TOKENS, "{}"),
            ]),
            "PodIdentity: failed to parse workload identity tokens, error: token for audience api://AzureADTokenExchange not found",
        ),
        (
            with(&[
                (USE_AZURE_TOKEN_PROXY, "true"),
                (SERVICE_ACCOUNT_TOKENS, &tokens),
            ]),
            "AzureTokenProxy: clientID is required for identity binding",
        ),
        (
            with(&[(USE_AZURE_TOKEN_PROXY, "true"), (CLIENT_ID, "c")]),
            "AzureTokenProxy: service account tokens are required for identity binding",
        ),
        (
            with(&[
                (USE_AZURE_TOKEN_PROXY, "true"),
                (CLIENT_ID, "c"),
                (SERVICE_ACCOUNT_TOKENS, &wi_only),
            ]),
            "AzureTokenProxy: failed to parse service account token for identity binding, error: token for audience api://AKSIdentityBinding not found",
        ),
        (
            base(),
            "None: failed to get credentials, nodePublishSecretRef secret is not set",
        ),
    ];
    for (attrs, want) in cases {
        let e = err(&attrs, "null");
        assert!(
            e.starts_with(&format!("failed to build auth config for mode {want}")),
            "{e}"
        );
    }
}

#[test]
fn tokens_from_secrets_or_attributes() {
    let tokens = tokens();
    let other = json!({WORKLOAD_IDENTITY_AUDIENCE: {"token": "from-secrets"}}).to_string();
    let secrets = json!({ SERVICE_ACCOUNT_TOKENS: other }).to_string();
    // Only in secrets (Kubernetes >= 1.35).
    let params = run(&with(&[(CLIENT_ID, "c")]), &secrets).unwrap();
    let Identity::WorkloadIdentity { token, .. } = params.identity else {
        panic!()
    };
    assert_eq!(token.token.expose_secret(), "from-secrets");
    assert_eq!(token.expiration, None);
    // In both: attributes win.
    let params = run(
        &with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, &tokens)]),
        &secrets,
    )
    .unwrap();
    let Identity::WorkloadIdentity { token, .. } = params.identity else {
        panic!()
    };
    assert_eq!(token.token.expose_secret(), WI_TOKEN);
    // An empty attribute falls back to secrets.
    let params = run(
        &with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, " ")]),
        &secrets,
    )
    .unwrap();
    assert!(matches!(params.identity, Identity::WorkloadIdentity { .. }));
    // Identity binding reads them from secrets too.
    let ib_secrets = json!({ SERVICE_ACCOUNT_TOKENS: tokens }).to_string();
    let params = run(
        &with(&[(CLIENT_ID, "c"), (USE_AZURE_TOKEN_PROXY, "t")]),
        &ib_secrets,
    )
    .unwrap();
    assert!(matches!(params.identity, Identity::TokenProxy { .. }));
}

#[test]
fn clouds() {
    let ok = |name: &str| {
        run(&with(&[(CLOUD_NAME, name)]), &sp_secrets())
            .unwrap()
            .cloud
    };
    assert_eq!(
        ok("AzureUSGovernment"),
        CloudSpec::Known(Cloud::us_government())
    );
    assert_eq!(
        ok("AZUREUSGOVERNMENTCLOUD"),
        CloudSpec::Known(Cloud::us_government())
    );
    assert_eq!(ok(" azurecloud "), CloudSpec::Known(Cloud::public()));
    assert_eq!(ok("AzureGermanCloud"), CloudSpec::Known(Cloud::german()));
    let stack = with(&[
        (CLOUD_NAME, "azurestackcloud"),
        (CLOUD_ENV_FILE_NAME, " /etc/kubernetes/env.json "),
    ]);
    assert_eq!(
        run(&stack, &sp_secrets()).unwrap().cloud,
        CloudSpec::AzureStack {
            name: "azurestackcloud".into(),
            env_file: "/etc/kubernetes/env.json".into()
        }
    );
    assert_eq!(
        err(&with(&[(CLOUD_NAME, "AzureStackCloud")]), &sp_secrets()),
        "cloudName AzureStackCloud is not valid, error: open : no such file or directory (AZURE_ENVIRONMENT_FILEPATH is not set in the provider's environment and cloudEnvFileName is empty: set either to the path of the cloud environment JSON file)"
    );
    // Without cloudEnvFileName, AZURE_ENVIRONMENT_FILEPATH (read at start-up)
    // names the file, as go-autorest reads it; cloudEnvFileName wins.
    let stack_env = ParseOptions {
        environment_file: "/etc/azs/env.json".into(),
        ..ParseOptions::default()
    };
    let attributes = serde_json::to_string(&with(&[(CLOUD_NAME, "AzureStackCloud")])).unwrap();
    assert_eq!(
        parse(&attributes, &sp_secrets(), "420", &stack_env)
            .unwrap()
            .cloud,
        CloudSpec::AzureStack {
            name: "AzureStackCloud".into(),
            env_file: "/etc/azs/env.json".into()
        }
    );
    let attributes = serde_json::to_string(&stack).unwrap();
    assert_eq!(
        parse(&attributes, &sp_secrets(), "420", &stack_env)
            .unwrap()
            .cloud,
        CloudSpec::AzureStack {
            name: "azurestackcloud".into(),
            env_file: "/etc/kubernetes/env.json".into()
        }
    );
    // --cloud-name=AzureStackCloud is the default for SPCs without cloudName.
    let stack_default = ParseOptions {
        default_cloud_name: "AzureStackCloud".into(),
        ..stack_env
    };
    let attributes = serde_json::to_string(&base()).unwrap();
    assert!(matches!(
        parse(&attributes, &sp_secrets(), "420", &stack_default).unwrap().cloud,
        CloudSpec::AzureStack { env_file, .. } if env_file == "/etc/azs/env.json"
    ));
    // cloudEnvFileName alone does not change the cloud.
    let params = run(&with(&[(CLOUD_ENV_FILE_NAME, "/x.json")]), &sp_secrets()).unwrap();
    assert_eq!(params.cloud, CloudSpec::Known(Cloud::public()));
    // The default comes from --cloud-name.
    let attributes = serde_json::to_string(&base()).unwrap();
    let opts = ParseOptions {
        default_cloud_name: "AzureChinaCloud".into(),
        ..ParseOptions::default()
    };
    let params = parse(&attributes, &sp_secrets(), "420", &opts).unwrap();
    assert_eq!(params.cloud, CloudSpec::Known(Cloud::china()));
}

#[test]
fn objects_yaml_shapes() {
    let objects = |yaml: &str| {
        run(&with(&[(super::OBJECTS, yaml)]), &sp_secrets())
            .unwrap()
            .objects
    };
    // An empty list (or `array:` with no value) is valid: nothing to mount.
    assert!(objects("array: []").is_empty());
    assert!(objects("array:").is_empty());
    // Block scalars, flow strings, unknown keys, surrounding whitespace.
    let yaml = "array:\n  - |\n    objectName:  s1 \n    objectType: secret\n    objectAlias: ' dir/s1.txt '\n    unknownKey: 1\n  - 'objectName: k1\n\n    objectType: key\n\n    objectVersion: \" v1 \"'\n  - \"objectName: c1\\nobjectType: cert\\nobjectVersionHistory: 3\"\n";
    let got = objects(yaml);
    assert_eq!(got.len(), 3);
    assert_eq!(
        (got[0].name.as_str(), got[0].file_name()),
        ("s1", "dir/s1.txt")
    );
    assert_eq!(
        (got[1].object_type, got[1].version.as_str()),
        (ObjectType::Key, "v1")
    );
    assert_eq!(
        (got[2].object_type, got[2].version_history),
        (ObjectType::Cert, 3)
    );
    // Non-string scalars read as their text, as yaml.v3 does for strings.
    let got = objects(
        "array:\n  - |\n    objectName: 123\n    objectType: secret\n    objectVersion: 0123\n    filePermission: 0600\n",
    );
    assert_eq!(
        (got[0].name.as_str(), got[0].version.as_str()),
        ("123", "0123")
    );
    assert_eq!(got[0].file_permission, FileMode::new(0o600));
    // Format, encoding and permission values.
    let yaml = "array:\n  - |\n    objectName: p\n    objectType: secret\n    objectFormat: PFX\n    objectEncoding: Base64\n    filePermission: \"755\"\n";
    let got = objects(yaml);
    assert_eq!(
        (got[0].format, got[0].encoding),
        (ObjectFormat::Pfx, ObjectEncoding::Base64)
    );
    assert_eq!(got[0].file_permission, FileMode::new(0o755));
}

#[test]
fn object_validation_errors() {
    let one = |body: &str| {
        let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
        objects_err(&format!("array:\n  - |\n{body}"))
    };
    let cases = [
        (
            "objectName: a\nobjectType: Secret",
            "failed to get objectType:Secret, objectName:a, objectVersion:: Invalid vaultObjectTypes. Should be secret, key, or cert",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectFormat: der",
            "failed to get objectType:secret, objectName:a, objectVersion:: invalid objectFormat: der, should be PEM or PFX",
        ),
        (
            "objectName: a\nobjectType: key\nobjectFormat: pfx",
            "failed to get objectType:key, objectName:a, objectVersion:: PFX format only supported for objectType: secret",
        ),
        (
            "objectName: a\nobjectType: cert\nobjectEncoding: hex",
            "failed to get objectType:cert, objectName:a, objectVersion:: objectEncoding only supported for objectType: secret",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectEncoding: ascii",
            "failed to get objectType:secret, objectName:a, objectVersion:: invalid objectEncoding: ascii, should be hex, base64 or utf-8",
        ),
        (
            "objectType: secret",
            "failed to get objectType:secret, objectName:, objectVersion:: file name must not be empty",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectAlias: /etc/x",
            "failed to get objectType:secret, objectName:a, objectVersion:: file name must be a relative path",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectAlias: ../x",
            "failed to get objectType:secret, objectName:a, objectVersion:: file name must not contain '..'",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectAlias: a..b",
            "failed to get objectType:secret, objectName:a, objectVersion:: file name must not contain '..'",
        ),
        (
            "objectName: a\nobjectType: secret\nobjectVersion: v1\nfilePermission: rwx",
            "failed to get objectType:secret, objectName:a, objectVersion:v1: invalid filePermission \"rwx\": must be an octal mode from 0 to 0777, such as 0644",
        ),
        (
            "objectName: a\nobjectType: secret\nfilePermission: 0800",
            "failed to get objectType:secret, objectName:a, objectVersion:: invalid filePermission \"0800\": must be an octal mode from 0 to 0777, such as 0644",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(one(body), want, "{body}");
    }
    // An empty or null element is an empty object, as in yaml.v3.
    assert_eq!(
        objects_err("array:\n  - ''\n"),
        "failed to get objectType:, objectName:, objectVersion:: Invalid vaultObjectTypes. Should be secret, key, or cert"
    );
    assert_eq!(
        objects_err("array:\n  -\n"),
        "failed to get objectType:, objectName:, objectVersion:: Invalid vaultObjectTypes. Should be secret, key, or cert"
    );
    // Every object is checked before returning: a bad last object fails the request.
    let e = objects_err(
        "array:\n  - 'objectName: a\n\n    objectType: secret'\n  - 'objectName: b\n\n    objectType: bogus'\n",
    );
    assert!(
        e.starts_with("failed to get objectType:bogus, objectName:b"),
        "{e}"
    );
}

#[test]
fn output_file_names() {
    let list = |entries: &[&str]| -> String {
        let mut yaml = String::from("array:\n");
        for entry in entries {
            yaml.push_str("  - |\n");
            for line in entry.split(", ") {
                yaml.push_str(&format!("    {line}\n"));
            }
        }
        yaml
    };
    let ok = |entries: &[&str]| {
        run(&with(&[(super::OBJECTS, &list(entries))]), &sp_secrets())
            .unwrap()
            .objects
            .len()
    };
    assert_eq!(
        ok(&[
            "objectName: a, objectType: secret, objectAlias: dir/a",
            "objectName: b, objectType: secret, objectAlias: dir/b"
        ]),
        2
    );
    assert_eq!(
        ok(&[
            "objectName: a, objectType: secret",
            "objectName: a, objectType: key, objectAlias: a.pub"
        ]),
        2
    );
    assert_eq!(
        ok(&[
            "objectName: h, objectType: secret, objectVersionHistory: 2",
            "objectName: x, objectType: secret, objectAlias: h/2"
        ]),
        2
    );

    // The same file twice passes, as upstream (the driver keeps the last).
    assert_eq!(
        ok(&[
            "objectName: a, objectType: secret",
            "objectName: b, objectType: secret",
            "objectName: c, objectType: secret, objectAlias: a",
        ]),
        3
    );
    assert_eq!(
        ok(&[
            "objectName: a, objectType: secret",
            "objectName: a, objectType: secret",
        ]),
        2
    );
    let e = objects_err(&list(&[
        "objectName: b, objectType: secret, objectAlias: d/f",
        "objectName: a, objectType: secret, objectAlias: d",
    ]));
    assert_eq!(
        e,
        r#"object at index 1 (objectName:a) writes the file "d", but object at index 0 (objectName:b) writes "d/f" inside it"#
    );
    assert_eq!(
        ok(&[
            "objectName: h, objectType: secret, objectVersionHistory: 3",
            "objectName: x, objectType: secret, objectAlias: h/1",
        ]),
        2
    );
}

#[test]
fn limits() {
    let entry = "  - 'objectName: a\n\n    objectType: secret'\n";
    let many = format!("array:\n{}", entry.repeat(MAX_OBJECTS + 1));
    assert_eq!(
        objects_err(&many),
        "objects lists 1001 objects, the limit is 1000"
    );
    let huge = format!("array: []\n#{}", "x".repeat(MAX_OBJECTS_YAML_BYTES));
    assert_eq!(
        objects_err(&huge),
        format!("objects is {} bytes long, the limit is 1048576", huge.len())
    );
    let mut yaml = String::from("array:\n");
    for i in 0..11 {
        yaml.push_str(&format!(
            "  - 'objectName: s{i}\n\n    objectType: secret\n\n    objectVersionHistory: 1000'\n"
        ));
    }
    assert_eq!(
        objects_err(&yaml),
        "objects request 11000 object versions in total, the limit is 10000"
    );
}

#[test]
fn no_secret_in_errors_or_debug() {
    let tokens = tokens();
    let secrets_with_tokens =
        json!({"clientid": "id", "clientsecret": CLIENT_SECRET, SERVICE_ACCOUNT_TOKENS: tokens})
            .to_string();
    let mut texts = Vec::new();
    for attrs in [
        with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, &tokens)]),
        with(&[
            (USE_AZURE_TOKEN_PROXY, "1"),
            (CLIENT_ID, "c"),
            (SERVICE_ACCOUNT_TOKENS, &tokens),
        ]),
        base(),
    ] {
        let params = run(&attrs, &secrets_with_tokens).unwrap();
        texts.push(format!("{params:?}"));
        texts.push(format!("{:#?}", params.identity));
    }
    // Token documents of the wrong shape: serde would quote the token.
    let bare = json!({WORKLOAD_IDENTITY_AUDIENCE: WI_TOKEN}).to_string();
    let listed = json!({WORKLOAD_IDENTITY_AUDIENCE: [IB_TOKEN]}).to_string();
    for bad in [bare.as_str(), listed.as_str(), &format!("\"{WI_TOKEN}\"")] {
        let e = run(
            &with(&[(CLIENT_ID, "c"), (SERVICE_ACCOUNT_TOKENS, bad)]),
            "null",
        )
        .unwrap_err();
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    let e = run(
        &base(),
        &json!({"clientid": ["x"], "clientsecret": CLIENT_SECRET}).to_string(),
    )
    .unwrap_err();
    texts.push(e.to_string());
    let attributes = json!({POD_NAME: "p", SERVICE_ACCOUNT_TOKENS: {"t": WI_TOKEN}}).to_string();
    let e = parse(&attributes, "null", "420", &ParseOptions::default()).unwrap_err();
    texts.push(e.to_string());
    for text in &texts {
        for secret in [WI_TOKEN, IB_TOKEN, CLIENT_SECRET] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
    }
    assert!(texts[0].contains("REDACTED"), "{}", texts[0]);
}

#[test]
fn objects_yaml_errors() {
    assert_eq!(objects_err("  "), "objects is not set");
    assert_eq!(
        objects_err("foo: bar"),
        "failed to yaml unmarshal objects, error: missing field `array`"
    );
    assert!(
        objects_err("- a")
            .starts_with("failed to yaml unmarshal objects, error: invalid type: sequence")
    );
    assert!(
        objects_err("array: x")
            .starts_with("failed to yaml unmarshal objects, error: array: invalid type: string")
    );
    assert!(
        objects_err("array:\n  - {objectName: a}")
            .starts_with("failed to yaml unmarshal objects, error: array[0]: invalid type: map")
    );
    let e = objects_err("array:\n  - |\n    objectName: a\n    objectVersionHistory: \"5\"\n");
    assert!(e.starts_with("unmarshal failed for keyVaultObjects at index 0, error: objectVersionHistory: invalid type: string"), "{e}");
    let e = objects_err("array:\n  - |\n    objectName: a\n    objectName: b\n");
    assert!(
        e.starts_with("unmarshal failed for keyVaultObjects at index 0, error: duplicate field"),
        "{e}"
    );
}

#[test]
fn misspelled_keys_add_did_you_mean_after_the_upstream_text() {
    // clientId: the service-principal path is taken, as upstream.
    let attrs = with(&[("clientId", "cid"), (SERVICE_ACCOUNT_TOKENS, &tokens())]);
    assert_eq!(
        err(&attrs, "null"),
        "failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set (did you mean \"clientID\"? \"clientId\" is not a parameter; parameter names are case-sensitive)"
    );
    let e = run(&attrs, "null").unwrap_err();
    assert!(matches!(
        &e,
        ParamsError::Hinted { source, .. } if matches!(**source, ParamsError::AuthConfig { .. })
    ));

    let cases: [(Attrs, &str); 4] = [
        (
            {
                let mut a = without(&[KEYVAULT_NAME]);
                a.insert("keyVaultName", "kv1".into());
                a
            },
            "keyvaultName is not provided (did you mean \"keyvaultName\"? \"keyVaultName\" is not a parameter; parameter names are case-sensitive)",
        ),
        (
            {
                let mut a = without(&[TENANT_ID]);
                a.insert("tenantid", "t".into());
                a
            },
            "tenantId is not provided (did you mean \"tenantID\"? \"tenantid\" is not a parameter; parameter names are case-sensitive)",
        ),
        (
            {
                let mut a = without(&[super::OBJECTS]);
                a.insert("object", OBJECTS.into());
                a
            },
            "objects is not set (did you mean \"objects\"? \"object\" is not a parameter)",
        ),
        (
            with(&[("cloudname", "AzureChinaCloud"), (CLOUD_NAME, "Mars")]),
            "cloudName Mars is not valid, error: autorest/azure: There is no cloud environment matching the name \"MARS\"",
        ),
    ];
    for (attrs, expected) in cases {
        assert_eq!(err(&attrs, &sp_secrets()), expected);
    }
}

#[test]
fn hints_are_kept_for_later_errors_and_skip_known_or_driver_keys() {
    let attrs = with(&[
        (USE_VM_MANAGED_IDENTITY, "true"),
        ("userAssignedIdentityId", "uami"),
        ("cloudname", "AzureChinaCloud"),
        ("resourceGroup", "rg"),
        ("subscriptionId", "sub"),
        (SECRET_PROVIDER_CLASS, "spc"),
        ("csi.storage.k8s.io/ephemeral", "true"),
    ]);
    let params = run(&attrs, "null").unwrap();
    let found: Vec<_> = params
        .hints
        .iter()
        .map(|h| (h.found.as_str(), h.suggestion))
        .collect();
    assert_eq!(
        found,
        [
            ("cloudname", CLOUD_NAME),
            ("userAssignedIdentityId", USER_ASSIGNED_IDENTITY_ID)
        ]
    );
    assert_eq!(
        params.hints.for_mount_error().to_string(),
        " (did you mean \"cloudName\"? \"cloudname\" is not a parameter; parameter names are case-sensitive) (did you mean \"userAssignedIdentityID\"? \"userAssignedIdentityId\" is not a parameter; parameter names are case-sensitive)"
    );
    // The identity still falls back exactly as upstream: system-assigned.
    assert!(matches!(
        &params.identity,
        Identity::VmManagedIdentity { user_assigned_identity_id } if user_assigned_identity_id.is_empty()
    ));
    // When the intended key is set as well, nothing is missing.
    let attrs = with(&[("tenantid", "x")]);
    assert!(run(&attrs, &sp_secrets()).unwrap().hints.is_empty());
    let attrs = with(&[
        (CLIENT_ID, "c"),
        ("clientid", "c"),
        (SERVICE_ACCOUNT_TOKENS, &tokens()),
    ]);
    assert!(run(&attrs, "null").unwrap().hints.is_empty());
}

/// Our extensions (`optional`, `keyvaultName`, `jmesPath`) in the objects
/// YAML: read as written, validated with the object, and their files
/// counted in the duplicate-path check.
#[test]
fn extension_fields() {
    let objects = |yaml: &str| {
        run(&with(&[(super::OBJECTS, yaml)]), &sp_secrets())
            .unwrap()
            .objects
    };
    let yaml = "array:
  - |
    objectName: db
    objectType: secret
    optional: true
    keyvaultName: ' kv-other '
    jmesPath:
      - path: username
        objectAlias: db-user
      - path: port
        objectAlias: db-port
        filePermission: 0600
  - |
    objectName: plain
    objectType: secret
    optional: \"false\"
";
    let got = objects(yaml);
    let ext = &got[0].extensions;
    assert!(ext.optional);
    assert_eq!(ext.keyvault_name.as_deref(), Some("kv-other"));
    assert_eq!(
        ext.jmes_path
            .iter()
            .map(|e| (e.path.as_str(), e.alias.as_str(), e.file_permission))
            .collect::<Vec<_>>(),
        [
            ("username", "db-user", None),
            ("port", "db-port", FileMode::new(0o600))
        ]
    );
    assert!(!got[1].extensions.optional);
    assert_eq!(got[1].extensions.keyvault_name, None);

    // Errors name the object (and its vault).
    let e = objects_err(
        "array:\n  - |\n    objectName: s\n    objectType: secret\n    keyvaultName: a_b\n",
    );
    assert_eq!(
        e,
        r#"failed to get objectType:secret, objectName:s, objectVersion:, keyvaultName:a_b: failed to get vault: Invalid vault name: "a_b", must match [-a-zA-Z0-9]{3,24}"#
    );
    let e = objects_err(
        "array:\n  - |\n    objectName: s\n    objectType: secret\n    jmesPath:\n      - path: a\n",
    );
    assert_eq!(
        e,
        r#"failed to get objectType:secret, objectName:s, objectVersion:: jmesPath entry 0 (path "a"): objectAlias is required"#
    );
    let e = objects_err(
        "array:\n  - |\n    objectName: s\n    objectType: secret\n    jmesPath: oops\n",
    );
    assert!(
        e.starts_with(
            "unmarshal failed for keyVaultObjects at index 0, error: jmesPath: invalid type"
        ),
        "{e}"
    );

    // A jmesPath file counts like any other file: the same file passes.
    let got = objects(
        "array:
  - |
    objectName: a
    objectType: secret
  - |
    objectName: b
    objectType: secret
    jmesPath:
      - path: x
        objectAlias: a
",
    );
    assert_eq!(got.len(), 2);
    let e = objects_err(
        "array:
  - |
    objectName: b
    objectType: secret
    jmesPath:
      - path: x
        objectAlias: d/f
  - |
    objectName: a
    objectType: secret
    objectAlias: d
",
    );
    assert_eq!(
        e,
        r#"object at index 1 (objectName:a) writes the file "d", but object at index 0 (objectName:b) writes "d/f" inside it"#
    );
}
