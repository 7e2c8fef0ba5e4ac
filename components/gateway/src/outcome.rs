//! The outcome an audit record gives a request: what happened to the call,
//! which the status alone does not always say (a blocked prompt and a
//! cancelled stream).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    /// The prompt held content policy does not let leave.
    Blocked,
    Failed,
    /// The client went away mid-answer.
    Cancelled,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Blocked => "blocked",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The outcome a status means when the request set none itself.
    pub fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Allowed,
            401 | 403 => Outcome::Denied,
            _ => Outcome::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(Outcome::of_status(200), Outcome::Allowed);
        assert_eq!(Outcome::of_status(201), Outcome::Allowed);
        assert_eq!(Outcome::of_status(401), Outcome::Denied);
        assert_eq!(Outcome::of_status(403), Outcome::Denied);
        // Not found, conflicts and upstream failures are failures, not denials.
        assert_eq!(Outcome::of_status(404), Outcome::Failed);
        assert_eq!(Outcome::of_status(409), Outcome::Failed);
        assert_eq!(Outcome::of_status(429), Outcome::Failed);
        assert_eq!(Outcome::of_status(502), Outcome::Failed);
        assert_eq!(Outcome::Cancelled.name(), "cancelled");
    }
}
