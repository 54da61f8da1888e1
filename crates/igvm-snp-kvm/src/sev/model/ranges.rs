//! A set of disjoint, merged half-open GPA ranges.

use std::collections::BTreeMap;

/// Disjoint `[start, end)` ranges keyed by start; adjacent ones merge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// Adds `[start, end)`.
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut lo, mut hi) = (start, end);
        // Ranges touching or overlapping [lo, hi] are merged into it.
        let touching: Vec<(u64, u64)> = self
            .ranges
            .range(..=hi)
            .rev()
            .take_while(|(_, e)| **e >= lo)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.ranges.remove(&s);
            lo = lo.min(s);
            hi = hi.max(e);
        }
        self.ranges.insert(lo, hi);
    }

    /// Whether `addr` is inside a range.
    pub(crate) fn contains(&self, addr: u64) -> bool {
        self.ranges
            .range(..=addr)
            .next_back()
            .is_some_and(|(_, end)| addr < *end)
    }

    /// The ranges in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(s, e)| (*s, *e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_queries() {
        let mut s = RangeSet::default();
        s.insert(0x3000, 0x5000);
        s.insert(0x1000, 0x2000);
        assert!(!s.contains(0x2000) && s.contains(0x1fff) && s.contains(0x3000));
        assert!(!s.contains(0x5000) && !s.contains(0));
        s.insert(0x2000, 0x3000);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0x1000, 0x5000)]);
        s.insert(0x800, 0x6000);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0x800, 0x6000)]);
        s.insert(0x9000, 0x9000);
        assert_eq!(s.iter().count(), 1);
    }
}
