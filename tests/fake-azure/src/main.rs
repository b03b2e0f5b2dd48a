//! The `fake-azure` binary: runs the fake out of process for the demo,
//! end-to-end tests and benchmarks.
//!
//! ```text
//! fake-azure (--seed <file.json> | --blog-walkthrough --issuer <url>)
//!            [--listen 127.0.0.1:0] [--ca-out <path>] [--ready-file <path>]
//!            [--allow-non-loopback]
//! ```
//!
//! It writes the CA PEM to `--ca-out`, then the proxy URL to
//! `--ready-file` (atomically, so scripts can poll for it), logs one line
//! per request and exits cleanly on SIGTERM or SIGINT. Exit codes: 0 after
//! a signal, 64 for bad usage (including a non-loopback `--listen` without
//! `--allow-non-loopback`), 1 for other failures.
//!
//! `--allow-non-loopback` exists for one use only: running the fake as a
//! pod inside a throwaway test cluster (`make e2e-kind`), where the
//! provider reaches it through a Service. Never expose it anywhere else.

#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use fake_azure::{FakeAzure, Seed};

/// Exit status for bad usage (sysexits `EX_USAGE`).
const EX_USAGE: u8 = 64;

/// A loopback-only fake of Entra ID and Azure Key Vault.
#[derive(Debug, Parser)]
#[command(name = "fake-azure", version)]
struct Args {
    /// Seed file (JSON) describing apps and vaults.
    #[arg(
        long,
        required_unless_present = "blog_walkthrough",
        conflicts_with = "blog_walkthrough"
    )]
    seed: Option<PathBuf>,
    /// Use the built-in blog-walkthrough scenario instead of a seed file.
    #[arg(long, requires = "issuer")]
    blog_walkthrough: bool,
    /// OIDC issuer trusted by the blog scenario's federated credential.
    #[arg(long)]
    issuer: Option<String>,
    /// Address to listen on; must be loopback unless --allow-non-loopback.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Accept a non-loopback --listen address. Only for the in-cluster e2e
    /// (a pod in a throwaway kind cluster); never expose the fake elsewhere.
    #[arg(long)]
    allow_non_loopback: bool,
    /// Where to write the CA certificate (PEM).
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Where to write the proxy URL once listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // --help and --version print to stdout and succeed.
            let code = if e.use_stderr() { EX_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
        eprintln!(
            "fake-azure: refusing to listen on {}: only loopback addresses are allowed \
             (--allow-non-loopback is for the in-cluster e2e only)",
            args.listen
        );
        return ExitCode::from(EX_USAGE);
    }
    let seed = match load_seed(&args) {
        Ok(seed) => seed,
        Err(e) => {
            eprintln!("fake-azure: {e:#}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fake-azure: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, seed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-azure: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_seed(args: &Args) -> anyhow::Result<Seed> {
    match (&args.seed, args.blog_walkthrough, &args.issuer) {
        (Some(path), _, _) => Seed::from_file(path),
        (None, true, Some(issuer)) => Ok(Seed::blog_walkthrough(issuer)),
        _ => anyhow::bail!("give --seed <file> or --blog-walkthrough --issuer <url>"),
    }
}

async fn run(args: Args, seed: Seed) -> anyhow::Result<()> {
    let fake = if args.allow_non_loopback {
        FakeAzure::start_in_cluster(seed, args.listen).await?
    } else {
        FakeAzure::start_on(seed, args.listen).await?
    };
    if let Some(path) = &args.ca_out {
        fake.write_ca_pem(path)?;
    }
    if let Some(path) = &args.ready_file {
        write_atomically(path, &fake.proxy_url())?;
    }
    tracing::info!(
        proxy_url = %fake.proxy_url(),
        imds_and_nmi_url = %fake.http_url(),
        token_proxy_url = %fake.token_proxy_url(),
        token_proxy_server_name = %fake.token_proxy_server_name(),
        "ready"
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    fake.shutdown().await;
    Ok(())
}

/// Writes via a temporary file and a rename, so readers never see half.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
