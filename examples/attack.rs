//! The attack review of issue 14, replayed against a provider binary, so the
//! figures before and after the hardening come from the same program:
//!
//! ```sh
//! cargo build --release --bin akv-csi-provider --example attack
//! target/release/examples/attack [PROVIDER_BINARY]   # default: the release binary beside it
//! ```
//!
//! Each scenario starts the bundled Azure fake and a fresh provider process
//! (so its peak RSS, `VmHWM` of `/proc/<pid>/status`, is the scenario's
//! own), under an address-space limit of 4 GiB (`prlimit --as`; what a
//! failed allocation needs to abort instead of eating the machine's
//! memory), and prints one Markdown table row: finding, scenario, what
//! happened, peak RSS, time. docs/hardening.md holds the table.

#[path = "../tests/support/driver.rs"]
mod driver;
#[path = "../tests/support/stalled.rs"]
mod stalled;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use akv_csi_provider::proto::{MountRequest, VersionRequest};
use anyhow::Context as _;
use fake_azure::{FakeAzure, Seed, Target};
use tokio::process::{Child, Command};

const ISSUER: &str = "https://oidc.blog-post.test/issuer";
const BLOG_SPC: &str = include_str!("../deploy/examples/secretproviderclass.yaml");
const MIB: usize = 1 << 20;
/// The provider's address-space limit.
const ADDRESS_SPACE: u64 = 4 << 30;

/// One result line.
struct Row {
    finding: &'static str,
    scenario: String,
    outcome: String,
    peak_kib: Option<u64>,
    took: Duration,
}

/// A fake and a provider process for one scenario.
struct Provider {
    fake: FakeAzure,
    child: Child,
    pid: u32,
    socket: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Provider {
    async fn start(binary: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let fake = FakeAzure::start(Seed::blog_walkthrough(ISSUER)).await?;
        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, fake.ca_pem())?;
        let socket = dir.path().join("azure.sock");
        let log = dir.path().join("provider.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new("prlimit")
            .arg(format!("--as={ADDRESS_SPACE}"))
            .arg("--")
            .arg(binary)
            .arg(format!("--endpoint=unix://{}", socket.display()))
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
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .context("start the provider under prlimit")?;
        let pid = child.id().context("provider pid")?;
        let provider = Self {
            fake,
            child,
            pid,
            socket,
            log,
            _dir: dir,
        };
        driver::wait_serving(&provider.socket, Duration::from_secs(10)).await?;
        Ok(provider)
    }

    /// A `kB` field of `/proc/<pid>/status`; `None` once the process is gone.
    fn status_kib(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, Iterator::count)
    }

    /// CPU seconds used so far (utime + stime).
    fn cpu_seconds(&self) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return 0.0;
        };
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        (ticks(11).unwrap_or(0) + ticks(12).unwrap_or(0)) as f64 / 100.0
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How the process ended, if it did.
    fn exited(&mut self) -> Option<String> {
        use std::os::unix::process::ExitStatusExt as _;
        let status = self.child.try_wait().ok()??;
        Some(match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => "ended".into(),
        })
    }

    fn request(&self, objects: Option<&str>) -> anyhow::Result<MountRequest> {
        let mut spc = driver::spc_from_yaml(BLOG_SPC)?;
        if let Some(objects) = objects {
            spc.parameters.insert("objects".into(), objects.into());
        }
        let pod = driver::Pod::blog();
        let token = driver::ServiceAccountToken {
            audience: driver::WORKLOAD_IDENTITY_AUDIENCE.into(),
            token: fake_azure::mint_service_account_token(
                ISSUER,
                &pod.namespace,
                &pod.service_account,
                driver::WORKLOAD_IDENTITY_AUDIENCE,
                Duration::from_secs(3600),
            ),
            expiration: "2099-01-01T00:00:00Z".into(),
        };
        Ok(driver::request(&spc, &pod, &[token], None))
    }

    /// Sends `count` mounts of `objects` at once; the first answer's text.
    async fn mount_many(&self, objects: &str, count: usize) -> anyhow::Result<String> {
        let request = self.request(Some(objects))?;
        let calls = (0..count).map(|_| {
            let request = request.clone();
            let socket = self.socket.clone();
            async move {
                let mut client = driver::connect(&socket).await?;
                let call = client.mount(request);
                let answer = tokio::time::timeout(Duration::from_secs(120), call).await;
                anyhow::Ok(match answer {
                    Err(_) => "no answer within 120 s".to_owned(),
                    Ok(Ok(_)) => "mounted".to_owned(),
                    Ok(Err(status)) => format!("{:?}: {}", status.code(), status.message()),
                })
            }
        });
        let answers = futures_util::future::join_all(calls).await;
        let first = answers
            .into_iter()
            .next()
            .unwrap_or_else(|| Ok("nothing sent".into()))
            .unwrap_or_else(|e| format!("transport error: {e}"));
        Ok(first)
    }
}

