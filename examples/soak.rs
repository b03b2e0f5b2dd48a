//! `make soak`: a bounded soak of the release provider. Starts the bundled
//! Azure fake in-process and the provider as a child process, drives
//! 10,000 mounts over the unix socket (8 at a time, one gRPC connection as
//! the driver keeps) mixing good mounts, bad ones (a missing secret, an
//! identity Entra ID refuses, `objects` that do not parse) and throttled
//! ones (Key Vault 429 storms and 503 bursts, a connection reset now and
//! then), and samples the provider's RSS, open file descriptors and threads
//! from `/proc` every 500 mounts. Writes `docs/soak.md`.
//!
//! `SOAK_MOUNTS` changes the number of mounts (default 10,000).

#[path = "../tests/support/driver.rs"]
mod driver;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use akv_csi_provider::proto::MountRequest;
use anyhow::Context as _;
use fake_azure::{FakeAzure, Limit, Seed, Target, Transport};
use futures_util::StreamExt as _;
use tokio::process::Command;

const ISSUER: &str = "https://oidc.soak.test/issuer";
const DEFAULT_MOUNTS: usize = 10_000;
const SAMPLE_EVERY: usize = 500;
const CONCURRENCY: usize = 8;
/// Pods (each with its own projected token) the mounts cycle through.
const PODS: usize = 100;

/// What a mount was meant to exercise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Good,
    MissingSecret,
    RefusedIdentity,
    BadObjects,
}

impl Kind {
    /// 80 % good, the rest bad; throttling is armed on the side.
    fn of(i: usize) -> Self {
        match i % 20 {
            0 => Self::MissingSecret,
            7 => Self::RefusedIdentity,
            13 => Self::BadObjects,
            _ => Self::Good,
        }
    }
}

struct Sample {
    mounts: usize,
    elapsed: Duration,
    rss_kib: u64,
    fds: usize,
    threads: usize,
}

