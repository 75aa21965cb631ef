//! Report periods: half-open intervals [start, end) whose bounds are
//! midnights in the reporting time zone (`kpi.timezone`, default UTC) — a
//! calendar month, an ISO week, a day — or an arbitrary range; the period
//! just before each; and their labels (`2026-11`, `2026-W48`, `2026-11-30`),
//! which the command line, the admin API and the digests share.

use chrono::{Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use secmetrics_connectors::Time;
use std::fmt;

/// Why a period could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeriodError {
    /// Not `YYYY-MM`, or a month out of range.
    #[error("`{0}` is not a month of the form YYYY-MM")]
    BadMonth(String),
    /// Not one of the period forms.
    #[error(
        "`{0}` is not a period of the form YYYY-MM (a month), YYYY-Www (an ISO week, \
         e.g. 2026-W48) or YYYY-MM-DD (a day)"
    )]
    BadPeriod(String),
    /// `end` is not after `start`.
    #[error("the period must end after it starts ({start} .. {end})")]
    Empty {
        /// Start given.
        start: Time,
        /// End given.
        end: Time,
    },
}

/// What kind of period this is; it decides what "previous" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodKind {
    /// A calendar month.
    Month {
        /// Year.
        year: i32,
        /// Month, 1 to 12.
        month: u32,
    },
    /// An ISO week, Monday to Monday.
    Week {
        /// ISO week-numbering year.
        year: i32,
        /// Week, 1 to 53.
        week: u32,
    },
    /// A calendar day.
    Day {
        /// The date.
        date: NaiveDate,
    },
    /// An arbitrary range.
    Range,
}

/// The calendar units a period can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A calendar month.
    Month,
    /// An ISO week (Monday to Monday).
    Week,
    /// A day.
    Day,
}

/// A half-open interval [start, end); calendar periods start and end at
/// midnights in `zone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant inside.
    pub start: Time,
    /// First instant after.
    pub end: Time,
    /// Month, week, day or range.
    pub kind: PeriodKind,
    /// The time zone whose midnights bound the period.
    pub zone: Tz,
}

/// The first instant of `date` in `zone`: its midnight, or, where a
/// daylight-saving change skips midnight, the first local time that exists.
pub fn midnight(zone: Tz, date: NaiveDate) -> Time {
    let mut local = date.and_time(NaiveTime::MIN);
    // Gaps are at most a few hours; step through them a quarter at a time.
    for _ in 0..(4 * 24) {
        if let Some(t) = zone.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += chrono::Duration::minutes(15);
    }
    // No zone skips a whole day at midnight; fall back to UTC midnight.
    date.and_time(NaiveTime::MIN).and_utc()
}

fn first_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, 1)
}

