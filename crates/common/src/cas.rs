//! Compare-and-swap that stays correct on every Spin key-value store.
//!
//! Spin's Redis store reports *every* swap as failed — also one it applied —
//! because it ends each swap with `UNWATCH <key>`, which Redis refuses; a
//! genuine conflict reports the same error. So a reported failure is read
//! back: when the key holds exactly the value this writer wrote, the swap
//! was applied. That is sound only if every written value is unique to its
//! writer (callers put a writer id in it). When another writer built on an
//! applied value before the read-back, `next` sees its own change in the
//! current value and answers [`Step::AlreadyApplied`].

/// What `wasi:keyvalue/atomics` offers, behind the component's bindings.
pub trait CasStore {
    type Cas;
    type Error;
    fn open(&self, key: &str) -> Result<Self::Cas, Self::Error>;
    /// The current value; on Redis this also WATCHes the key.
    fn current(&self, cas: &Self::Cas) -> Result<Option<Vec<u8>>, Self::Error>;
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<(), SwapError<Self::Cas, Self::Error>>;
    /// Waits before attempt `attempt` (≥ 1) after a genuine conflict.
    fn pause(&self, attempt: u32);
}

pub enum SwapError<C, E> {
    /// The store says the swap failed; a fresh handle for the key.
    Failed(C),
    Store(E),
}

/// What `next` makes of the current value.
pub enum Step<T> {
    /// Write this value (unique to this writer) and answer `T` once applied.
    Write(Vec<u8>, T),
    /// This writer's change is already in the current value.
    AlreadyApplied(T),
}

#[derive(Debug, PartialEq, Eq)]
pub enum UpdateError<E, R> {
    Store(E),
    /// `next` refused the current value (e.g. a decision on a closed request).
    Rejected(R),
    /// Still conflicting after every attempt.
    Contended,
}

/// Applies `next` to the key's current value by compare-and-swap, at most
/// `attempts` times, pausing (with jitter, the store's choice) between
/// genuine conflicts. A change that was applied is never reported as failed.
pub fn update<S: CasStore, T, R>(
    store: &S,
    key: &str,
    attempts: u32,
    mut next: impl FnMut(Option<&[u8]>) -> Result<Step<T>, R>,
) -> Result<T, UpdateError<S::Error, R>> {
    let mut cas = store.open(key).map_err(UpdateError::Store)?;
    let mut current = store.current(&cas).map_err(UpdateError::Store)?;
    for attempt in 0..attempts {
        let (value, answer) = match next(current.as_deref()).map_err(UpdateError::Rejected)? {
            Step::AlreadyApplied(answer) => return Ok(answer),
            Step::Write(value, answer) => (value, answer),
        };
        match store.swap(cas, &value) {
            Ok(()) => return Ok(answer),
            Err(SwapError::Store(e)) => return Err(UpdateError::Store(e)),
            Err(SwapError::Failed(fresh)) => {
                current = store.current(&fresh).map_err(UpdateError::Store)?;
                if current.as_deref() == Some(value.as_slice()) {
                    return Ok(answer);
                }
                cas = fresh;
                store.pause(attempt + 1);
            }
        }
    }
    Err(UpdateError::Contended)
}

/// A pause before retry `attempt`: exponential from `base_us`, capped at
/// `cap_us`, scaled by `jitter` in [0, 1) so racing writers spread out.
pub fn backoff_us(attempt: u32, base_us: u64, cap_us: u64, jitter: f64) -> u64 {
    let ceiling = base_us.saturating_mul(1u64 << attempt.min(20)).min(cap_us);
    (ceiling as f64 * jitter.clamp(0.0, 1.0)) as u64
}

