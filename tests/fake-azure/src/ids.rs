//! Identifier and clock helpers: version ids, opaque tokens, trace ids and
//! Azure-style timestamps.
//!
//! Identifiers come from a SplitMix64 stream seeded once from the operating
//! system at start-up, so generating one never fails afterwards. SplitMix64
//! is a bijection of its counter, which makes every id distinct for the life
//! of a fake. Nothing here is meant to be unpredictable to an attacker: the
//! fake only listens on loopback and serves tests.

use std::time::{SystemTime, UNIX_EPOCH};

/// Generates unique identifiers; not cryptographically secure.
#[derive(Debug)]
pub(crate) struct IdGen {
    counter: u64,
}

// === impl IdGen ===

impl IdGen {
    /// Seeds the generator from the operating system's random source.
    pub(crate) fn from_os() -> anyhow::Result<Self> {
        let mut seed = [0u8; 8];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut seed)
            .map_err(|_| anyhow::anyhow!("the operating system's random source failed"))?;
        Ok(Self::with_seed(u64::from_le_bytes(seed)))
    }

    /// A deterministic generator, for unit tests.
    pub(crate) fn with_seed(seed: u64) -> Self {
        Self { counter: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.counter = self.counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix(self.counter)
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        out
    }

    /// A Key Vault object version: 32 lowercase hex characters.
    pub(crate) fn version_id(&mut self) -> String {
        hex(&self.bytes::<16>())
    }

    /// A random UUID (version 4 layout), lowercase.
    pub(crate) fn uuid(&mut self) -> String {
        let mut b = self.bytes::<16>();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex(&b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// An opaque bearer token (URL-safe base64 of 48 bytes).
    pub(crate) fn access_token(&mut self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.bytes::<48>())
    }
}

/// One SplitMix64 output step.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Formats Unix seconds the way Entra ID does in errors:
/// `2024-05-01 12:34:56Z`.
pub(crate) fn aad_timestamp(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// Formats Unix seconds as ISO 8601 with seven fractional digits, as
/// Entra ID writes times inside messages: `2024-05-01T12:34:56.0000000Z`.
pub(crate) fn iso_timestamp(unix: i64) -> String {
    aad_timestamp(unix)
        .replacen(' ', "T", 1)
        .replace('Z', ".0000000Z")
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's public-domain `civil_from_days` algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is in 1..=31 and m in 1..=12, so the conversions cannot fail.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_are_32_lowercase_hex_and_distinct() {
        let mut ids = IdGen::with_seed(7);
        let a = ids.version_id();
        let b = ids.version_id();
        assert_eq!(a.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn uuids_have_the_v4_shape() {
        let u = IdGen::with_seed(1).uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(u.matches('-').count(), 4);
    }

    #[test]
    fn timestamps_match_known_dates() {
        assert_eq!(aad_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(aad_timestamp(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(aad_timestamp(1_714_566_896), "2024-05-01 12:34:56Z");
        assert_eq!(iso_timestamp(1_714_566_896), "2024-05-01T12:34:56.0000000Z");
    }
}
