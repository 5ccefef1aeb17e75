//! Auto-partitioning by time, as Fluss offers it: a table whose one partition-key column holds
//! a time period (`partition.auto=true`, `partition.time-unit=hour|day|month|year`) has the
//! partition of the current period and the next `partition.precreate` ones created ahead of
//! the rows that fill them, and, with `partition.retain=N`, partitions of periods more than
//! N before the current one dropped with their data. The compactor applies it on its
//! (injected) clock.
//!
//! A period is named in UTC: hour `2026-12-07-13`, day `2026-12-07`, month `2026-12`, year
//! `2026`. A day-partitioned table may use a date column (whose partition names are the same
//! text); the others use a string column. Partitions whose name is not a period of the unit
//! (created by hand) are never dropped by age.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

use crate::ids::TimestampMicros;

/// Table option: `true` turns auto-partitioning on (needs one partition-key column).
pub const OPTION_PARTITION_AUTO: &str = "partition.auto";
/// Table option: the period of one partition, `hour`, `day`, `month` or `year`.
pub const OPTION_PARTITION_TIME_UNIT: &str = "partition.time-unit";
/// Table option: how many partitions after the current period's exist ahead of time
/// (default [`DEFAULT_PRECREATE`]).
pub const OPTION_PARTITION_PRECREATE: &str = "partition.precreate";
/// Table option: how many partitions before the current period's are kept; older ones are
/// dropped with their data. Absent: none is dropped.
pub const OPTION_PARTITION_RETAIN: &str = "partition.retain";

/// The auto-partitioning options.
pub const AUTO_PARTITION_OPTIONS: [&str; 4] = [
    OPTION_PARTITION_AUTO,
    OPTION_PARTITION_TIME_UNIT,
    OPTION_PARTITION_PRECREATE,
    OPTION_PARTITION_RETAIN,
];

/// Default of [`OPTION_PARTITION_PRECREATE`] (Fluss's).
pub const DEFAULT_PRECREATE: u32 = 2;
/// Most partitions created ahead: they are created in one request.
pub const MAX_PRECREATE: u32 = 32;

const MICROS_PER_HOUR: i64 = 3_600_000_000;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
/// Days from 0001-01-01 (chrono's day 1) to the Unix epoch.
const EPOCH_DAYS_FROM_CE: i64 = 719_163;

/// The period one partition of an auto-partitioned table covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Hour,
    Day,
    Month,
    Year,
}

impl TimeUnit {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            "year" => Some(Self::Year),
            _ => None,
        }
    }
}

/// A table's auto-partitioning, parsed from its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoPartition {
    pub unit: TimeUnit,
    pub precreate: u32,
    pub retain: Option<u32>,
}

