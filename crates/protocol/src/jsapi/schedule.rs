//! Message schedules (ADR-51, nats-server 2.12/2.14): the `Nats-Schedule*` headers,
//! their validation in nats-server's order with its error codes, the next firing time
//! of a pattern, and the headers of the message a firing produces.
//!
//! A *schedule message* is stored on its own subject with `Nats-Schedule` (`@at
//! <RFC 3339>`, `@every <Go duration ≥ 1s>`, a 6-field cron `sec min hour dom month
//! dow`, or `@yearly`/`@annually`/`@monthly`/`@weekly`/`@daily`/`@midnight`/
//! `@hourly`) and `Nats-Schedule-Target`. When it is due, a copy of it (or of the last
//! message on `Nats-Schedule-Source`) is published to the target with the schedule
//! headers stripped and `Nats-Scheduler` / `Nats-Schedule-Next` added
//! ([`fired_headers`]). Storing that produced message purges the schedule (`@at`:
//! `Nats-Schedule-Next: purge`) or moves its next firing time (repeating schedules).
//!
//! Pure: times are passed in as Unix nanoseconds. A cron schedule's
//! `Nats-Schedule-Time-Zone` is an IANA name looked up, as Go's `time.LoadLocation`
//! does, in the zone database compiled into this crate (jiff's bundled tzdb: no
//! `/usr/share/zoneinfo` needed, no file read), and its next firing is computed with
//! Go's `time.Date` rules at daylight-saving changes ([`Zone`]).

use super::headers;
use super::time::{GoDuration, Timestamp, civil_from_days, days_from_civil};
use super::{ApiError, Nanos};
use crate::HeaderMap;
use crate::subject::{is_valid_publish_subject, subjects_collide};

const SECOND: i64 = 1_000_000_000;

/// A parsed `Nats-Schedule` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `@at <time>`: fires once at this Unix time (nanoseconds); a past time fires now.
    At(i64),
    /// `@every <duration>`: repeats with this interval (≥ 1 s).
    Every(Nanos),
    /// A 6-field cron expression (or a predefined `@hourly`-style name), in its zone
    /// (UTC without `Nats-Schedule-Time-Zone`).
    Cron(Cron),
}

impl Pattern {
    /// Parses a pattern as nats-server's `parseMsgSchedule` does. `zone` is the
    /// `Nats-Schedule-Time-Zone` given, if any: `@at` and `@every` refuse one.
    pub fn parse(value: &str, zone: Option<&Zone>) -> Option<Pattern> {
        let zoned = zone.is_some();
        if let Some(at) = value.strip_prefix("@at ") {
            if zoned {
                return None;
            }
            let t = Timestamp::parse(at).ok()?;
            return i64::try_from(t.unix_nanos()).ok().map(Pattern::At);
        }
        if let Some(every) = value.strip_prefix("@every ") {
            if zoned {
                return None;
            }
            let d = GoDuration::parse(every)?;
            return (d >= SECOND).then_some(Pattern::Every(d));
        }
        let cron = match value {
            "@yearly" | "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * 0",
            "@daily" | "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            other => other,
        };
        Cron::parse(cron, zone.cloned().unwrap_or_default()).map(Pattern::Cron)
    }

    /// Whether the schedule fires more than once.
    pub fn repeats(&self) -> bool {
        !matches!(self, Pattern::At(_))
    }

    /// The firing time after `ts` (the schedule's store time, or its last firing), as
    /// nats-server computes it: a repeating schedule whose next time is already past
    /// `now` skips ahead to fire once, not once per missed period. `None` when a cron
    /// pattern matches nothing within five years.
    pub fn next(&self, ts: i64, now: i64) -> Option<i64> {
        match self {
            Pattern::At(t) => Some(*t),
            Pattern::Every(d) => {
                let next = round_to_second(ts).saturating_add(*d);
                Some(if next < now {
                    round_to_second(now).saturating_add(*d)
                } else {
                    next
                })
            }
            Pattern::Cron(c) => {
                let next = c.next_after(ts)?;
                if next < now {
                    c.next_after(round_to_second(now))
                } else {
                    Some(next)
                }
            }
        }
    }
}

/// A cron schedule's time zone: nats-server's `*time.Location` from
/// `time.LoadLocation(Nats-Schedule-Time-Zone)`, here from the IANA database compiled
/// into the crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone(jiff::tz::TimeZone);

impl Default for Zone {
    fn default() -> Zone {
        Zone(jiff::tz::TimeZone::UTC)
    }
}

