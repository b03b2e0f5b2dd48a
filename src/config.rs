//! The validated configuration of the process, built once at start-up from
//! the flags and the few environment variables we honour (`SSL_CERT_FILE`;
//! the proxy variables are read by the HTTP client itself). Invalid
//! configuration stops the process with exit code 64 before anything
//! listens.
//!
//! Plain data: no sockets, no global state; each subsystem gets its part.

use std::time::Duration;

use thiserror::Error;

use crate::cli::Args;
use crate::cloud::{Cloud, CloudError};
use crate::http::{ExtraRoots, HttpConfig};
use crate::mount::MountOptions;
use crate::params::ParseOptions;
use crate::render::RenderOptions;
use crate::socket::{Endpoint, SocketError};

/// Everything the app needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub endpoint: Endpoint,
    pub http: HttpConfig,
    pub mount: MountOptions,
    pub parse: ParseOptions,
    pub log_json: bool,
    pub verbosity: u8,
}

/// Why the configuration is unusable.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("--endpoint: {0}")]
    Endpoint(#[from] SocketError),
    #[error("--cloud-name: {0}")]
    Cloud(#[from] CloudError),
    #[error("--metrics-backend: unsupported metrics backend {0:?}; only prometheus is supported")]
    MetricsBackend(String),
    #[error("--max-concurrent-fetches must be at least 1")]
    Concurrency,
    #[error("SSL_CERT_FILE={path}: {reason}")]
    CertFile { path: String, reason: String },
}

// === impl Config ===

impl Config {
    /// Validates the flags; `env` looks up environment variables (the real
    /// environment in `main`, a map in tests).
    pub fn build(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let endpoint = Endpoint::parse(&args.endpoint)?;
        Cloud::from_name(&args.cloud_name)?;
        if !args.metrics_backend.eq_ignore_ascii_case("prometheus") {
            return Err(ConfigError::MetricsBackend(args.metrics_backend.clone()));
        }
        if args.max_concurrent_fetches == 0 {
            return Err(ConfigError::Concurrency);
        }
        Ok(Self {
            endpoint,
            http: HttpConfig {
                user_agent: user_agent(&args.custom_user_agent),
                extra_roots_pem: extra_roots(env("SSL_CERT_FILE"))?,
                request_timeout: args.request_timeout,
                connect_timeout: Duration::from_secs(10).min(args.request_timeout),
            },
            mount: MountOptions {
                max_concurrent_fetches: args.max_concurrent_fetches,
                render: RenderOptions {
                    construct_pem_chain: args.construct_pem_chain,
                    write_cert_and_key_in_separate_files: args.write_cert_and_key_in_separate_files,
                },
            },
            parse: ParseOptions {
                default_cloud_name: args.cloud_name.clone(),
            },
            log_json: args.log_format_json,
            verbosity: args.verbosity,
        })
    }
}

/// `akv-csi-provider/<version>`, followed by `--custom-user-agent` if set.
fn user_agent(custom: &str) -> String {
    let ours = concat!("akv-csi-provider/", env!("CARGO_PKG_VERSION"));
    match custom.trim() {
        "" => ours.to_owned(),
        extra => format!("{ours} {extra}"),
    }
}

/// Reads the CA bundle named by `SSL_CERT_FILE`, if any.
fn extra_roots(path: Option<String>) -> Result<Option<ExtraRoots>, ConfigError> {
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let pem = std::fs::read(&path).map_err(|e| ConfigError::CertFile {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Some(ExtraRoots { path, pem }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("p").chain(extra.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_build() {
        let config = Config::build(&args(&[]), |_| None).unwrap();
        assert_eq!(config.endpoint, Endpoint::Unix("/tmp/azure.sock".into()));
        assert!(config.http.extra_roots_pem.is_none());
        assert!(config.http.user_agent.starts_with("akv-csi-provider/"));
    }

    #[test]
    fn certificate_flags_reach_the_mount_options() {
        let config = Config::build(&args(&[]), |_| None).unwrap();
        assert_eq!(config.mount.render, RenderOptions::default());
        assert!(config.mount.render.construct_pem_chain);
        let config = Config::build(
            &args(&[
                "--construct-pem-chain=false",
                "--write-cert-and-key-in-separate-files=true",
            ]),
            |_| None,
        )
        .unwrap();
        assert!(!config.mount.render.construct_pem_chain);
        assert!(config.mount.render.write_cert_and_key_in_separate_files);
    }

    #[test]
    fn custom_user_agent_is_appended() {
        let config =
            Config::build(&args(&["--custom-user-agent", "aks-addon/1"]), |_| None).unwrap();
        assert!(config.http.user_agent.ends_with(" aks-addon/1"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = Config::build(&args(&["--endpoint", "/tmp/x"]), |_| None).unwrap_err();
        assert!(
            err.to_string().starts_with("--endpoint: invalid endpoint"),
            "{err}"
        );
        let err = Config::build(&args(&["--cloud-name", "Mars"]), |_| None).unwrap_err();
        assert!(err.to_string().starts_with("--cloud-name: "), "{err}");
        let err = Config::build(&args(&["--metrics-backend", "statsd"]), |_| None).unwrap_err();
        assert!(
            err.to_string().contains("unsupported metrics backend"),
            "{err}"
        );
        let err = Config::build(&args(&[]), |k| {
            (k == "SSL_CERT_FILE").then(|| "/nonexistent/ca.pem".into())
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("SSL_CERT_FILE=/nonexistent/ca.pem"),
            "{err}"
        );
    }
}
