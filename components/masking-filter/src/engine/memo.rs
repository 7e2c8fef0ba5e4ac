//! What detectors learn about a buffer while scanning it once, so that a
//! text dense with candidates reads each byte a bounded number of times.
//! A start is skipped only where its detector is known to fail: the
//! reference scan (every position, the memo off) masks the same text.

use super::anchors::Detectors;
use super::{CARD, JWT};
use core::cell::Cell;

pub(super) struct Memo {
    on: bool,
    /// A JWT cannot start before this position (`probe_jwt`).
    jwt_fails_until: Cell<usize>,
    /// A card number cannot start before this position (`probe_card`).
    card_fails_until: Cell<usize>,
    /// A JWT that failed in its signature (`probe_jwt`): where its claims
    /// began, where its signature began and where it failed.
    jwt_failed_signature: Cell<Option<(usize, usize, usize)>>,
}

impl Memo {
    /// A memo that remembers (`on`) or one that never does.
    pub(super) fn new(on: bool) -> Memo {
        Memo {
            on,
            jwt_fails_until: Cell::new(0),
            card_fails_until: Cell::new(0),
            jwt_failed_signature: Cell::new(None),
        }
    }

    pub(super) fn jwt_fails_before(&self, pos: usize) {
        if self.on {
            self.jwt_fails_until.set(pos);
        }
    }

    pub(super) fn card_fails_before(&self, pos: usize) {
        if self.on {
            self.card_fails_until.set(pos);
        }
    }

    pub(super) fn jwt_failed_in_signature(&self, claims: usize, signature: usize, end: usize) {
        if self.on {
            self.jwt_failed_signature
                .set(Some((claims, signature, end)));
        }
    }

    /// For a JWT starting at `pos`: where its claims and their token run
    /// end are, if an earlier start already read them (as its claims and
    /// its signature).
    pub(super) fn jwt_read_from(&self, pos: usize) -> Option<(usize, usize)> {
        self.jwt_failed_signature
            .get()
            .filter(|(claims, _, _)| *claims == pos)
            .map(|(_, signature, end)| (signature, end))
    }

    /// The detectors known to fail at `pos`.
    pub(super) fn failing(&self, pos: usize) -> Detectors {
        let bit = |until: &Cell<usize>, index: usize| Detectors::from(pos < until.get()) << index;
        bit(&self.jwt_fails_until, JWT) | bit(&self.card_fails_until, CARD)
    }
}