/// Implements [`CasStore`] for a component's `wasi:keyvalue` bindings (each
/// component has its own generated types): `kv_cas_store!(Name)` defines
/// `struct Name<'a>(&'a Bucket)`. Pauses sleep 0.2 ms doubling to 20 ms,
/// jittered, on the component's `getrandom`.
#[macro_export]
macro_rules! kv_cas_store {
    ($name:ident) => {
        struct $name<'a>(&'a wasi::keyvalue::store::Bucket);

        impl $crate::cas::CasStore for $name<'_> {
            type Cas = wasi::keyvalue::atomics::Cas;
            type Error = wasi::keyvalue::store::Error;

            fn open(&self, key: &str) -> Result<Self::Cas, Self::Error> {
                wasi::keyvalue::atomics::Cas::new(self.0, key)
            }

            fn current(&self, cas: &Self::Cas) -> Result<Option<Vec<u8>>, Self::Error> {
                cas.current()
            }

            fn swap(
                &self,
                cas: Self::Cas,
                value: &[u8],
            ) -> Result<(), $crate::cas::SwapError<Self::Cas, Self::Error>> {
                use wasi::keyvalue::atomics::CasError;
                wasi::keyvalue::atomics::swap(cas, value).map_err(|e| match e {
                    CasError::CasFailed(fresh) => $crate::cas::SwapError::Failed(fresh),
                    CasError::StoreError(e) => $crate::cas::SwapError::Store(e),
                })
            }

            fn pause(&self, attempt: u32) {
                let mut bytes = [0u8; 4];
                let jitter = match ::getrandom::fill(&mut bytes) {
                    Ok(()) => u32::from_le_bytes(bytes) as f64 / u32::MAX as f64,
                    Err(_) => 0.5,
                };
                let us = $crate::cas::backoff_us(attempt, 200, 20_000, jitter);
                std::thread::sleep(std::time::Duration::from_micros(us));
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A store that behaves like Spin's Redis store: the swap is applied
    /// (when nothing changed since `current`) and then reported failed.
    #[derive(Default)]
    struct SpinRedisLike {
        value: RefCell<Option<Vec<u8>>>,
        version: RefCell<u64>,
        /// Another writer's value, written right after our next swap.
        interloper: RefCell<Option<Vec<u8>>>,
        swaps: RefCell<u32>,
        pauses: RefCell<u32>,
    }

    struct Handle {
        seen: RefCell<Option<u64>>,
    }

    impl CasStore for SpinRedisLike {
        type Cas = Handle;
        type Error = String;
        fn open(&self, _key: &str) -> Result<Handle, String> {
            Ok(Handle {
                seen: RefCell::new(None),
            })
        }
        fn current(&self, cas: &Handle) -> Result<Option<Vec<u8>>, String> {
            *cas.seen.borrow_mut() = Some(*self.version.borrow());
            Ok(self.value.borrow().clone())
        }
        fn swap(&self, cas: Handle, value: &[u8]) -> Result<(), SwapError<Handle, String>> {
            *self.swaps.borrow_mut() += 1;
            if *cas.seen.borrow() == Some(*self.version.borrow()) {
                *self.value.borrow_mut() = Some(value.to_vec());
                *self.version.borrow_mut() += 1;
            }
            if let Some(other) = self.interloper.borrow_mut().take() {
                *self.value.borrow_mut() = Some(other);
                *self.version.borrow_mut() += 1;
            }
            Err(SwapError::Failed(Handle {
                seen: RefCell::new(None),
            }))
        }
        fn pause(&self, _attempt: u32) {
            *self.pauses.borrow_mut() += 1;
        }
    }

    #[test]
    fn an_applied_swap_reported_failed_is_success_once_read_back() {
        let store = SpinRedisLike::default();
        let got = update(&store, "k", 8, |_| {
            Ok::<_, ()>(Step::Write(b"mine-1".to_vec(), 7))
        });
        assert_eq!(got, Ok(7));
        assert_eq!(store.value.borrow().as_deref(), Some(&b"mine-1"[..]));
        assert_eq!(*store.swaps.borrow(), 1, "no second write");
    }

    #[test]
    fn a_real_conflict_retries_on_the_new_value() {
        let store = SpinRedisLike::default();
        *store.value.borrow_mut() = Some(b"0".to_vec());
        // Someone else writes between our read and our swap: bump the
        // version behind our back once.
        let mut first = true;
        let got = update(&store, "k", 8, |current| {
            if first {
                first = false;
                *store.version.borrow_mut() += 1;
                *store.value.borrow_mut() = Some(b"5".to_vec());
            }
            let n: u32 = std::str::from_utf8(current.unwrap_or(b"0"))
                .unwrap_or("0")
                .parse()
                .unwrap_or(0);
            Ok::<_, ()>(Step::Write((n + 1).to_string().into_bytes(), n + 1))
        });
        assert_eq!(got, Ok(6), "built on the other writer's 5");
        assert_eq!(store.value.borrow().as_deref(), Some(&b"6"[..]));
        assert_eq!(*store.pauses.borrow(), 1);
    }

    #[test]
    fn a_change_built_upon_by_another_writer_is_seen_as_applied() {
        let store = SpinRedisLike::default();
        *store.interloper.borrow_mut() = Some(b"mine+theirs".to_vec());
        let got = update(&store, "k", 8, |current| match current {
            Some(v) if v.starts_with(b"mine") => Ok::<_, ()>(Step::AlreadyApplied("in")),
            _ => Ok(Step::Write(b"mine".to_vec(), "written")),
        });
        assert_eq!(got, Ok("in"));
        assert_eq!(*store.swaps.borrow(), 1);
    }

    #[test]
    fn refusals_and_endless_conflicts_are_reported() {
        let store = SpinRedisLike::default();
        assert_eq!(
            update(&store, "k", 8, |_| Err::<Step<()>, _>("closed")),
            Err(UpdateError::Rejected("closed"))
        );
        // A writer that always conflicts (its value never lands).
        struct AlwaysConflict;
        impl CasStore for AlwaysConflict {
            type Cas = ();
            type Error = ();
            fn open(&self, _: &str) -> Result<(), ()> {
                Ok(())
            }
            fn current(&self, _: &()) -> Result<Option<Vec<u8>>, ()> {
                Ok(Some(b"other".to_vec()))
            }
            fn swap(&self, _: (), _: &[u8]) -> Result<(), SwapError<(), ()>> {
                Err(SwapError::Failed(()))
            }
            fn pause(&self, _: u32) {}
        }
        assert_eq!(
            update(&AlwaysConflict, "k", 3, |_| Ok::<_, ()>(Step::Write(
                b"x".to_vec(),
                ()
            ))),
            Err(UpdateError::Contended)
        );
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(backoff_us(1, 100, 10_000, 0.999_999), 199);
        assert_eq!(backoff_us(30, 100, 10_000, 0.5), 5_000);
        assert_eq!(backoff_us(3, 100, 10_000, 0.0), 0);
    }
}