#[derive(Default)]
struct Tally {
    ok: usize,
    failed: std::collections::BTreeMap<String, usize>,
    unexpected: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mounts: usize = std::env::var("SOAK_MOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MOUNTS);
    let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER)).await?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem())?;
    let socket = dir.path().join("azure.sock");
    let mut child = Command::new(binary())
        .arg(format!("--endpoint=unix://{}", socket.display()))
        .args([
            "--admin-bind-address=127.0.0.1",
            "--healthz-port=0",
            "--prometheus-port=0",
            "--request-timeout=5s",
        ])
        .env_clear()
        .env("HTTPS_PROXY", fake.proxy_url())
        .env("SSL_CERT_FILE", &ca)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start the release provider (run `make soak`)")?;
    let pid = child.id().context("provider pid")?;
    driver::wait_serving(&socket, Duration::from_secs(10)).await?;
    let client = driver::connect(&socket).await?;

    let pods: Vec<(driver::Pod, driver::ServiceAccountToken)> = (0..PODS).map(pod).collect();
    let requests = |i: usize| request(Kind::of(i), &pods[i % PODS]);

    // Warm-up: every pod once, so the token cache holds its steady state.
    for pod in &pods {
        client.clone().mount(request(Kind::Good, pod)).await?;
    }
    let started = Instant::now();
    let mut samples = vec![sample(pid, 0, Duration::ZERO)];
    let mut tally = Tally::default();
    let mut done = 0;
    while done < mounts {
        let batch = SAMPLE_EVERY.min(mounts - done);
        let results: Vec<(Kind, Result<_, tonic::Status>)> =
            futures_util::stream::iter(done..done + batch)
                .map(|i| {
                    // Throttling on the side: 429 storms, 503 bursts and a
                    // reset now and then, hitting whichever mounts come.
                    match i % 100 {
                        10 | 60 => fake.throttle(Target::KeyVault, None, Limit::Count(3)),
                        35 => fake.fail_5xx(Target::KeyVault, 503, 2).expect("503"),
                        85 => fake.transport_fault(Target::KeyVault, Transport::ResetMidBody, 1),
                        _ => {}
                    }
                    let mut client = client.clone();
                    let (kind, request) = (Kind::of(i), requests(i));
                    async move { (kind, client.mount(request).await) }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        for (kind, result) in results {
            record(&mut tally, kind, result);
        }
        done += batch;
        samples.push(sample(pid, done, started.elapsed()));
    }
    let elapsed = started.elapsed();
    fake.clear_faults();
    // Idle for a moment: what is still held once the load is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = sample(pid, done, started.elapsed());
    let alive = child.try_wait()?.is_none();
    let counters = fake.counters();
    let report = report(
        &samples,
        &idle,
        &tally,
        elapsed,
        alive,
        counters.token_requests_total(),
    );
    child.kill().await.ok();
    let out = PathBuf::from("docs/soak.md");
    std::fs::write(&out, &report)?;
    println!("{report}");
    println!("wrote {}", out.display());
    anyhow::ensure!(alive, "the provider died during the soak");
    anyhow::ensure!(
        tally.unexpected.is_empty(),
        "unexpected outcomes: {:?}",
        tally.unexpected
    );
    Ok(())
}

fn record(
    tally: &mut Tally,
    kind: Kind,
    result: Result<tonic::Response<akv_csi_provider::proto::MountResponse>, tonic::Status>,
) {
    match (kind, result) {
        (Kind::Good, Ok(response)) => {
            let response = response.into_inner();
            if response.files.first().map(|f| f.contents.as_slice())
                == Some(fake_azure::BLOG_SECRET_VALUE.as_bytes())
            {
                tally.ok += 1;
            } else {
                tally
                    .unexpected
                    .push("a good mount returned other files".into());
            }
        }
        (kind, Ok(_)) => tally.unexpected.push(format!("{kind:?} mounted")),
        (kind, Err(status)) => {
            let message = status.message();
            // A good mount may fail only by the injected throttling, and
            // each failure must say what failed.
            let class = if message.contains("SecretNotFound") {
                "secret not found"
            } else if message.contains("AADSTS70021") {
                "identity refused (AADSTS70021)"
            } else if message.contains("failed to yaml unmarshal objects") {
                "objects do not parse"
            } else if message.contains("answered 429 ") {
                "Key Vault 429 (throttled)"
            } else if message.contains("answered 503 ") {
                "Key Vault 503"
            } else if message.contains(".vault.azure.net/secrets/") && message.contains(" failed: ")
            {
                "Key Vault connection reset"
            } else {
                tally.unexpected.push(format!("{kind:?}: {message}"));
                return;
            };
            let injected = class.starts_with("Key Vault");
            if kind == Kind::Good && !injected {
                tally
                    .unexpected
                    .push(format!("good mount failed: {message}"));
                return;
            }
            *tally
                .failed
                .entry(format!("{kind:?}: {class}"))
                .or_default() += 1;
        }
    }
}

fn pod(i: usize) -> (driver::Pod, driver::ServiceAccountToken) {
    let pod = driver::Pod {
        namespace: fake_azure::BLOG_NAMESPACE.into(),
        name: format!("soak-{i}"),
        uid: format!("00000000-0000-4000-8000-{i:012}"),
        service_account: fake_azure::BLOG_SERVICE_ACCOUNT.into(),
    };
    let token = driver::ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token: fake_azure::mint_service_account_token(
            ISSUER,
            &pod.namespace,
            &pod.service_account,
            driver::WORKLOAD_IDENTITY_AUDIENCE,
            Duration::from_secs(3600 + i as u64),
        ),
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    (pod, token)
}

fn spc(objects: &str) -> driver::SecretProviderClass {
    let mut spc =
        driver::spc_from_yaml(include_str!("../deploy/examples/secretproviderclass.yaml"))
            .expect("the example SPC parses");
    spc.parameters.insert("objects".into(), objects.into());
    spc
}

fn request(kind: Kind, (pod, token): &(driver::Pod, driver::ServiceAccountToken)) -> MountRequest {
    let good = "array:\n  - |\n    objectName: MySecretPassword\n    objectType: secret\n";
    let (spc, token) = match kind {
        Kind::Good => (spc(good), token.clone()),
        Kind::MissingSecret => (
            spc("array:\n  - |\n    objectName: NoSuchSecret\n    objectType: secret\n"),
            token.clone(),
        ),
        // A service account the identity does not federate with.
        Kind::RefusedIdentity => (
            spc(good),
            driver::ServiceAccountToken {
                token: fake_azure::mint_service_account_token(
                    ISSUER,
                    &pod.namespace,
                    "default",
                    driver::WORKLOAD_IDENTITY_AUDIENCE,
                    Duration::from_secs(3600),
                ),
                ..token.clone()
            },
        ),
        Kind::BadObjects => (spc("array: [unclosed"), token.clone()),
    };
    driver::mount_request(driver::attributes(&spc, pod, &[token]), None, pod)
}

fn sample(pid: u32, mounts: usize, elapsed: Duration) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let count = |what: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{what}"))
            .map(Iterator::count)
            .unwrap_or(0)
    };
    Sample {
        mounts,
        elapsed,
        rss_kib,
        fds: count("fd"),
        threads: count("task"),
    }
}

