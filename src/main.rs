//! The `akv-csi-provider` binary: parse flags, set up logs, validate the
//! configuration (exit 64 when it is invalid), serve until a signal.

use std::process::ExitCode;

use akv_csi_provider::{app, cli, config::Config, trace};
use clap::Parser as _;

/// `EX_USAGE`: the command line or environment is invalid.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = cli::Args::parse_from(cli::normalize(std::env::args_os()));
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
    match runtime.block_on(app::run(config, app::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "provider stopped");
            ExitCode::FAILURE
        }
    }
}