fn month_after(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn month_before(year: i32, month: u32) -> (i32, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

impl Period {
    /// The calendar month `year`-`month` in UTC; `None` for a month out of range.
    pub fn month(year: i32, month: u32) -> Option<Period> {
        Period::month_in(year, month, Tz::UTC)
    }

    /// The calendar month `year`-`month` between midnights in `zone`.
    pub fn month_in(year: i32, month: u32, zone: Tz) -> Option<Period> {
        let first = first_of_month(year, month)?;
        let (ny, nm) = month_after(year, month);
        let next = first_of_month(ny, nm)?;
        Some(Period {
            start: midnight(zone, first),
            end: midnight(zone, next),
            kind: PeriodKind::Month { year, month },
            zone,
        })
    }

    /// The ISO week `week` of ISO year `year` (Monday to Monday) in `zone`.
    pub fn week_in(year: i32, week: u32, zone: Tz) -> Option<Period> {
        let monday = NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)?;
        let next = monday.checked_add_days(Days::new(7))?;
        Some(Period {
            start: midnight(zone, monday),
            end: midnight(zone, next),
            kind: PeriodKind::Week { year, week },
            zone,
        })
    }

    /// The day `date` in `zone`.
    pub fn day_in(date: NaiveDate, zone: Tz) -> Option<Period> {
        let next = date.succ_opt()?;
        Some(Period {
            start: midnight(zone, date),
            end: midnight(zone, next),
            kind: PeriodKind::Day { date },
            zone,
        })
    }

    /// Parse `YYYY-MM` (UTC).
    pub fn parse_month(text: &str) -> Result<Period, PeriodError> {
        match Period::parse(text, Tz::UTC) {
            Ok(p) if matches!(p.kind, PeriodKind::Month { .. }) => Ok(p),
            _ => Err(PeriodError::BadMonth(text.to_string())),
        }
    }

    /// Parse a period label in `zone`: `YYYY-MM`, `YYYY-Www` or `YYYY-MM-DD`.
    pub fn parse(text: &str, zone: Tz) -> Result<Period, PeriodError> {
        let bad = || PeriodError::BadPeriod(text.to_string());
        let t = text.trim();
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = t.split('-').collect();
        match parts.as_slice() {
            [y, m] if digits(y, 4) && digits(m, 2) => Period::month_in(
                y.parse().map_err(|_| bad())?,
                m.parse().map_err(|_| bad())?,
                zone,
            )
            .ok_or_else(bad),
            [y, w] if digits(y, 4) && w.len() == 3 && w.starts_with('W') && digits(&w[1..], 2) => {
                Period::week_in(
                    y.parse().map_err(|_| bad())?,
                    w[1..].parse().map_err(|_| bad())?,
                    zone,
                )
                .ok_or_else(bad)
            }
            [y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2) => {
                let date = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| bad())?;
                Period::day_in(date, zone).ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }

    /// An arbitrary range [start, end) (labelled in UTC).
    pub fn range(start: Time, end: Time) -> Result<Period, PeriodError> {
        Period::range_in(start, end, Tz::UTC)
    }

    /// An arbitrary range [start, end), labelled with dates in `zone`.
    pub fn range_in(start: Time, end: Time, zone: Tz) -> Result<Period, PeriodError> {
        if end <= start {
            return Err(PeriodError::Empty { start, end });
        }
        Ok(Period {
            start,
            end,
            kind: PeriodKind::Range,
            zone,
        })
    }

    /// The last calendar month (UTC) that ended at or before `now`.
    pub fn last_complete_month(now: Time) -> Period {
        Period::last_complete(Unit::Month, now, Tz::UTC)
    }

    /// The last period of `unit` in `zone` that ended at or before `now`:
    /// what a person there calls last month, last week or yesterday. The
    /// period containing `now` has not ended, so it is the one before that.
    pub fn last_complete(unit: Unit, now: Time, zone: Tz) -> Period {
        let today = now.with_timezone(&zone).date_naive();
        let current = match unit {
            Unit::Month => Period::month_in(today.year(), today.month(), zone),
            Unit::Week => {
                let w = today.iso_week();
                Period::week_in(w.year(), w.week(), zone)
            }
            Unit::Day => Period::day_in(today, zone),
        };
        // Any date of chrono's range has its period; fall back to an empty
        // range only in the impossible case, rather than panic.
        current.map(|p| p.previous()).unwrap_or(Period {
            start: now,
            end: now,
            kind: PeriodKind::Range,
            zone,
        })
    }

    /// The calendar unit of this period (`None` for a range).
    pub fn unit(&self) -> Option<Unit> {
        match self.kind {
            PeriodKind::Month { .. } => Some(Unit::Month),
            PeriodKind::Week { .. } => Some(Unit::Week),
            PeriodKind::Day { .. } => Some(Unit::Day),
            PeriodKind::Range => None,
        }
    }

    /// The period of the same kind just before: the previous month, week
    /// or day (in the same zone, whatever its length in hours), the same
    /// length ending at `start` for a range.
    pub fn previous(&self) -> Period {
        let same_length = || Period {
            start: earlier(self.start, self.end - self.start),
            end: self.start,
            kind: PeriodKind::Range,
            zone: self.zone,
        };
        let calendar = match self.kind {
            PeriodKind::Month { year, month } => {
                let (py, pm) = month_before(year, month);
                Period::month_in(py, pm, self.zone)
            }
            PeriodKind::Week { year, week } => NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)
                .and_then(|d| d.checked_sub_days(Days::new(7)))
                .and_then(|d| {
                    let w = d.iso_week();
                    Period::week_in(w.year(), w.week(), self.zone)
                }),
            PeriodKind::Day { date } => date.pred_opt().and_then(|d| Period::day_in(d, self.zone)),
            PeriodKind::Range => None,
        };
        calendar.unwrap_or_else(same_length)
    }

    /// True when `t` is in [start, end).
    pub fn contains(&self, t: Time) -> bool {
        self.start <= t && t < self.end
    }

    /// Short label: `2026-10` for a month, `2026-W48` for a week,
    /// `2026-11-30` for a day, `start..end` dates (in the zone) otherwise.
    pub fn label(&self) -> String {
        match self.kind {
            PeriodKind::Month { year, month } => format!("{year:04}-{month:02}"),
            PeriodKind::Week { year, week } => format!("{year:04}-W{week:02}"),
            PeriodKind::Day { date } => date.format("%Y-%m-%d").to_string(),
            PeriodKind::Range => format!(
                "{}..{}",
                self.start.with_timezone(&self.zone).format("%Y-%m-%d"),
                self.end.with_timezone(&self.zone).format("%Y-%m-%d")
            ),
        }
    }

    /// The first and last day inside the period, in its zone (for "1 to 30
    /// November" style text).
    pub fn local_days(&self) -> (NaiveDate, NaiveDate) {
        let first = self.start.with_timezone(&self.zone).date_naive();
        let last = (self.end - chrono::Duration::nanoseconds(1))
            .with_timezone(&self.zone)
            .date_naive();
        (first, last)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// `t - d`, saturating at the earliest representable time instead of
/// panicking (a long history of wide ranges can reach it).
fn earlier(t: Time, d: chrono::TimeDelta) -> Time {
    t.checked_sub_signed(d)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// RFC 3339 with whole seconds and `Z`, the spelling of the JSON contract.
pub fn rfc3339(t: &Time) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        s.parse().expect("test time")
    }

    const TOKYO: Tz = chrono_tz::Asia::Tokyo;
    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn a_month_is_half_open_from_its_first_to_the_next_first() {
        let p = Period::parse_month("2026-10").unwrap();
        assert_eq!(p.start, t("2026-10-01T00:00:00Z"));
        assert_eq!(p.end, t("2026-11-01T00:00:00Z"));
        assert!(p.contains(t("2026-10-01T00:00:00Z")));
        assert!(!p.contains(t("2026-11-01T00:00:00Z")));
        assert!(p.contains(t("2026-10-31T23:59:59Z")));
    }

    #[test]
    fn a_month_in_tokyo_runs_between_tokyo_midnights() {
        // kpi-spec "Conventions": --period 2026-10 in Asia/Tokyo.
        let p = Period::parse("2026-10", TOKYO).unwrap();
        assert_eq!(p.start, t("2026-09-30T15:00:00Z"));
        assert_eq!(p.end, t("2026-10-31T15:00:00Z"));
        assert_eq!(p.label(), "2026-10");
        assert_eq!(p.previous().start, t("2026-08-31T15:00:00Z"));
        assert_eq!(p.previous().end, p.start);
    }

    #[test]
    fn weeks_and_days_have_their_own_forms() {
        let w = Period::parse("2026-W48", Tz::UTC).unwrap();
        assert_eq!(w.start, t("2026-11-23T00:00:00Z"));
        assert_eq!(w.end, t("2026-11-30T00:00:00Z"));
        assert_eq!(w.label(), "2026-W48");
        assert_eq!(w.previous().label(), "2026-W47");
        // ISO week 1 of 2027 starts on Monday 4 January; the week before is
        // 2026-W53.
        let first = Period::parse("2027-W01", Tz::UTC).unwrap();
        assert_eq!(first.start, t("2027-01-04T00:00:00Z"));
        assert_eq!(first.previous().label(), "2026-W53");
        let d = Period::parse("2026-11-30", Tz::UTC).unwrap();
        assert_eq!(d.start, t("2026-11-30T00:00:00Z"));
        assert_eq!(d.end, t("2026-12-01T00:00:00Z"));
        assert_eq!(d.label(), "2026-11-30");
        assert_eq!(d.previous().label(), "2026-11-29");
        let jan1 = Period::parse("2027-01-01", TOKYO).unwrap();
        assert_eq!(jan1.start, t("2026-12-31T15:00:00Z"));
        assert_eq!(jan1.previous().label(), "2026-12-31");
    }

    #[test]
    fn a_day_with_a_clock_change_has_its_local_length() {
        // Berlin leaves summer time on 25 October 2026: that day has 25 hours.
        let d = Period::parse("2026-10-25", BERLIN).unwrap();
        assert_eq!(d.start, t("2026-10-24T22:00:00Z"));
        assert_eq!(d.end, t("2026-10-25T23:00:00Z"));
        assert_eq!(d.previous().end, d.start);
        assert_eq!(d.previous().start, t("2026-10-23T22:00:00Z"));
        // A zone whose midnight is skipped starts the day at 01:00
        // (Santiago, 6 September 2026).
        let s = Period::parse("2026-09-06", chrono_tz::America::Santiago).unwrap();
        assert_eq!(s.start, t("2026-09-06T04:00:00Z"));
    }

    #[test]
    fn the_last_complete_period_is_what_people_in_the_zone_call_last() {
        // 08:00 on 1 December in Tokyo is 23:00 UTC on 30 November.
        let fire = t("2026-11-30T23:00:00Z");
        assert_eq!(
            Period::last_complete(Unit::Month, fire, TOKYO).label(),
            "2026-11"
        );
        // In UTC November has not ended then: the last complete is October.
        assert_eq!(
            Period::last_complete(Unit::Month, fire, Tz::UTC).label(),
            "2026-10"
        );
        // Monday 08:00 in Tokyo (Sunday 23:00 UTC): the week that ended
        // eight hours before, not the one before it.
        let monday = t("2026-11-29T23:00:00Z");
        let w = Period::last_complete(Unit::Week, monday, TOKYO);
        assert_eq!(w.label(), "2026-W48");
        assert_eq!(w.end, t("2026-11-29T15:00:00Z"));
        assert!(w.end <= monday);
        assert_eq!(
            Period::last_complete(Unit::Day, fire, TOKYO).label(),
            "2026-11-30"
        );
        // Exactly at a boundary, the period that just ended is complete.
        let midnight = t("2026-12-01T00:00:00Z");
        assert_eq!(
            Period::last_complete(Unit::Day, midnight, Tz::UTC).label(),
            "2026-11-30"
        );
        assert_eq!(
            Period::last_complete(Unit::Month, midnight, Tz::UTC).label(),
            "2026-11"
        );
    }

    #[test]
    fn december_rolls_into_the_next_year_and_january_back() {
        let dec = Period::month(2026, 12).unwrap();
        assert_eq!(dec.end, t("2027-01-01T00:00:00Z"));
        let jan = Period::month(2027, 1).unwrap();
        assert_eq!(jan.previous(), dec);
    }

    #[test]
    fn previous_of_a_range_has_the_same_length() {
        let p = Period::range(t("2026-10-10T00:00:00Z"), t("2026-10-20T00:00:00Z")).unwrap();
        let q = p.previous();
        assert_eq!(q.start, t("2026-09-30T00:00:00Z"));
        assert_eq!(q.end, p.start);
        assert_eq!(p.label(), "2026-10-10..2026-10-20");
    }

    #[test]
    fn last_complete_month_is_the_month_before_now() {
        let p = Period::last_complete_month(t("2026-11-01T00:00:00Z"));
        assert_eq!(p.label(), "2026-10");
        let p = Period::last_complete_month(t("2026-01-15T08:00:00Z"));
        assert_eq!(p.label(), "2025-12");
    }

    #[test]
    fn bad_periods_are_rejected() {
        for bad in ["2026-13", "2026-1", "26-10", "2026/10", ""] {
            assert!(Period::parse_month(bad).is_err(), "{bad}");
        }
        for bad in [
            "2026-W54",
            "2026-W0",
            "2026-W00",
            "2026-02-30",
            "2026-w48",
            "2026-11-3",
        ] {
            let e = Period::parse(bad, Tz::UTC).unwrap_err();
            assert!(e.to_string().contains("YYYY-Www"), "{bad}: {e}");
        }
        assert!(Period::parse_month("2026-W48").is_err());
        assert!(Period::range(t("2026-10-10T00:00:00Z"), t("2026-10-10T00:00:00Z")).is_err());
    }
}
