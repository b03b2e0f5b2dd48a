//! Log output: `tracing` to stderr, human-readable text by default or JSON
//! lines with `--log-format-json`; klog's `-v=N` picks the level (0–2 info,
//! 3–4 debug, 5+ trace). `RUST_LOG`, when set, overrides the level.
//!
//! Called once from `main`; modules only emit events.

use tracing_subscriber::EnvFilter;

/// The filter for a klog verbosity.
pub fn filter_for(verbosity: u8) -> &'static str {
    match verbosity {
        0..=2 => "info",
        3..=4 => "debug",
        _ => "trace",
    }
}

/// Installs the global subscriber.
pub fn init(json: bool, verbosity: u8) {
    let default = filter_for(verbosity);
    // Dependencies stay at info or quieter: their debug output is noise for
    // operators and may include request details.
    let directives = format!(
        "{default},h2=info,hyper=info,hyper_util=info,reqwest=info,rustls=info,tower=info,tonic=info"
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(super::filter_for(0), "info");
        assert_eq!(super::filter_for(2), "info");
        assert_eq!(super::filter_for(4), "debug");
        assert_eq!(super::filter_for(9), "trace");
    }
}
