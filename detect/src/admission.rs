//! Admission control of new sources under a spoofed flood.
//!
//! A flood from random sources creates one per-source entry per packet; the table then
//! turns over in `capacity / rate` seconds and a real scanner's entry could be evicted before
//! its distinct-port count reaches the threshold. While unknown sources arrive faster than
//! the map can keep them for [`KEEP_WINDOWS`] windows, the agent turns on admission at the
//! second sighting (`CONFIG_ADMIT_ON_SECOND`): a random spoofed source, seen once, never
//! gets an entry, while a scanner gets one at its second probe. Sources that already have an
//! entry, and the receiver slots that report the flood itself, are unaffected.
//! The trade-off: while it is on, each new source's first packet goes uncounted in its own
//! entry (it is still in the global counters and its sender slot), and a source sending at
//! most one probe per tick on a CPU is not admitted.

/// The map should keep an entry for at least this many detection windows.
pub const KEEP_WINDOWS: f64 = 2.0;
/// Readings in a row below half the budget before admission control turns off.
const CALM_READINGS: u32 = 5;

/// Decides when admission at the second sighting is on.
#[derive(Clone, Debug)]
pub struct Admission {
    budget: f64,
    on: bool,
    calm: u32,
}

impl Admission {
    /// For a per-source map of `capacity` entries and windows of `window_s` seconds.
    pub fn new(capacity: u32, window_s: f64) -> Self {
        Admission {
            budget: f64::from(capacity) / (KEEP_WINDOWS * window_s),
            on: false,
            calm: 0,
        }
    }

    /// Whether admission control is on.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// New sources per second the map can take and still keep entries for
    /// [`KEEP_WINDOWS`] windows.
    pub fn budget(&self) -> f64 {
        self.budget
    }

    /// Updates the decision from packets of unknown sources per second (admitted or
    /// deferred) and returns it.
    pub fn update(&mut self, unknown_per_s: f64) -> bool {
        if unknown_per_s > self.budget {
            self.on = true;
            self.calm = 0;
        } else if self.on && unknown_per_s < self.budget / 2.0 {
            self.calm += 1;
            if self.calm >= CALM_READINGS {
                self.on = false;
                self.calm = 0;
            }
        } else {
            self.calm = 0;
        }
        self.on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_rates_admit_everyone() {
        let mut a = Admission::new(65_536, 10.0);
        assert!((a.budget() - 3276.8).abs() < 0.1);
        assert!(!a.update(0.0));
        assert!(!a.update(3000.0));
    }

    #[test]
    fn flood_turns_it_on_and_calm_turns_it_off_after_a_while() {
        let mut a = Admission::new(65_536, 10.0);
        assert!(a.update(100_000.0));
        // Deferred packets still count as unknown: a continuing flood keeps it on.
        assert!(a.update(100_000.0));
        // Between half the budget and the budget: stays on, not calm.
        assert!(a.update(2000.0));
        for _ in 0..CALM_READINGS - 1 {
            assert!(a.update(10.0));
        }
        assert!(!a.update(10.0));
        assert!(!a.is_on());
    }
}
