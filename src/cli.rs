//! Command-line flags, named and defaulted exactly as the upstream Go
//! provider's (`--endpoint`, `--construct-pem-chain`, `--healthz-port`, …)
//! so an existing DaemonSet or Helm chart can swap the image, plus our own
//! (`--max-concurrent-fetches`, timeouts). Go writes long flags with one
//! dash (`-v=2`); [`normalize`] accepts that form.
//!
//! Raw values only: validation and anything that touches the system is in
//! `config`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};

/// `--max-concurrent-fetches` default (see docs/benchmarks.md): enough for
/// the 20-object mount of the benchmark to need one Key Vault round trip.
pub const DEFAULT_MAX_CONCURRENT_FETCHES: usize = 32;

/// Flags of the provider process.
#[derive(Debug, Parser)]
#[command(
    name = "akv-csi-provider",
    about = "Azure Key Vault provider for the Secrets Store CSI Driver",
    disable_version_flag = true,
    // Go's flag package: a repeated flag takes its last value.
    args_override_self = true
)]
pub struct Args {
    /// gRPC listen address: unix:///path/azure.sock (or tcp://host:port for debugging).
    #[arg(long, default_value = "unix:///tmp/azure.sock")]
    pub endpoint: String,

    /// Order PKCS#12 certificates leaf → intermediates → root.
    #[arg(long, default_value = "true", value_parser = parse_go_bool, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub construct_pem_chain: bool,

    /// Also write <name>.crt and <name>.key for certificate-backed secrets.
    #[arg(long, default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub write_cert_and_key_in_separate_files: bool,

    /// Default cloud when a SecretProviderClass sets no cloudName.
    #[arg(long, default_value = "AzurePublicCloud")]
    pub cloud_name: String,

    /// Port of the HTTP liveness endpoint.
    #[arg(long, default_value_t = 8989)]
    pub healthz_port: u16,

    /// Path of the HTTP liveness endpoint.
    #[arg(long, default_value = "/healthz")]
    pub healthz_path: String,

    /// Time limit of the liveness check's own Version call.
    #[arg(long, default_value = "5s", value_parser = parse_go_duration)]
    pub healthz_timeout: Duration,

    /// Metrics backend; only prometheus exists.
    #[arg(long, default_value = "Prometheus")]
    pub metrics_backend: String,

    /// Port of the Prometheus /metrics endpoint.
    #[arg(long, default_value_t = 8898)]
    pub prometheus_port: u16,

    /// Accepted for compatibility; Go's pprof has no equivalent here.
    #[arg(long, default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_pprof: bool,

    /// Accepted for compatibility with --enable-pprof.
    #[arg(long, default_value_t = 6060)]
    pub pprof_port: u16,

    /// Write logs as JSON lines.
    #[arg(long, global = true, default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub log_format_json: bool,

    /// User-Agent for requests to Entra ID and Key Vault (appended to ours).
    #[arg(long, default_value = "")]
    pub custom_user_agent: String,

    /// AKS identity-binding token proxy URL (empty: https://kubernetes.default.svc.cluster.local).
    #[arg(long, default_value = "")]
    pub token_proxy_url: String,

    /// AKS identity-binding TLS server name (empty: computed from the API server's certificate).
    #[arg(long, default_value = "")]
    pub sni_name: String,

