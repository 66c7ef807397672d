//! Send limits per profile: SMTPSendLimit recipients per rolling hour, day
//! or week (as providers count them), and SMTPBatchPerMinute messages per
//! minute.
//!
//! The period counters are persisted in data_dir (`limits.json`, atomic
//! write), so a restart does not reset them; only `smtpb_limits_reset`
//! does. Recipients are reserved before a message goes out, so threads
//! sending at once cannot overshoot the limit together, and given back if
//! the server does not take the message. Counting happens only while a
//! profile has a limit set.
//!
//! On a shared data_dir (ABI §17) every process counts in the same files:
//! each use takes the file lock `limits.lock`, reads `limits.json` again,
//! and writes it before the lock goes; the per-minute starts are kept in
//! `throttle.json` (Unix ms per profile) the same way. Two processes
//! therefore never both take the last place.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::SharedClock;
use crate::config::ProfileSettings;
use crate::error::{Code, Error, Result};
use crate::fsutil;

/// The format of `limits.json` this library writes.
const FORMAT: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    format: u32,
    /// Per profile (lower case): (Unix seconds, recipients) of each message
    /// counted in the current period.
    profiles: BTreeMap<String, Vec<(i64, u32)>>,
}

/// Recipients counted for a message that is about to go out.
#[derive(Debug)]
pub struct Reservation {
    profile: String,
    at: i64,
    count: u32,
}

/// The send limits of one client.
pub struct Limits {
    path: Option<PathBuf>,
    /// A shared data_dir: the counters are read and written under the
    /// file lock at every use.
    shared: bool,
    counted: Mutex<LimitsFile>,
    /// Messages started in the last minute, per profile.
    minute: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// The time the windows are measured in.
    clock: SharedClock,
}

/// Usage of a profile's period limit, for the outbox statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub sent_in_period: u64,
    /// When the oldest counted message leaves the rolling window.
    pub resets_at: Option<i64>,
}

impl Limits {
    /// Reads the counters from `path` (`None` = in memory); the windows
    /// are measured with `clock`.
    pub fn open(path: Option<PathBuf>, clock: SharedClock) -> Result<Limits> {
        let counted = read_file(path.as_deref())?;
        Ok(Limits { path, shared: false, counted: Mutex::new(counted), minute: Mutex::new(HashMap::new()), clock })
    }

    /// Counters shared with the other processes of the data_dir.
    pub fn shared(mut self) -> Limits {
        self.shared = self.path.is_some();
        self
    }

    /// Runs `f` on the counters; on a shared data_dir under the file lock,
    /// with the counters read again first.
    fn counted<T>(&self, f: impl FnOnce(&mut LimitsFile) -> Result<T>) -> Result<T> {
        let mut counted = self.counted.lock().unwrap_or_else(|e| e.into_inner());
        let _lock = match (&self.path, self.shared) {
            (Some(p), true) => {
                let lock = lock_file(&p.with_file_name("limits.lock"))?;
                *counted = read_file(Some(p))?;
                Some(lock)
            }
            _ => None,
        };
        f(&mut counted)
    }

    fn save(&self, file: &LimitsFile) -> Result<()> {
        match &self.path {
            Some(p) => {
                let bytes = serde_json::to_vec(file).map_err(|e| Error::internal(e.to_string()))?;
                fsutil::atomic_write(p, &bytes, false)
            }
            None => Ok(()),
        }
    }

