//! `make bench`: measures the provider the way the CSI driver uses it and
//! writes `docs/benchmarks.md`. Starts the bundled Azure fake in-process with
//! injected latency and the release provider binary as a child process,
//! drives `Mount` over the unix socket, and reads request counts from the
//! fake and memory from `/proc`.
//!
//! Scenarios (issue 5): P1 cold mounts of 1/5/20/50 secrets next to the
//! physical limit, the upstream request pattern and a sequential baseline;
//! P2 rotation (the same pod again); P3 a burst of 500 pods with and without
//! the value cache, and under throttling; P4 memory and warm throughput;
//! P5 start-up time and binary size. Everything stays on 127.0.0.1.

#[path = "../tests/support/driver.rs"]
mod driver;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use akv_csi_provider::proto::VersionRequest;
use anyhow::Context as _;
use fake_azure::{FakeAzure, Seed, Target};
use tokio::process::{Child, Command};

const ISSUER: &str = "https://oidc.bench.test/issuer";
const LATENCY: Duration = Duration::from_millis(50);
const PHYSICAL_LIMIT_MS: f64 = 100.0;
const BURST_PODS: usize = 500;

/// A provider process under test.
struct Provider {
    child: Child,
    socket: PathBuf,
    startup: Duration,
    _dir: tempfile::TempDir,
}

