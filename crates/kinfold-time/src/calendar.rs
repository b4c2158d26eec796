//! England's working days and hours.
//!
//! A working day is Monday to Friday and not a bank holiday of England and Wales. The bank
//! holidays are those GOV.UK publishes (<https://www.gov.uk/bank-holidays>) for the years it
//! has published, one-off days included (the 2022 jubilee and state funeral, the 2023
//! coronation); for other years they are computed by the usual rules (New Year's Day, Good
//! Friday and Easter Monday, the first and last Mondays of May, the last Monday of August,
//! Christmas Day and Boxing Day, each moved to the next free weekday when it falls at a
//! weekend), which the tests check against the published years.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// Bank holidays in England and Wales as GOV.UK publishes them, by year.
const PUBLISHED: &[(i32, &[(u32, u32)])] = &[
    (
        2022,
        &[
            (1, 3),
            (4, 15),
            (4, 18),
            (5, 2),
            (6, 2),
            (6, 3),
            (8, 29),
            (9, 19),
            (12, 26),
            (12, 27),
        ],
    ),
    (
        2023,
        &[
            (1, 2),
            (4, 7),
            (4, 10),
            (5, 1),
            (5, 8),
            (5, 29),
            (8, 28),
            (12, 25),
            (12, 26),
        ],
    ),
    (
        2024,
        &[
            (1, 1),
            (3, 29),
            (4, 1),
            (5, 6),
            (5, 27),
            (8, 26),
            (12, 25),
            (12, 26),
        ],
    ),
    (
        2025,
        &[
            (1, 1),
            (4, 18),
            (4, 21),
            (5, 5),
            (5, 26),
            (8, 25),
            (12, 25),
            (12, 26),
        ],
    ),
    (
        2026,
        &[
            (1, 1),
            (4, 3),
            (4, 6),
            (5, 4),
            (5, 25),
            (8, 31),
            (12, 25),
            (12, 28),
        ],
    ),
    (
        2027,
        &[
            (1, 1),
            (3, 26),
            (3, 29),
            (5, 3),
            (5, 31),
            (8, 30),
            (12, 27),
            (12, 28),
        ],
    ),
];

/// The published bank holidays of a year, if GOV.UK has published them here.
pub fn bank_holidays_published(year: i32) -> Option<Vec<NaiveDate>> {
    PUBLISHED.iter().find(|(y, _)| *y == year).map(|(_, days)| {
        days.iter()
            .filter_map(|&(month, day)| NaiveDate::from_ymd_opt(year, month, day))
            .collect()
    })
}

/// Easter Sunday (the anonymous Gregorian algorithm).
fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

fn weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The bank holidays of a year by the usual rules (no one-off days).
pub fn computed_bank_holidays(year: i32) -> Vec<NaiveDate> {
    let date = |month, day| NaiveDate::from_ymd_opt(year, month, day);
    let first_monday = |month| {
        (1..=7)
            .filter_map(|day| date(month, day))
            .find(|d| d.weekday() == Weekday::Mon)
    };
    let last_monday = |month, days| {
        (1..=days)
            .rev()
            .filter_map(|day| date(month, day))
            .find(|d: &NaiveDate| d.weekday() == Weekday::Mon)
    };
    let mut days: Vec<NaiveDate> = Vec::new();
    // New Year's Day, or the Monday after.
    if let Some(new_year) = date(1, 1) {
        let mut day = new_year;
        while weekend(day) {
            day = day + Days::new(1);
        }
        days.push(day);
    }
    if let Some(easter) = easter(year) {
        days.extend(easter.checked_sub_days(Days::new(2)));
        days.extend(easter.checked_add_days(Days::new(1)));
    }
    days.extend(first_monday(5));
    days.extend(last_monday(5, 31));
    days.extend(last_monday(8, 31));
    // Christmas Day and Boxing Day, each on the next weekday not already taken.
    for day in [date(12, 25), date(12, 26)].into_iter().flatten() {
        let mut moved = day;
        while weekend(moved) || days.contains(&moved) {
            moved = moved + Days::new(1);
        }
        days.push(moved);
    }
    days.sort();
    days
}

/// Working days and hours, in a time zone.
#[derive(Debug, Clone)]
pub struct WorkingCalendar {
    zone: Tz,
    opens: NaiveTime,
    closes: NaiveTime,
}