    /// Counts `recipients` against the profile's period limit, or refuses
    /// with `SMTPB_ERR_LIMIT` when they do not all fit in what is left.
    /// `None` when the profile has no limit.
    pub fn reserve(&self, settings: &ProfileSettings, recipients: u32) -> Result<Option<Reservation>> {
        let limit = settings.send_limit;
        let period = settings.send_limit_period.seconds() as i64;
        if limit == 0 || period == 0 {
            return Ok(None);
        }
        let name = settings.name.to_ascii_lowercase();
        if recipients > limit {
            return Err(Error::new(
                Code::Limit,
                format!(
                    "the message has {recipients} recipients; profile {} allows {limit} per {}",
                    settings.name,
                    settings.send_limit_period.name().to_ascii_lowercase()
                ),
            ));
        }
        let now = self.clock.unix();
        self.counted(|counted| {
            let entries = counted.profiles.entry(name.clone()).or_default();
            entries.retain(|(at, _)| now - at < period);
            let used: u64 = entries.iter().map(|(_, n)| *n as u64).sum();
            if used + recipients as u64 > limit as u64 {
                let resets = entries.first().map(|(at, _)| at + period).unwrap_or(now);
                return Err(Error::new(
                    Code::Limit,
                    format!(
                        "send limit of profile {} reached: {used} of {limit} recipients per {} used; room again at {}",
                        settings.name,
                        settings.send_limit_period.name().to_ascii_lowercase(),
                        fsutil::rfc3339_unix(resets).unwrap_or_default()
                    ),
                ));
            }
            entries.push((now, recipients));
            if let Err(e) = self.save(counted) {
                // Not counted durably: not counted at all.
                if let Some(entries) = counted.profiles.get_mut(&name) {
                    entries.pop();
                }
                return Err(e);
            }
            Ok(Some(Reservation { profile: name.clone(), at: now, count: recipients }))
        })
    }

    /// Gives back recipients the server did not take.
    pub fn release(&self, reservation: Reservation) -> Result<()> {
        self.counted(|counted| {
            if let Some(entries) = counted.profiles.get_mut(&reservation.profile) {
                if let Some(i) = entries.iter().position(|(at, n)| *at == reservation.at && *n == reservation.count) {
                    entries.remove(i);
                }
            }
            self.save(counted)
        })
    }

    /// Waits for a place in the profile's per-minute rate, for at most
    /// `wait`; `SMTPB_ERR_LIMIT` when none frees up in time.
    pub fn throttle(&self, settings: &ProfileSettings, wait: Duration) -> Result<()> {
        let per_minute = settings.batch_per_minute as usize;
        if per_minute == 0 {
            return Ok(());
        }
        let give_up = self.clock.instant() + wait;
        let name = settings.name.to_ascii_lowercase();
        loop {
            let next_free = match self.minute_place(&name, per_minute)? {
                None => return Ok(()),
                Some(wait) => self.clock.instant() + wait,
            };
            if next_free > give_up {
                return Err(Error::new(
                    Code::Limit,
                    format!(
                        "profile {} sends at most {per_minute} messages per minute (SMTPBatchPerMinute)",
                        settings.name
                    ),
                ));
            }
            self.clock.sleep(next_free.saturating_duration_since(self.clock.instant()).min(Duration::from_millis(250)));
        }
    }

    /// Takes a place in the profile's per-minute rate: `None` when one
    /// was free, else how long until the first one frees up.
    fn minute_place(&self, name: &str, per_minute: usize) -> Result<Option<Duration>> {
        let minute = Duration::from_secs(60);
        if let (Some(path), true) = (&self.path, self.shared) {
            return self.counted(|_| {
                let throttle = path.with_file_name("throttle.json");
                let mut starts = read_throttle(&throttle)?;
                let now = self.clock.unix_ms();
                let started = starts.entry(name.to_string()).or_default();
                started.retain(|at| now - at < minute.as_millis() as i64);
                if started.len() >= per_minute {
                    let first = started.iter().min().copied().unwrap_or(now);
                    return Ok(Some(Duration::from_millis((first + 60_000 - now).max(0) as u64)));
                }
                started.push(now);
                starts.retain(|_, v| !v.is_empty());
                let bytes = serde_json::to_vec(&starts).map_err(|e| Error::internal(e.to_string()))?;
                fsutil::atomic_write(&throttle, &bytes, false)?;
                Ok(None)
            });
        }
        let mut minutes = self.minute.lock().unwrap_or_else(|e| e.into_inner());
        let started = minutes.entry(name.to_string()).or_default();
        let now = self.clock.instant();
        while started.front().is_some_and(|t| now.duration_since(*t) >= minute) {
            started.pop_front();
        }
        if started.len() < per_minute {
            started.push_back(now);
            return Ok(None);
        }
        Ok(Some((started[0] + minute).saturating_duration_since(now)))
    }

