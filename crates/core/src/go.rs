//! Go compatibility: the few behaviours of Go's standard library that
//! upstream's texts and inputs depend on, written once.
//!
//! - [`quote`]: `strconv.Quote` (and `%q`), for upstream's error texts;
//! - [`parse_bool`]: `strconv.ParseBool`, for the SecretProviderClass's
//!   flags, the per-object `optional` and the command line;
//! - [`parse_duration`]: `time.ParseDuration` as the flag package reads it;
//! - [`std_base64_decode`]: `base64.StdEncoding.DecodeString` as upstream
//!   uses it for `objectEncoding: base64` and certificate values
//!   ([`STD_BASE64`], [`base64_error_offset`] for other inputs).
//!
//! Pure functions only: no I/O, no knowledge of what the values mean.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use thiserror::Error;
use zeroize::Zeroizing;

/// Go's `strconv.ParseBool` failure; `Display` is Go's text.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("strconv.ParseBool: parsing {}: invalid syntax", quote(.value))]
pub struct ParseBoolError {
    /// The refused input, as given.
    pub value: String,
}

/// Go's `time.ParseDuration` failure (`invalid duration "5x"`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("invalid duration {value:?}")]
pub struct DurationError {
    /// The refused input, as given.
    pub value: String,
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` and
/// `0 f F FALSE false False`, nothing else.
pub fn parse_bool(s: &str) -> Result<bool, ParseBoolError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ParseBoolError {
            value: s.to_owned(),
        }),
    }
}

/// A Go duration such as `5s`, `1m30s`, `250ms` or `1.5h` (`0` alone is
/// zero; a unit is otherwise required).
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError {
        value: value.to_owned(),
    };
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

/// Go's `strconv.Quote` (and `%q`), for upstream error texts. Go's notion
/// of a printable rune is approximated: control, non-ASCII space and
/// common format/private-use characters are escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\x07' => out.push_str(r"\a"),
            '\x08' => out.push_str(r"\b"),
            '\x0c' => out.push_str(r"\f"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            '\x0b' => out.push_str(r"\v"),
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str("\\\""),
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\x7f' => _ = write!(out, "\\x{:02x}", c as u32),
            c if (c as u32) < 0x10000 => _ = write!(out, "\\u{:04x}", c as u32),
            c => _ = write!(out, "\\U{:08x}", c as u32),
        }
    }
    out.push('"');
    out
}

fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let format_or_private = matches!(c,
        '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{feff}' | '\u{fff9}'..='\u{fffb}' | '\u{e000}'..='\u{f8ff}' | '\u{f0000}'..);
    !(c.is_control() || c.is_whitespace() || format_or_private)
}

/// Go's `base64.StdEncoding`: standard alphabet, padding required,
/// non-zero trailing bits accepted.
pub const STD_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Go's `base64.StdEncoding.DecodeString`, which skips CR and LF (so a
/// value wrapped at 76 columns decodes). The error is the offset of the
/// bad input byte in `raw` (Go's `illegal base64 data at input byte N`).
pub fn std_base64_decode(raw: &[u8]) -> Result<Zeroizing<Vec<u8>>, usize> {
    if !raw.iter().any(|b| matches!(b, b'\r' | b'\n')) {
        return STD_BASE64
            .decode(raw)
            .map(Zeroizing::new)
            .map_err(|e| base64_error_offset(&e, raw.len()));
    }
    let positions: Vec<usize> = (0..raw.len())
        .filter(|&i| !matches!(raw[i], b'\r' | b'\n'))
        .collect();
    let clean: Zeroizing<Vec<u8>> = Zeroizing::new(positions.iter().map(|&i| raw[i]).collect());
    STD_BASE64.decode(&clean).map(Zeroizing::new).map_err(|e| {
        let offset = base64_error_offset(&e, clean.len());
        positions.get(offset).copied().unwrap_or(raw.len())
    })
}

/// The input offset Go's decoder reports for a base64 error (`len` is the
/// input's length).
pub fn base64_error_offset(e: &base64::DecodeError, len: usize) -> usize {
    use base64::DecodeError as E;
    match *e {
        E::InvalidByte(offset, _) | E::InvalidLastSymbol(offset, _) => offset,
        // Go points at the start of the incomplete final quantum.
        E::InvalidLength(at) => at - at % 4,
        E::InvalidPadding => len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        let cases = [
            ("abc", r#""abc""#),
            ("a\\b\"c", r#""a\\b\"c""#),
            ("\t\n\r\x07\x08\x0b\x0c", r#""\t\n\r\a\b\v\f""#),
            ("\0\x1f\x7f", r#""\x00\x1f\x7f""#),
            ("é✓ 😀", "\"é✓ 😀\""),
            (
                "\u{a0}\u{85}\u{200b}\u{feff}",
                r#""\u00a0\u0085\u200b\ufeff""#,
            ),
            ("\u{f0000}", r#""\U000f0000""#),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }

    #[test]
    fn bools_and_durations() {
        assert_eq!(parse_bool("T"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert_eq!(
            parse_bool("yes").unwrap_err().to_string(),
            r#"strconv.ParseBool: parsing "yes": invalid syntax"#
        );
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("5").unwrap_err().to_string(),
            r#"invalid duration "5""#
        );
    }
}