impl Default for WorkingCalendar {
    /// England: Europe/London, 09:00 to 17:00.
    fn default() -> Self {
        Self {
            zone: chrono_tz::Europe::London,
            opens: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            closes: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl WorkingCalendar {
    /// Whether the date is a bank holiday of England and Wales.
    pub fn is_bank_holiday(&self, date: NaiveDate) -> bool {
        bank_holidays_published(date.year())
            .unwrap_or_else(|| computed_bank_holidays(date.year()))
            .contains(&date)
    }

    /// Whether the date is a working day.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !weekend(date) && !self.is_bank_holiday(date)
    }

    /// The instant a local date and time means (the earlier one in the autumn's repeated
    /// hour; the first moment after the spring's missing hour).
    fn instant(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let local = date.and_time(time);
        match self.zone.from_local_datetime(&local) {
            chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => {
                at.with_timezone(&Utc)
            }
            chrono::LocalResult::None => self.zone.from_utc_datetime(&local).with_timezone(&Utc),
        }
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone).date_naive()
    }

    /// The first working day after `date`.
    fn next_working_day(&self, date: NaiveDate) -> NaiveDate {
        let mut day = date + Days::new(1);
        while !self.is_working_day(day) {
            day = day + Days::new(1);
        }
        day
    }

    /// The start of the next working day after `at`: the next opening time, on a working
    /// day, later than `at` ("acknowledged before the start of the next working day").
    pub fn start_of_next_working_day(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let today = self.local_date(at);
        if self.is_working_day(today) {
            let opening = self.instant(today, self.opens);
            if at < opening {
                return opening;
            }
        }
        self.instant(self.next_working_day(today), self.opens)
    }

    /// The close of the `days`-th working day after the day of `at` ("within two working
    /// days" of a Friday afternoon is Tuesday at 17:00). Zero days: the close of that day if it
    /// is a working day and has not closed yet, else of the next working day.
    pub fn working_days_after(&self, at: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        let mut day = self.local_date(at);
        if days == 0 {
            if !(self.is_working_day(day) && at < self.instant(day, self.closes)) {
                day = self.next_working_day(day);
            }
            return self.instant(day, self.closes);
        }
        for _ in 0..days {
            day = self.next_working_day(day);
        }
        self.instant(day, self.closes)
    }

    /// The moment `hours` working hours after `at`, counting only the hours between opening
    /// and closing on working days.
    pub fn working_hours_after(&self, at: DateTime<Utc>, hours: u32) -> DateTime<Utc> {
        let mut left = chrono::Duration::hours(i64::from(hours));
        let mut day = self.local_date(at);
        let mut from = at;
        loop {
            if self.is_working_day(day) {
                let opening = self.instant(day, self.opens);
                let closing = self.instant(day, self.closes);
                let start = from.max(opening);
                if start < closing {
                    let available = closing - start;
                    if left <= available {
                        return start + left;
                    }
                    left -= available;
                }
            }
            day = day + Days::new(1);
            from = self.instant(day, NaiveTime::MIN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_rules_give_the_published_bank_holidays_but_the_one_off_days() {
        for (year, _) in PUBLISHED {
            let published = bank_holidays_published(*year).expect("published");
            let computed = computed_bank_holidays(*year);
            match year {
                // The spring bank holiday moved for the jubilee, which added a day; the state
                // funeral; the coronation.
                2022 => {
                    let extra: Vec<_> =
                        published.iter().filter(|d| !computed.contains(d)).collect();
                    let moved: Vec<_> =
                        computed.iter().filter(|d| !published.contains(d)).collect();
                    assert_eq!(extra.len(), 3, "{extra:?}");
                    assert_eq!(moved.len(), 1, "{moved:?}");
                }
                2023 => {
                    let extra: Vec<_> =
                        published.iter().filter(|d| !computed.contains(d)).collect();
                    assert_eq!(extra, [&NaiveDate::from_ymd_opt(2023, 5, 8).expect("date")]);
                }
                _ => assert_eq!(published, computed, "{year}"),
            }
        }
        // Beyond the published years the rules answer: 2028's Christmas falls on a Monday.
        let computed = computed_bank_holidays(2028);
        assert!(computed.contains(&NaiveDate::from_ymd_opt(2028, 12, 25).expect("date")));
        assert!(computed.contains(&NaiveDate::from_ymd_opt(2028, 4, 14).expect("date")));
    }

    #[test]
    fn the_next_working_day_skips_weekends_and_bank_holidays() {
        let calendar = WorkingCalendar::default();
        // A police notification on Thursday 24 December 2026 at 22:00: Christmas (Friday), the
        // weekend and the substitute Boxing Day (Monday 28th) pass; Tuesday 29th at 09:00 GMT.
        assert_eq!(
            calendar.start_of_next_working_day(at("2026-12-24T22:00:00Z")),
            at("2026-12-29T09:00:00Z")
        );
        // Early on a working day: that day's opening.
        assert_eq!(
            calendar.start_of_next_working_day(at("2026-12-03T06:30:00Z")),
            at("2026-12-03T09:00:00Z")
        );
        // In summer time the opening is 08:00 UTC; Good Friday and Easter Monday 2027 pass.
        assert_eq!(
            calendar.start_of_next_working_day(at("2027-03-25T16:00:00Z")),
            at("2027-03-30T08:00:00Z")
        );
    }

    #[test]
    fn working_days_and_hours_count_only_working_time() {
        let calendar = WorkingCalendar::default();
        // Friday afternoon plus two working days: Tuesday at close.
        assert_eq!(
            calendar.working_days_after(at("2026-11-27T15:00:00Z"), 2),
            at("2026-12-01T17:00:00Z")
        );
        assert_eq!(
            calendar.working_days_after(at("2026-11-27T15:00:00Z"), 0),
            at("2026-11-27T17:00:00Z")
        );
        // Four working hours from Friday 15:00: two on Friday, two on Monday.
        assert_eq!(
            calendar.working_hours_after(at("2026-11-27T15:00:00Z"), 4),
            at("2026-11-30T11:00:00Z")
        );
        // From a Saturday night: Monday's first hours.
        assert_eq!(
            calendar.working_hours_after(at("2026-11-28T23:00:00Z"), 1),
            at("2026-11-30T10:00:00Z")
        );
    }
}