    /// Clears the counters of one profile (any letter case), or of all.
    pub fn reset(&self, profile: Option<&str>) -> Result<()> {
        self.counted(|counted| {
            let mut next = counted.clone();
            match profile {
                Some(p) => {
                    next.profiles.remove(&p.to_ascii_lowercase());
                }
                None => next.profiles.clear(),
            }
            // Saved under the lock, so no reservation's save can interleave.
            self.save(&next)?;
            *counted = next;
            if let (Some(path), true) = (&self.path, self.shared) {
                let throttle = path.with_file_name("throttle.json");
                let mut starts = read_throttle(&throttle)?;
                match profile {
                    Some(p) => {
                        starts.remove(&p.to_ascii_lowercase());
                    }
                    None => starts.clear(),
                }
                let bytes = serde_json::to_vec(&starts).map_err(|e| Error::internal(e.to_string()))?;
                fsutil::atomic_write(&throttle, &bytes, false)?;
            }
            Ok(())
        })?;
        let mut minute = self.minute.lock().unwrap_or_else(|e| e.into_inner());
        match profile {
            Some(p) => {
                minute.remove(&p.to_ascii_lowercase());
            }
            None => minute.clear(),
        }
        Ok(())
    }

    /// How much of its period limit a profile has used.
    pub fn usage(&self, settings: &ProfileSettings) -> Usage {
        let period = settings.send_limit_period.seconds() as i64;
        let now = self.clock.unix();
        let usage = self.counted(|counted| {
            let live: Vec<&(i64, u32)> = counted
                .profiles
                .get(&settings.name.to_ascii_lowercase())
                .map(|e| e.iter().filter(|(at, _)| period > 0 && now - at < period).collect())
                .unwrap_or_default();
            Ok(Usage {
                sent_in_period: live.iter().map(|(_, n)| *n as u64).sum(),
                resets_at: live.first().map(|(at, _)| at + period),
            })
        });
        usage.unwrap_or_else(|e| {
            log::warn!("{}", e.message());
            Usage { sent_in_period: 0, resets_at: None }
        })
    }
}

/// Reads `limits.json` (empty counters when it does not exist).
fn read_file(path: Option<&Path>) -> Result<LimitsFile> {
    match path {
        Some(p) if p.exists() => {
            let bytes = std::fs::read(p).map_err(|e| Error::io("cannot read", p, &e))?;
            let file: LimitsFile = serde_json::from_slice(&bytes)
                .map_err(|e| Error::new(Code::Io, format!("{} is damaged: {e}", p.display())))?;
            if file.format > FORMAT {
                return Err(Error::new(
                    Code::Io,
                    format!("{} has format {}; this library reads format {FORMAT} and older", p.display(), file.format),
                ));
            }
            Ok(file)
        }
        _ => Ok(LimitsFile { format: FORMAT, profiles: BTreeMap::new() }),
    }
}

/// Reads `throttle.json`: per profile, the Unix ms of each message started
/// in the last minute.
fn read_throttle(path: &Path) -> Result<BTreeMap<String, Vec<i64>>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::new(Code::Io, format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(Error::io("cannot read", path, &e)),
    }
}

