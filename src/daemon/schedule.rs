//! Cron schedules in a configured time zone: when each job fires next, and
//! whether a fire was missed while the daemon was down (catch-up).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::str::FromStr;

/// A parsed 6-field cron expression (seconds first) in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    schedule: cron::Schedule,
    tz: Tz,
}

impl CronSchedule {
    /// Parse `expr` in time zone `tz` (IANA name); errors are plain sentences.
    pub fn parse(expr: &str, tz: &str) -> Result<CronSchedule, String> {
        let tz = Tz::from_str(tz).map_err(|_| format!("unknown time zone {tz:?}"))?;
        if expr.split_whitespace().count() < 6 {
            return Err(format!(
                "cron expression {expr:?} needs 6 fields (seconds first), e.g. \"0 0 8 * * Mon\""
            ));
        }
        let schedule = cron::Schedule::from_str(expr)
            .map_err(|e| format!("cron expression {expr:?} is invalid: {e}"))?;
        Ok(CronSchedule { schedule, tz })
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&t.with_timezone(&self.tz))
            .next()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The last fire time at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // `after(t)` iterated backwards walks the fire times before t.
        let probe = t + chrono::Duration::seconds(1);
        self.schedule
            .after(&probe.with_timezone(&self.tz))
            .next_back()
            .map(|d| d.with_timezone(&Utc))
            .filter(|d| *d <= t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_and_last_fire_times_follow_the_time_zone() {
        // 08:00 in Berlin is 07:00 UTC in winter.
        let s = CronSchedule::parse("0 0 8 * * *", "Europe/Berlin").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 7, 30, 0).unwrap();
        assert_eq!(
            s.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap())
        );
        assert_eq!(
            s.last_at_or_before(t),
            Some(Utc.with_ymd_and_hms(2026, 11, 30, 7, 0, 0).unwrap())
        );
        let exact = Utc.with_ymd_and_hms(2026, 11, 30, 7, 0, 0).unwrap();
        assert_eq!(s.last_at_or_before(exact), Some(exact));
    }

    #[test]
    fn bad_expressions_and_zones_are_plain_errors() {
        assert!(CronSchedule::parse("0 8 * * *", "UTC")
            .unwrap_err()
            .contains("6 fields"));
        assert!(CronSchedule::parse("0 0 8 * * *", "Mars/Base")
            .unwrap_err()
            .contains("time zone"));
    }
}
