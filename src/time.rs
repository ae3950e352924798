//! Calendar arithmetic for the timestamps API Gateway puts in events and headers.
//!
//! Owns: epoch milliseconds to the Common Log Format (`09/Apr/2015:12:34:56 +0000`) used by
//! `requestContext.requestTime`. Must not: read a clock; callers pass `now` in.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Converts days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Utc {
    /// The UTC date and time of `epoch_ms`.
    pub fn from_epoch_ms(epoch_ms: u64) -> Self {
        let secs = (epoch_ms / 1000) as i64;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        Utc {
            year,
            month,
            day,
            hour: (sod / 3600) as u32,
            minute: (sod % 3600 / 60) as u32,
            second: (sod % 60) as u32,
        }
    }

    /// The month's three-letter English name (`Jan`).
    pub fn month_abbr(&self) -> &'static str {
        MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("Jan")
    }

    /// `dd/MMM/yyyy:HH:mm:ss +0000`, the format of `$context.requestTime`.
    pub fn clf(&self) -> String {
        let month = self.month_abbr();
        let Ok(year @ 0..=9999) = u32::try_from(self.year) else {
            return format!(
                "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
                self.day, month, self.year, self.hour, self.minute, self.second
            );
        };
        // Written digit by digit: this runs for every proxied request.
        let mut out = String::with_capacity(26);
        push_digits(&mut out, self.day, 2);
        out.push('/');
        out.push_str(month);
        out.push('/');
        push_digits(&mut out, year, 4);
        for n in [self.hour, self.minute, self.second] {
            out.push(':');
            push_digits(&mut out, n, 2);
        }
        out.push_str(" +0000");
        out
    }
}

/// The last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u32, width: u32) {
    for p in (0..width).rev() {
        let digit = n / 10u32.pow(p) % 10;
        out.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

/// `EEE MMM dd HH:mm:ss 'UTC' yyyy`, the text of a Java `Date` in UTC (`Wed Dec 02 09:40:00
/// UTC 2026`): how API Gateway prints dates in claims and execution logs.
pub fn java_date(epoch_ms: u64) -> String {
    /// Weekdays from the epoch's (a Thursday).
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let t = Utc::from_epoch_ms(epoch_ms);
    let day = DAYS
        .get(((epoch_ms / 86_400_000) % 7) as usize)
        .copied()
        .unwrap_or("Thu");
    format!(
        "{day} {} {:02} {:02}:{:02}:{:02} UTC {}",
        t.month_abbr(),
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in [
            -719_468, -1, 0, 1, 59, 365, 11_016, 20_512, 20_513, 2_932_896,
        ] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn java_dates() {
        for (ms, want) in [
            (0, "Thu Jan 01 00:00:00 UTC 1970"),
            (1_428_582_896_000, "Thu Apr 09 12:34:56 UTC 2015"),
            (1_796_204_400_000, "Wed Dec 02 09:40:00 UTC 2026"),
            (951_782_400_000, "Tue Feb 29 00:00:00 UTC 2000"),
        ] {
            assert_eq!(java_date(ms), want, "{ms}");
        }
    }

    #[test]
    fn clf_table() {
        for (ms, want) in [
            (0, "01/Jan/1970:00:00:00 +0000"),
            (1_428_582_896_000, "09/Apr/2015:12:34:56 +0000"),
            (951_782_400_000, "29/Feb/2000:00:00:00 +0000"),
            (1_798_761_599_999, "31/Dec/2026:23:59:59 +0000"),
            (253_402_300_799_000, "31/Dec/9999:23:59:59 +0000"),
            (253_402_300_800_000, "01/Jan/10000:00:00:00 +0000"),
            (1_005_829_200_000, "15/Nov/2001:13:00:00 +0000"),
        ] {
            assert_eq!(Utc::from_epoch_ms(ms).clf(), want, "{ms}");
        }
    }
}