/// Takes the file lock at `path` (waits for the other processes' turn).
fn lock_file(path: &Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, &e))?;
    file.lock().map_err(|e| Error::io("cannot lock", path, &e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, TestClock};
    use crate::config::Config;

    const HOUR: Duration = Duration::from_secs(3600);

    fn settings(limit: &str, period: &str, per_minute: &str) -> ProfileSettings {
        let mut c = Config::new();
        c.set("SMTPSendLimit", Some(limit)).unwrap();
        c.set("SMTPSendLimitPeriod", Some(period)).unwrap();
        c.set("SMTPBatchPerMinute", Some(per_minute)).unwrap();
        ProfileSettings::clone(&c.settings("Default").unwrap())
    }

    #[test]
    fn a_message_is_sent_only_if_all_its_recipients_fit() {
        let limits = Limits::open(None, crate::clock::system()).unwrap();
        let s = settings("5", "Day", "0");
        assert!(limits.reserve(&s, 3).unwrap().is_some());
        let e = limits.reserve(&s, 3).unwrap_err();
        assert_eq!(e.code(), Code::Limit);
        assert!(e.message().contains("3 of 5"), "{}", e.message());
        let r = limits.reserve(&s, 2).unwrap().unwrap();
        limits.release(r).unwrap();
        assert_eq!(limits.usage(&s).sent_in_period, 3);
        let e = limits.reserve(&s, 6).unwrap_err();
        assert!(e.message().contains("6 recipients"));
        limits.reset(Some("DEFAULT")).unwrap();
        assert_eq!(limits.usage(&s).sent_in_period, 0);
    }

    #[test]
    fn the_period_rolls_recipient_by_recipient_as_their_messages_leave_the_window() {
        let clock = TestClock::new();
        let limits = Limits::open(None, clock.clone()).unwrap();
        let s = settings("4", "Hour", "0");
        let start = clock.unix();
        limits.reserve(&s, 3).unwrap().unwrap();
        clock.advance(HOUR / 2);
        limits.reserve(&s, 1).unwrap().unwrap();
        assert_eq!(limits.usage(&s), Usage { sent_in_period: 4, resets_at: Some(start + 3600) });
        let e = limits.reserve(&s, 1).unwrap_err();
        assert!(e.message().contains("4 of 4"), "{}", e.message());
        // One second before the first message's hour is over: still full.
        clock.advance(HOUR / 2 - Duration::from_secs(1));
        assert_eq!(limits.reserve(&s, 1).unwrap_err().code(), Code::Limit);
        // Its hour is over: its 3 recipients are free again, the later 1 is not.
        clock.advance(Duration::from_secs(1));
        assert_eq!(limits.usage(&s).sent_in_period, 1);
        limits.reserve(&s, 3).unwrap().unwrap();
        assert_eq!(limits.reserve(&s, 1).unwrap_err().code(), Code::Limit);
    }

    #[test]
    fn a_week_is_counted_as_seven_days_not_a_calendar_week() {
        let clock = TestClock::new();
        let limits = Limits::open(None, clock.clone()).unwrap();
        let s = settings("1", "Week", "0");
        limits.reserve(&s, 1).unwrap().unwrap();
        clock.advance(HOUR * 24 * 7 - Duration::from_secs(1));
        assert_eq!(limits.reserve(&s, 1).unwrap_err().code(), Code::Limit);
        clock.advance(Duration::from_secs(1));
        assert_eq!(limits.usage(&s).sent_in_period, 0);
        assert!(limits.reserve(&s, 1).unwrap().is_some());
    }

    #[test]
    fn the_minute_throttle_refuses_when_it_cannot_wait() {
        let clock = TestClock::new();
        let limits = Limits::open(None, clock.clone()).unwrap();
        let s = settings("0", "None", "2");
        limits.throttle(&s, Duration::ZERO).unwrap();
        clock.advance(Duration::from_secs(10));
        limits.throttle(&s, Duration::ZERO).unwrap();
        // The first place frees up 50 s from now: not within 49 s.
        let before = clock.instant();
        assert_eq!(limits.throttle(&s, Duration::from_secs(49)).unwrap_err().code(), Code::Limit);
        assert_eq!(clock.instant(), before, "it refused at once rather than waiting in vain");
    }

    #[test]
    fn the_minute_throttle_waits_for_the_first_place_to_free_up() {
        let clock = TestClock::new();
        let limits = Limits::open(None, clock.clone()).unwrap();
        let s = settings("0", "None", "2");
        let start = clock.instant();
        limits.throttle(&s, Duration::ZERO).unwrap();
        clock.advance(Duration::from_secs(10));
        limits.throttle(&s, Duration::ZERO).unwrap();
        limits.throttle(&s, Duration::from_secs(50)).unwrap();
        assert_eq!(clock.instant() - start, Duration::from_secs(60), "waited until the first one's minute was over");
        // The next place is the second message's: 10 s later.
        limits.throttle(&s, Duration::from_secs(10)).unwrap();
        assert_eq!(clock.instant() - start, Duration::from_secs(70));
    }
}