    /// CA trusted for the identity-binding token proxy, when the file exists.
    #[arg(
        long,
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    )]
    pub token_proxy_ca_file: std::path::PathBuf,

    /// Base URL of aad-pod-identity's NMI (pod identity).
    #[arg(long, default_value = "http://localhost:2579")]
    pub nmi_endpoint: String,

    /// Time limit of a whole mount when the driver sends no shorter deadline.
    #[arg(long, default_value = "100s", value_parser = parse_go_duration)]
    pub mount_timeout: Duration,

    /// Log verbosity, klog style (-v=2).
    #[arg(short = 'v', long = "v", global = true, default_value_t = 0)]
    pub verbosity: u8,

    /// Objects of one mount fetched at the same time.
    #[arg(long, default_value_t = DEFAULT_MAX_CONCURRENT_FETCHES)]
    pub max_concurrent_fetches: usize,

    /// Keep Key Vault answers this long and serve them to mounts of the same
    /// identity (0: off). A rotated secret reaches pods up to this much later.
    #[arg(long, default_value = "0s", value_parser = parse_go_duration)]
    pub cache_ttl: Duration,

    /// Which workload-identity mounts share an Entra ID token: `credential`
    /// (the identical service-account token) or `service-account` (any
    /// token of the same issuer, subject and audience, once its signature
    /// and claims are verified against the issuer's JWKS).
    #[arg(long, default_value = "credential", value_parser = ["credential", "service-account"])]
    pub token_cache_scope: String,

    /// Most requests per second to one vault from this node (0: no limit).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub keyvault_qps: f64,

    /// Largest mount response in bytes; match the driver's
    /// --max-call-recv-msg-size (default 4 MiB) when raising it.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_call_send_msg_size: usize,

    /// Time limit of one HTTP request to Entra ID or Key Vault.
    #[arg(long, default_value = "20s", value_parser = parse_go_duration)]
    pub request_timeout: Duration,

    /// At SIGTERM, how long in-flight mounts may still run; then they are
    /// cancelled with an error the driver retries, and the provider exits.
    /// Keep it under the pod's terminationGracePeriodSeconds (30s).
    #[arg(long, default_value = "20s", value_parser = parse_go_duration)]
    pub drain_timeout: Duration,

    /// Close a connection on the socket after this long without a request
    /// in flight (gracefully: the driver dials again for its next call);
    /// 0s: never.
    #[arg(long, default_value = "5m", value_parser = parse_go_duration)]
    pub connection_idle_timeout: Duration,

    /// Print the version as JSON and exit.
    #[arg(long, action = ArgAction::SetTrue)]
    pub version: bool,

    /// IP address the health and metrics listeners bind; empty means every
    /// interface, as upstream.
    #[arg(long, default_value = "")]
    pub admin_bind_address: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands; without one the provider serves.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry-run a SecretProviderClass: mount it in-process for a pod, with
    /// the given credentials, and print the files (or write them to --out).
    Mount(DryRunArgs),
}

/// `akv-csi-provider mount …`: what the driver and kubelet would supply.
#[derive(Debug, clap::Args)]
pub struct DryRunArgs {
    /// The SecretProviderClass YAML (the document applied with kubectl).
    #[arg(long, value_name = "FILE")]
    pub spc: PathBuf,

    /// The pod's namespace (default: the SecretProviderClass's).
    #[arg(long)]
    pub namespace: Option<String>,

    /// The pod's name.
    #[arg(long)]
    pub pod: String,

    /// The pod's UID.
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
    pub pod_uid: String,

    /// The pod's service account.
    #[arg(long, default_value = "default")]
    pub service_account: String,

    /// A service-account token for the pod (workload identity), e.g. from
    /// `kubectl create token SA --audience api://AzureADTokenExchange`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Audience the token in --token-file was issued for.
    #[arg(long, default_value = "api://AzureADTokenExchange")]
    pub token_audience: String,

    /// Service principal client id (the nodePublishSecretRef `clientid`).
    #[arg(long, requires = "client_secret_file")]
    pub client_id: Option<String>,

    /// File holding the service principal's client secret (never pass a
    /// secret on the command line).
    #[arg(long, value_name = "FILE", requires = "client_id")]
    pub client_secret_file: Option<PathBuf>,

    /// Use the VM's managed identity (IMDS), as `useVMManagedIdentity: "true"`.
    #[arg(long, action = ArgAction::SetTrue)]
    pub use_vm_managed_identity: bool,

    /// Write the files into this directory instead of printing a table.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// klog's flags (`klog.InitFlags`) that upstream's manifests and charts may
/// pass. They are accepted and ignored: logs always go to stderr here, and
/// `-v` (handled by clap) is the only one with an effect.
const KLOG_BOOL_FLAGS: &[&str] = &[
    "logtostderr",
    "alsologtostderr",
    "skip_headers",
    "skip_log_headers",
    "add_dir_header",
    "one_output",
];
const KLOG_VALUE_FLAGS: &[&str] = &[
    "log_dir",
    "log_file",
    "log_file_max_size",
    "stderrthreshold",
    "vmodule",
    "log_backtrace_at",
];

/// Removes klog's flags in any Go form (`-f`, `--f`, `-f=v`, `-f v` for
/// flags that take a value); returns the rest and the names removed.
pub fn strip_klog_flags<I: IntoIterator<Item = OsString>>(args: I) -> (Vec<OsString>, Vec<String>) {
    let mut kept = Vec::new();
    let mut ignored = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            kept.push(arg);
            kept.extend(args.by_ref());
            break;
        }
        let Some(text) = arg.to_str() else {
            kept.push(arg);
            continue;
        };
        let Some(flag) = text.strip_prefix("--").or_else(|| text.strip_prefix('-')) else {
            kept.push(arg);
            continue;
        };
        let (name, has_value) = match flag.split_once('=') {
            Some((name, _)) => (name, true),
            None => (flag, false),
        };
        if KLOG_BOOL_FLAGS.contains(&name) {
            ignored.push(name.to_owned());
        } else if KLOG_VALUE_FLAGS.contains(&name) {
            ignored.push(name.to_owned());
            if !has_value {
                args.next();
            }
        } else {
            kept.push(arg);
        }
    }
    (kept, ignored)
}

