//! Clouds: `cloudName` (case-insensitive) picks the vault host, the
//! authority host and the token scope for Entra ID and IMDS; Azure Stack
//! reads the environment file `cloudEnvFileName` names, for that mount
//! only.

use crate::support::driver::Pod;
use crate::support::harness::{Harness, failure};
use crate::support::identities::*;
use crate::support::objects::objects;

const VAULT: &str = fake_azure::BLOG_VAULT;

/// The vault host and the token scope follow the
/// cloud: `cloudName` is case-insensitive; Azure Stack reads the
/// environment file named by `cloudEnvFileName` for this mount only.
#[tokio::test]
async fn cloud_name_sets_the_vault_host_and_the_token_scope() {
    let harness = Harness::start().await;
    let stack_env = harness.dir().join("stack.json");
    std::fs::write(
        &stack_env,
        r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.microsoftonline.com/",
            "keyVaultEndpoint":"https://vault.local.azurestack.external/","keyVaultDNSSuffix":"vault.local.azurestack.external",
            "resourceManagerEndpoint":"https://management.local.azurestack.external/"}"#,
    )
    .unwrap();
    harness
        .fake
        .set_secret(VAULT, "MySecretPassword", "everywhere", None)
        .unwrap();
    for (cloud, env_file) in [
        ("azureusgovernmentcloud", None),
        ("AzureChinaCloud", None),
        ("AzureCloud", None),
        ("AzureStackCloud", Some(stack_env.display().to_string())),
    ] {
        let mut spc = Harness::blog_spc_with_objects(&objects(&[
            "objectName: MySecretPassword\nobjectType: secret",
        ]));
        spc.parameters.insert("cloudName".into(), cloud.into());
        if let Some(file) = &env_file {
            spc.parameters
                .insert("cloudEnvFileName".into(), file.clone());
        }
        harness.fake.reset_counters();
        let response = harness
            .mount_spc(&spc, &Pod::blog())
            .await
            .unwrap_or_else(|s| panic!("{cloud}: {}", s.message()));
        assert_eq!(response.files[0].contents, b"everywhere", "{cloud}");
        let counters = harness.fake.counters();
        assert_eq!(
            counters
                .token_requests_with(fake_azure::grant::CLIENT_ASSERTION, fake_azure::OUTCOME_OK),
            1,
            "{cloud}: {counters:?}"
        );
        assert_eq!(counters.challenges, 0, "{cloud}: the right scope up front");
    }
    let mut spc = Harness::blog_spc_with_objects(&objects(&[
        "objectName: MySecretPassword\nobjectType: secret",
    ]));
    spc.parameters
        .insert("cloudName".into(), "AzureStackCloud".into());
    spc.parameters
        .insert("cloudEnvFileName".into(), "/nonexistent/env.json".into());
    let status = harness.mount_spc(&spc, &Pod::blog()).await.unwrap_err();
    assert!(
        failure(&status).starts_with("cloudName AzureStackCloud is not valid, error: "),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn sovereign_clouds_use_their_authority_and_scope() {
    let harness = Harness::start_with(all_granted(), &[]).await;
    let clouds = [
        ("AzureUSGovernmentCloud", "login.microsoftonline.us"),
        ("AzureChinaCloud", "login.chinacloudapi.cn"),
        ("AzureGermanCloud", "login.microsoftonline.de"),
        ("AzurePublicCloud", "login.microsoftonline.com"),
    ];
    for (i, (cloud, login)) in clouds.iter().enumerate() {
        // A fresh token each time, so every cloud makes its own exchange.
        let token = wi_token(3000 + i as u64);
        let response = harness
            .mount_with(&spc(&[("cloudName", cloud)]), &[token], None)
            .await
            .unwrap_or_else(|e| panic!("{cloud}: {}", e.message()));
        assert_blog_secret(&response);
        let counters = harness.fake.counters();
        assert_eq!(
            counters.token_hosts.get(*login),
            Some(&1),
            "{cloud} asked {login}: {counters:?}"
        );
    }
    // Key Vault accepted each token: the scope was the cloud's vault.
    let counters = harness.fake.counters();
    assert_eq!(
        counters.keyvault_requests_with(VAULT, fake_azure::op::GET_SECRET, 200),
        4
    );

    // IMDS is asked for the cloud's resource too.
    harness
        .fake
        .set_vm_identities(Some(MI_SYSTEM), &[])
        .unwrap();
    let spc = spc(&[
        ("clientID", ""),
        ("useVMManagedIdentity", "true"),
        ("cloudName", "AzureChinaCloud"),
    ]);
    assert_blog_secret(&harness.mount_with(&spc, &[], None).await.expect("mount"));
}

#[tokio::test]
async fn azure_stack_environment_file_sets_authority_and_scope() {
    let harness = Harness::start().await;
    let env_file = harness.dir().join("azurestack.json");
    std::fs::write(
        &env_file,
        r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.microsoftonline.com/",
            "keyVaultEndpoint":"https://vault.local.azurestack.external/",
            "keyVaultDNSSuffix":"vault.local.azurestack.external"}"#,
    )
    .unwrap();
    let spc = spc(&[
        ("cloudName", "AzureStackCloud"),
        ("cloudEnvFileName", env_file.to_str().unwrap()),
    ]);
    assert_blog_secret(
        &harness
            .mount_with(&spc, &[wi_token(3600)], None)
            .await
            .expect("mount succeeds"),
    );
}

