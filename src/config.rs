//! The validated configuration of the process, built once at start-up from
//! the flags and the few environment variables we honour (`SSL_CERT_FILE`,
//! `AZURE_POD_IDENTITY_AUTHORITY_HOST`; the proxy variables are read by the
//! HTTP client itself). Invalid
//! configuration stops the process with exit code 64 before anything
//! listens.
//!
//! Plain data: no sockets, no global state; each subsystem gets its part.

use std::time::Duration;

use thiserror::Error;

use crate::admin::AdminConfig;
use crate::auth::{self, AuthConfig, TokenProxyConfig};
use crate::cli::Args;
use crate::cloud::{self, Cloud, CloudError};
use crate::http::{ExtraRoots, HttpConfig};
use crate::keyvault::KeyVaultConfig;
use crate::mount::MountOptions;
use crate::params::ParseOptions;
use crate::reads::{self, ReadsConfig};
use crate::render::RenderOptions;
use crate::socket::{Endpoint, SocketError};

/// Everything the app needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub endpoint: Endpoint,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub keyvault: KeyVaultConfig,
    pub reads: ReadsConfig,
    pub mount: MountOptions,
    pub parse: ParseOptions,
    pub log_json: bool,
    pub verbosity: u8,
    pub admin: AdminConfig,
    pub serve: ServeConfig,
}

/// How the socket is served and stopped.
#[derive(Clone, Copy, Debug)]
pub struct ServeConfig {
    /// `--drain-timeout`: in-flight mounts' time after SIGTERM.
    pub drain_timeout: std::time::Duration,
    /// `--connection-idle-timeout`: `None` for `0s` (never).
    pub connection_idle_timeout: Option<std::time::Duration>,
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
    #[error("--keyvault-qps must be a number of requests per second, 0 or more (0: no limit)")]
    KeyVaultQps,
    #[error("SSL_CERT_FILE={path}: {reason}")]
    CertFile { path: String, reason: String },
    #[error(
        "--admin-bind-address: {0:?} is not an IP address (leave it empty for every interface)"
    )]
    BindAddress(String),
    #[error("--healthz-path: {0:?} must start with '/' and differ from /readyz and /metrics")]
    HealthzPath(String),
    #[error("--healthz-timeout must be greater than 0")]
    HealthzTimeout,
    #[error("--mount-timeout must be more than 0")]
    MountTimeout,
    #[error("{setting}: {value:?} is not an http:// or https:// base URL")]
    BaseUrl {
        setting: &'static str,
        value: String,
    },
}

// === impl Config ===

impl Config {
    /// Validates the flags; `env` looks up environment variables (the real
    /// environment in `main`, a map in tests).
    pub fn build(args: &Args, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let endpoint = Endpoint::parse(&args.endpoint)?;
        // Azure Stack's endpoints come from a file read per mount.
        if !cloud::is_azure_stack(&args.cloud_name) {
            Cloud::from_name(&args.cloud_name)?;
        }
        if !args.metrics_backend.eq_ignore_ascii_case("prometheus") {
            return Err(ConfigError::MetricsBackend(args.metrics_backend.clone()));
        }
        if args.max_concurrent_fetches == 0 {
            return Err(ConfigError::Concurrency);
        }
        if args.mount_timeout.is_zero() {
            return Err(ConfigError::MountTimeout);
        }
        if !args.keyvault_qps.is_finite() || args.keyvault_qps < 0.0 {
            return Err(ConfigError::KeyVaultQps);
        }
        let imds_endpoint = match env(auth::IMDS_ENDPOINT_ENV).filter(|v| !v.trim().is_empty()) {
            Some(value) => base_url(auth::IMDS_ENDPOINT_ENV, &value)?,
            None => AuthConfig::default().imds_endpoint,
        };
        Ok(Self {
            endpoint,
            http: HttpConfig {
                user_agent: user_agent(&args.custom_user_agent),
                extra_roots_pem: extra_roots(env("SSL_CERT_FILE"))?,
                request_timeout: args.request_timeout,
                connect_timeout: Duration::from_secs(10).min(args.request_timeout),
            },
            auth: AuthConfig {
                imds_endpoint,
                nmi_endpoint: base_url("--nmi-endpoint", &args.nmi_endpoint)?,
                // Checked on the first identity-binding mount, so a bad value
                // fails only those mounts (as upstream).
                token_proxy: TokenProxyConfig {
                    url: args.token_proxy_url.trim().to_owned(),
                    sni_name: args.sni_name.trim().to_owned(),
                    ca_file: args.token_proxy_ca_file.clone(),
                },
                cache_capacity: auth::DEFAULT_CAPACITY,
                cache_scope: match args.token_cache_scope.as_str() {
                    "service-account" => auth::CacheScope::ServiceAccount,
                    _ => auth::CacheScope::Credential,
                },
            },
            keyvault: KeyVaultConfig {
                qps: Some(args.keyvault_qps).filter(|qps| *qps > 0.0),
            },
            reads: ReadsConfig {
                cache_ttl: Some(args.cache_ttl).filter(|ttl| !ttl.is_zero()),
                cache_max_entries: reads::CACHE_MAX_ENTRIES,
                cache_max_bytes: reads::CACHE_MAX_BYTES,
            },
            mount: MountOptions {
                max_concurrent_fetches: args.max_concurrent_fetches,
                mount_timeout: args.mount_timeout,
                max_response_bytes: args.max_call_send_msg_size,
                render: RenderOptions {
                    construct_pem_chain: args.construct_pem_chain,
                    write_cert_and_key_in_separate_files: args.write_cert_and_key_in_separate_files,
                },
            },
            parse: ParseOptions {
                default_cloud_name: args.cloud_name.clone(),
                environment_file: env(cloud::ENVIRONMENT_FILEPATH_ENV).unwrap_or_default(),
            },
            log_json: args.log_format_json,
            verbosity: args.verbosity,
            admin: admin(args)?,
            serve: ServeConfig {
                drain_timeout: args.drain_timeout,
                connection_idle_timeout: Some(args.connection_idle_timeout)
                    .filter(|timeout| !timeout.is_zero()),
            },
        })
    }
}

