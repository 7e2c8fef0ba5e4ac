//! The masking-filter component: prompt inspection and response masking.
//! It is `no_std` on wasm so that it imports nothing from the host, not even
//! stdio or clocks; all logic lives in `engine`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod engine;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::engine::{self, Direction, Profile};
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;
    use core::cell::RefCell;

    #[global_allocator]
    static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

    /// `memcmp`/`bcmp` come from libc on wasi targets; without std we supply them.
    #[unsafe(no_mangle)]
    unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        for i in 0..n {
            // SAFETY: the caller guarantees both regions hold `n` bytes.
            let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
            if x != y {
                return x as i32 - y as i32;
            }
        }
        0
    }

    #[unsafe(no_mangle)]
    unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        // SAFETY: same contract as memcmp.
        unsafe { memcmp(a, b, n) }
    }

    /// The canonical ABI allocator, which libc provides on wasip2 otherwise.
    #[unsafe(no_mangle)]
    unsafe extern "C" fn cabi_realloc(
        old_ptr: *mut u8,
        old_len: usize,
        align: usize,
        new_len: usize,
    ) -> *mut u8 {
        use alloc::alloc::{alloc, realloc, Layout};
        if new_len == 0 {
            return align as *mut u8;
        }
        // SAFETY: the canonical ABI passes a valid power-of-two alignment and,
        // for a reallocation, the pointer and size it received earlier.
        let ptr = unsafe {
            if old_len == 0 {
                alloc(Layout::from_size_align_unchecked(new_len, align))
            } else {
                realloc(
                    old_ptr,
                    Layout::from_size_align_unchecked(old_len, align),
                    new_len,
                )
            }
        };
        if ptr.is_null() {
            core::arch::wasm32::unreachable();
        }
        ptr
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        core::arch::wasm32::unreachable()
    }

    wit_bindgen::generate!({
        path: "../../wit",
        world: "masking-filter",
        generate_all,
    });

    use exports::copilot_jit::gateway::masking::{Guest, GuestStreamMasker, MaskingContext, Scan};
    use exports::copilot_jit::gateway::types::Finding;

    fn findings(f: &engine::Findings) -> Vec<Finding> {
        f.iter()
            .map(|(detector, found)| Finding {
                detector: detector.to_string(),
                count: found.count,
                positions: found.positions.clone(),
                fingerprints: found.fingerprints.clone(),
            })
            .collect()
    }

    fn to_wit(scan: engine::Scan) -> Scan {
        Scan {
            findings: findings(&scan.findings),
            text: scan.text,
            blocked: scan.blocked,
        }
    }

    fn profile(ctx: &MaskingContext) -> Profile {
        let groups: Vec<&str> = ctx.groups.iter().map(String::as_str).collect();
        Profile::for_groups(&groups)
            .with_fingerprint_key(&ctx.fingerprint_key)
            .with_hold_back(ctx.max_hold_back as usize)
    }

    struct Component;

    struct StreamMasker(RefCell<engine::StreamMasker>);

    impl GuestStreamMasker for StreamMasker {
        fn new(ctx: MaskingContext) -> Self {
            StreamMasker(RefCell::new(engine::StreamMasker::with_profile(profile(
                &ctx,
            ))))
        }
        fn push(&self, text: String) -> String {
            self.0.borrow_mut().push(&text)
        }
        fn finish(&self) -> String {
            self.0.borrow_mut().finish()
        }
        fn findings(&self) -> Vec<Finding> {
            findings(self.0.borrow().findings())
        }
    }

    impl Guest for Component {
        type StreamMasker = StreamMasker;

        fn inspect_prompt(text: String, ctx: MaskingContext) -> Scan {
            to_wit(engine::scan_with(&text, &profile(&ctx), Direction::Prompt))
        }
        fn mask_response(text: String, ctx: MaskingContext) -> Scan {
            to_wit(engine::scan_with(
                &text,
                &profile(&ctx),
                Direction::Response,
            ))
        }
    }

    export!(Component);
}
