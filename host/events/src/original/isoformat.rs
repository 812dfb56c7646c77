//! The original's timestamps as its hash saw them: the journal's `timestamp` read the
//! way pydantic 2 read a `datetime` field, then printed by Python's
//! `datetime.isoformat()` (`2026-01-30T09:00:00`, `…T09:00:02.000001+00:00`).

use super::pyjson::PyValue;
use leviathan_domain::clock::civil_from_days;

/// `datetime.isoformat()` of the timestamp pydantic would have parsed from `value`,
/// or why it could not have.
pub fn isoformat(value: &PyValue) -> Result<String, String> {
    match value {
        PyValue::Str(units) => {
            let text = String::from_utf16_lossy(units);
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                return unix(text.parse::<f64>().map_err(|_| "not a timestamp")?);
            }
            parse_text(&text)
        }
        PyValue::Int(digits) => unix(digits.parse::<f64>().map_err(|_| "not a timestamp")?),
        PyValue::Float(f) => unix(*f),
        _ => Err("not a date-time string or number".into()),
    }
}

/// A Unix time in seconds (in milliseconds above 2e10, as pydantic reads it), in UTC.
fn unix(seconds: f64) -> Result<String, String> {
    if !seconds.is_finite() {
        return Err("not a finite Unix time".into());
    }
    let seconds = if seconds.abs() > 2e10 {
        seconds / 1000.0
    } else {
        seconds
    };
    let whole = seconds.floor();
    let mut micro = ((seconds - whole) * 1e6).round() as u32;
    let mut whole = whole as i64;
    if micro >= 1_000_000 {
        micro -= 1_000_000;
        whole += 1;
    }
    let (days, secs) = (whole.div_euclid(86_400), whole.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if !(1..=9999).contains(&y) {
        return Err("year out of range".into());
    }
    let (h, min, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    Ok(format!(
        "{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}{}+00:00",
        fraction(micro)
    ))
}

fn fraction(micro: u32) -> String {
    if micro == 0 {
        String::new()
    } else {
        format!(".{micro:06}")
    }
}

/// A cursor over the timestamp's text.
struct Text<'a> {
    b: &'a [u8],
    i: usize,
}

impl Text<'_> {
    fn number(&mut self, width: usize, max: u32) -> Result<u32, String> {
        let field = self
            .b
            .get(self.i..self.i + width)
            .filter(|f| f.iter().all(u8::is_ascii_digit))
            .ok_or("malformed date-time")?;
        self.i += width;
        let n = field.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        if n > max {
            return Err("a date-time field is out of range".into());
        }
        Ok(n)
    }

    fn eat(&mut self, options: &[u8]) -> Option<u8> {
        let b = *self.b.get(self.i)?;
        options.contains(&b).then(|| {
            self.i += 1;
            b
        })
    }

    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn days_in(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `YYYY-MM-DD[(T|t| |_)HH:MM[:SS[(.|,)digits]][Z|z|±HH[:]MM]]`.
fn parse_text(text: &str) -> Result<String, String> {
    let mut t = Text {
        b: text.as_bytes(),
        i: 0,
    };
    let year = t.number(4, 9999)?;
    t.eat(b"-").ok_or("malformed date")?;
    let month = t.number(2, 12)?;
    t.eat(b"-").ok_or("malformed date")?;
    let day = t.number(2, 31)?;
    if year == 0 || month == 0 || day == 0 || day > days_in(year, month) {
        return Err("no such date".into());
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if t.done() {
        return Ok(format!("{date}T00:00:00"));
    }
    t.eat(b"Tt _").ok_or("malformed date-time")?;
    let hour = t.number(2, 23)?;
    t.eat(b":").ok_or("malformed time")?;
    let minute = t.number(2, 59)?;
    let mut second = 0;
    let mut micro = 0;
    if t.eat(b":").is_some() {
        second = t.number(2, 59)?;
        if t.eat(b".,").is_some() {
            let start = t.i;
            while t.b.get(t.i).is_some_and(u8::is_ascii_digit) {
                t.i += 1;
            }
            let digits = &t.b[start..t.i];
            if digits.is_empty() {
                return Err("malformed fraction of a second".into());
            }
            // Microseconds: the first six digits, padded; the rest are dropped.
            micro = (0..6).fold(0u32, |m, k| {
                m * 10 + digits.get(k).map_or(0, |d| u32::from(d - b'0'))
            });
        }
    }
    let zone = if t.done() {
        String::new()
    } else if t.eat(b"Zz").is_some() {
        "+00:00".into()
    } else {
        let sign = t.eat(b"+-").ok_or("malformed time zone")?;
        let hours = t.number(2, 23)?;
        t.eat(b":");
        let minutes = t.number(2, 59)?;
        if hours == 0 && minutes == 0 {
            "+00:00".into()
        } else {
            format!("{}{hours:02}:{minutes:02}", sign as char)
        }
    };
    if !t.done() {
        return Err("unexpected text after the date-time".into());
    }
    Ok(format!(
        "{date}T{hour:02}:{minute:02}:{second:02}{}{zone}",
        fraction(micro)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iso(text: &str) -> Result<String, String> {
        isoformat(&PyValue::Str(text.encode_utf16().collect()))
    }

    #[test]
    fn timestamps_read_as_pydantic_and_print_as_isoformat() {
        // Each expectation is `Model(t=input).t.isoformat()` with pydantic 2.13.
        for (input, python) in [
            ("2026-01-30T09:00:00.1234567", "2026-01-30T09:00:00.123456"),
            (
                "2026-01-30T09:00:00.123456789Z",
                "2026-01-30T09:00:00.123456+00:00",
            ),
            ("2026-01-30 09:00", "2026-01-30T09:00:00"),
            ("2026-01-30", "2026-01-30T00:00:00"),
            ("2026-01-30t09:00:00z", "2026-01-30T09:00:00+00:00"),
            ("2026-01-30_09:00:00", "2026-01-30T09:00:00"),
            ("2026-01-30T09:00:00+0530", "2026-01-30T09:00:00+05:30"),
            (
                "2026-01-30T09:00:00.5-00:00",
                "2026-01-30T09:00:00.500000+00:00",
            ),
            ("2026-01-30T09:00:00,5", "2026-01-30T09:00:00.500000"),
            ("2026-01-30T09:00:00.000000", "2026-01-30T09:00:00"),
            ("1769763609", "2026-01-30T09:00:09+00:00"),
        ] {
            assert_eq!(iso(input).as_deref(), Ok(python), "{input}");
        }
        for (number, python) in [
            (
                PyValue::Int("1769763609".into()),
                "2026-01-30T09:00:09+00:00",
            ),
            (
                PyValue::Float(1769763609.5),
                "2026-01-30T09:00:09.500000+00:00",
            ),
            (
                PyValue::Int("1769763609123".into()),
                "2026-01-30T09:00:09.123000+00:00",
            ),
        ] {
            assert_eq!(isoformat(&number).as_deref(), Ok(python), "{number:?}");
        }
    }

    #[test]
    fn what_pydantic_refused_is_refused() {
        for bad in [
            "2026-01-30T09:00:00-05",
            "2026-01-30T24:00:00",
            "2026-01-30T09:00:60",
            "2026-02-30",
            "2026-01-30T09:00:00 extra",
            "yesterday",
            "",
        ] {
            assert!(iso(bad).is_err(), "{bad}");
        }
        assert!(isoformat(&PyValue::Null).is_err());
    }
}
