//! The masking-filter component: prompt inspection and response masking.
//! It imports nothing; all logic lives in `engine`.

pub mod engine;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::engine::{self, Direction};
    use std::cell::RefCell;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "masking-filter",
        generate_all,
    });

    use exports::copilot_jit::gateway::masking::{Guest, GuestStreamMasker, Scan};
    use copilot_jit::gateway::types::Finding;

    fn findings(f: &engine::Findings) -> Vec<Finding> {
        f.iter()
            .map(|(detector, count)| Finding {
                detector: detector.to_string(),
                count,
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

    struct Component;

    struct StreamMasker(RefCell<engine::StreamMasker>);

    impl GuestStreamMasker for StreamMasker {
        fn new() -> Self {
            StreamMasker(RefCell::new(engine::StreamMasker::default()))
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

        fn inspect_prompt(text: String) -> Scan {
            to_wit(engine::scan(&text, Direction::Prompt))
        }
        fn mask_response(text: String) -> Scan {
            to_wit(engine::scan(&text, Direction::Response))
        }
    }

    export!(Component);
}