/// Parses a command line as the binary does: klog flags dropped, Go-style
/// single-dash long flags accepted. Returns the flags and the klog flags
/// that were ignored.
pub fn parse<I: IntoIterator<Item = OsString>>(
    args: I,
) -> Result<(Args, Vec<String>), clap::Error> {
    let (args, ignored) = strip_klog_flags(args);
    let args = Args::try_parse_from(normalize(args))?;
    Ok((args, ignored))
}

/// Go's flag package accepts `-flag=value` for long flags; clap wants two
/// dashes. Rewrites `-name...` (more than one letter) to `--name...`.
pub fn normalize<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let Some(text) = arg.to_str() else { return arg };
            let single_dash = text.starts_with('-') && !text.starts_with("--");
            let name_len = text[1..].split('=').next().map_or(0, str::len);
            if i > 0 && single_dash && name_len > 1 {
                OsString::from(format!("-{text}"))
            } else {
                arg
            }
        })
        .collect()
}

/// Go's `strconv.ParseBool` ([`akv_core::go::parse_bool`]), with the
/// flag package's text.
pub fn parse_go_bool(value: &str) -> Result<bool, String> {
    akv_core::go::parse_bool(value).map_err(|_| format!("parsing {value:?}: invalid syntax"))
}

/// A Go duration such as `5s`, `1m30s`, `250ms` or `1.5h`
/// ([`akv_core::go::parse_duration`]).
pub fn parse_go_duration(value: &str) -> Result<Duration, String> {
    akv_core::go::parse_duration(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        let argv = std::iter::once("akv-csi-provider")
            .chain(args.iter().copied())
            .map(OsString::from);
        Args::try_parse_from(normalize(argv)).unwrap()
    }

    #[test]
    fn defaults_match_upstream() {
        let args = parse(&[]);
        assert_eq!(args.endpoint, "unix:///tmp/azure.sock");
        assert!(args.construct_pem_chain);
        assert!(!args.write_cert_and_key_in_separate_files);
        assert_eq!(args.cloud_name, "AzurePublicCloud");
        assert_eq!(args.healthz_port, 8989);
        assert_eq!(args.healthz_path, "/healthz");
        assert_eq!(args.healthz_timeout, Duration::from_secs(5));
        assert_eq!(args.prometheus_port, 8898);
        assert_eq!(args.mount_timeout, Duration::from_secs(100));
        assert_eq!(args.nmi_endpoint, "http://localhost:2579");
        assert_eq!(args.token_proxy_url, "");
    }

    #[test]
    fn upstream_manifest_arguments_parse() {
        let args = parse(&[
            "--endpoint=unix:///provider/azure.sock",
            "--construct-pem-chain=true",
            "--healthz-port=8989",
            "--healthz-path=/healthz",
            "--healthz-timeout=5s",
            "-v=2",
            "--log-format-json",
            "--write-cert-and-key-in-separate-files=True",
        ]);
        assert_eq!(args.endpoint, "unix:///provider/azure.sock");
        assert_eq!(args.verbosity, 2);
        assert!(args.log_format_json);
        assert!(args.write_cert_and_key_in_separate_files);
    }

    fn parse_full(args: &[&str]) -> Result<(Args, Vec<String>), clap::Error> {
        super::parse(
            std::iter::once("akv-csi-provider")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn klog_flags_are_accepted_and_ignored_in_every_go_form() {
        let (args, ignored) = parse_full(&[
            "-logtostderr",
            "--alsologtostderr=false",
            "-log_dir=/var/log",
            "-log_file",
            "/tmp/provider.log",
            "--log_file_max_size=1800",
            "-skip_headers=true",
            "-skip_log_headers",
            "-stderrthreshold",
            "INFO",
            "-vmodule=server=5",
            "-add_dir_header",
            "-one_output=true",
            "-log_backtrace_at=main.go:1",
            "-v=4",
            "--endpoint=unix:///provider/azure.sock",
        ])
        .unwrap();
        assert_eq!(args.verbosity, 4);
        assert_eq!(args.endpoint, "unix:///provider/azure.sock");
        assert_eq!(
            ignored,
            [
                "logtostderr",
                "alsologtostderr",
                "log_dir",
                "log_file",
                "log_file_max_size",
                "skip_headers",
                "skip_log_headers",
                "stderrthreshold",
                "vmodule",
                "add_dir_header",
                "one_output",
                "log_backtrace_at",
            ]
        );
    }

    #[test]
    fn upstream_argument_lists_parse_verbatim() {
        // deployment/provider-azure-installer.yaml (v1.8.2)
        let (manifest, _) = parse_full(&[
            "--endpoint=unix:///provider/azure.sock",
            "--construct-pem-chain=true",
            "--healthz-port=8989",
            "--healthz-path=/healthz",
            "--healthz-timeout=5s",
        ])
        .unwrap();
        assert_eq!(manifest.endpoint, "unix:///provider/azure.sock");
        assert_eq!(manifest.healthz_timeout, Duration::from_secs(5));
        // The chart's Linux and Windows templates with every value set.
        for endpoint in [
            "unix:///provider/azure.sock",
            r"unix://C:\provider\azure.sock",
        ] {
            let (chart, ignored) = parse_full(&[
                &format!("--endpoint={endpoint}"),
                "--log-format-json=true",
                "-v=5",
                "--construct-pem-chain=true",
                "--custom-user-agent=my-agent/1.0",
                "--healthz-port=8989",
                "--healthz-path=/healthz",
                "--healthz-timeout=5s",
                "--write-cert-and-key-in-separate-files=true",
            ])
            .unwrap();
            assert_eq!(chart.endpoint, endpoint);
            assert!(chart.log_format_json && chart.write_cert_and_key_in_separate_files);
            assert_eq!(chart.verbosity, 5);
            assert_eq!(chart.custom_user_agent, "my-agent/1.0");
            assert!(ignored.is_empty());
        }
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value_as_in_go() {
        let (args, _) =
            parse_full(&["--healthz-port=8989", "--healthz-port=0", "-v=2", "-v=5"]).unwrap();
        assert_eq!(args.healthz_port, 0);
        assert_eq!(args.verbosity, 5);
    }

    #[test]
    fn unknown_flags_still_fail() {
        assert!(parse_full(&["--no-such-flag"]).is_err());
        assert!(parse_full(&["-no_such_klog_flag=1"]).is_err());
    }

    #[test]
    fn go_single_dash_long_flags() {
        let (args, _) = parse_full(&[
            "-endpoint",
            "unix:///x.sock",
            "-healthz-port=1234",
            "-log-format-json",
            "--v",
            "3",
        ])
        .unwrap();
        assert_eq!(args.endpoint, "unix:///x.sock");
        assert_eq!(args.healthz_port, 1234);
        assert!(args.log_format_json);
        assert_eq!(args.verbosity, 3);
    }

    #[test]
    fn dry_run_subcommand() {
        let (args, _) = parse_full(&[
            "--cloud-name=AzureChinaCloud",
            "mount",
            "--spc",
            "spc.yaml",
            "--namespace",
            "ns",
            "--pod",
            "p",
            "--token-file=t",
            "-v=5",
        ])
        .unwrap();
        assert_eq!(args.cloud_name, "AzureChinaCloud");
        assert_eq!(args.verbosity, 5);
        let Some(Command::Mount(dry)) = args.command else {
            panic!("mount subcommand")
        };
        assert_eq!(dry.spc, PathBuf::from("spc.yaml"));
        assert_eq!(dry.token_file, Some(PathBuf::from("t")));
        assert_eq!(dry.token_audience, "api://AzureADTokenExchange");
        assert!(
            parse_full(&[
                "mount",
                "--spc=f",
                "--namespace=n",
                "--pod=p",
                "--client-id=c"
            ])
            .is_err(),
            "a client id needs a secret file"
        );
    }

    #[test]
    fn go_bools_and_durations() {
        assert_eq!(parse_go_bool("T"), Ok(true));
        assert_eq!(parse_go_bool("0"), Ok(false));
        assert!(parse_go_bool("yes").is_err());
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("5x").is_err());
    }
}
