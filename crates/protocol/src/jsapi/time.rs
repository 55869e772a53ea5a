//! Go's time values on the JetStream wire: timestamps as `encoding/json` writes
//! `time.Time`, and [`GoDuration`], the one parser and formatter of Go's
//! `time.Duration` text (`Nats-TTL` headers, pull-request expiries, error texts).
//!
//! nats-server marshals times as RFC 3339 with nanoseconds and trailing zeros trimmed
//! (`2026-11-22T07:48:44.121046507Z`), and an unset time as Go's zero time
//! `0001-01-01T00:00:00Z` (e.g. `first_ts` of an empty stream). Clients parse both, and
//! send times with offsets (`opt_start_time`), which Go keeps and writes back as given
//! (`2026-01-01T00:00:00+02:00`), so [`Timestamp`] remembers the offset it was parsed
//! with; times InfiniStream makes are UTC. Equality and order compare the instant, as
//! nats-server's `time.Equal` does. Kept dependency-free: a few lines of civil-date
//! arithmetic instead of a calendar crate in a layer-0 library.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use super::Nanos;

/// An instant with nanosecond precision, covering Go's zero time (year 1), and the
/// UTC offset it is written with.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
    /// Seconds east of UTC used when formatting (0 writes `Z`).
    offset: i32,
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        (self.secs, self.nanos) == (other.secs, other.nanos)
    }
}
impl Eq for Timestamp {}
impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.secs, self.nanos).cmp(&(other.secs, other.nanos))
    }
}
impl std::hash::Hash for Timestamp {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.secs, self.nanos).hash(state);
    }
}

/// Seconds from 0001-01-01T00:00:00Z to the Unix epoch.
const GO_ZERO_SECS: i64 = -62_135_596_800;

/// Why a timestamp string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp: `{0}`")]
pub struct TimestampError(String);

impl Timestamp {
    /// Go's zero `time.Time`, written as `0001-01-01T00:00:00Z`.
    pub const ZERO: Timestamp = Timestamp {
        secs: GO_ZERO_SECS,
        nanos: 0,
        offset: 0,
    };

    /// The instant `nanos` nanoseconds after the Unix epoch (negative is before).
    pub fn from_unix_nanos(nanos: i128) -> Self {
        let secs = nanos.div_euclid(1_000_000_000);
        let sub = nanos.rem_euclid(1_000_000_000);
        Self {
            secs: i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX }),
            nanos: u32::try_from(sub).unwrap_or(0),
            offset: 0,
        }
    }

    /// The same instant, written in UTC.
    pub fn to_utc(self) -> Self {
        Self { offset: 0, ..self }
    }

    /// The UTC offset (seconds east) this timestamp is written with.
    pub fn offset_secs(&self) -> i32 {
        self.offset
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    /// Seconds since the Unix epoch and the nanosecond remainder.
    pub fn unix_parts(&self) -> (i64, u32) {
        (self.secs, self.nanos)
    }

    /// Whether this is Go's zero time (an unset `time.Time`).
    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    /// Parses RFC 3339 (`2006-01-02T15:04:05.999999999Z07:00`), any offset.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        parse_rfc3339(s).ok_or_else(|| TimestampError(s.to_owned()))
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Self::ZERO
    }
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day count from 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u32, |acc, b| {
        acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let min = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || min > 59 || sec > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let frac = &b[start..end];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        nanos = digits(frac)? * 10u32.pow(9 - frac.len() as u32);
        i = end;
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = i64::from(digits(&b[i + 1..i + 3])?);
            let om = i64::from(digits(&b[i + 4..i + 6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec) - offset_secs;
    Some(Timestamp {
        secs,
        nanos,
        offset: i32::try_from(offset_secs).ok()?,
    })
}

impl fmt::Display for Timestamp {
    /// Go's `time.RFC3339Nano`: fraction trimmed of trailing zeros, `Z` for UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = self.secs.saturating_add(i64::from(self.offset));
        let days = local.div_euclid(86_400);
        let rem = local.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            y,
            m,
            d,
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )?;
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            write!(f, ".{}", frac.trim_end_matches('0'))?;
        }
        if self.offset == 0 {
            return f.write_str("Z");
        }
        let sign = if self.offset < 0 { '-' } else { '+' };
        let off = self.offset.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", off / 3600, (off % 3600) / 60)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Formats nanoseconds like Go's `time.Duration.String()` (`5s`, `1m30s`, `1.5s`,
/// `100ms`), which nats-server puts into some error descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Nanos);

impl GoDuration {
    /// Go's `time.ParseDuration`: `"300ms"`, `"-1.5h"`, `"2h45m"`, units `ns`, `us`
    /// (`µs`), `ms`, `s`, `m`, `h`; a bare `"0"` is zero; anything else is `None`.
    pub fn parse(s: &str) -> Option<Nanos> {
        let (neg, mut rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest == "0" {
            return Some(0);
        }
        if rest.is_empty() {
            return None;
        }
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let int_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let int_part = &rest[..int_end];
            rest = &rest[int_end..];
            let mut frac_part = "";
            if let Some(after) = rest.strip_prefix('.') {
                let frac_end = after
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after.len());
                frac_part = &after[..frac_end];
                rest = &after[frac_end..];
            }
            if int_part.is_empty() && frac_part.is_empty() {
                return None;
            }
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit: u128 = match &rest[..unit_end] {
                "ns" => 1,
                "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                _ => return None,
            };
            rest = &rest[unit_end..];
            let int: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().ok()?
            };
            let mut value = int.checked_mul(unit)?;
            if !frac_part.is_empty() {
                let digits = &frac_part[..frac_part.len().min(18)];
                let frac: u128 = digits.parse().ok()?;
                value = value.checked_add(frac * unit / 10u128.pow(digits.len() as u32))?;
            }
            total = total.checked_add(value)?;
        }
        let total = i64::try_from(total).ok()?;
        Some(if neg { -total } else { total })
    }
}

impl std::fmt::Display for GoDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut n = i128::from(self.0);
        if n == 0 {
            return f.write_str("0s");
        }
        if n < 0 {
            f.write_str("-")?;
            n = -n;
        }
        let frac = |v: i128, unit: i128| -> String {
            let whole = v / unit;
            let rem = v % unit;
            if rem == 0 {
                whole.to_string()
            } else {
                let width = (unit as f64).log10().round() as usize;
                let s = format!("{rem:0width$}");
                format!("{whole}.{}", s.trim_end_matches('0'))
            }
        };
        if n < 1_000 {
            return write!(f, "{n}ns");
        }
        if n < 1_000_000 {
            return write!(f, "{}µs", frac(n, 1_000));
        }
        if n < 1_000_000_000 {
            return write!(f, "{}ms", frac(n, 1_000_000));
        }
        let total_secs_ns = n;
        let hours = total_secs_ns / 3_600_000_000_000;
        let rem = total_secs_ns % 3_600_000_000_000;
        let mins = rem / 60_000_000_000;
        let secs_ns = rem % 60_000_000_000;
        if hours > 0 {
            write!(f, "{hours}h{mins}m")?;
        } else if mins > 0 {
            write!(f, "{mins}m")?;
        }
        write!(f, "{}s", frac(secs_ns, 1_000_000_000))
    }
}