/// An error or outcome as one short table cell.
fn cell(text: &str) -> String {
    let one_line = text.replace(['\n', '|'], " ");
    match one_line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("—".into(), |kib| format!("{:.1}", kib as f64 / 1024.0))
}

// === scenarios ===

/// Finding 1: `a: &a <scalar>` and `array: [*a, *a, …]`.
async fn aliases(binary: &Path, scalar: usize, count: usize) -> anyhow::Result<Row> {
    let yaml = format!(
        "a: &a {}\narray: [{}]",
        "x".repeat(scalar),
        vec!["*a"; count].join(",")
    );
    let mut provider = Provider::start(binary, &[]).await?;
    let started = Instant::now();
    let answer = provider.mount_many(&yaml, 1).await?;
    let took = started.elapsed();
    let peak = provider.status_kib("VmHWM");
    let outcome = match provider.exited() {
        Some(exit) => format!("provider {exit}; the driver saw: {answer}"),
        None => answer,
    };
    Ok(Row {
        finding: "1",
        scenario: format!(
            "{} KB of `objects`: a {} KB anchor, {count} aliases",
            yaml.len() / 1000,
            scalar / 1000
        ),
        outcome: cell(&outcome),
        peak_kib: peak,
        took,
    })
}

/// Finding 2: 1 MiB of `- - - … x`, `parallel` requests at once.
async fn block_nesting(binary: &Path, parallel: usize) -> anyhow::Result<Row> {
    let yaml = format!("array:\n{}x", "- ".repeat(MIB / 2 - 16));
    let mut provider = Provider::start(binary, &[]).await?;
    let started = Instant::now();
    let answer = provider.mount_many(&yaml, parallel).await?;
    let took = started.elapsed();
    let peak = provider.status_kib("VmHWM");
    let outcome = match provider.exited() {
        Some(exit) => format!("provider {exit}; {answer}"),
        None => answer,
    };
    Ok(Row {
        finding: "2",
        scenario: format!("1 MiB of `- - - … x`, {parallel} at once"),
        outcome: cell(&outcome),
        peak_kib: peak,
        took,
    })
}

/// Finding 5: streams left open, with or without an unfinished message.
async fn open_streams(
    binary: &Path,
    connections: usize,
    streams: usize,
    declared: usize,
) -> anyhow::Result<Row> {
    let provider = Provider::start(binary, &[]).await?;
    let started = Instant::now();
    let sent = declared.saturating_sub(1);
    let mut stalled =
        stalled::Stalled::open(&provider.socket, connections, streams, declared, sent).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answered = stalled.answered(Duration::from_millis(500)).await;
    let exhausted = answered.iter().filter(|code| **code == Some(8)).count();
    let took = started.elapsed();
    let peak = provider.status_kib("VmHWM");
    let mount = tokio::time::timeout(
        Duration::from_secs(10),
        provider.mount_many(BLOG_OBJECTS, 1),
    )
    .await
    .map_or_else(
        |_| "no answer in 10 s".into(),
        |r| r.unwrap_or_else(|e| e.to_string()),
    );
    let held = stalled.len() - answered.len();
    let what = if declared == 0 {
        "headers only".to_owned()
    } else {
        format!(
            "an unfinished {:.1} MiB message each",
            declared as f64 / MIB as f64
        )
    };
    Ok(Row {
        finding: "5",
        scenario: format!(
            "{} streams asked for on {connections} connection(s), {what}",
            connections * streams
        ),
        outcome: cell(&format!(
            "client opened {} (h2 queues streams past the server's limit), {held} unanswered, {exhausted} refused RESOURCE_EXHAUSTED; a mount meanwhile: {mount}",
            stalled.len()
        )),
        peak_kib: peak,
        took,
    })
}

const BLOG_OBJECTS: &str =
    "array:\n  - |\n    objectName: MySecretPassword\n    objectType: secret\n";

