//! When a collection that only grows between sweeps is next swept of entries nothing needs:
//! once it has doubled since the last sweep, so sweeping costs amortised O(1) per insert.

/// The size a collection may reach before its next sweep.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SweepWhenDoubled {
    /// Entries kept before the first sweep (and never fewer between sweeps).
    floor: usize,
    at: usize,
}

impl SweepWhenDoubled {
    pub(crate) const fn new(floor: usize) -> Self {
        Self { floor, at: floor }
    }

    /// Whether a collection of `len` entries is due for a sweep.
    pub(crate) fn due(&self, len: usize) -> bool {
        len > self.at
    }

    /// Records a sweep that left `len` entries.
    pub(crate) fn swept(&mut self, len: usize) {
        self.at = self.floor.max(len * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_past_the_floor_then_once_doubled() {
        let mut sweep = SweepWhenDoubled::new(4);
        assert!(!sweep.due(4));
        assert!(sweep.due(5));
        sweep.swept(3);
        assert!(!sweep.due(6) && sweep.due(7), "3 kept: next at more than 6");
        sweep.swept(1);
        assert!(!sweep.due(4) && sweep.due(5), "never below the floor");
    }
}
