//! Stats: a snapshot of a pool's counters (`pool_stats_t`).

use crate::sys;

/// A snapshot of a pool's counters (`pool_stats_t`; see the header for each field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    pub pool_size: i64,
    pub max_overflow: i64,
    pub checked_out: i64,
    pub idle: i64,
    pub opening: i64,
    pub overflow: i64,
    pub waiting: i64,
    pub opened_total: i64,
    pub closed_total: i64,
    pub connect_failures_total: i64,
    pub checkouts_total: i64,
    pub timeouts_total: i64,
    pub wait_total_us: i64,
    pub wait_max_us: i64,
    pub inherited_total: i64,
    pub connect_time_total_us: i64,
    pub connect_time_max_us: i64,
    pub waits_total: i64,
    /// Cumulative histogram of waits: `wait_le_us[i]` waits took at most
    /// `Stats::WAIT_BUCKET_US[i]` microseconds.
    pub wait_le_us: [i64; sys::POOL_WAIT_BUCKETS],
    pub pings_total: i64,
    pub dead_total: i64,
    pub recycled_total: i64,
    pub idle_closed_total: i64,
    pub invalidated_total: i64,
    pub reset_closed_total: i64,
    pub resets_total: i64,
    pub leaks_total: i64,
    pub fast_fails_total: i64,
    pub rejected_total: i64,
}

impl Stats {
    /// Upper bounds of the buckets of `wait_le_us`, in microseconds.
    pub const WAIT_BUCKET_US: [i64; sys::POOL_WAIT_BUCKETS] = sys::POOL_WAIT_BUCKET_US;
}

impl From<sys::pool_stats_t> for Stats {
    fn from(s: sys::pool_stats_t) -> Stats {
        Stats {
            pool_size: s.pool_size,
            max_overflow: s.max_overflow,
            checked_out: s.checked_out,
            idle: s.idle,
            opening: s.opening,
            overflow: s.overflow,
            waiting: s.waiting,
            opened_total: s.opened_total,
            closed_total: s.closed_total,
            connect_failures_total: s.connect_failures_total,
            checkouts_total: s.checkouts_total,
            timeouts_total: s.timeouts_total,
            wait_total_us: s.wait_total_us,
            wait_max_us: s.wait_max_us,
            inherited_total: s.inherited_total,
            connect_time_total_us: s.connect_time_total_us,
            connect_time_max_us: s.connect_time_max_us,
            waits_total: s.waits_total,
            wait_le_us: s.wait_le_us,
            pings_total: s.pings_total,
            dead_total: s.dead_total,
            recycled_total: s.recycled_total,
            idle_closed_total: s.idle_closed_total,
            invalidated_total: s.invalidated_total,
            reset_closed_total: s.reset_closed_total,
            resets_total: s.resets_total,
            leaks_total: s.leaks_total,
            fast_fails_total: s.fast_fails_total,
            rejected_total: s.rejected_total,
        }
    }
}