/// The health and metrics listeners' settings.
fn admin(args: &Args) -> Result<AdminConfig, ConfigError> {
    let bind = match args.admin_bind_address.trim() {
        "" => None,
        ip => Some(
            ip.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| ConfigError::BindAddress(ip.to_owned()))?,
        ),
    };
    let path = &args.healthz_path;
    if !path.starts_with('/') || path == "/readyz" || path == "/metrics" {
        return Err(ConfigError::HealthzPath(path.clone()));
    }
    if args.healthz_timeout.is_zero() {
        return Err(ConfigError::HealthzTimeout);
    }
    Ok(AdminConfig {
        bind,
        healthz_port: args.healthz_port,
        healthz_path: path.clone(),
        healthz_timeout: args.healthz_timeout,
        prometheus_port: args.prometheus_port,
    })
}

/// An `http://` or `https://` URL without query, trailing `/` removed.
fn base_url(setting: &'static str, value: &str) -> Result<String, ConfigError> {
    let invalid = || ConfigError::BaseUrl {
        setting,
        value: value.to_owned(),
    };
    let url = reqwest::Url::parse(value.trim()).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
    {
        return Err(invalid());
    }
    Ok(value.trim().trim_end_matches('/').to_owned())
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
    fn load_flags_are_off_by_default_and_validated() {
        let config = Config::build(&args(&[]), |_| None).unwrap();
        assert_eq!(config.mount.max_concurrent_fetches, 32);
        assert_eq!(config.reads.cache_ttl, None);
        assert_eq!(config.keyvault.qps, None);
        let config = Config::build(
            &args(&["--cache-ttl=30s", "--keyvault-qps=2.5", "--keyvault-qps=0"]),
            |_| None,
        )
        .unwrap();
        assert_eq!(config.reads.cache_ttl, Some(Duration::from_secs(30)));
        assert_eq!(config.keyvault.qps, None, "the last repeat wins: 0");
        let config = Config::build(&args(&["--keyvault-qps", "2.5"]), |_| None).unwrap();
        assert_eq!(config.keyvault.qps, Some(2.5));
        for bad in [["--keyvault-qps", "-1"], ["--keyvault-qps", "inf"]] {
            let err = Config::build(&args(&bad), |_| None)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("--keyvault-qps must be"), "{err}");
        }
        assert!(Args::try_parse_from(["p", "--cache-ttl", "soon"]).is_err());
    }

    #[test]
    fn admin_listeners_default_to_every_interface() {
        let config = Config::build(&args(&[]), |_| None).unwrap();
        assert_eq!(config.admin.bind, None);
        assert_eq!(config.admin.healthz_port, 8989);
        assert_eq!(config.admin.prometheus_port, 8898);
        let config = Config::build(&args(&["--admin-bind-address", "::1"]), |_| None).unwrap();
        assert_eq!(config.admin.bind, Some("::1".parse().unwrap()));
    }

    #[test]
    fn identity_endpoints_from_flags_and_environment() {
        let config = Config::build(&args(&[]), |_| None).unwrap();
        assert_eq!(config.auth.imds_endpoint, "http://169.254.169.254");
        assert_eq!(config.auth.nmi_endpoint, "http://localhost:2579");
        assert_eq!(
            config.mount.mount_timeout,
            std::time::Duration::from_secs(100)
        );
        let config = Config::build(
            &args(&[
                "--nmi-endpoint",
                "http://127.0.0.1:9/",
                "--mount-timeout",
                "5s",
            ]),
            |k| (k == "AZURE_POD_IDENTITY_AUTHORITY_HOST").then(|| "http://127.0.0.1:8/".into()),
        )
        .unwrap();
        assert_eq!(config.auth.imds_endpoint, "http://127.0.0.1:8");
        assert_eq!(config.auth.nmi_endpoint, "http://127.0.0.1:9");
        assert_eq!(
            config.mount.mount_timeout,
            std::time::Duration::from_secs(5)
        );
        let err = Config::build(&args(&["--nmi-endpoint", "localhost:2579"]), |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--nmi-endpoint: "), "{err}");
        let err = Config::build(&args(&[]), |k| {
            (k == "AZURE_POD_IDENTITY_AUTHORITY_HOST").then(|| "ftp://x".into())
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("AZURE_POD_IDENTITY_AUTHORITY_HOST: "),
            "{err}"
        );
        assert!(Config::build(&args(&["--mount-timeout", "0"]), |_| None).is_err());
        // A bad token proxy URL does not stop the process.
        assert!(Config::build(&args(&["--token-proxy-url", "http://x"]), |_| None).is_ok());
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
        let err = Config::build(&args(&["--healthz-path", "healthz"]), |_| None).unwrap_err();
        assert!(err.to_string().starts_with("--healthz-path: "), "{err}");
        let err = Config::build(&args(&["--healthz-timeout", "0s"]), |_| None).unwrap_err();
        assert!(err.to_string().starts_with("--healthz-timeout "), "{err}");
        let err =
            Config::build(&args(&["--admin-bind-address", "localhost"]), |_| None).unwrap_err();
        assert!(
            err.to_string().starts_with("--admin-bind-address: "),
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
