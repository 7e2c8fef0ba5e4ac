//! The actions the audit trail names (`api.operation`) and the OCSF activity
//! each one is. One table for the gateway, which names the action of every
//! request, and for the audit sink, which classifies it: a new action cannot
//! be recorded without saying what kind of activity it is.

/// What one request (or one webhook delivery) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// A request no route matched (yet): recorded, it may be probing.
    #[default]
    Unrouted,
    Health,
    Jwks,
    Ping,
    Telemetry,
    AccessRequest,
    AccessList,
    AccessShow,
    AccessApprove,
    AccessDeny,
    GrantRevoke,
    GrantRenew,
    GrantToken,
    GrantExchange,
    AuditRead,
    AuditReplay,
    AuditFlush,
    AuditStatus,
    AuditSeal,
    CopilotToken,
    CopilotUser,
    CopilotAgents,
    CopilotChat,
    CopilotCompletions,
    CopilotModels,
    CopilotEmbeddings,
    /// A person answered the gateway's message about missing access (its
    /// button or "Dismiss", as the editor reports it).
    CopilotNotification,
    /// `POST /login/device/code`: a device flow starts.
    SignInDeviceCode,
    /// `POST /login/oauth/access_token`: a device polls for its credential.
    SignInToken,
    /// A person binds a device code to themselves (page or API).
    SignInBind,
    /// A sign-in credential ended (sign-out, device revoke).
    SignInRevoke,
    /// The signed-in devices of a person.
    SignInList,
    /// The GitHub API shapes clients read about the signed-in user.
    GithubUser,
    /// Endpoints clients probe that the gateway does not offer (404).
    NotOffered,
    /// A person signs in to the pages at the IdP (the login callback).
    WebLogin,
    /// A page is shown.
    PageView,
    /// A person starts linking their GitHub account (GitHub's device flow,
    /// run by the gateway as GitHub's client).
    GithubLink,
    /// A person's GitHub link: its state, and one poll of GitHub while a
    /// link is pending.
    GithubLinkStatus,
    /// A person's GitHub link ends (the vault record goes).
    GithubUnlink,
    /// A webhook message about an access request.
    Notify(NotifyEvent),
}

/// What a webhook message announces (its `copilot_jit.event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyEvent {
    AutoApproved,
    Requested,
    Approved,
    Denied,
    Revoked,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 5] = [
        NotifyEvent::AutoApproved,
        NotifyEvent::Requested,
        NotifyEvent::Approved,
        NotifyEvent::Denied,
        NotifyEvent::Revoked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::AutoApproved => "access.auto_approved",
            NotifyEvent::Requested => "access.requested",
            NotifyEvent::Approved => "access.approved",
            NotifyEvent::Denied => "access.denied",
            NotifyEvent::Revoked => "grant.revoked",
        }
    }
}

/// The OCSF API Activity `activity_id` of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Create,
    Read,
    Update,
    Delete,
    Other,
}

impl Activity {
    pub fn id(self) -> u64 {
        match self {
            Activity::Create => 1,
            Activity::Read => 2,
            Activity::Update => 3,
            Activity::Delete => 4,
            Activity::Other => 99,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Activity::Create => "Create",
            Activity::Read => "Read",
            Activity::Update => "Update",
            Activity::Delete => "Delete",
            Activity::Other => "Other",
        }
    }
}

impl Action {
    /// Every action but the webhook ones (see `NotifyEvent::ALL`).
    pub const REQUESTS: [Action; 39] = [
        Action::Unrouted,
        Action::Health,
        Action::Jwks,
        Action::Ping,
        Action::Telemetry,
        Action::AccessRequest,
        Action::AccessList,
        Action::AccessShow,
        Action::AccessApprove,
        Action::AccessDeny,
        Action::GrantRevoke,
        Action::GrantRenew,
        Action::GrantToken,
        Action::GrantExchange,
        Action::AuditRead,
        Action::AuditReplay,
        Action::AuditFlush,
        Action::AuditStatus,
        Action::AuditSeal,
        Action::CopilotToken,
        Action::CopilotUser,
        Action::CopilotAgents,
        Action::CopilotChat,
        Action::CopilotCompletions,
        Action::CopilotModels,
        Action::CopilotEmbeddings,
        Action::CopilotNotification,
        Action::SignInDeviceCode,
        Action::SignInToken,
        Action::SignInBind,
        Action::SignInRevoke,
        Action::SignInList,
        Action::GithubUser,
        Action::NotOffered,
        Action::WebLogin,
        Action::PageView,
        Action::GithubLink,
        Action::GithubLinkStatus,
        Action::GithubUnlink,
    ];

