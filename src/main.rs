//! The `akv-csi-provider` binary: parse flags, set up logs, validate the
//! configuration (exit 64 when it is invalid), then serve until a signal —
//! or, with the `mount` subcommand, dry-run one SecretProviderClass.

use std::process::ExitCode;

use akv_csi_provider::{app, cli, config::Config, dryrun, trace};

/// `EX_USAGE`: the command line or environment is invalid.
const EXIT_USAGE: u8 = 64;

/// Panics are logged as one error line in the log format in use (a JSON
/// log stays JSON); the server turns a panicking mount into that mount's
/// error and keeps serving.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        tracing::error!(
            panic = %message.escape_debug(),
            %location,
            "panic: this is a bug in akv-csi-provider, please report it"
        );
    }));
}

fn main() -> ExitCode {
    let (args, ignored_klog_flags) = match cli::parse(std::env::args_os()) {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    };
    if args.version {
        println!(
            "{}",
            serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "buildDate": env!("AKV_BUILD_DATE"),
            })
        );
        return ExitCode::SUCCESS;
    }
    trace::init(args.log_format_json, args.verbosity);
    log_panics();
    if !ignored_klog_flags.is_empty() {
        tracing::info!(flags = ?ignored_klog_flags, "ignoring klog flags; logs always go to stderr");
    }
    if args.enable_pprof {
        tracing::warn!(
            pprof_port = args.pprof_port,
            "--enable-pprof has no effect: Go's pprof has no equivalent here; use /metrics, -v=5 logs, or perf on the process"
        );
    }
    let config = match Config::build(&args, |key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    if let Some(cli::Command::Mount(dry_run)) = &args.command {
        return match runtime.block_on(dryrun::run(&config, dry_run)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(if e.is_usage() { EXIT_USAGE } else { 1 })
            }
        };
    }
    match runtime.block_on(app::run(config, app::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "provider stopped");
            ExitCode::FAILURE
        }
    }
}
