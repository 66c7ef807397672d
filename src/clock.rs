//! The time the core's rules read: OAuth2 refresh margins, send-limit
//! windows and the per-minute throttle, retention of final statuses.
//!
//! A client holds one [`Clock`] and hands it to the parts that need it;
//! the library always uses [`SystemClock`]. Unit tests give a client or a
//! part a [`TestClock`] and move it forward, so a rule about an hour or a
//! month is checked at once, without waiting. Nothing of this reaches the
//! C ABI.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time, and of waiting.
pub trait Clock: Send + Sync {
    /// Wall-clock time (for times that are stored or shown).
    fn now(&self) -> SystemTime;
    /// Monotonic time (for intervals within one process).
    fn instant(&self) -> Instant;
    /// Waits `duration` of this clock's time.
    fn sleep(&self, duration: Duration);

    /// [`Clock::now`] in Unix seconds.
    fn unix(&self) -> i64 {
        self.now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
    }

    /// [`Clock::now`] in Unix milliseconds.
    fn unix_ms(&self) -> i64 {
        self.now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// A clock shared by the parts of one client.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration)
    }
}

/// The system clock, as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that stands still until a test moves it: it starts at the real
/// time, and [`TestClock::advance`] (or a [`Clock::sleep`] on it) moves
/// both its wall-clock and its monotonic time at once.
#[cfg(test)]
#[derive(Debug)]
pub struct TestClock {
    start: (SystemTime, Instant),
    elapsed: std::sync::Mutex<Duration>,
}

#[cfg(test)]
impl TestClock {
    /// A clock standing at the real time now.
    pub fn new() -> Arc<TestClock> {
        Arc::new(TestClock { start: (SystemTime::now(), Instant::now()), elapsed: Default::default() })
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        self.start.0 + self.elapsed()
    }

    fn instant(&self) -> Instant {
        self.start.1 + self.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        self.advance(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_only_when_told_and_both_its_times_together() {
        let clock = TestClock::new();
        let (wall, mono) = (clock.now(), clock.instant());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!((clock.now(), clock.instant()), (wall, mono));
        clock.advance(Duration::from_secs(3600));
        clock.sleep(Duration::from_millis(1500));
        assert_eq!(clock.now().duration_since(wall).unwrap(), Duration::from_millis(3_601_500));
        assert_eq!(clock.instant() - mono, Duration::from_millis(3_601_500));
        assert_eq!(clock.unix_ms() / 1000, clock.unix());
    }

    #[test]
    fn the_system_clock_reads_the_operating_system() {
        let clock = system();
        let before = SystemTime::now();
        let read = clock.now();
        assert!(read >= before && read <= SystemTime::now());
        assert!(clock.unix() >= before.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64);
    }
}