impl Zone {
    /// Go's `time.LoadLocation`: `UTC`; `Local` (the host's zone in nats-server; here
    /// UTC, as a cluster has no one host); otherwise an exact (case-sensitive) name of
    /// the IANA database, such as `Europe/Amsterdam`, `US/Eastern` or `EST`. Names with
    /// `..` or a leading `/` or `\\` are refused, as Go does. `None`: unknown.
    pub fn load(name: &str) -> Option<Zone> {
        if name == "UTC" || name == "Local" {
            return Some(Zone::default());
        }
        if name.is_empty() || name.contains("..") || name.starts_with(['/', '\\']) {
            return None;
        }
        let db = jiff::tz::db();
        // The database's lookup ignores case; Go's (a file name) does not.
        if !db.available().any(|n| n.as_str() == name) {
            return None;
        }
        db.get(name).ok().map(Zone)
    }

    /// Go's `time.Date` of the wall-clock `hour:minute:second` on the day `days_after`
    /// the local day of Unix second `now`, in Unix seconds (nats-server's reading of a
    /// user JWT's connection `times` in its `times_location`).
    pub fn day_at(&self, now: i64, days_after: i64, hour: u32, minute: u32, second: u32) -> i64 {
        let today = self.fields(now);
        self.date(
            today.year,
            i64::from(today.month),
            i64::from(today.day) + days_after,
            i64::from(hour),
            i64::from(minute),
            i64::from(second),
        )
    }

    /// UTC offset in seconds at Unix second `t` (0 outside jiff's range).
    fn offset(&self, t: i64) -> i64 {
        jiff::Timestamp::from_second(t)
            .map(|ts| i64::from(self.0.to_offset(ts).seconds()))
            .unwrap_or(0)
    }

