//! `make bench`: measures the provider the way the CSI driver uses it, next
//! to upstream's real provider on the same fake, and writes
//! `docs/benchmarks.md`. Starts the bundled Azure fake in-process with
//! injected latency and each provider as a child process (ours: the release
//! binary; upstream's: the binary `scripts/go-tools.sh` builds, see
//! `bench/upstream.rs`), drives `Mount` over the unix socket, and reads
//! request counts (including TLS handshakes) from the fake and memory and
//! CPU time from `/proc`.
//!
//! Scenarios (issues 5, 15 and 18): P1 new-pod mounts of 1/5/20/50 secrets
//! next to the physical limit and a sequential baseline; the cold row, the
//! first mount of a freshly started process (`bench/cold.rs`); the
//! `--max-concurrent-fetches` sweep the default was chosen from, with its
//! cold case; P2 rotation (the same pod again, at once and after the
//! driver's 2-minute poll interval); P3 a burst of 500 pods with and
//! without the value cache, and under throttling, and with each
//! `--token-cache-scope` (`bench/scope.rs`); P4 memory, CPU and warm
//! throughput; P5 start-up time and binary size. Every P row has
//! upstream's measured figures beside ours. Everything stays on 127.0.0.1
//! (`make bench` runs it inside `scripts/netns-run`).

#[path = "../tests/support/driver.rs"]
mod driver;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fake_azure::{Counters, FakeAzure, Seed, Target};
use tokio::process::{Child, Command};

#[path = "bench/cold.rs"]
mod cold;
#[path = "bench/scope.rs"]
mod scope;
#[path = "bench/upstream.rs"]
mod upstream;

const ISSUER: &str = "https://oidc.bench.test/issuer";
const LATENCY: Duration = Duration::from_millis(50);
const PHYSICAL_LIMIT_MS: f64 = 100.0;
const BURST_PODS: usize = 500;
const SAMPLES: usize = 5;
/// The driver's default rotation poll interval (`--rotation-poll-interval`).
const ROTATION_POLL: Duration = Duration::from_secs(120);

type Client = akv_csi_provider::proto::csi_driver_provider_client::CsiDriverProviderClient<
    tonic::transport::Channel,
>;

/// Which provider a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Ours,
    Upstream,
}

impl Side {
    const BOTH: [Side; 2] = [Side::Ours, Side::Upstream];

    fn label(self) -> String {
        match self {
            Side::Ours => "akv-csi-provider".into(),
            Side::Upstream => format!("upstream {}", upstream::VERSION),
        }
    }
}

/// A provider process under test.
struct Provider {
    child: Child,
    socket: PathBuf,
    startup: Duration,
    _dir: tempfile::TempDir,
}

impl Provider {
    /// Ours, with extra flags.
    async fn start(fake: &FakeAzure, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_side(fake, Side::Ours, args).await
    }

    /// Either side; `args` are ours only (upstream runs with its defaults).
    async fn start_side(fake: &FakeAzure, side: Side, args: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, fake.ca_pem())?;
        let socket = dir.path().join("azure.sock");
        let log = std::fs::File::create(dir.path().join("provider.log"))?;
        let mut command = match side {
            Side::Ours => {
                let mut command = Command::new(binary());
                command
                    .arg(format!("--endpoint=unix://{}", socket.display()))
                    // Several providers run at once: admin listeners on
                    // free loopback ports.
                    .args([
                        "--admin-bind-address=127.0.0.1",
                        "--healthz-port=0",
                        "--prometheus-port=0",
                    ])
                    .args(args);
                command
            }
            Side::Upstream => {
                let mut command = Command::new(upstream::binary());
                command.args(upstream::args(&socket));
                command
            }
        };
        let started = Instant::now();
        let child = command
            .env_clear()
            .env("HTTPS_PROXY", fake.proxy_url())
            .env("SSL_CERT_FILE", &ca)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {} (run `make bench`)", side.label()))?;
        driver::wait_serving(&socket, Duration::from_secs(10))
            .await
            .with_context(|| side.label())?;
        let startup = started.elapsed();
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

