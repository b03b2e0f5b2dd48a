//! Log output: `tracing` to stderr, human-readable text by default or JSON
//! lines with `--log-format-json`; klog's `-v=N` picks the level (0–2 info,
//! 3–4 debug, 5+ trace). `RUST_LOG`, when set, overrides the level.
//!
//! In text format every field value and message is written with its
//! control characters escaped (`\n`, `\u{1b}`): values from a request
//! (pod and SecretProviderClass names, `tenantId`, `clientID`, …) must not
//! start a forged log line at any verbosity. JSON escapes them itself.
//!
//! Called once from `main`; modules only emit events.

use std::borrow::Cow;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt as _;

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
        let fields = tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
            let text = format!("{value:?}");
            let text = escape_controls(&text);
            if field.name() == "message" {
                writer.write_str(&text)
            } else {
                write!(writer, "{field}={text}")
            }
        })
        .delimited(" ");
        builder.fmt_fields(fields).init();
    }
}

/// `text` with every control character (line breaks, escape sequences)
/// written as its Rust escape, so it stays on one line.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
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

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::escape_controls("plain"), "plain");
        assert_eq!(
            super::escape_controls("a\nlevel=INFO forged\r\u{1b}[31m"),
            "a\\nlevel=INFO forged\\r\\u{1b}[31m"
        );
    }
}