/// An auto-partitioning option that is wrong: its key, its value, and why.
pub type OptionError = (&'static str, String, String);

impl AutoPartition {
    /// The auto-partitioning `options` ask for: `None` without `partition.auto=true`, when
    /// the other `partition.*` options must be absent too.
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Option<Self>, OptionError> {
        let get = |key: &'static str| options.get(key).map(|v| (key, v.trim()));
        let invalid = |(key, value): (&'static str, &str), reason: &str| {
            (key, value.to_owned(), reason.to_owned())
        };
        match get(OPTION_PARTITION_AUTO) {
            Some((_, "true")) => {}
            None | Some((_, "false")) => {
                return match AUTO_PARTITION_OPTIONS[1..].iter().find_map(|key| get(key)) {
                    Some(option) => Err(invalid(option, "needs `partition.auto=true`")),
                    None => Ok(None),
                };
            }
            Some(option) => return Err(invalid(option, "expected `true` or `false`")),
        }
        let unit = match get(OPTION_PARTITION_TIME_UNIT) {
            None => {
                return Err(invalid(
                    (OPTION_PARTITION_TIME_UNIT, ""),
                    "auto-partitioning needs a time unit: hour, day, month or year",
                ));
            }
            Some(option) => TimeUnit::parse(option.1)
                .ok_or_else(|| invalid(option, "expected hour, day, month or year"))?,
        };
        let count = |option: (&'static str, &str), max: u32| {
            option
                .1
                .parse::<u32>()
                .ok()
                .filter(|count| *count <= max)
                .ok_or_else(|| invalid(option, &format!("expected a count from 0 to {max}")))
        };
        let precreate = match get(OPTION_PARTITION_PRECREATE) {
            None => DEFAULT_PRECREATE,
            Some(option) => count(option, MAX_PRECREATE)?,
        };
        let retain = get(OPTION_PARTITION_RETAIN)
            .map(|option| count(option, u32::MAX))
            .transpose()?;
        Ok(Some(Self {
            unit,
            precreate,
            retain,
        }))
    }

    /// The number of the period holding `at`: hours or days since the epoch, months or years
    /// since year 0.
    fn period_of(&self, at: TimestampMicros) -> i64 {
        let days = at.0.div_euclid(MICROS_PER_DAY);
        let date = date_of(days);
        match self.unit {
            TimeUnit::Hour => at.0.div_euclid(MICROS_PER_HOUR),
            TimeUnit::Day => days,
            TimeUnit::Month => i64::from(date.year()) * 12 + i64::from(date.month0()),
            TimeUnit::Year => i64::from(date.year()),
        }
    }

    /// The partition name of period `period`.
    fn name_of(&self, period: i64) -> String {
        match self.unit {
            TimeUnit::Hour => {
                let date = date_of(period.div_euclid(24));
                format!("{}-{:02}", day_name(date), period.rem_euclid(24))
            }
            TimeUnit::Day => day_name(date_of(period)),
            TimeUnit::Month => format!(
                "{:04}-{:02}",
                period.div_euclid(12),
                period.rem_euclid(12) + 1
            ),
            TimeUnit::Year => format!("{period:04}"),
        }
    }

    /// The period a partition name stands for; `None` for a name that is not one.
    fn period_named(&self, name: &str) -> Option<i64> {
        let number = |text: &str, len: usize| {
            (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse::<u32>().ok())
                .flatten()
        };
        let parts: Vec<&str> = name.split('-').collect();
        let day = |parts: &[&str]| -> Option<i64> {
            let date = NaiveDate::from_ymd_opt(
                i32::try_from(number(parts[0], 4)?).ok()?,
                number(parts[1], 2)?,
                number(parts[2], 2)?,
            )?;
            Some(i64::from(date.num_days_from_ce()) - EPOCH_DAYS_FROM_CE)
        };
        match (self.unit, parts.len()) {
            (TimeUnit::Hour, 4) => {
                let hour = number(parts[3], 2).filter(|h| *h < 24)?;
                Some(day(&parts[..3])? * 24 + i64::from(hour))
            }
            (TimeUnit::Day, 3) => day(&parts),
            (TimeUnit::Month, 2) => {
                let month = number(parts[1], 2).filter(|m| (1..=12).contains(m))?;
                Some(i64::from(number(parts[0], 4)?) * 12 + i64::from(month) - 1)
            }
            (TimeUnit::Year, 1) => Some(i64::from(number(parts[0], 4)?)),
            _ => None,
        }
    }

    /// The partitions that must exist at `now`: the current period's and the next
    /// `precreate`, in time order.
    pub fn wanted(&self, now: TimestampMicros) -> Vec<String> {
        let current = self.period_of(now);
        (current..=current + i64::from(self.precreate))
            .map(|period| self.name_of(period))
            .collect()
    }

    /// Whether the partition `name` is past retention at `now`: it names a period more than
    /// `retain` periods before the current one.
    pub fn expired(&self, name: &str, now: TimestampMicros) -> bool {
        let Some(retain) = self.retain else {
            return false;
        };
        self.period_named(name)
            .is_some_and(|period| period < self.period_of(now) - i64::from(retain))
    }
}

fn date_of(days_since_epoch: i64) -> NaiveDate {
    i32::try_from(days_since_epoch + EPOCH_DAYS_FROM_CE)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or(NaiveDate::MAX)
}

fn day_name(date: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(unit: &str, precreate: &str, retain: Option<&str>) -> AutoPartition {
        let mut options = BTreeMap::from([
            (OPTION_PARTITION_AUTO.to_owned(), "true".to_owned()),
            (OPTION_PARTITION_TIME_UNIT.to_owned(), unit.to_owned()),
            (OPTION_PARTITION_PRECREATE.to_owned(), precreate.to_owned()),
        ]);
        if let Some(retain) = retain {
            options.insert(OPTION_PARTITION_RETAIN.to_owned(), retain.to_owned());
        }
        AutoPartition::parse(&options)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("valid options {options:?}"))
    }

    /// 2026-12-31T23:30:00Z.
    const NEW_YEARS_EVE: TimestampMicros = TimestampMicros(1_798_759_800_000_000);

    #[test]
    fn each_unit_names_the_current_and_next_periods() {
        assert_eq!(
            auto("hour", "2", None).wanted(NEW_YEARS_EVE),
            ["2026-12-31-23", "2027-01-01-00", "2027-01-01-01"]
        );
        assert_eq!(
            auto("day", "1", None).wanted(NEW_YEARS_EVE),
            ["2026-12-31", "2027-01-01"]
        );
        assert_eq!(
            auto("month", "1", None).wanted(NEW_YEARS_EVE),
            ["2026-12", "2027-01"]
        );
        assert_eq!(auto("year", "0", None).wanted(NEW_YEARS_EVE), ["2026"]);
    }

    #[test]
    fn partitions_older_than_retention_expire_and_others_never() {
        let daily = auto("day", "2", Some("2"));
        assert!(daily.expired("2026-12-28", NEW_YEARS_EVE));
        assert!(!daily.expired("2026-12-29", NEW_YEARS_EVE));
        assert!(!daily.expired("2027-01-02", NEW_YEARS_EVE));
        for not_a_day in [
            "2026-12",
            "2026-13-01",
            "2026-02-30",
            "x",
            "2026-1-01",
            "+2026-01-01",
        ] {
            assert!(!daily.expired(not_a_day, NEW_YEARS_EVE), "{not_a_day}");
        }
        let monthly = auto("month", "0", Some("0"));
        assert!(monthly.expired("2026-11", NEW_YEARS_EVE));
        assert!(!monthly.expired("2026-12", NEW_YEARS_EVE));
        let hourly = auto("hour", "0", Some("24"));
        assert!(hourly.expired("2026-12-30-22", NEW_YEARS_EVE));
        assert!(!hourly.expired("2026-12-30-23", NEW_YEARS_EVE));
        assert!(!auto("day", "2", None).expired("1999-01-01", NEW_YEARS_EVE));
    }

    #[test]
    fn every_name_it_makes_reads_back_as_its_period() {
        for unit in ["hour", "day", "month", "year"] {
            let auto = auto(unit, "0", Some("0"));
            for step in 0..100 {
                let at = TimestampMicros(NEW_YEARS_EVE.0 + step * 7 * MICROS_PER_HOUR);
                let period = auto.period_of(at);
                assert_eq!(
                    auto.period_named(&auto.name_of(period)),
                    Some(period),
                    "{unit}"
                );
            }
        }
    }

    #[test]
    fn options_are_checked() {
        let parse = |pairs: &[(&str, &str)]| {
            AutoPartition::parse(
                &pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&[(OPTION_PARTITION_AUTO, "false")]), Ok(None));
        for (pairs, key) in [
            (
                vec![(OPTION_PARTITION_RETAIN, "3")],
                OPTION_PARTITION_RETAIN,
            ),
            (vec![(OPTION_PARTITION_AUTO, "yes")], OPTION_PARTITION_AUTO),
            (
                vec![(OPTION_PARTITION_AUTO, "true")],
                OPTION_PARTITION_TIME_UNIT,
            ),
            (
                vec![
                    (OPTION_PARTITION_AUTO, "true"),
                    (OPTION_PARTITION_TIME_UNIT, "week"),
                ],
                OPTION_PARTITION_TIME_UNIT,
            ),
            (
                vec![
                    (OPTION_PARTITION_AUTO, "true"),
                    (OPTION_PARTITION_TIME_UNIT, "day"),
                    (OPTION_PARTITION_PRECREATE, "33"),
                ],
                OPTION_PARTITION_PRECREATE,
            ),
        ] {
            assert!(
                matches!(parse(&pairs), Err((k, _, _)) if k == key),
                "{pairs:?}"
            );
        }
    }
}