/// Finding 5: connections that send nothing after the HTTP/2 handshake, and
/// connections that never send the preface.
async fn idle_connections(binary: &Path, args: &[&str]) -> anyhow::Result<Row> {
    use tokio::io::AsyncWriteExt as _;
    let provider = Provider::start(binary, args).await?;
    let fds = provider.open_fds();
    let started = Instant::now();
    let mut held = Vec::new();
    for i in 0..100 {
        let mut stream = tokio::net::UnixStream::connect(&provider.socket).await?;
        if i % 2 == 0 {
            let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
            stream.write_all(&hello).await?;
        }
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let open_at_start = provider.open_fds().saturating_sub(fds);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let open_after = provider.open_fds().saturating_sub(fds);
    Ok(Row {
        finding: "5",
        scenario: format!(
            "100 connections, 50 idle after the HTTP/2 handshake, 50 that never send the preface{}",
            if args.is_empty() {
                String::new()
            } else {
                format!(" (`{}`)", args.join(" "))
            }
        ),
        outcome: format!("open after 0.5 s: {open_at_start}; after 10.5 s: {open_after}"),
        peak_kib: provider.status_kib("VmHWM"),
        took: started.elapsed(),
    })
}

/// Finding 5: `accept` at the open-file limit.
async fn accept_at_fd_limit(binary: &Path) -> anyhow::Result<Row> {
    let provider = Provider::start(binary, &[]).await?;
    let limit = provider.open_fds() + 4;
    let status = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &provider.pid.to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()?;
    anyhow::ensure!(status.success(), "prlimit --nofile");
    let mut held = Vec::new();
    for _ in 0..32 {
        held.push(tokio::net::UnixStream::connect(&provider.socket).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = provider.cpu_seconds();
    let lines = provider.logs().lines().count();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = provider.cpu_seconds() - cpu;
    let logged = provider.logs().lines().count() - lines;
    let version = tokio::time::timeout(Duration::from_secs(5), async {
        let mut client = driver::connect(&provider.socket).await?;
        let request = VersionRequest {
            version: "v1alpha1".into(),
        };
        anyhow::Ok(client.version(request).await?)
    })
    .await;
    let served = match version {
        Ok(Ok(_)) => "answered",
        Ok(Err(_)) => "failed",
        Err(_) => "no answer in 5 s",
    };
    Ok(Row {
        finding: "5",
        scenario: "`accept` at the open-file limit (fds + 4), 32 connections waiting, 10 s".into(),
        outcome: format!(
            "{cpu:.1} s of CPU in 10 s, {logged} log lines; a Version call meanwhile: {served}"
        ),
        peak_kib: provider.status_kib("VmHWM"),
        took: started.elapsed(),
    })
}

/// Finding 6: SIGTERM with a mount hung on a stalled Key Vault.
async fn sigterm_with_hung_mount(binary: &Path) -> anyhow::Result<Row> {
    let mut provider = Provider::start(binary, &[]).await?;
    provider
        .fake
        .set_latency(Target::KeyVault, Duration::from_secs(300));
    let request = provider.request(None)?;
    let mut client = driver::connect(&provider.socket).await?;
    let hung = tokio::spawn(async move { client.mount(request).await });
    for _ in 0..250 {
        if provider.fake.counters().tokens_issued() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &provider.pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -TERM");
    let exit = loop {
        if let Some(exit) = provider.exited() {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(150) {
            break "still running after 150 s".into();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    let answer = match tokio::time::timeout(Duration::from_secs(5), hung).await {
        Ok(Ok(Ok(_))) => "mounted".to_owned(),
        Ok(Ok(Err(status))) => format!("{:?}: {}", status.code(), status.message()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "no answer".into(),
    };
    let socket = if provider.socket.exists() {
        "left behind"
    } else {
        "removed"
    };
    Ok(Row {
        finding: "6",
        scenario: "SIGTERM with a mount hung on a stalled Key Vault (300 s latency)".into(),
        outcome: cell(&format!("{exit}, socket {socket}; the mount got: {answer}")),
        peak_kib: None,
        took,
    })
}

/// Whether the binary's `--help` names `flag`.
fn supports(binary: &Path, flag: &str) -> bool {
    std::process::Command::new(binary)
        .arg("--help")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(flag))
}

fn default_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/release/examples/attack → target/release/akv-csi-provider
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("akv-csi-provider"))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let binary = std::env::args_os()
        .nth(1)
        .map_or_else(default_binary, PathBuf::from);
    let only = std::env::var("ATTACK_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    println!("provider: `{}`\n", binary.display());
    println!("| finding | scenario | outcome | peak RSS (MiB) | time (s) |");
    println!("|---|---|---|---:|---:|");
    let mut rows = Vec::new();
    if run("1") {
        rows.push(aliases(&binary, 100_000, 1_000).await);
        rows.push(aliases(&binary, 500_000, 2_000).await);
        rows.push(aliases(&binary, 500_000, 20_000).await);
    }
    if run("2") {
        rows.push(block_nesting(&binary, 1).await);
        rows.push(block_nesting(&binary, 8).await);
    }
    if run("5") {
        rows.push(open_streams(&binary, 1, 10_000, 0).await);
        rows.push(open_streams(&binary, 10, 1_000, 0).await);
        rows.push(open_streams(&binary, 1, 64, MIB * 39 / 10).await);
        rows.push(open_streams(&binary, 4, 16, MIB * 39 / 10).await);
        rows.push(idle_connections(&binary, &[]).await);
        if supports(&binary, "--connection-idle-timeout") {
            rows.push(idle_connections(&binary, &["--connection-idle-timeout=5s"]).await);
        }
        rows.push(accept_at_fd_limit(&binary).await);
    }
    if run("6") {
        rows.push(sigterm_with_hung_mount(&binary).await);
    }
    for row in rows {
        match row {
            Ok(row) => println!(
                "| {} | {} | {} | {} | {:.1} |",
                row.finding,
                row.scenario,
                row.outcome,
                mib(row.peak_kib),
                row.took.as_secs_f64()
            ),
            Err(e) => println!(
                "| ? | scenario failed | {} | — | — |",
                cell(&format!("{e:#}"))
            ),
        }
    }
    Ok(())
}
