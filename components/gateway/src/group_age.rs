//! Whether the group memberships a grant captured are still fresh enough
//! to decide a Copilot call with.
//!
//! A grant captures its requester's groups when the IdP vouches for them:
//! at the request, and again at each renewal (a renewal is a new request
//! with the groups of the token that asks). Every Copilot call under the
//! grant (`use` policy, masking profile) is decided with them, and refused
//! once they are older than `groups_max_age_secs`: someone removed from a
//! group at the IdP loses what the group gave within that bound.

use serde_json::{json, Value};

/// `Some(age)` when a capture made `at` is older than `max_age` at `now`.
pub fn stale_age(at: u64, now: u64, max_age: u64) -> Option<u64> {
    let age = now.saturating_sub(at);
    (age > max_age).then_some(age)
}

fn hours_or_minutes(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// The refusal, in words and in Copilot's `error_details` shape (editors
/// show it): how old the groups are and how to refresh them.
pub fn stale_refusal(age: u64, max_age: u64, access_page: &str) -> (String, Value) {
    let message = format!(
        "Your group memberships were confirmed {} ago; the gateway trusts them for {}. \
         Renew your grant (or sign in again) at {access_page} so your identity provider confirms them.",
        hours_or_minutes(age),
        hours_or_minutes(max_age),
    );
    let body = json!({
        "message": message,
        "error_details": {
            "title": "Confirm your group memberships",
            "message": message,
            "notification_id": "copilot-jit-groups",
            "url": access_page,
        },
        "can_signup_for_limited": false,
    });
    (message, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_go_stale_after_the_bound_not_at_it() {
        assert_eq!(stale_age(1000, 1600, 600), None);
        assert_eq!(stale_age(1000, 1601, 600), Some(601));
        // A clock behind the capture is no age at all.
        assert_eq!(stale_age(1000, 900, 600), None);
    }

    #[test]
    fn the_refusal_says_how_old_and_where_to_go() {
        let (message, body) = stale_refusal(9 * 3600, 8 * 3600, "https://gw/access");
        assert!(message.contains("9 h ago"), "{message}");
        assert!(message.contains("for 8 h"), "{message}");
        assert_eq!(body["error_details"]["url"], "https://gw/access");
        assert_eq!(body["error_details"]["message"], message.as_str());
        let (message, _) = stale_refusal(61, 60, "https://gw/access");
        assert!(message.contains("1 min ago") && message.contains("for 1 min"));
    }
}