    fn cpu(&self) -> Duration {
        cpu_time(self.pid())
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
    let mut spc =
        driver::spc_from_yaml(include_str!("../deploy/examples/secretproviderclass.yaml"))
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
    let client = driver::connect(socket).await?;
    mount_on(client, spc, pod, token).await
}

/// One Mount on an existing connection (the driver keeps one per provider
/// for its lifetime and multiplexes every Mount over it).
async fn mount_on(
    mut client: Client,
    spc: &driver::SecretProviderClass,
    pod: &driver::Pod,
    token: &driver::ServiceAccountToken,
) -> anyhow::Result<Duration> {
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

/// CPU time a process has used (user + system, all its threads), from
/// /proc/<pid>/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces): state is
    // field 3, utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Key Vault answers with one status, any vault and operation.
fn keyvault_with_status(c: &Counters, status: u16) -> u64 {
    c.keyvault_requests
        .values()
        .flat_map(|ops| ops.values())
        .filter_map(|by_status| by_status.get(&status))
        .sum()
}

/// What the fake counted over a stretch of work.
#[derive(Clone, Copy, Debug, Default)]
struct Requests {
    /// Entra ID token requests.
    tokens: u64,
    /// Entra ID instance discovery and OpenID metadata.
    metadata: u64,
    /// Key Vault requests of any status (401 challenges included).
    keyvault: u64,
    challenges: u64,
    handshakes: u64,
}

impl Requests {
    fn of(c: &Counters) -> Self {
        Self {
            tokens: c.token_requests_total(),
            metadata: c.metadata_requests,
            keyvault: c.keyvault_requests_total(),
            challenges: c.challenges,
            handshakes: c.tls_handshakes,
        }
    }

    fn entra(&self) -> u64 {
        self.tokens + self.metadata
    }

    /// "Entra ID / Key Vault" requests per mount.
    fn per_mount(&self, mounts: u64) -> String {
        format!(
            "{} / {}",
            per(self.entra(), mounts),
            per(self.keyvault, mounts)
        )
    }
}

/// A count per mount: whole numbers without decimals.
fn per(total: u64, mounts: u64) -> String {
    let value = total as f64 / mounts.max(1) as f64;
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Counters zeroed and CPU time read when a measured stretch starts.
struct Stretch {
    cpu: Duration,
    started: Instant,
}

impl Stretch {
    fn start(fake: &FakeAzure, provider: &Provider) -> Self {
        fake.reset_counters();
        Self {
            cpu: provider.cpu(),
            started: Instant::now(),
        }
    }

    /// Requests, CPU time and wall time since the start.
    fn end(self, fake: &FakeAzure, provider: &Provider) -> (Requests, Duration, Duration) {
        (
            Requests::of(&fake.counters()),
            provider.cpu().saturating_sub(self.cpu),
            self.started.elapsed(),
        )
    }
}

/// One side's figures for a batch of mounts.
#[derive(Clone, Copy, Debug, Default)]
struct Batch {
    /// Median wall time of one mount.
    wall: Duration,
    mounts: u64,
    requests: Requests,
    cpu: Duration,
}

impl Batch {
    fn cpu_per_mount(&self) -> f64 {
        ms(self.cpu) / self.mounts.max(1) as f64
    }

    fn requests_per_mount(&self) -> String {
        self.requests.per_mount(self.mounts)
    }

    fn handshakes_per_mount(&self) -> String {
        per(self.requests.handshakes, self.mounts)
    }
}

struct Report {
    text: String,
    /// Targets missed, named at the end.
    missed: Vec<String>,
}

impl Report {
    fn line(&mut self, s: impl AsRef<str>) {
        println!("{}", s.as_ref());
        self.text.push_str(s.as_ref());
        self.text.push('\n');
    }

    fn target(&mut self, what: &str, met: bool) -> &'static str {
        if met {
            "met"
        } else {
            self.missed.push(what.to_owned());
            "**missed**"
        }
    }
}

/// Command-line options: extra provider flags for the value-cache row,
/// given as `--cache-args "--cache-ttl 30s"` (so the bench runs against
/// builds that lack a flag, too), `--upstream PATH`, `--out PATH`, and
/// `--only p1,p3` to run some sections while working on them.
struct Options {
    cache_args: Vec<String>,
    upstream: Option<PathBuf>,
    out: PathBuf,
    only: Option<Vec<String>>,
    command: String,
}

impl Options {
    fn runs(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let mut cache_args = vec!["--cache-ttl".to_owned(), "30s".to_owned()];
    let mut upstream = None;
    let mut out = PathBuf::from("docs/benchmarks.md");
    let mut only = None;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--cache-args" if i + 1 < args.len() => {
                cache_args = args[i + 1].split_whitespace().map(str::to_owned).collect();
                i += 1;
            }
            "--upstream" if i + 1 < args.len() => {
                upstream = Some(PathBuf::from(&args[i + 1]));
                i += 1;
            }
            "--out" if i + 1 < args.len() => {
                out = PathBuf::from(&args[i + 1]);
                i += 1;
            }
            "--only" if i + 1 < args.len() => {
                only = Some(args[i + 1].split(',').map(str::to_owned).collect());
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    Options {
        cache_args,
        upstream,
        out,
        only,
        command: "make bench".into(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    let upstream_version = upstream::locate(options.upstream.clone())?;
    let mut report = Report {
        text: String::new(),
        missed: Vec::new(),
    };
    header(&mut report, &options, &upstream_version);
    if options.runs("p1") {
        let warm = p1_new_pods(&mut report).await?;
        cold::p1_cold(&mut report, &warm).await?;
    }
    if options.runs("sweep") {
        p1_sweep(&mut report).await?;
    }
    if options.runs("p2") {
        p2_rotation(&mut report).await?;
    }
    if options.runs("p3") {
        p3_burst(&mut report, &options).await?;
        scope::p3_scopes(&mut report).await?;
    }
    if options.runs("p4") {
        p4_memory(&mut report).await?;
    }
    if options.runs("p5") {
        p5_startup(&mut report).await?;
    }
    report.line("## Targets");
    report.line("");
    if report.missed.is_empty() {
        report.line("Every target above was met in this run.");
    } else {
        let missed = report.missed.join("; ");
        report.line(format!(
            "Missed in this run: {missed}. See the notes under each table."
        ));
    }
    report.line("");
    model_footnote(&mut report);
    std::fs::write(&options.out, &report.text)?;
    println!("wrote {}", options.out.display());
    Ok(())
}

fn header(report: &mut Report, options: &Options, upstream_version: &str) {
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
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default();
    let upstream_version: String = upstream_version
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    report.line("# Benchmarks");
    report.line("");
    report.line(format!("- Command: `{}` (release build; the Azure fake in-process in the benchmark program, each provider as a child process, all on 127.0.0.1 inside a loopback-only network namespace; every figure below is from this one run)", options.command));
    report.line(format!("- Date: {date}"));
    report.line(format!("- Machine: {cores} cores, {cpu}; load average {load} when the run started (the cores are shared with other work, and the fake and the driver imitation run on them too)"));
    report.line(format!("- Injected latency: Entra ID {} ms, Key Vault {} ms per request; physical limit of a mount that needs a token = one token round trip + one Key Vault round trip = {PHYSICAL_LIMIT_MS} ms", LATENCY.as_millis(), LATENCY.as_millis()));
    report.line(format!("- Upstream: its real provider, `{}` built by `scripts/go-tools.sh azure-provider-{}` from the pinned module `github.com/Azure/secrets-store-csi-driver-provider-azure {}` (`e2e/tools/azure-{}`); `--version` says `{upstream_version}`. It runs with its default flags against the same fake, with the same latency and the same workload-identity SecretProviderClass, reaching the fake through `HTTPS_PROXY` and `SSL_CERT_FILE` as ours does (`examples/bench/upstream.rs`). Its SDK makes requests ours does not: per mount, MSAL's instance discovery and the tenant's OpenID metadata (counted with the token requests as Entra ID requests) and Key Vault's 401 challenge (counted with the Key Vault requests)", upstream::DEFAULT_BINARY, upstream::VERSION, upstream::VERSION, upstream::VERSION));
    report.line("- CPU time is user + system of the provider process (`/proc/<pid>/stat`, 10 ms ticks) over the measured mounts, divided by their number");
    report.line("- Soak (10,000 mixed mounts, RSS and open fds over time): [soak.md](soak.md), written by `make soak`");
    report.line("");
}

async fn latency_fake(n: usize) -> anyhow::Result<FakeAzure> {
    let fake = FakeAzure::start(seed_with(n)).await?;
    fake.set_latency(Target::Aad, LATENCY);
    fake.set_latency(Target::KeyVault, LATENCY);
    Ok(fake)
}

/// `SAMPLES` mounts of `n` secrets, each a new pod with a new token, pods
/// numbered from `first`: the median wall time.
async fn new_pods(socket: &Path, n: usize, first: usize) -> anyhow::Result<Duration> {
    let spc = spc_for(n);
    let mut samples = Vec::new();
    for i in first..first + SAMPLES {
        let (pod, token) = pod(i);
        samples.push(mount(socket, &spc, &pod, &token).await?);
    }
    Ok(median(samples))
}

/// [`new_pods`] with what they cost.
async fn new_pods_batch(
    fake: &FakeAzure,
    provider: &Provider,
    n: usize,
    first: usize,
) -> anyhow::Result<Batch> {
    let stretch = Stretch::start(fake, provider);
    let wall = new_pods(&provider.socket, n, first).await?;
    let (requests, cpu, _) = stretch.end(fake, provider);
    Ok(Batch {
        wall,
        mounts: SAMPLES as u64,
        requests,
        cpu,
    })
}

/// The 20-secret new-pod figures of P1, which the cold row compares with.
struct Warm {
    ours: Batch,
    upstream: Batch,
}

async fn p1_new_pods(report: &mut Report) -> anyhow::Result<Warm> {
    report.line("## P1 mount of a new pod (new token) on a running provider");
    report.line("");
    report.line(format!("Median of {SAMPLES} mounts, each a new pod with a new service-account token (so a token request every time), default flags. Each provider has served one mount before (warm connections), as on a running node. Requests and CPU are per mount, over the {SAMPLES}."));
    report.line("");
    report.line(format!("| secrets | ours (ms) | ratio to 100 ms | ours: Entra ID / Key Vault requests | ours: CPU (ms) | ours, `--max-concurrent-fetches 1` (ms) | {} (ms) | upstream: Entra ID / Key Vault requests | upstream: CPU (ms) | TLS handshakes in these mounts, ours / upstream |", Side::Upstream.label()));
    report.line("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let fake = latency_fake(50).await?;
    let parallel = Provider::start(&fake, &[]).await?;
    let sequential = Provider::start(&fake, &["--max-concurrent-fetches", "1"]).await?;
    let theirs = Provider::start_side(&fake, Side::Upstream, &[]).await?;
    // Warm them (the first mount of a process opens its connections).
    new_pods(&parallel.socket, 1, 900).await?;
    new_pods(&sequential.socket, 1, 950).await?;
    new_pods(&theirs.socket, 1, 980).await?;
    let mut next_pod = 0;
    let mut warm = Warm {
        ours: Batch::default(),
        upstream: Batch::default(),
    };
    let mut ours_ahead = true;
    for n in [1usize, 5, 20, 50] {
        let fast = new_pods_batch(&fake, &parallel, n, next_pod).await?;
        let slow = new_pods(&sequential.socket, n, next_pod + SAMPLES).await?;
        let up = new_pods_batch(&fake, &theirs, n, next_pod + 2 * SAMPLES).await?;
        next_pod += 3 * SAMPLES;
        if n == 20 {
            warm = Warm {
                ours: fast,
                upstream: up,
            };
        }
        ours_ahead &= fast.wall < up.wall;
        report.line(format!(
            "| {n} | {:.0} | {:.2} | {} | {:.1} | {:.0} | {:.0} | {} | {:.1} | {} / {} |",
            ms(fast.wall),
            ms(fast.wall) / PHYSICAL_LIMIT_MS,
            fast.requests_per_mount(),
            fast.cpu_per_mount(),
            ms(slow),
            ms(up.wall),
            up.requests_per_mount(),
            up.cpu_per_mount(),
            fast.requests.handshakes,
            up.requests.handshakes,
        ));
    }
    report.line("");
    let twenty = warm.ours.wall;
    let verdict = report.target("P1 20 secrets ≤ 130 ms", ms(twenty) <= 130.0);
    report.line(format!(
        "Target for 20 secrets: ≤ 130 ms — {verdict} ({:.0} ms; upstream {:.0} ms). {}",
        ms(twenty),
        ms(warm.upstream.wall),
        if ours_ahead {
            "Ours is faster at every size: upstream reads the objects one after another, and before the token it asks Entra ID for instance discovery and the tenant's metadata, and Key Vault for a challenge, every mount (it builds new SDK clients per mount)."
        } else {
            "**Ours is not faster at every size in this run** (see the rows): upstream reads the objects one after another, so where it is ahead the run was noisy; the CPU columns show where time went."
        }
    ));
    report.line("");
    Ok(warm)
}

async fn p1_sweep(report: &mut Report) -> anyhow::Result<()> {
    report.line("### `--max-concurrent-fetches` sweep (how the default was chosen)");
    report.line("");
    report.line(format!("New-pod mounts as above, median of {SAMPLES}, in ms; the cold row is the first mount of {SAMPLES} freshly started processes per limit (20 secrets). Upstream has no such flag: it reads the objects of a mount one after another (P1's upstream column)."));
    report.line("");
    let limits = [4usize, 8, 16, 32, 64];
    let mut head = String::from("| secrets |");
    let mut rule = String::from("|---|");
    for k in limits {
        let _ = write!(head, " {k} |");
        rule.push_str("---:|");
    }
    report.line(head);
    report.line(rule);
    let fake = latency_fake(50).await?;
    let mut providers = Vec::new();
    for k in limits {
        let flag = format!("--max-concurrent-fetches={k}");
        let provider = Provider::start(&fake, &[&flag]).await?;
        new_pods(&provider.socket, 1, 5000 + k).await?;
        providers.push(provider);
    }
    let mut next_pod = 6000;
    for n in [5usize, 20, 50] {
        let mut row = format!("| {n} |");
        for provider in &providers {
            let took = new_pods(&provider.socket, n, next_pod).await?;
            next_pod += SAMPLES;
            let _ = write!(row, " {:.0} |", ms(took));
        }
        report.line(row);
    }
    drop(providers);
    let mut row = String::from("| 20, cold (first mount of a fresh process) |");
    for k in limits {
        let flag = format!("--max-concurrent-fetches={k}");
        let mut samples = Vec::new();
        for _ in 0..SAMPLES {
            let provider = Provider::start(&fake, &[&flag]).await?;
            let (pod, token) = pod(next_pod);
            next_pod += 1;
            samples.push(mount(&provider.socket, &spc_for(20), &pod, &token).await?);
        }
        let _ = write!(row, " {:.0} |", ms(median(samples)));
    }
    report.line(row);
    report.line("");
    report.line("With 50 ms per Key Vault request a mount needs ⌈objects / limit⌉ round trips after its token. The default, 32, is the smallest limit in the sweep at which the 20-secret mount of the target takes a single round trip, with room for a dozen more objects; a higher limit only speeds up classes of more than 32 objects and lets one pod put that many requests in flight at once. Every object is read once whatever the limit, so it shapes bursts, not Key Vault's total load (coalescing and the per-vault gate do that, see P3). A cold process adds the two connections' set-up (see the cold row above) whatever the limit.");
    report.line("");
    Ok(())
}

/// One side's rotation figures: right after the first mount, and after the
/// driver's poll interval with nothing in between.
struct Rotation {
    at_once: (Requests, Duration, Duration),
    after_poll: (Requests, Duration, Duration),
}

async fn p2_rotation(report: &mut Report) -> anyhow::Result<()> {
    report.line("## P2 rotation (the same pod and token mounted again)");
    report.line("");
    report.line(format!("The driver re-mounts every pod each rotation poll ({} s by default) with the pod's current token. Each provider on a fake of its own; the second mount right after the first, the third after {} s with nothing in between (upstream's Go transport closes connections idle for 90 s).", ROTATION_POLL.as_secs(), ROTATION_POLL.as_secs()));
    report.line("");
    let n = 5;
    let spc = spc_for(n);
    let (pod, token) = pod(10_000);
    let mut running = Vec::new();
    for side in Side::BOTH {
        let fake = latency_fake(n).await?;
        let provider = Provider::start_side(&fake, side, &[]).await?;
        mount(&provider.socket, &spc, &pod, &token).await?;
        let stretch = Stretch::start(&fake, &provider);
        mount(&provider.socket, &spc, &pod, &token).await?;
        let at_once = stretch.end(&fake, &provider);
        running.push((side, fake, provider, at_once));
    }
    tokio::time::sleep(ROTATION_POLL).await;
    let mut rows = Vec::new();
    for (side, fake, provider, at_once) in running {
        let stretch = Stretch::start(&fake, &provider);
        mount(&provider.socket, &spc, &pod, &token).await?;
        let after_poll = stretch.end(&fake, &provider);
        rows.push((
            side,
            Rotation {
                at_once,
                after_poll,
            },
        ));
    }
    report.line("| provider | when | Entra ID requests (token + metadata) | Key Vault requests | of which 401 challenges | TLS handshakes | wall (ms) | CPU (ms) |");
    report.line("|---|---|---:|---:|---:|---:|---:|---:|");
    for (side, rotation) in &rows {
        for (when, (r, cpu, wall)) in [
            ("at once", rotation.at_once),
            ("after the poll interval", rotation.after_poll),
        ] {
            report.line(format!(
                "| {} | {when} | {} + {} | {} | {} | {} | {:.0} | {:.0} |",
                side.label(),
                r.tokens,
                r.metadata,
                r.keyvault,
                r.challenges,
                r.handshakes,
                ms(wall),
                ms(cpu),
            ));
        }
    }
    report.line("");
    let ours = &rows[0].1;
    let quiet = |r: &Requests| r.tokens == 0 && r.challenges == 0 && r.handshakes == 0;
    let met = quiet(&ours.at_once.0) && quiet(&ours.after_poll.0);
    let verdict = report.target("P2 0 token requests, 0 challenges, no new connection", met);
    report.line(format!(
        "Targets for ours, at once and after the poll interval: 0 token requests, 0 challenges, no new connection: {verdict}. Upstream builds new SDK clients per mount, so each rotation costs it the token exchange with its metadata requests and a challenge; its TLS handshakes after the poll interval show whether its connections survived the wait (Go's transport closes them after 90 s idle). With `--cache-ttl` our Key Vault GETs drop to 0 as well while the entries are fresh."
    ));
    report.line("");
    Ok(())
}

/// Mounts `pods` pods of one Deployment at once, each over a connection of
/// its own (the worst case for memory: drivers before v0.0.18 dialled per
/// call); returns the failures.
async fn burst_separate_connections(
    socket: &Path,
    spc: &driver::SecretProviderClass,
    pods: usize,
    offset: usize,
) -> usize {
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
    failures
}

/// Mounts `pods` pods of one Deployment at once over one connection, as
/// the driver does; returns (wall, failures).
async fn burst(
    socket: &Path,
    spc: &driver::SecretProviderClass,
    pods: usize,
    offset: usize,
) -> (Duration, usize) {
    let Ok(client) = driver::connect(socket).await else {
        return (Duration::ZERO, pods);
    };
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(pods);
    for i in 0..pods {
        let client = client.clone();
        let spc = spc.clone();
        tasks.push(tokio::spawn(async move {
            let (pod, token) = pod(offset + i);
            mount_on(client, &spc, &pod, &token).await
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

/// One P3 configuration: the side, its label, our extra flags, whether Key
/// Vault throttles.
struct BurstConfig<'a> {
    side: Side,
    label: String,
    args: Vec<&'a str>,
    throttled: bool,
}

async fn p3_burst(report: &mut Report, options: &Options) -> anyhow::Result<()> {
    report.line(format!(
        "## P3 burst: {BURST_PODS} pods of one Deployment (one identity, 3 secrets each) at once"
    ));
    report.line("");
    report.line("Each configuration runs in a fresh provider process (cold connections, empty caches) against a fresh fake; the 500 Mount calls share one connection to the socket, as the driver's one client per provider does; every pod has its own service-account token, so each needs its own token request (tokens are cached per credential, see docs/design.md).");
    report.line("");
    report.line("| provider, configuration | Entra ID requests (token + metadata) | Key Vault requests | of which 429 | of which 401 challenges | TLS handshakes | wall (ms) | failed mounts | peak RSS (MiB) | CPU per mount (ms) |");
    report.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let spc = spc_for(3);
    let cache: Vec<&str> = options.cache_args.iter().map(String::as_str).collect();
    let throttled_label = "cache off, Key Vault answers 429 (`Retry-After: 1`) for 2 s";
    let ours = Side::Ours.label();
    let theirs = Side::Upstream.label();
    let configs = [
        BurstConfig {
            side: Side::Ours,
            label: format!("{ours}, cache off"),
            args: vec![],
            throttled: false,
        },
        BurstConfig {
            side: Side::Ours,
            label: format!("{ours}, value cache (`{}`)", options.cache_args.join(" ")),
            args: cache,
            throttled: false,
        },
        BurstConfig {
            side: Side::Ours,
            label: format!("{ours}, {throttled_label}"),
            args: vec![],
            throttled: true,
        },
        BurstConfig {
            side: Side::Upstream,
            label: format!("{theirs} (it has no cache)"),
            args: vec![],
            throttled: false,
        },
        BurstConfig {
            side: Side::Upstream,
            label: format!("{theirs}, {throttled_label}"),
            args: vec![],
            throttled: true,
        },
    ];
    let mut throttled_failures = Vec::new();
    for (k, config) in configs.into_iter().enumerate() {
        let fake = latency_fake(3).await?;
        let provider = Provider::start_side(&fake, config.side, &config.args).await?;
        let stretch = Stretch::start(&fake, &provider);
        if config.throttled {
            fake.throttle(
                Target::KeyVault,
                Some(1),
                fake_azure::Limit::Until(Instant::now() + Duration::from_secs(2)),
            );
        }
        let (wall, failures) =
            burst(&provider.socket, &spc, BURST_PODS, 20_000 + k * BURST_PODS).await;
        let c = fake.counters();
        let (r, cpu, _) = stretch.end(&fake, &provider);
        let (_, peak) = memory(provider.pid());
        let throttled_count = keyvault_with_status(&c, 429);
        if config.throttled {
            throttled_failures.push((config.side, failures, throttled_count));
        }
        report.line(format!(
            "| {} | {} + {} | {} | {throttled_count} | {} | {} | {:.0} | {failures} | {:.1} | {:.2} |",
            config.label,
            r.tokens,
            r.metadata,
            r.keyvault,
            r.challenges,
            r.handshakes,
            ms(wall),
            mib(peak),
            ms(cpu) / BURST_PODS as f64,
        ));
    }
    report.line("");
    let (_, failures, throttled) = throttled_failures
        .iter()
        .copied()
        .find(|(side, _, _)| *side == Side::Ours)
        .unwrap_or((Side::Ours, usize::MAX, 0));
    let (_, upstream_failures, upstream_throttled) = throttled_failures
        .iter()
        .copied()
        .find(|(side, _, _)| *side == Side::Upstream)
        .unwrap_or((Side::Upstream, 0, 0));
    let verdict = report.target(
        "P3 zero failed mounts while throttled",
        failures == 0 && throttled > 0,
    );
    report.line(format!(
        "Under throttling: {throttled} answers to ours were 429 (the scenario really throttles) and {failures} of our mounts failed — target zero failed mounts: {verdict}. Upstream under the same throttling: {upstream_throttled} answers were 429 and {upstream_failures} mounts failed; its SDK retries each request on its own (honouring `Retry-After`, 3 retries), with no limit across pods. Upstream reads every object for every pod, and asks Entra ID three times per pod (instance discovery, OpenID metadata, token) where ours asks once."
    ));
    report.line("");
    Ok(())
}

/// One side's P4 figures.
struct Memory {
    idle: u64,
    peak: u64,
    after: u64,
    failures: usize,
    burst_cpu: Duration,
    rate: f64,
    warm_cpu: Duration,
    warm_mounts: u64,
    worst_peak: u64,
    worst_failures: usize,
}

async fn memory_of(side: Side) -> anyhow::Result<Memory> {
    let fake = FakeAzure::start(seed_with(3)).await?;
    let provider = Provider::start_side(&fake, side, &[]).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (idle, _) = memory(provider.pid());
    let spc = spc_for(3);
    fake.set_latency(Target::Aad, LATENCY);
    fake.set_latency(Target::KeyVault, LATENCY);
    let cpu_before = provider.cpu();
    let (_, failures) = burst(&provider.socket, &spc, BURST_PODS, 40_000).await;
    let burst_cpu = provider.cpu().saturating_sub(cpu_before);
    let (after, peak) = memory(provider.pid());
    fake.set_latency(Target::Aad, Duration::ZERO);
    fake.set_latency(Target::KeyVault, Duration::ZERO);
    let cpu_before = provider.cpu();
    let (rate, warm_mounts) = warm_rate(&provider.socket, &spc, Duration::from_secs(5)).await;
    let warm_cpu = provider.cpu().saturating_sub(cpu_before);
    drop(provider);
    // The worst case for sizing the memory limit: a connection per call.
    let provider = Provider::start_side(&fake, side, &[]).await?;
    fake.set_latency(Target::Aad, LATENCY);
    fake.set_latency(Target::KeyVault, LATENCY);
    let worst_failures =
        burst_separate_connections(&provider.socket, &spc, BURST_PODS, 45_000).await;
    let (_, worst_peak) = memory(provider.pid());
    Ok(Memory {
        idle,
        peak,
        after,
        failures,
        burst_cpu,
        rate,
        warm_cpu,
        warm_mounts,
        worst_peak,
        worst_failures,
    })
}

async fn p4_memory(report: &mut Report) -> anyhow::Result<()> {
    report.line("## P4 memory, CPU and warm throughput");
    report.line("");
    report.line("| provider | RSS idle (MiB) | peak RSS over 500 concurrent mounts, VmHWM (MiB) | RSS after them (MiB) | failed | CPU per mount in the burst (ms) | warm mounts/s at saturation (same pod, 3 secrets, 64 concurrent calls on one connection, 5 s, no latency) | CPU per warm mount (ms) | peak RSS, a connection per Mount call (MiB) | failed |");
    report.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let per = |cpu: Duration, mounts: u64| ms(cpu) / mounts.max(1) as f64;
    let mut rows = Vec::new();
    for side in Side::BOTH {
        let m = memory_of(side).await?;
        report.line(format!(
            "| {} | {:.1} | {:.1} | {:.1} | {} | {:.2} | {:.0} | {:.2} | {:.1} | {} |",
            side.label(),
            mib(m.idle),
            mib(m.peak),
            mib(m.after),
            m.failures,
            per(m.burst_cpu, BURST_PODS as u64),
            m.rate,
            per(m.warm_cpu, m.warm_mounts),
            mib(m.worst_peak),
            m.worst_failures,
        ));
        rows.push(m);
    }
    report.line("");
    let ours = &rows[0];
    let idle_ok = report.target("P4 idle RSS ≤ 12 MiB", mib(ours.idle) <= 12.0);
    let peak_ok = report.target("P4 peak RSS ≤ 48 MiB", mib(ours.peak) <= 48.0);
    let rate_ok = report.target("P4 ≥ 2,000 warm mounts/s", ours.rate >= 2000.0);
    report.line(format!(
        "Targets for ours: idle ≤ 12 MiB {idle_ok}; peak ≤ 48 MiB {peak_ok}; ≥ 2,000 warm mounts/s {rate_ok}. The rate is measured with the driver imitation and the fake on the same 2 cores as the provider, so a provider that sends more requests per mount also spends the fake's CPU. Drivers before v0.0.18 dialled per Mount call; the last two columns size the memory limit for them."
    ));
    report.line("");
    Ok(())
}

/// Mounts per second with 64 concurrent callers re-mounting one pod over
/// one connection (as the driver), and the mounts made.
async fn warm_rate(
    socket: &Path,
    spc: &driver::SecretProviderClass,
    window: Duration,
) -> (f64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let (pod, token) = pod(50_000);
    let Ok(client) = driver::connect(socket).await else {
        return (0.0, 0);
    };
    let deadline = Instant::now() + window;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (mut client, spc, pod, token, done) = (
            client.clone(),
            spc.clone(),
            pod.clone(),
            token.clone(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
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
    let done = done.load(Ordering::Relaxed);
    (done as f64 / window.as_secs_f64(), done)
}

async fn p5_startup(report: &mut Report) -> anyhow::Result<()> {
    report.line("## P5 start-up and size");
    report.line("");
    report.line("| provider | start-up to a serving socket (ms, median of 5, includes the first Version call) | binary size (MB, stripped) |");
    report.line("|---|---:|---:|");
    let fake = FakeAzure::start(seed_with(1)).await?;
    let mut ours = (Duration::ZERO, 0.0);
    let mut theirs = (Duration::ZERO, 0.0);
    for side in Side::BOTH {
        let mut samples = Vec::new();
        for _ in 0..SAMPLES {
            let provider = Provider::start_side(&fake, side, &[]).await?;
            samples.push(provider.startup);
        }
        let path = match side {
            Side::Ours => binary(),
            Side::Upstream => upstream::binary().to_owned(),
        };
        let size = std::fs::metadata(path).map_or(0, |m| m.len()) as f64 / 1e6;
        let startup = median(samples);
        match side {
            Side::Ours => ours = (startup, size),
            Side::Upstream => theirs = (startup, size),
        }
        report.line(format!(
            "| {} | {:.1} | {size:.1} |",
            side.label(),
            ms(startup)
        ));
    }
    report.line("");
    let startup_ok = report.target("P5 start-up ≤ 50 ms", ms(ours.0) <= 50.0);
    let size_ok = report.target("P5 binary ≤ 15 MB", ours.1 <= 15.0);
    let comparison = if ms(ours.0) < 0.8 * ms(theirs.0) {
        "Ours starts faster than upstream's.".to_owned()
    } else {
        format!(
            "Start-up: ours is not clearly ahead in this run ({:.1} vs {:.1} ms): both are a few milliseconds of work stretched by the loaded cores, and ours now also seeds aws-lc's random generator in a background thread at start-up (about 40-50 ms of CPU, see the P1 cold row), which competes with the first Version call for the 2 cores.",
            ms(ours.0),
            ms(theirs.0)
        )
    };
    report.line(format!(
        "Targets for ours: start-up ≤ 50 ms {startup_ok}; binary ≤ 15 MB {size_ok}. {comparison} Both binaries are stripped (ours: `strip = true` in the release profile; upstream's: `-ldflags \"-s -w\"`)."
    ));
    report.line("");
    Ok(())
}

/// The latency model the measured upstream column replaced.
fn model_footnote(report: &mut Report) {
    report.line("## Footnote: the model the measured upstream figures replaced");
    report.line("");
    report.line(format!("Before upstream's provider was built and measured here, its column was a latency model of its request pattern: per mount 1 token request + 1 challenge per object type + N sequential GETs, so (2 + N) × {} ms for N secrets ({} ms for 1, {} ms for 5, {} ms for 20, {} ms for 50). The measured figures above are higher: its SDK also asks Entra ID for instance discovery and the tenant's OpenID metadata before every token (it builds a new credential per mount), which the model left out.", LATENCY.as_millis(), 3 * LATENCY.as_millis(), 7 * LATENCY.as_millis(), 22 * LATENCY.as_millis(), 52 * LATENCY.as_millis()));
    report.line("");
}
