//! Command-line flags, named and defaulted exactly as the upstream Go
//! provider's (`--endpoint`, `--construct-pem-chain`, `--healthz-port`, …)
//! so an existing DaemonSet or Helm chart can swap the image, plus our own
//! (`--max-concurrent-fetches`, timeouts). Go writes long flags with one
//! dash (`-v=2`); [`normalize`] accepts that form.
//!
//! Raw values only: validation and anything that touches the system is in
//! `config`.

use std::ffi::OsString;
use std::time::Duration;

use clap::{ArgAction, Parser};

/// Flags of the provider process.
#[derive(Debug, Parser)]
#[command(
    name = "akv-csi-provider",
    about = "Azure Key Vault provider for the Secrets Store CSI Driver",
    disable_version_flag = true
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
    #[arg(long, default_value = "false", value_parser = parse_go_bool, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
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
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,

    /// Objects of one mount fetched at the same time.
    #[arg(long, default_value_t = 8)]
    pub max_concurrent_fetches: usize,

    /// Time limit of one HTTP request to Entra ID or Key Vault.
    #[arg(long, default_value = "20s", value_parser = parse_go_duration)]
    pub request_timeout: Duration,

    /// Print the version as JSON and exit.
    #[arg(long, action = ArgAction::SetTrue)]
    pub version: bool,
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

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parsing {value:?}: invalid syntax")),
    }
}

/// A Go duration such as `5s`, `1m30s`, `250ms` or `1.5h`.
pub fn parse_go_duration(value: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {value:?}");
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = value;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
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