/// Issue 12: `--cloud-name=AzureStackCloud` starts and serves; an SPC
/// without `cloudEnvFileName` reads the file `AZURE_ENVIRONMENT_FILEPATH`
/// names, per mount, as go-autorest does; a missing file is upstream's error
/// with the path and the user's spelling of the cloud name.
#[tokio::test]
async fn azure_stack_reads_the_file_azure_environment_filepath_names() {
    let env_dir = tempfile::tempdir().unwrap();
    let env_file = env_dir.path().join("azurestack.json");
    std::fs::write(
        &env_file,
        r#"{"name":"AzureStackCloud","activeDirectoryEndpoint":"https://login.microsoftonline.com/",
            "keyVaultEndpoint":"https://vault.local.azurestack.external/",
            "keyVaultDNSSuffix":"vault.local.azurestack.external"}"#,
    )
    .unwrap();
    let path = env_file.to_str().unwrap();
    let harness = Harness::start_with_env(
        fake_azure::Seed::blog_walkthrough(crate::support::harness::ISSUER),
        &["--cloud-name=AzureStackCloud"],
        &[("AZURE_ENVIRONMENT_FILEPATH", path)],
    )
    .await;
    let blog = || {
        Harness::blog_spc_with_objects(&objects(&[
            "objectName: MySecretPassword\nobjectType: secret",
        ]))
    };
    // The default cloud (no cloudName), then cloudName in any spelling.
    harness
        .mount_spc(&blog(), &Pod::blog())
        .await
        .expect("default cloud");
    let mut spc = blog();
    spc.parameters
        .insert("cloudName".into(), "azurestackcloud".into());
    harness
        .mount_spc(&spc, &Pod::blog())
        .await
        .expect("cloudName");

    // Read per mount: once the file is gone, the next mount says so.
    std::fs::remove_file(&env_file).unwrap();
    spc.parameters
        .insert("cloudName".into(), "AzureStackcloud".into());
    let status = harness.mount_spc(&spc, &Pod::blog()).await.unwrap_err();
    assert_eq!(
        failure(&status),
        format!(
            "cloudName AzureStackcloud is not valid, error: open {path}: no such file or directory"
        )
    );
}

/// Without `AZURE_ENVIRONMENT_FILEPATH` the provider still starts; a mount
/// that needs the file gets upstream's text and what to set.
#[tokio::test]
async fn azure_stack_without_the_variable_starts_and_says_what_to_set() {
    let harness = Harness::start_with(
        fake_azure::Seed::blog_walkthrough(crate::support::harness::ISSUER),
        &["--cloud-name=AzureStackCloud"],
    )
    .await;
    let spc = Harness::blog_spc_with_objects(&objects(&[
        "objectName: MySecretPassword\nobjectType: secret",
    ]));
    let status = harness.mount_spc(&spc, &Pod::blog()).await.unwrap_err();
    let message = failure(&status);
    assert!(
        message.starts_with("cloudName AzureStackCloud is not valid, error: open : no such file or directory (AZURE_ENVIRONMENT_FILEPATH is not set"),
        "{message}"
    );
    assert!(message.contains("cloudEnvFileName"), "{message}");
}
