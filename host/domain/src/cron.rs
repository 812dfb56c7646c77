//! Cron schedules for `serve`'s scheduler passes: the five standard fields
//! (minute, hour, day of month, month, day of week), in UTC, with `*`, numbers,
//! ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, and the macros `@hourly`,
//! `@daily`, `@weekly`, `@monthly`, `@yearly`; months and weekdays also by their
//! English three-letter names (`jan`, `MON-FRI`, any case). As in Vixie cron and
//! cronie, when both day fields are restricted a day matching either runs, and a day
//! field that starts with `*` (`*/2` too) is not restricted.

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    source: String,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why a schedule did not parse: names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron `{schedule}`: {field}: {message}")]
pub struct CronError {
    pub schedule: String,
    pub field: &'static str,
    pub message: String,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Each field: its name, its range, and the names standing for its first values.
const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
    ("minute", 0, 59, &[]),
    ("hour", 0, 23, &[]),
    ("day of month", 1, 31, &[]),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, WEEKDAYS),
];

fn parse_field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step `{s}`"))?,
            ),
            None => (part, 1),
        };
        let number = |s: &str| {
            let named = names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(s))
                .map(|i| min + i as u32);
            named
                .or_else(|| s.parse::<u32>().ok())
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| match (names.first(), names.last()) {
                    (Some(first), Some(last)) => format!(
                        "`{s}` is not a number from {min} to {max} or a name from `{first}` to `{last}`"
                    ),
                    _ => format!("`{s}` is not a number from {min} to {max}"),
                })
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(a)?, number(b)?);
            if a > b {
                return Err(format!("range `{range}` runs backwards"));
            }
            (a, b)
        } else {
            let n = number(range)?;
            // `5/15` means from 5 to the end, every 15.
            (n, if step > 1 { max } else { n })
        };
        let mut n = lo;
        while n <= hi {
            bits |= 1 << n;
            n += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parses a schedule.
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let source = text.trim().to_string();
        let expanded = match source.as_str() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError {
                schedule: source.clone(),
                field: "schedule",
                message: format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                    fields.len()
                ),
            });
        }
        let mut bits = [0u64; 5];
        for (i, ((name, min, max, names), text)) in FIELDS.iter().zip(&fields).enumerate() {
            bits[i] = parse_field(text, *min, *max, names).map_err(|message| CronError {
                schedule: source.clone(),
                field: name,
                message,
            })?;
        }
        // Sunday is 0 or 7.
        if bits[4] & (1 << 7) != 0 {
            bits[4] |= 1;
        }
        // Vixie cron's rule: a day field is "any day" when it starts with `*`.
        let restricted = |field: &str| !field.starts_with('*');
        let (days_restricted, weekdays_restricted) = (restricted(fields[2]), restricted(fields[4]));
        Ok(Cron {
            days_restricted,
            weekdays_restricted,
            source: source.clone(),
            minutes: bits[0],
            hours: bits[1],
            days: bits[2],
            months: bits[3],
            weekdays: bits[4],
        })
    }

    /// The schedule as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let d = self.days & (1 << day) != 0;
        let w = self.weekdays & (1 << weekday) != 0;
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => d || w,
            _ => d && w,
        }
    }

    /// The first matching minute strictly after `epoch_secs`, in seconds since the
    /// epoch; `None` if nothing matches within eight years (e.g. `0 0 31 2 *`).
    pub fn next_after(&self, epoch_secs: u64) -> Option<u64> {
        let mut minute = epoch_secs / 60 + 1;
        let limit = minute + 8 * 366 * 24 * 60;
        while minute < limit {
            let days = minute / 1440;
            let (_, month, day) = crate::clock::civil_from_days(days as i64);
            let weekday = ((days + 4) % 7) as u32; // 1970-01-01 was a Thursday
            if self.months & (1 << month) == 0 || !self.day_matches(day, weekday) {
                minute = (days + 1) * 1440;
                continue;
            }
            let hour = (minute % 1440 / 60) as u32;
            if self.hours & (1 << hour) == 0 {
                minute = (minute / 60 + 1) * 60;
                continue;
            }
            if self.minutes & (1 << (minute % 60)) != 0 {
                return Some(minute * 60);
            }
            minute += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-30T17:25:00Z, a Monday.
    const NOW: u64 = 1_796_059_500;

    #[test]
    fn steps_ranges_lists_and_macros() {
        let every5 = Cron::parse("*/5 * * * *").expect("parses");
        assert_eq!(every5.next_after(NOW), Some(NOW + 300));
        assert_eq!(every5.next_after(NOW + 1), Some(NOW + 300));
        let hourly = Cron::parse("@hourly").expect("parses");
        assert_eq!(hourly.next_after(NOW), Some(NOW + 35 * 60));
        // Weekdays at 09:30: the next is Tuesday 2026-12-01T09:30Z.
        let work = Cron::parse("30 9 * * 1-5").expect("parses");
        assert_eq!(work.next_after(NOW), Some(1_796_117_400));
        // Sunday as 7: 2026-12-06T00:00Z.
        let sunday = Cron::parse("0 0 * * 7").expect("parses");
        assert_eq!(sunday.next_after(NOW), Some(1_796_515_200));
        let list = Cron::parse("0,30 18 * * *").expect("parses");
        assert_eq!(list.next_after(NOW), Some(NOW + 35 * 60));
    }

    #[test]
    fn both_day_fields_restricted_match_either() {
        // The 1st of the month or any Monday, at midnight: Tuesday 2026-12-01 (the
        // 1st) comes before Monday 2026-12-07.
        let c = Cron::parse("0 0 1 * 1").expect("parses");
        assert_eq!(c.next_after(NOW), Some(1_796_083_200)); // 2026-12-01T00:00Z
    }

    #[test]
    fn months_and_weekdays_by_name_in_any_case() {
        for (named, numbered) in [
            ("30 9 * * MON-FRI", "30 9 * * 1-5"),
            ("0 0 * * sun", "0 0 * * 0"),
            ("0 0 * * Sat,sun", "0 0 * * 6,0"),
            ("0 0 1 JAN,jul *", "0 0 1 1,7 *"),
            ("0 0 * feb-Apr/2 *", "0 0 * 2-4/2 *"),
        ] {
            let (a, b) = (Cron::parse(named), Cron::parse(numbered));
            let (a, b) = (a.expect(named), b.expect(numbered));
            let (mut at_a, mut at_b) = (NOW, NOW);
            for _ in 0..20 {
                at_a = a.next_after(at_a).expect(named);
                at_b = b.next_after(at_b).expect(numbered);
                assert_eq!(at_a, at_b, "{named}");
            }
        }
        for bad in [
            "0 0 * * monday",
            "0 0 * * jan",
            "0 0 * sun *",
            "0 0 mon * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_day_field_starting_with_a_star_is_not_restricted() {
        // `*/2` days and Mondays, as Vixie cron reads it: odd days that are Mondays
        // (not odd days or Mondays). From Monday 2026-11-30 17:25: Monday the 7th.
        let c = Cron::parse("0 0 */2 * mon").expect("parses");
        assert_eq!(c.next_after(NOW), Some(1_796_601_600)); // 2026-12-07T00:00Z
        // Restricted without a star: either, so Tuesday 2026-12-01 (odd) is next.
        let c = Cron::parse("0 0 1-31/2 * mon").expect("parses");
        assert_eq!(c.next_after(NOW), Some(1_796_083_200));
    }

    #[test]
    fn impossible_dates_have_no_next_run() {
        assert_eq!(
            Cron::parse("0 0 31 2 *").expect("parses").next_after(NOW),
            None
        );
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("* * *", "schedule"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "minute"),
            ("5-1 * * * *", "minute"),
        ] {
            let err = Cron::parse(text).expect_err(text);
            assert_eq!(err.field, field, "{text}: {err}");
        }
    }
}