    /// Local wall-clock fields of Unix second `t`.
    fn fields(&self, t: i64) -> Local {
        let local = t.saturating_add(self.offset(t));
        let days = local.div_euclid(86_400);
        let rem = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Local {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem % 3600 / 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// Go's `time.Date(year, month, day, hour, min, sec, 0, loc)` in Unix seconds:
    /// out-of-range months and days carry over; a wall time a daylight-saving change
    /// skips or repeats gets Go's offset (the one in force at the wall time read as
    /// UTC, unless that lands outside its period: then the one at the result).
    fn date(&self, year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
        let m0 = month - 1;
        let (y, m) = (year + m0.div_euclid(12), m0.rem_euclid(12) as u32 + 1);
        let days = days_from_civil(y, m, 1) + day - 1;
        let local = days * 86_400 + hour * 3600 + minute * 60 + second;
        let guess = self.offset(local);
        local - self.offset(local - guess)
    }
}

/// Wall-clock fields in a [`Zone`].
#[derive(Debug, Clone, Copy)]
struct Local {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32,
}

/// Go's `Time.Round(time.Second)` for Unix nanoseconds (halves round up).
fn round_to_second(ns: i64) -> i64 {
    let rem = ns.rem_euclid(SECOND);
    let floor = ns - rem;
    if rem >= SECOND / 2 {
        floor.saturating_add(SECOND)
    } else {
        floor
    }
}

/// A cron expression: one bit per allowed value of each field; bit 63 marks a field
/// written `*` or `?` (day-of-month and day-of-week then combine with AND, else OR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    second: u64,
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    zone: Zone,
}

const STAR: u64 = 1 << 63;
const MONTHS: &[(&str, u32)] = &[
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("may", 5),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sep", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
];
const DAYS: &[(&str, u32)] = &[
    ("sun", 0),
    ("mon", 1),
    ("tue", 2),
    ("wed", 3),
    ("thu", 4),
    ("fri", 5),
    ("sat", 6),
];

impl Cron {
    /// Six whitespace-separated fields: second, minute, hour, day of month, month (or
    /// `jan`…), day of week (0 = Sunday, or `sun`…); each a comma list of `*`, `?`,
    /// `n`, `a-b`, with an optional `/step`; evaluated in `zone`.
    pub fn parse(pattern: &str, zone: Zone) -> Option<Cron> {
        let f: Vec<&str> = pattern.split_whitespace().collect();
        if f.len() != 6 {
            return None;
        }
        Some(Cron {
            second: field(f[0], 0, 59, &[])?,
            minute: field(f[1], 0, 59, &[])?,
            hour: field(f[2], 0, 23, &[])?,
            dom: field(f[3], 1, 31, &[])?,
            month: field(f[4], 1, 12, MONTHS)?,
            dow: field(f[5], 0, 6, DAYS)?,
            zone,
        })
    }

    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let dom = self.dom & (1 << day) != 0;
        let dow = self.dow & (1 << weekday) != 0;
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching second strictly after `ts`, within five years: nats-server's
    /// `parseCron` walk (robfig/cron's), field by field in the zone's wall clock, with
    /// its arithmetic: months and days step by `time.Date` (so a skipped wall time
    /// moves past the gap), hours, minutes and seconds by elapsed time (so a repeated
    /// hour matches twice).
    pub fn next_after(&self, ts: i64) -> Option<i64> {
        let z = &self.zone;
        // Start at the upcoming whole second.
        let mut t = ts.div_euclid(SECOND).checked_add(1)?;
        let mut truncated = false;
        let year_limit = z.fields(t).year + 5;
        'wrap: loop {
            let f = z.fields(t);
            if f.year > year_limit {
                return None;
            }
            let mut f = f;
            while self.month & (1 << f.month) == 0 {
                if !truncated {
                    truncated = true;
                    t = z.date(f.year, i64::from(f.month), 1, 0, 0, 0);
                    f = z.fields(t);
                }
                // AddDate(0, 1, 0).
                t = z.date(
                    f.year,
                    i64::from(f.month) + 1,
                    i64::from(f.day),
                    i64::from(f.hour),
                    i64::from(f.minute),
                    i64::from(f.second),
                );
                f = z.fields(t);
                if f.month == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(f.day, f.weekday) {
                if !truncated {
                    truncated = true;
                    t = z.date(f.year, i64::from(f.month), i64::from(f.day), 0, 0, 0);
                    f = z.fields(t);
                }
                // AddDate(0, 0, 1).
                t = z.date(
                    f.year,
                    i64::from(f.month),
                    i64::from(f.day) + 1,
                    i64::from(f.hour),
                    i64::from(f.minute),
                    i64::from(f.second),
                );
                f = z.fields(t);
                if f.day == 1 {
                    continue 'wrap;
                }
            }
            while self.hour & (1 << f.hour) == 0 {
                if !truncated {
                    truncated = true;
                    t = z.date(
                        f.year,
                        i64::from(f.month),
                        i64::from(f.day),
                        i64::from(f.hour),
                        0,
                        0,
                    );
                }
                t += 3600;
                f = z.fields(t);
                if f.hour == 0 {
                    continue 'wrap;
                }
            }
            while self.minute & (1 << f.minute) == 0 {
                if !truncated {
                    truncated = true;
                    t -= t.rem_euclid(60);
                }
                t += 60;
                f = z.fields(t);
                if f.minute == 0 {
                    continue 'wrap;
                }
            }
            while self.second & (1 << f.second) == 0 {
                // Already a whole second: Go's Truncate(time.Second) changes nothing.
                truncated = true;
                t += 1;
                f = z.fields(t);
                if f.second == 0 {
                    continue 'wrap;
                }
            }
            return t.checked_mul(SECOND);
        }
    }
}

fn field(expr: &str, min: u32, max: u32, names: &[(&str, u32)]) -> Option<u64> {
    let mut bits = 0u64;
    for part in expr.split(',').filter(|p| !p.is_empty()) {
        bits |= range(part, min, max, names)?;
    }
    Some(bits)
}

fn range(expr: &str, min: u32, max: u32, names: &[(&str, u32)]) -> Option<u64> {
    let mut steps = expr.split('/');
    let span = steps.next()?;
    let step = steps.next();
    if steps.next().is_some() {
        return None;
    }
    let mut bounds = span.split('-');
    let low = bounds.next()?;
    let high = bounds.next();
    if bounds.next().is_some() {
        return None;
    }
    let (start, mut end, mut extra) = if low == "*" || low == "?" {
        (min, max, STAR)
    } else {
        let start = number(low, names)?;
        let end = match high {
            Some(h) => number(h, names)?,
            None => start,
        };
        (start, end, 0)
    };
    let step = match step {
        None => 1,
        Some(s) => {
            let step = number(s, &[])?;
            if high.is_none() {
                end = max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
    };
    if start < min || end > max || start > end || step == 0 {
        return None;
    }
    let mut bits = 0u64;
    let mut i = start;
    while i <= end {
        bits |= 1 << i;
        i += step;
    }
    Some(bits | extra)
}

fn number(s: &str, names: &[(&str, u32)]) -> Option<u32> {
    if let Some((_, v)) = names.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
        return Some(*v);
    }
    // Go's strconv.Atoi: an optional sign, then digits; negatives are refused.
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The schedule headers of one published message, as given (absent = `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleHeaders {
    /// `Nats-Schedule`.
    pub pattern: Option<String>,
    /// `Nats-Schedule-Time-Zone`.
    pub time_zone: Option<String>,
    /// `Nats-Schedule-TTL`.
    pub ttl: Option<String>,
    /// `Nats-Schedule-Rollup`.
    pub rollup: Option<String>,
    /// `Nats-Schedule-Target`.
    pub target: Option<String>,
    /// `Nats-Schedule-Source`.
    pub source: Option<String>,
    /// `Nats-Scheduler` (only with `Nats-Schedule-Next: purge` from clients).
    pub scheduler: Option<String>,
    /// `Nats-Schedule-Next`.
    pub next: Option<String>,
}

/// What the stream allows, for [`ScheduleHeaders::check_publish`].
#[derive(Debug, Clone, Copy)]
pub struct StreamRules<'a> {
    /// `allow_msg_schedules`.
    pub allow_schedules: bool,
    /// `allow_msg_ttl`.
    pub allow_ttl: bool,
    /// The stream's subjects.
    pub subjects: &'a [String],
}

/// What a valid publish asks of the schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleAction {
    /// No schedule headers (or an empty `Nats-Schedule`).
    None,
    /// The message is a schedule: it replaces the subject's earlier messages (an
    /// implied `Nats-Rollup: sub`) and fires first at `next` (Unix nanoseconds).
    Schedule {
        /// First firing time.
        next: i64,
        /// Whether it repeats.
        repeats: bool,
    },
    /// A client's `Nats-Schedule-Next: purge` with `Nats-Scheduler`: storing the
    /// message purges the `scheduler` subject, which must hold a schedule (when it
    /// holds anything): the control plane checks that with the stream's state.
    Purge {
        /// The schedule subject to purge.
        scheduler: String,
    },
}

impl ScheduleHeaders {
    /// The schedule headers of `map`; `None` when it has none of them.
    pub fn from_headers(map: &HeaderMap) -> Option<ScheduleHeaders> {
        let get = |k: &str| map.get(k).map(str::to_owned);
        let h = ScheduleHeaders {
            pattern: get(headers::SCHEDULE),
            time_zone: get(headers::SCHEDULE_TIME_ZONE),
            ttl: get(headers::SCHEDULE_TTL),
            rollup: get(headers::SCHEDULE_ROLLUP),
            target: get(headers::SCHEDULE_TARGET),
            source: get(headers::SCHEDULE_SOURCE),
            scheduler: get(headers::SCHEDULER),
            next: get(headers::SCHEDULE_NEXT),
        };
        (h != ScheduleHeaders::default()).then_some(h)
    }

    /// The pattern, time zone checked (nats-server's `nextMessageSchedule`):
    /// `Ok(None)` for no (or an empty) `Nats-Schedule`.
    pub fn pattern(&self) -> Result<Option<Pattern>, ApiError> {
        let zone = match self.time_zone.as_deref() {
            None => None,
            Some(name) => {
                Some(Zone::load(name).ok_or_else(ApiError::message_schedules_time_zone_invalid)?)
            }
        };
        match self.pattern.as_deref() {
            None | Some("") => Ok(None),
            Some(p) => Pattern::parse(p, zone.as_ref())
                .map(Some)
                .ok_or_else(ApiError::message_schedules_pattern_invalid),
        }
    }

    /// Checks a client's publish to `subject` in nats-server's order
    /// (`processJetStreamMsg`, after the expected-sequence checks), with `now` as the
    /// store time. `rollup` is the message's own `Nats-Rollup` value, if any.
    pub fn check_publish(
        &self,
        subject: &str,
        rollup: Option<&str>,
        rules: StreamRules<'_>,
        now: i64,
    ) -> Result<ScheduleAction, ApiError> {
        let pattern = match self.pattern() {
            Ok(p) => p,
            Err(_) if !rules.allow_schedules => {
                return Err(ApiError::message_schedules_disabled());
            }
            Err(e) => return Err(e),
        };
        if let Some(pattern) = pattern {
            if !rules.allow_schedules {
                return Err(ApiError::message_schedules_disabled());
            }
            let ttl = self.ttl.as_deref().unwrap_or("");
            if !ttl.is_empty() && headers::parse_message_ttl(ttl).is_err() {
                return Err(ApiError::message_schedules_ttl_invalid());
            }
            if let Some(r) = self.rollup.as_deref()
                && !r.is_empty()
                && r != headers::ROLLUP_SUBJECT
            {
                return Err(ApiError::message_schedules_rollup_invalid());
            }
            if !ttl.is_empty() && !rules.allow_ttl {
                return Err(ApiError::message_ttl_disabled());
            }
            let target = self.target.as_deref().unwrap_or("");
            if target.is_empty() || !is_valid_publish_subject(target) || target == subject {
                return Err(ApiError::message_schedules_target_invalid());
            }
            let source = self.source.as_deref().unwrap_or("");
            if !source.is_empty()
                && (source == target || source == subject || !is_valid_publish_subject(source))
            {
                return Err(ApiError::message_schedules_source_invalid());
            }
            let in_stream = |s: &str| rules.subjects.iter().any(|f| subjects_collide(f, s));
            if !in_stream(target) {
                return Err(ApiError::message_schedules_target_invalid());
            }
            if !source.is_empty() && !in_stream(source) {
                return Err(ApiError::message_schedules_source_invalid());
            }
            if let Some(r) = rollup
                && !r.is_empty()
                && r != headers::ROLLUP_SUBJECT
            {
                return Err(ApiError::message_schedules_rollup_invalid());
            }
            // nats-server computes the first firing from the publish time.
            let next = pattern
                .next(now, now)
                .ok_or_else(ApiError::message_schedules_pattern_invalid)?;
            return Ok(ScheduleAction::Schedule {
                next,
                repeats: pattern.repeats(),
            });
        }
        if let Some(next) = self.next.as_deref().filter(|n| !n.is_empty()) {
            if next != headers::SCHEDULE_NEXT_PURGE {
                return Err(ApiError::message_schedules_scheduler_invalid());
            }
            let scheduler = self.scheduler.as_deref().unwrap_or("");
            if scheduler.is_empty() || scheduler == subject || !is_valid_publish_subject(scheduler)
            {
                return Err(ApiError::message_schedules_scheduler_invalid());
            }
            if !rules.allow_schedules {
                return Err(ApiError::message_schedules_disabled());
            }
            return Ok(ScheduleAction::Purge {
                scheduler: scheduler.to_owned(),
            });
        }
        if self.scheduler.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::message_schedules_scheduler_invalid());
        }
        Ok(ScheduleAction::None)
    }
}

/// The headers of the message a firing of the schedule on `schedule_subject`
/// produces, from `source` (the schedule message's headers, or the last message of
/// `Nats-Schedule-Source`) and `schedule` (the schedule message's own headers, for
/// its TTL and rollup): nats-server's `getScheduledMessages`. `next` is the next
/// firing time of a repeating schedule (`None`: `Nats-Schedule-Next: purge`).
pub fn fired_headers(
    source: &HeaderMap,
    schedule: &HeaderMap,
    schedule_subject: &str,
    next: Option<i64>,
) -> HeaderMap {
    let mut out = HeaderMap::new();
    if let Some(status) = source.status() {
        out.set_status(status, source.description());
    }
    let strip = |k: &str| {
        starts_with_ignore_case(k, headers::SCHEDULE)
            || starts_with_ignore_case(k, headers::EXPECTED_PREFIX)
            || k.eq_ignore_ascii_case(headers::MSG_ID)
            || k.eq_ignore_ascii_case(headers::TTL)
            || k.eq_ignore_ascii_case(headers::ROLLUP)
    };
    for (k, v) in source.iter().filter(|(k, _)| !strip(k)) {
        out.append(k, v);
    }
    out.append(headers::SCHEDULER, schedule_subject);
    match next {
        None => out.append(headers::SCHEDULE_NEXT, headers::SCHEDULE_NEXT_PURGE),
        Some(t) => out.append(
            headers::SCHEDULE_NEXT,
            Timestamp::from_unix_nanos(i128::from(t)).to_string(),
        ),
    }
    if let Some(ttl) = schedule
        .get(headers::SCHEDULE_TTL)
        .filter(|t| !t.is_empty())
    {
        out.append(headers::TTL, ttl);
    }
    if let Some(r) = schedule
        .get(headers::SCHEDULE_ROLLUP)
        .filter(|r| !r.is_empty())
    {
        out.append(headers::ROLLUP, r);
    }
    out
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        i64::try_from(Timestamp::parse(s).expect("time").unix_nanos()).expect("fits")
    }

    fn show(ns: i64) -> String {
        Timestamp::from_unix_nanos(i128::from(ns)).to_string()
    }

    #[test]
    fn patterns_parse_like_nats_server() {
        let t = at("2026-01-02T03:04:05Z");
        assert_eq!(
            Pattern::parse("@at 2026-01-02T03:04:05Z", None),
            Some(Pattern::At(t))
        );
        assert_eq!(
            Pattern::parse("@at 2026-01-02T03:04:05Z", Some(&Zone::default())),
            None
        );
        assert_eq!(Pattern::parse("@at tomorrow", None), None);
        assert_eq!(
            Pattern::parse("@every 1m30s", None),
            Some(Pattern::Every(90 * SECOND))
        );
        assert_eq!(Pattern::parse("@every 500ms", None), None);
        assert_eq!(Pattern::parse("@every 1s", Some(&Zone::default())), None);
        for ok in [
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
            "*/5 * * * * *",
            "0 30 9 * jan-mar mon-fri",
            "0 0 12 1,15 * ?",
        ] {
            assert!(Pattern::parse(ok, None).is_some(), "{ok}");
            assert!(
                Pattern::parse(ok, Some(&Zone::default())).is_some(),
                "{ok} with UTC"
            );
        }
        for bad in [
            "",
            "@every",
            "@secondly",
            "* * * * *",
            "60 * * * * *",
            "* * 24 * * *",
            "* * * 0 * *",
            "* * * * 13 *",
            "* * * * * 7",
            "5-1 * * * * *",
            "*/0 * * * * *",
            "1-2-3 * * * * *",
            "-1 * * * * *",
            "x * * * * *",
        ] {
            assert_eq!(Pattern::parse(bad, None), None, "{bad:?}");
        }
    }

    #[test]
    fn every_rounds_to_the_second_and_skips_missed_periods() {
        let ts = at("2026-01-01T00:00:00.6Z");
        let p = Pattern::Every(10 * SECOND);
        assert_eq!(show(p.next(ts, ts).expect("next")), "2026-01-01T00:00:11Z");
        // Ten minutes late: fires once, one period after now.
        let now = at("2026-01-01T00:10:00.2Z");
        assert_eq!(show(p.next(ts, now).expect("next")), "2026-01-01T00:10:10Z");
    }

    #[test]
    fn cron_finds_the_next_match() {
        let cases = [
            (
                "0 0 * * * *",
                "2026-03-04T05:06:07Z",
                "2026-03-04T06:00:00Z",
            ),
            (
                "*/15 * * * * *",
                "2026-03-04T05:06:07Z",
                "2026-03-04T05:06:15Z",
            ),
            (
                "0 0 0 * * *",
                "2026-12-31T23:59:59Z",
                "2027-01-01T00:00:00Z",
            ),
            // Mondays at 09:30 (2026-03-04 is a Wednesday).
            (
                "0 30 9 * * mon",
                "2026-03-04T10:00:00Z",
                "2026-03-09T09:30:00Z",
            ),
            // Day of month OR day of week when neither is `*`.
            (
                "0 0 0 13 * 5",
                "2026-03-01T00:00:00Z",
                "2026-03-06T00:00:00Z",
            ),
            (
                "0 0 0 29 feb *",
                "2026-03-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
            ),
            ("@monthly", "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z"),
            // Strictly after: a matching second moves on.
            (
                "0 0 0 * * *",
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
            ),
        ];
        for (pattern, from, want) in cases {
            let p = Pattern::parse(pattern, None).expect(pattern);
            assert_eq!(
                show(p.next(at(from), at(from)).expect("next")),
                want,
                "{pattern} after {from}"
            );
        }
        // 30 February never comes.
        let never = Pattern::parse("0 0 0 30 2 *", None).expect("parses");
        let t = at("2026-01-01T00:00:00Z");
        assert_eq!(never.next(t, t), None);
    }

    /// Firing chains in IANA zones, across daylight-saving changes, as nats-server's
    /// `parseCron` (Go, its cron.go run with Go's zone database) computes them: each
    /// firing is the next one's start.
    #[test]
    fn zoned_cron_follows_go_across_dst() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            // Spring forward: 02:30 does not exist on 2026-03-29; Go's walk skips the day.
            (
                "0 30 2 * * *",
                "Europe/Amsterdam",
                "2026-03-28T12:00:00Z",
                &[
                    "2026-03-30T00:30:00Z",
                    "2026-03-31T00:30:00Z",
                    "2026-04-01T00:30:00Z",
                ],
            ),
            // Fall back: 02:30 happens twice on 2026-10-25 and fires twice.
            (
                "0 30 2 * * *",
                "Europe/Amsterdam",
                "2026-10-24T12:00:00Z",
                &[
                    "2026-10-25T00:30:00Z",
                    "2026-10-25T01:30:00Z",
                    "2026-10-26T01:30:00Z",
                    "2026-10-27T01:30:00Z",
                ],
            ),
            (
                "0 0 * * * *",
                "America/New_York",
                "2026-03-08T05:30:00Z",
                &[
                    "2026-03-08T06:00:00Z",
                    "2026-03-08T07:00:00Z",
                    "2026-03-08T08:00:00Z",
                    "2026-03-08T09:00:00Z",
                ],
            ),
            (
                "0 0 * * * *",
                "America/New_York",
                "2026-11-01T04:30:00Z",
                &[
                    "2026-11-01T05:00:00Z",
                    "2026-11-01T06:00:00Z",
                    "2026-11-01T07:00:00Z",
                    "2026-11-01T08:00:00Z",
                ],
            ),
            (
                "0 30 1 * * *",
                "America/New_York",
                "2026-10-31T12:00:00Z",
                &[
                    "2026-11-01T05:30:00Z",
                    "2026-11-01T06:30:00Z",
                    "2026-11-02T06:30:00Z",
                ],
            ),
            (
                "0 0 2 8 3 *",
                "America/New_York",
                "2026-03-01T00:00:00Z",
                &["2027-03-08T07:00:00Z", "2028-03-08T07:00:00Z"],
            ),
            (
                "0 0 9 * * mon-fri",
                "Asia/Tokyo",
                "2026-01-01T00:00:00Z",
                &[
                    "2026-01-02T00:00:00Z",
                    "2026-01-05T00:00:00Z",
                    "2026-01-06T00:00:00Z",
                ],
            ),
            (
                "0 0 0 * * *",
                "Asia/Kolkata",
                "2026-01-01T00:00:00Z",
                &["2026-01-01T18:30:00Z", "2026-01-02T18:30:00Z"],
            ),
            // A 30-minute daylight-saving shift.
            (
                "0 0 0 1 * *",
                "Australia/Lord_Howe",
                "2026-03-15T00:00:00Z",
                &[
                    "2026-03-31T13:00:00Z",
                    "2026-04-30T13:30:00Z",
                    "2026-05-31T13:30:00Z",
                ],
            ),
            (
                "*/20 * 2 29 3 *",
                "Europe/Amsterdam",
                "2026-03-29T00:00:00Z",
                &[
                    "2027-03-29T00:00:00Z",
                    "2027-03-29T00:00:20Z",
                    "2027-03-29T00:00:40Z",
                ],
            ),
            (
                "0 0 0 * * *",
                "UTC",
                "2026-12-31T23:59:59Z",
                &["2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z"],
            ),
        ];
        for (pattern, zone, from, want) in cases {
            let z = Zone::load(zone).expect(zone);
            let p = Pattern::parse(pattern, Some(&z)).expect(pattern);
            let mut ts = at(from);
            let mut got = Vec::new();
            for _ in 0..want.len() {
                ts = p.next(ts, ts).expect("next");
                got.push(show(ts));
            }
            assert_eq!(&got, want, "{pattern} in {zone} from {from}");
        }
    }

    /// The names Go's `time.LoadLocation` accepts (checked with Go 1.19 on Debian's
    /// zoneinfo), from the compiled-in database.
    #[test]
    fn zones_load_as_go() {
        for ok in [
            "Europe/Amsterdam",
            "US/Eastern",
            "EST",
            "CET",
            "Etc/UTC",
            "Etc/GMT+5",
            "GMT",
            "Local",
            "UTC",
            "America/Argentina/Buenos_Aires",
            "Asia/Calcutta",
        ] {
            assert!(Zone::load(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "europe/amsterdam",
            "Mars/Olympus",
            "+02:00",
            "Etc/Unknown",
            "/etc/localtime",
            "Europe/../UTC",
        ] {
            assert!(Zone::load(bad).is_none(), "{bad}");
        }
    }

    fn rules(subjects: &[String]) -> StreamRules<'_> {
        StreamRules {
            allow_schedules: true,
            allow_ttl: true,
            subjects,
        }
    }

    fn sched(pattern: &str, target: &str) -> ScheduleHeaders {
        ScheduleHeaders {
            pattern: Some(pattern.into()),
            target: Some(target.into()),
            ..ScheduleHeaders::default()
        }
    }

    #[test]
    fn publish_checks_answer_nats_servers_codes() {
        let subjects = vec!["s.>".to_owned()];
        let now = at("2026-01-01T00:00:00Z");
        let code = |h: &ScheduleHeaders, rules: StreamRules<'_>| {
            h.check_publish("s.sched", None, rules, now)
                .expect_err("refused")
                .err_code
        };
        let ok = sched("@at 2026-01-01T00:00:05Z", "s.target");
        assert_eq!(
            ok.check_publish("s.sched", None, rules(&subjects), now),
            Ok(ScheduleAction::Schedule {
                next: at("2026-01-01T00:00:05Z"),
                repeats: false
            })
        );
        let off = StreamRules {
            allow_schedules: false,
            ..rules(&subjects)
        };
        assert_eq!(code(&ok, off), 10188);
        assert_eq!(code(&sched("@at nope", "s.t"), off), 10188);
        assert_eq!(code(&sched("@at nope", "s.t"), rules(&subjects)), 10189);
        let mut h = sched("@every 1s", "s.t");
        h.ttl = Some("500ms".into());
        assert_eq!(code(&h, rules(&subjects)), 10191);
        h.ttl = Some("5s".into());
        let no_ttl = StreamRules {
            allow_ttl: false,
            ..rules(&subjects)
        };
        assert_eq!(code(&h, no_ttl), 10166);
        let mut h = sched("@every 1s", "s.t");
        h.rollup = Some("all".into());
        assert_eq!(code(&h, rules(&subjects)), 10192);
        assert_eq!(code(&sched("@every 1s", ""), rules(&subjects)), 10190);
        assert_eq!(code(&sched("@every 1s", "s.*"), rules(&subjects)), 10190);
        assert_eq!(
            code(&sched("@every 1s", "s.sched"), rules(&subjects)),
            10190
        );
        assert_eq!(code(&sched("@every 1s", "other"), rules(&subjects)), 10190);
        let mut h = sched("@every 1s", "s.t");
        h.source = Some("s.t".into());
        assert_eq!(code(&h, rules(&subjects)), 10203);
        h.source = Some("elsewhere".into());
        assert_eq!(code(&h, rules(&subjects)), 10203);
        h.source = Some("s.src".into());
        assert!(
            h.check_publish("s.sched", None, rules(&subjects), now)
                .is_ok()
        );
        assert_eq!(
            h.check_publish("s.sched", Some("all"), rules(&subjects), now)
                .expect_err("rollup all")
                .err_code,
            10192
        );
        let mut h = sched("@every 1s", "s.t");
        h.time_zone = Some(String::new());
        assert_eq!(code(&h, rules(&subjects)), 10223);
        h.time_zone = Some("UTC".into());
        assert_eq!(code(&h, rules(&subjects)), 10189);
        // A named zone is refused with @every (10189), an unknown one first (10223).
        h.time_zone = Some("Europe/Amsterdam".into());
        assert_eq!(code(&h, rules(&subjects)), 10189);
        for bad in [
            "Mars/Olympus",
            "europe/amsterdam",
            "+02:00",
            "../etc/passwd",
        ] {
            h.time_zone = Some(bad.into());
            assert_eq!(code(&h, rules(&subjects)), 10223, "{bad}");
        }
        let mut h = sched("0 30 9 * * *", "s.t");
        h.time_zone = Some("America/New_York".into());
        assert_eq!(
            h.check_publish("s.sched", None, rules(&subjects), now),
            Ok(ScheduleAction::Schedule {
                next: at("2026-01-01T14:30:00Z"),
                repeats: true
            })
        );
    }

    #[test]
    fn purge_and_scheduler_headers_are_checked() {
        let subjects = vec!["s.>".to_owned()];
        let now = 0;
        let h = |next: Option<&str>, scheduler: Option<&str>| ScheduleHeaders {
            next: next.map(Into::into),
            scheduler: scheduler.map(Into::into),
            ..ScheduleHeaders::default()
        };
        let check = |h: ScheduleHeaders| h.check_publish("s.x", None, rules(&subjects), now);
        assert_eq!(
            check(h(Some("purge"), Some("s.sched"))),
            Ok(ScheduleAction::Purge {
                scheduler: "s.sched".into()
            })
        );
        for bad in [
            h(Some("2026-01-01T00:00:00Z"), Some("s.sched")),
            h(Some("purge"), None),
            h(Some("purge"), Some("s.x")),
            h(Some("purge"), Some("s.*")),
            h(None, Some("s.sched")),
        ] {
            assert_eq!(check(bad).expect_err("refused").err_code, 10212);
        }
        assert_eq!(check(h(None, None)), Ok(ScheduleAction::None));
    }

    #[test]
    fn fired_message_headers_follow_nats_server() {
        let mut schedule = HeaderMap::new();
        schedule.append(headers::SCHEDULE, "@every 1s");
        schedule.append(headers::SCHEDULE_TARGET, "s.t");
        schedule.append(headers::SCHEDULE_TTL, "5s");
        schedule.append(headers::SCHEDULE_ROLLUP, "sub");
        schedule.append(headers::MSG_ID, "m1");
        schedule.append(headers::EXPECTED_LAST_SEQ, "3");
        schedule.append(headers::ROLLUP, "sub");
        schedule.append(headers::TTL, "1h");
        schedule.append("App", "kept");
        let next = at("2026-01-01T00:00:01.5Z");
        let out = fired_headers(&schedule, &schedule, "s.sched", Some(next));
        let got: Vec<(&str, &str)> = out.iter().collect();
        assert_eq!(
            got,
            vec![
                ("App", "kept"),
                (headers::SCHEDULER, "s.sched"),
                (headers::SCHEDULE_NEXT, "2026-01-01T00:00:01.5Z"),
                (headers::TTL, "5s"),
                (headers::ROLLUP, "sub"),
            ]
        );
        let once = fired_headers(&HeaderMap::new(), &HeaderMap::new(), "s.sched", None);
        assert_eq!(once.get(headers::SCHEDULE_NEXT), Some("purge"));
        assert_eq!(once.len(), 2);
    }
}
