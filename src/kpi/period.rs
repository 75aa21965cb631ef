//! Report periods: half-open UTC intervals [start, end), a calendar month
//! or an arbitrary range, and the period just before each.

use chrono::{Datelike, TimeZone, Utc};
use secmetrics_connectors::Time;
use std::fmt;

/// Why a period could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeriodError {
    /// Not `YYYY-MM`, or a month out of range.
    #[error("`{0}` is not a month of the form YYYY-MM")]
    BadMonth(String),
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
    /// An arbitrary range.
    Range,
}

/// A half-open interval [start, end) in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant inside.
    pub start: Time,
    /// First instant after.
    pub end: Time,
    /// Month or range.
    pub kind: PeriodKind,
}

fn month_start(year: i32, month: u32) -> Option<Time> {
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single()
}

impl Period {
    /// The calendar month `year`-`month`; `None` for a month out of range.
    pub fn month(year: i32, month: u32) -> Option<Period> {
        let start = month_start(year, month)?;
        let (ny, nm) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end = month_start(ny, nm)?;
        Some(Period {
            start,
            end,
            kind: PeriodKind::Month { year, month },
        })
    }

    /// Parse `YYYY-MM`.
    pub fn parse_month(text: &str) -> Result<Period, PeriodError> {
        let bad = || PeriodError::BadMonth(text.to_string());
        let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        Period::month(year, month).ok_or_else(bad)
    }

    /// An arbitrary range [start, end).
    pub fn range(start: Time, end: Time) -> Result<Period, PeriodError> {
        if end <= start {
            return Err(PeriodError::Empty { start, end });
        }
        Ok(Period {
            start,
            end,
            kind: PeriodKind::Range,
        })
    }

    /// The last calendar month that ended at or before `now`.
    pub fn last_complete_month(now: Time) -> Period {
        let (y, m) = (now.year(), now.month());
        let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
        // Any month of chrono's range is valid; fall back to a range only in
        // the impossible case, rather than panic.
        Period::month(py, pm).unwrap_or(Period {
            start: now,
            end: now,
            kind: PeriodKind::Range,
        })
    }

    /// The period of the same kind just before: the previous month for a
    /// month, the same length ending at `start` for a range.
    pub fn previous(&self) -> Period {
        match self.kind {
            PeriodKind::Month { year, month } => {
                let (py, pm) = if month == 1 {
                    (year - 1, 12)
                } else {
                    (year, month - 1)
                };
                Period::month(py, pm).unwrap_or(Period {
                    start: earlier(self.start, self.end - self.start),
                    end: self.start,
                    kind: PeriodKind::Range,
                })
            }
            PeriodKind::Range => Period {
                start: earlier(self.start, self.end - self.start),
                end: self.start,
                kind: PeriodKind::Range,
            },
        }
    }

    /// True when `t` is in [start, end).
    pub fn contains(&self, t: Time) -> bool {
        self.start <= t && t < self.end
    }

    /// Short label: `2026-10` for a month, `start..end` dates otherwise.
    pub fn label(&self) -> String {
        match self.kind {
            PeriodKind::Month { year, month } => format!("{year:04}-{month:02}"),
            PeriodKind::Range => format!(
                "{}..{}",
                self.start.format("%Y-%m-%d"),
                self.end.format("%Y-%m-%d")
            ),
        }
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
    }

    #[test]
    fn last_complete_month_is_the_month_before_now() {
        let p = Period::last_complete_month(t("2026-11-01T00:00:00Z"));
        assert_eq!(p.label(), "2026-10");
        let p = Period::last_complete_month(t("2026-01-15T08:00:00Z"));
        assert_eq!(p.label(), "2025-12");
    }

    #[test]
    fn bad_months_are_rejected() {
        for bad in ["2026-13", "2026-1", "26-10", "2026/10", ""] {
            assert!(Period::parse_month(bad).is_err(), "{bad}");
        }
        assert!(Period::range(t("2026-10-10T00:00:00Z"), t("2026-10-10T00:00:00Z")).is_err());
    }
}