    /// The name records carry. An unrouted request's is empty.
    pub fn name(self) -> &'static str {
        match self {
            Action::Unrouted => "",
            Action::Health => "health",
            Action::Jwks => "jwks",
            Action::Ping => "ping",
            Action::Telemetry => "telemetry",
            Action::AccessRequest => "access.request",
            Action::AccessList => "access.list",
            Action::AccessShow => "access.show",
            Action::AccessApprove => "access.approve",
            Action::AccessDeny => "access.deny",
            Action::GrantRevoke => "grant.revoke",
            Action::GrantRenew => "grant.renew",
            Action::GrantToken => "grant.token",
            Action::GrantExchange => "grant.exchange",
            Action::AuditRead => "audit.read",
            Action::AuditReplay => "audit.replay",
            Action::AuditFlush => "audit.flush",
            Action::AuditStatus => "audit.status",
            Action::AuditSeal => "audit.seal",
            Action::CopilotToken => "copilot.token",
            Action::CopilotUser => "copilot.user",
            Action::CopilotAgents => "copilot.agents",
            Action::CopilotChat => "copilot.chat",
            Action::CopilotCompletions => "copilot.completions",
            Action::CopilotModels => "copilot.models",
            Action::CopilotEmbeddings => "copilot.embeddings",
            Action::CopilotNotification => "copilot.notification",
            Action::SignInDeviceCode => "signin.device_code",
            Action::SignInToken => "signin.token",
            Action::SignInBind => "signin.bind",
            Action::SignInRevoke => "signin.revoke",
            Action::SignInList => "signin.list",
            Action::GithubUser => "github.user",
            Action::NotOffered => "not_offered",
            Action::WebLogin => "signin.web",
            Action::PageView => "page.view",
            Action::GithubLink => "github.link",
            Action::GithubLinkStatus => "github.link_status",
            Action::GithubUnlink => "github.unlink",
            Action::Notify(NotifyEvent::AutoApproved) => "notify.access.auto_approved",
            Action::Notify(NotifyEvent::Requested) => "notify.access.requested",
            Action::Notify(NotifyEvent::Approved) => "notify.access.approved",
            Action::Notify(NotifyEvent::Denied) => "notify.access.denied",
            Action::Notify(NotifyEvent::Revoked) => "notify.grant.revoked",
        }
    }

    /// The action a record names, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::REQUESTS
            .into_iter()
            .chain(NotifyEvent::ALL.map(Action::Notify))
            .find(|a| a.name() == name)
    }

    /// Reads are Read, creations Create, decisions and revocations Update
    /// or Delete; Copilot calls, probes and webhooks are Other.
    pub fn activity(self) -> Activity {
        match self {
            Action::AccessRequest
            | Action::GrantToken
            | Action::GrantExchange
            | Action::CopilotToken
            | Action::SignInDeviceCode
            | Action::SignInToken
            | Action::WebLogin
            | Action::GithubLink => Activity::Create,
            Action::AccessList
            | Action::AccessShow
            | Action::AuditRead
            | Action::AuditReplay
            | Action::AuditStatus
            | Action::CopilotUser
            | Action::CopilotAgents
            | Action::SignInList
            | Action::GithubUser
            | Action::PageView
            | Action::GithubLinkStatus => Activity::Read,
            Action::AccessApprove
            | Action::AccessDeny
            | Action::GrantRenew
            | Action::AuditFlush
            | Action::AuditSeal
            | Action::SignInBind => Activity::Update,
            Action::GrantRevoke | Action::SignInRevoke | Action::GithubUnlink => Activity::Delete,
            Action::Unrouted
            | Action::Health
            | Action::Jwks
            | Action::Ping
            | Action::Telemetry
            | Action::CopilotChat
            | Action::CopilotCompletions
            | Action::CopilotModels
            | Action::CopilotEmbeddings
            | Action::CopilotNotification
            | Action::NotOffered
            | Action::Notify(_) => Activity::Other,
        }
    }
}

/// The OCSF activity of a recorded action name; names that are not ours
/// (older records, other writers) are Other.
pub fn activity_of(name: &str) -> Activity {
    Action::from_name(name).map_or(Activity::Other, Action::activity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Action> {
        Action::REQUESTS
            .into_iter()
            .chain(NotifyEvent::ALL.map(Action::Notify))
            .collect()
    }

    #[test]
    fn every_name_is_distinct_and_reads_back() {
        let actions = all();
        for a in &actions {
            assert_eq!(Action::from_name(a.name()), Some(*a), "{a:?}");
        }
        let mut names: Vec<&str> = actions.iter().map(|a| a.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), actions.len(), "two actions share a name");
        assert_eq!(Action::from_name("copilot"), None);
    }

    #[test]
    fn activities_classify_what_an_action_does() {
        assert_eq!(activity_of("access.request"), Activity::Create);
        assert_eq!(activity_of("grant.exchange"), Activity::Create);
        assert_eq!(activity_of("audit.replay"), Activity::Read);
        assert_eq!(activity_of("access.deny"), Activity::Update);
        assert_eq!(activity_of("grant.revoke"), Activity::Delete);
        assert_eq!(activity_of("copilot.chat"), Activity::Other);
        assert_eq!(activity_of("notify.grant.revoked"), Activity::Other);
        assert_eq!(activity_of("something.else"), Activity::Other);
        assert_eq!(Activity::Delete.id(), 4);
        assert_eq!(Activity::Other.id(), 99);
    }

    #[test]
    fn webhook_actions_carry_the_event_name() {
        for e in NotifyEvent::ALL {
            assert_eq!(Action::Notify(e).name(), format!("notify.{}", e.name()));
        }
    }
}
