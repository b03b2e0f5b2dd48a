//! A stand-in for the Secrets Store CSI Driver, used by `make demo`: reads a
//! SecretProviderClass YAML, builds the Mount request the driver would send
//! for a pod (pod info plus a projected service-account token minted for the
//! bundled Azure fake), calls the provider over its socket and writes the
//! returned files like the driver does.
//!
//! Usage: driver --socket PATH --spc FILE --namespace NS --pod NAME
//!               --service-account SA --issuer URL --out DIR

#[path = "../tests/support/driver.rs"]
mod driver;

use std::path::PathBuf;
use std::time::Duration;

use akv_csi_provider::proto::VersionRequest;
use anyhow::Context as _;

struct Options {
    socket: PathBuf,
    spc: PathBuf,
    pod: driver::Pod,
    issuer: String,
    out: PathBuf,
}

fn options() -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut get = std::collections::HashMap::new();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        get.insert(flag.trim_start_matches('-').to_owned(), value);
    }
    let mut take = |key: &str| {
        get.remove(key)
            .with_context(|| format!("--{key} is required"))
    };
    Ok(Options {
        socket: take("socket")?.into(),
        spc: take("spc")?.into(),
        pod: driver::Pod {
            namespace: take("namespace")?,
            name: take("pod")?,
            uid: "2b0d6a4e-8c1f-4e57-9a3b-1d2c3e4f5a6b".into(),
            service_account: take("service-account")?,
        },
        issuer: take("issuer")?,
        out: take("out")?.into(),
    })
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("driver: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let options = options()?;
    let spc = driver::spc_from_file(&options.spc)?;
    let token = driver::ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token: fake_azure::mint_service_account_token(
            &options.issuer,
            &options.pod.namespace,
            &options.pod.service_account,
            driver::WORKLOAD_IDENTITY_AUDIENCE,
            Duration::from_secs(3600),
        ),
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    let mut client = driver::connect(&options.socket).await?;
    let version = client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await?
        .into_inner();
    println!(
        "provider {} {} (API {})",
        version.runtime_name, version.runtime_version, version.version
    );
    let attributes = driver::attributes(&spc, &options.pod, &[token]);
    let request = driver::mount_request(attributes, None, &options.pod);
    println!(
        "Mount: SecretProviderClass {}/{} for pod {} (service account {})",
        options.pod.namespace, spc.name, options.pod.name, options.pod.service_account
    );
    let response = client
        .mount(request)
        .await
        .map_err(|status| anyhow::anyhow!("mount failed: {}", status.message()))?
        .into_inner();
    std::fs::create_dir_all(&options.out)?;
    let written = driver::write_files(&options.out, &response)?;
    for (path, version) in written.iter().zip(&response.object_version) {
        println!(
            "  wrote {} ({} {})",
            path.display(),
            version.id,
            version.version
        );
    }
    // What the driver's sync controller builds from these files.
    for (name, kind, data) in driver::synced_secrets(&spc, &response)? {
        let ns = &options.pod.namespace;
        println!("Secret {ns}/{name} ({kind}) synced from the mount:");
        for (key, value) in data {
            let path = options
                .out
                .join("..")
                .join("secrets")
                .join(&name)
                .join(&key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &value)?;
            println!("  data.{key}: {} bytes", value.len());
        }
    }
    Ok(())
}