fn report(
    samples: &[Sample],
    idle: &Sample,
    tally: &Tally,
    elapsed: Duration,
    alive: bool,
    token_requests: u64,
) -> String {
    let total: usize = tally.ok + tally.failed.values().sum::<usize>() + tally.unexpected.len();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Soak\n\n_Written by `make soak` (`examples/soak.rs`); do not edit by hand._\n"
    );
    let _ = writeln!(
        out,
        "{total} mounts against the bundled fake ({} provider, {CONCURRENCY} at a time over \
         one connection, {PODS} pods with their own service-account tokens), in {:.1} s \
         ({:.0} mounts/s). The provider {}. Samples of its `/proc` every {SAMPLE_EVERY} mounts; \
         the first after a warm-up mount of every pod.\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        if alive { "kept running" } else { "**died**" }
    );
    let _ = writeln!(
        out,
        "Mix: 80 % good mounts; 5 % each a missing secret (Key Vault 404), an identity Entra ID refuses (AADSTS70021) and `objects` that do not parse; Key Vault 429 storms (3 requests, twice per 100 mounts), 503 bursts (2 requests per 100) and a connection reset mid-body (1 per 100) hit whichever mounts come.\n"
    );
    let _ = writeln!(
        out,
        "| outcome | mounts |\n|---|---:|\n| good mounts that mounted | {} |",
        tally.ok
    );
    for (class, n) in &tally.failed {
        let _ = writeln!(out, "| {class} | {n} |");
    }
    let _ = writeln!(out, "| unexpected | {} |\n", tally.unexpected.len());
    let _ = writeln!(
        out,
        "Token requests to Entra ID during the run: {token_requests} (the token cache serves repeats).\n"
    );
    let _ = writeln!(
        out,
        "| mounts | seconds | RSS (MiB) | open fds | threads |\n|---:|---:|---:|---:|---:|"
    );
    for s in samples.iter().chain(std::iter::once(idle)) {
        let _ = writeln!(
            out,
            "| {}{} | {:.1} | {:.1} | {} | {} |",
            s.mounts,
            if std::ptr::eq(s, idle) {
                " (idle 2 s later)"
            } else {
                ""
            },
            s.elapsed.as_secs_f64(),
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.threads
        );
    }
    let first = &samples[0];
    let after_1k = samples.iter().find(|s| s.mounts >= 1000).unwrap_or(first);
    let last = samples.last().unwrap_or(first);
    let max_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let max_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "\nRSS: {:.1} MiB after warm-up, {:.1} MiB after 1,000 mounts, {:.1} MiB at the end \
         (peak {:.1} MiB); from 1,000 mounts on it moved {:+.1} MiB. Open fds: {} → {} (peak {}). \
         Threads: {} → {}.",
        first.rss_kib as f64 / 1024.0,
        after_1k.rss_kib as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0,
        max_rss as f64 / 1024.0,
        (last.rss_kib as f64 - after_1k.rss_kib as f64) / 1024.0,
        first.fds,
        last.fds,
        max_fds,
        first.threads,
        last.threads,
    );
    out
}

fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/release/examples/soak → target/release/akv-csi-provider
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("akv-csi-provider"))
        .unwrap_or_default()
}