impl Provider {
    async fn start(fake: &FakeAzure, args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, fake.ca_pem())?;
        let socket = dir.path().join("azure.sock");
        let started = Instant::now();
        let child = Command::new(binary())
            .arg(format!("--endpoint=unix://{}", socket.display()))
            // Several providers run at once: admin listeners on free
            // loopback ports.
            .args([
                "--admin-bind-address=127.0.0.1",
                "--healthz-port=0",
                "--prometheus-port=0",
            ])
            .args(args)
            .env_clear()
            .env("HTTPS_PROXY", fake.proxy_url())
            .env("SSL_CERT_FILE", &ca)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("start the release provider (run `make bench`)")?;
        let startup = wait_serving(&socket, started).await?;
        Ok(Self {
            child,
            socket,
            startup,
            _dir: dir,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/release/examples/bench → target/release/akv-csi-provider
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("akv-csi-provider"))
        .unwrap_or_default()
}

async fn wait_serving(socket: &Path, started: Instant) -> anyhow::Result<Duration> {
    while started.elapsed() < Duration::from_secs(10) {
        if socket.exists()
            && let Ok(mut client) = driver::connect(socket).await
        {
            let version = VersionRequest {
                version: "v1alpha1".into(),
            };
            if client.version(version).await.is_ok() {
                return Ok(started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    anyhow::bail!("provider did not serve within 10s")
}

/// A vault with `n` secrets `s0..s{n-1}` readable by the blog identity.
fn seed_with(n: usize) -> Seed {
    let mut seed = Seed::blog_walkthrough(ISSUER);
    for i in 0..n {
        seed.vaults[0].secrets.push(fake_azure::SecretSeed::new(
            format!("s{i}"),
            format!("value-{i}"),
        ));
    }
    seed
}

fn spc_for(n: usize) -> driver::SecretProviderClass {
    let mut objects = String::from("array:\n");
    for i in 0..n {
        let _ = write!(
            objects,
            "  - |\n    objectName: s{i}\n    objectType: secret\n"
        );
    }
    let mut spc = driver::SecretProviderClass::from_yaml(include_str!(
        "../deploy/examples/secretproviderclass.yaml"
    ))
    .expect("the example SPC parses");
    spc.parameters.insert("objects".into(), objects);
    spc
}

/// A pod with its own projected token (kubelet binds tokens to the pod, so
/// every pod presents a different token).
fn pod(i: usize) -> (driver::Pod, driver::ServiceAccountToken) {
    let pod = driver::Pod {
        namespace: fake_azure::BLOG_NAMESPACE.into(),
        name: format!("bench-{i}"),
        uid: format!("00000000-0000-4000-8000-{i:012}"),
        service_account: fake_azure::BLOG_SERVICE_ACCOUNT.into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let token = fake_azure::mint_jwt(&serde_json::json!({
        "aud": [driver::WORKLOAD_IDENTITY_AUDIENCE],
        "exp": now + 3600, "iat": now, "nbf": now, "iss": ISSUER,
        "sub": fake_azure::BLOG_SUBJECT,
        "kubernetes.io": {"namespace": pod.namespace, "pod": {"name": pod.name, "uid": pod.uid}},
    }));
    let token = driver::ServiceAccountToken {
        audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
        token,
        expiration: "2099-01-01T00:00:00Z".into(),
    };
    (pod, token)
}

async fn mount(
    socket: &Path,
    spc: &driver::SecretProviderClass,
    pod: &driver::Pod,
    token: &driver::ServiceAccountToken,
) -> anyhow::Result<Duration> {
    let mut client = driver::connect(socket).await?;
    let attributes = driver::attributes(spc, pod, std::slice::from_ref(token));
    let started = Instant::now();
    client
        .mount(driver::mount_request(attributes, None, pod))
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    Ok(started.elapsed())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Memory of a process from /proc: (VmRSS, VmHWM) in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Report {
    text: String,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }
}

/// Extra provider flags per configuration, given on the command line as
/// `--cache-args "--cache-ttl 30s"` (so the bench runs against builds that
/// lack a flag, too).
struct Options {
    cache_args: Vec<String>,
    out: PathBuf,
    command: String,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let mut cache_args = vec!["--cache-ttl".to_owned(), "30s".to_owned()];
    let mut out = PathBuf::from("docs/benchmarks.md");
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--cache-args" if i + 1 < args.len() => {
                cache_args = args[i + 1].split_whitespace().map(str::to_owned).collect();
                i += 1;
            }
            "--out" if i + 1 < args.len() => {
                out = PathBuf::from(&args[i + 1]);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Options {
        cache_args,
        out,
        command: "make bench".into(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    let mut report = Report {
        text: String::new(),
    };
    header(&mut report, &options);
    p1_cold(&mut report).await?;
    p2_rotation(&mut report).await?;
    p3_burst(&mut report, &options).await?;
    p4_memory(&mut report).await?;
    p5_startup(&mut report).await?;
    std::fs::write(&options.out, &report.text)?;
    println!("wrote {}", options.out.display());
    Ok(())
}

fn header(report: &mut Report, options: &Options) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    report.line("# Benchmarks");
    report.line("");
    report.line(format!("- Command: `{}` (release build; the Azure fake in-process, the provider as a child process, all on 127.0.0.1)", options.command));
    report.line(format!("- Date: {date}"));
    report.line(format!("- Machine: {cores} cores, {cpu}"));
    report.line(format!("- Injected latency: Entra ID {} ms, Key Vault {} ms per request; physical limit of a cold mount = one token round trip + one Key Vault round trip = {PHYSICAL_LIMIT_MS} ms", LATENCY.as_millis(), LATENCY.as_millis()));
    report.line("");
}

async fn latency_fake(n: usize) -> anyhow::Result<FakeAzure> {
    let fake = FakeAzure::start(seed_with(n)).await?;
    fake.set_latency(Target::Aad, LATENCY);
    fake.set_latency(Target::KeyVault, LATENCY);
    Ok(fake)
}

async fn p1_cold(report: &mut Report) -> anyhow::Result<()> {
    report.line("## P1 cold mount (new pod, new token)");
    report.line("");
    report.line("| secrets | provider (ms, median of 5) | ratio to 100 ms | `--max-concurrent-fetches 1` (ms) | upstream pattern: 1 token + 1 challenge + N sequential GETs (ms) |");
    report.line("|---:|---:|---:|---:|---:|");
    let fake = latency_fake(50).await?;
    let parallel = Provider::start(&fake, &[]).await?;
    let sequential = Provider::start(&fake, &["--max-concurrent-fetches", "1"]).await?;
    let mut next_pod = 0;
    for n in [1usize, 5, 20, 50] {
        let spc = spc_for(n);
        let mut run = |socket: PathBuf| {
            let spc = spc.clone();
            let first = next_pod;
            next_pod += 5;
            async move {
                let mut samples = Vec::new();
                for i in first..first + 5 {
                    let (pod, token) = pod(i);
                    samples.push(mount(&socket, &spc, &pod, &token).await?);
                }
                anyhow::Ok(median(samples))
            }
        };
        let fast = run(parallel.socket.clone()).await?;
        let slow = run(sequential.socket.clone()).await?;
        let upstream = ms(LATENCY) * (2 + n) as f64;
        report.line(format!(
            "| {n} | {:.0} | {:.2} | {:.0} | {upstream:.0} |",
            ms(fast),
            ms(fast) / PHYSICAL_LIMIT_MS,
            ms(slow)
        ));
    }
    report.line("");
    Ok(())
}

async fn p2_rotation(report: &mut Report) -> anyhow::Result<()> {
    report.line("## P2 rotation (the same pod and token mounted again)");
    report.line("");
    let n = 5;
    let fake = latency_fake(n).await?;
    let provider = Provider::start(&fake, &[]).await?;
    let spc = spc_for(n);
    let (pod, token) = pod(10_000);
    mount(&provider.socket, &spc, &pod, &token).await?;
    fake.reset_counters();
    let took = mount(&provider.socket, &spc, &pod, &token).await?;
    let c = fake.counters();
    report.line("| secrets | token requests | challenges | Key Vault GETs | wall (ms) |");
    report.line("|---:|---:|---:|---:|---:|");
    report.line(format!(
        "| {n} | {} | {} | {} | {:.0} |",
        c.token_requests_total(),
        c.challenges,
        c.keyvault_requests_total(),
        ms(took)
    ));
    report.line("");
    report.line(format!(
        "Upstream for the same work: 1 token request, 1 challenge, {n} GETs."
    ));
    report.line("");
    Ok(())
}

/// Mounts `pods` pods of one Deployment at once; returns (wall, failures).
async fn burst(
    socket: &Path,
    spc: &driver::SecretProviderClass,
    pods: usize,
    offset: usize,
) -> (Duration, usize) {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(pods);
    for i in 0..pods {
        let socket = socket.to_owned();
        let spc = spc.clone();
        tasks.push(tokio::spawn(async move {
            let (pod, token) = pod(offset + i);
            mount(&socket, &spc, &pod, &token).await
        }));
    }
    let mut failures = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(_))) {
            failures += 1;
        }
    }
    (started.elapsed(), failures)
}

async fn p3_burst(report: &mut Report, options: &Options) -> anyhow::Result<()> {
    report.line(format!(
        "## P3 burst: {BURST_PODS} pods of one Deployment (one identity, 3 secrets each) at once"
    ));
    report.line("");
    report.line("| configuration | Key Vault GETs | of which 429 | token requests | wall (ms) | failed mounts |");
    report.line("|---|---:|---:|---:|---:|---:|");
    let spc = spc_for(3);
    let cache: Vec<&str> = options.cache_args.iter().map(String::as_str).collect();
    let configs: [(&str, Vec<&str>, bool); 3] = [
        ("cache off", vec![], false),
        ("value cache (`{cache}`)", cache.clone(), false),
        ("cache off, Key Vault answers 429 for 2 s", vec![], true),
    ];
    for (k, (label, args, throttled)) in configs.into_iter().enumerate() {
        let fake = latency_fake(3).await?;
        let provider = Provider::start(&fake, &args).await?;
        fake.reset_counters();
        if throttled {
            fake.throttle(
                Target::KeyVault,
                Some(1),
                fake_azure::Limit::Until(Instant::now() + Duration::from_secs(2)),
            );
        }
        let (wall, failures) =
            burst(&provider.socket, &spc, BURST_PODS, 20_000 + k * BURST_PODS).await;
        let c = fake.counters();
        let label = label.replace("{cache}", &options.cache_args.join(" "));
        report.line(format!(
            "| {label} | {} | {} | {:.0} | {failures} |",
            c.keyvault_requests_total(),
            c.token_requests_total(),
            ms(wall)
        ));
    }
    report.line("");
    Ok(())
}

async fn p4_memory(report: &mut Report) -> anyhow::Result<()> {
    report.line("## P4 memory and warm throughput");
    report.line("");
    let fake = FakeAzure::start(seed_with(3)).await?;
    let provider = Provider::start(&fake, &[]).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (idle, _) = memory(provider.pid());
    let spc = spc_for(3);
    fake.set_latency(Target::KeyVault, LATENCY);
    let (_, failures) = burst(&provider.socket, &spc, BURST_PODS, 40_000).await;
    let (_, peak) = memory(provider.pid());
    fake.set_latency(Target::KeyVault, Duration::ZERO);
    let rate = warm_rate(&provider.socket, &spc, Duration::from_secs(5)).await;
    report.line("| RSS idle (MiB) | peak RSS over 500 concurrent mounts, VmHWM (MiB) | failed | warm mounts/s at saturation (same pod, 3 secrets, 64 clients, 5 s) |");
    report.line("|---:|---:|---:|---:|");
    report.line(format!(
        "| {:.1} | {:.1} | {failures} | {rate:.0} |",
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    ));
    report.line("");
    Ok(())
}

/// Mounts per second with 64 concurrent clients re-mounting one pod.
async fn warm_rate(socket: &Path, spc: &driver::SecretProviderClass, window: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let (pod, token) = pod(50_000);
    let deadline = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (socket, spc, pod, token, done) = (
            socket.to_owned(),
            spc.clone(),
            pod.clone(),
            token.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let Ok(mut client) = driver::connect(&socket).await else {
                return;
            };
            let attributes = driver::attributes(&spc, &pod, std::slice::from_ref(&token));
            while Instant::now() < deadline {
                let request = driver::mount_request(attributes.clone(), None, &pod);
                if client.mount(request).await.is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    done.load(Ordering::Relaxed) as f64 / window.as_secs_f64()
}

async fn p5_startup(report: &mut Report) -> anyhow::Result<()> {
    report.line("## P5 start-up and size");
    report.line("");
    let fake = FakeAzure::start(seed_with(1)).await?;
    let mut samples = Vec::new();
    for _ in 0..5 {
        let provider = Provider::start(&fake, &[]).await?;
        samples.push(provider.startup);
    }
    let size = std::fs::metadata(binary()).map_or(0, |m| m.len());
    report.line("| start-up to a serving socket (ms, median of 5, includes the first Version call) | release binary size (MB) |");
    report.line("|---:|---:|");
    report.line(format!(
        "| {:.1} | {:.1} |",
        ms(median(samples)),
        size as f64 / 1e6
    ));
    report.line("");
    Ok(())
}
