//! The rolling baseline escalation compares an hour against: a group's
//! events per day over the last week, kept in memory by the writer.
//!
//! An average since the group was first seen never forgets: a burst a
//! month ago keeps the baseline high for weeks, and a group that has
//! been quiet since then cannot escalate. Seven days of hourly counts
//! would cost 168 counters per group; whole days cost eight and move
//! the window forward every hour just the same (the current day counts up
//! to the hour being judged), so the baseline spans seven to eight days.

use super::groups::HOUR_NS;

pub const DAY_NS: u64 = 24 * HOUR_NS;
/// Whole days before the current one that the baseline covers.
pub const BASELINE_DAYS: u64 = 7;
const SLOTS: usize = BASELINE_DAYS as usize + 1;

/// Events per day for the current day and the seven before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentDays {
    /// The newest day counted (days since the Unix epoch).
    newest: u64,
    /// `counts[i]`: events on day `newest - i`.
    counts: [u32; SLOTS],
}

impl RecentDays {
    /// Counts `n` events at `unix_nano`; events older than the window are
    /// left out (they cannot be part of any later baseline).
    pub fn add(&mut self, unix_nano: u64, n: u32) {
        let day = unix_nano / DAY_NS;
        if day > self.newest {
            let shift = (day - self.newest).min(SLOTS as u64) as usize;
            self.counts.rotate_right(shift);
            self.counts[..shift].fill(0);
            self.newest = day;
        }
        if let Some(slot) = self.counts.get_mut((self.newest - day) as usize) {
            *slot = slot.saturating_add(n);
        }
    }

    /// Events on `day` (days since the epoch), if still in the window.
    pub fn on_day(&self, day: u64) -> u64 {
        if day > self.newest {
            return 0;
        }
        self.counts
            .get((self.newest - day) as usize)
            .map_or(0, |c| u64::from(*c))
    }

    /// Adds another group's days (a merge).
    pub fn merge(&mut self, other: &RecentDays) {
        for i in 0..SLOTS as u64 {
            let Some(day) = other.newest.checked_sub(i) else {
                break;
            };
            let n = other.on_day(day);
            if n > 0 {
                self.add(day * DAY_NS, n.min(u64::from(u32::MAX)) as u32);
            }
        }
    }

    /// The baseline before the hour starting at `hour_start`, whose own
    /// events number `hour_count`: (events, hours) over the seven whole
    /// days before its day and its day up to it, or since `first_seen` if
    /// the group is younger than that.
    pub fn before_hour(&self, hour_start: u64, hour_count: u64, first_seen: u64) -> (u64, u64) {
        let today = hour_start / DAY_NS;
        let mut events = self.on_day(today).saturating_sub(hour_count);
        for back in 1..=BASELINE_DAYS {
            if let Some(day) = today.checked_sub(back) {
                events += self.on_day(day);
            }
        }
        let window_hours = BASELINE_DAYS * 24 + (hour_start - today * DAY_NS) / HOUR_NS;
        let lived_hours = hour_start.saturating_sub(first_seen).div_ceil(HOUR_NS);
        (events, window_hours.min(lived_hours).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_roll_forward_and_forget_the_oldest() {
        let mut d = RecentDays::default();
        d.add(3 * DAY_NS + 5, 4);
        d.add(3 * DAY_NS + HOUR_NS, 1);
        assert_eq!(d.on_day(3), 5);
        d.add(10 * DAY_NS, 2);
        // Day 3 is the eighth slot back from day 10: still there.
        assert_eq!((d.on_day(3), d.on_day(10)), (5, 2));
        d.add(11 * DAY_NS, 1);
        assert_eq!(d.on_day(3), 0);
        // A late event inside the window counts; one older is dropped.
        d.add(9 * DAY_NS, 1);
        d.add(2 * DAY_NS, 1);
        assert_eq!((d.on_day(9), d.on_day(2)), (1, 0));
        // A jump of more than the window clears everything.
        d.add(100 * DAY_NS, 1);
        assert_eq!((d.on_day(100), d.on_day(11), d.on_day(99)), (1, 0, 0));
    }

    #[test]
    fn the_baseline_spans_the_last_week_or_the_groups_life() {
        let mut d = RecentDays::default();
        // 1000 events on day 1, one an hour for days 10 to 19, 30 now.
        d.add(DAY_NS, 1000);
        for h in 0..240 {
            d.add(10 * DAY_NS + h * HOUR_NS, 1);
        }
        let hour = 20 * DAY_NS + 5 * HOUR_NS;
        d.add(hour, 30);
        let (events, hours) = d.before_hour(hour, 30, DAY_NS);
        // Days 13..=19 (168 events) and today's five hours (none).
        assert_eq!((events, hours), (168, 173));
        // A group two hours old: its two hours, not a week.
        let mut young = RecentDays::default();
        young.add(hour - 2 * HOUR_NS, 3);
        young.add(hour, 12);
        assert_eq!(young.before_hour(hour, 12, hour - 2 * HOUR_NS), (3, 2));
    }

    #[test]
    fn merging_adds_day_by_day() {
        let mut a = RecentDays::default();
        a.add(5 * DAY_NS, 2);
        let mut b = RecentDays::default();
        b.add(5 * DAY_NS, 3);
        b.add(6 * DAY_NS, 1);
        a.merge(&b);
        assert_eq!((a.on_day(5), a.on_day(6)), (5, 1));
    }
}
