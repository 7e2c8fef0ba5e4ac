//! Request routing: (method, path) to a route, or the reason there is none,
//! and the action each route is recorded as.

use copilot_jit_common::action::Action;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Jwks,
    CreateRequest,
    ListRequests,
    GetRequest(String),
    Decide(String, Verdict),
    Revoke(String),
    /// `POST /v1/grants/{id}/renew`: a new grant with the same scopes, under the renew policy.
    Renew(String),
    IssueToken(String),
    AuditRecords,
    /// `GET /v1/audit/grants/{id}/replay`: one grant's exchanges in order.
    AuditReplay(String),
    /// `POST /v1/audit/flush`: ship spooled records (for a scheduler).
    AuditFlush,
    /// `GET /v1/audit/status`: storage, spool, the log's checkpoint, public key.
    AuditStatus,
    /// `POST /v1/audit/seal`: integrate new records into the log (for a scheduler).
    AuditSeal,
    /// `POST /v1/token-exchange`: a GitHub Actions OIDC token for a gateway token (RFC 8693).
    TokenExchange,
    /// `GET /copilot_internal/v2/token`: the Copilot token exchange clients perform.
    CopilotToken,
    /// `GET /copilot_internal/user`: the signed-in user's Copilot entitlement.
    CopilotUser,
    /// `POST /copilot_internal/notification`: a person answered the
    /// gateway's message (the 403's `error_details`).
    CopilotNotification,
    /// `GET /user`: who is signed in, as the GitHub API answers it.
    GithubUser,
    /// `GET /agents`: Copilot extensions (none through the gateway).
    Agents,
    /// `GET|POST /telemetry`: accepted and dropped, never forwarded.
    Telemetry,
    /// `GET /_ping`: client diagnostics.
    Ping,
    Copilot(CopilotCall),
    /// `POST /login/device/code`: a client starts the device flow.
    DeviceCode,
    /// `POST /login/oauth/access_token`: a client polls for its credential.
    DeviceToken,
    /// `POST /v1/sign-in/device`: a person with an OIDC token takes a user
    /// code (what the pages do after the IdP, for scripts and the CLI).
    DeviceBind,
    /// `GET /v1/sign-ins`: the caller's signed-in devices.
    SignIns,
    /// `POST /v1/sign-ins/{id}/revoke`: ends one of them.
    SignInRevoke(String),
    /// `GET /api/v3`: a GitHub Enterprise API root (`X-OAuth-Scopes`).
    GithubApiRoot,
    /// `GET /api/v3/meta`: the server's meta data.
    GithubMeta,
    /// Copilot features clients probe that the gateway does not offer:
    /// GitHub's 404, which every client treats as "none".
    NotOffered,
    /// `GET /v1/github/link`: the caller's GitHub link (one poll of GitHub
    /// while a link is pending).
    GithubLinkStatus,
    /// `POST /v1/github/link`: start linking the caller's GitHub account.
    GithubLinkStart,
    /// `POST /v1/github/unlink`: end the caller's GitHub link.
    GithubUnlink,
    /// The server-rendered pages people use in a browser.
    Page(Page),
}

/// The pages: the device flow's verification and the IdP sign-in behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `GET /login/device`: enter the code.
    DeviceEntry,
    /// `POST /login/device`: the code, then off to the IdP.
    DeviceStart,
    /// `GET /login/callback`: back from the IdP.
    Callback,
    /// `GET /login/device/confirm`: allow this device?
    Confirm,
    /// `POST /login/device/confirm`: allowed or refused.
    ConfirmPost,
    /// `POST /logout`: the browser session ends.
    SignOut,
    /// `GET /access`: ask for access; the person's requests and grants.
    Access,
    /// `POST /access`: the ask, answered by the policy at once.
    AccessPost,
    /// `GET /approvals`: the approver's inbox.
    Approvals,
    /// `POST /access/{id}/approve|deny|revoke|renew`.
    Act(String, PageAct),
    /// `GET /login/devices`: the person's signed-in devices.
    Devices,
    /// `POST /login/devices/{id}/revoke`.
    DeviceRevoke(String),
    /// `GET /settings/copilot`: where the CLI links a refused person; on to `/access`.
    CopilotSettings,
    /// `GET /github/link`: the person's GitHub link; while pending, GitHub's
    /// code and link, and one poll of GitHub per view.
    GithubLink,
    /// `POST /github/link`: start linking.
    GithubLinkStart,
    /// `POST /github/unlink`.
    GithubUnlink,
}

/// What a page's button does to a request or grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAct {
    Approve,
    Deny,
    Revoke,
    Renew,
}

impl Route {
    /// The action the audit record names.
    pub fn action(&self) -> Action {
        match self {
            Route::Health => Action::Health,
            Route::Jwks => Action::Jwks,
            Route::CreateRequest => Action::AccessRequest,
            Route::ListRequests => Action::AccessList,
            Route::GetRequest(_) => Action::AccessShow,
            Route::Decide(_, Verdict::Approve) => Action::AccessApprove,
            Route::Decide(_, Verdict::Deny) => Action::AccessDeny,
            Route::Revoke(_) => Action::GrantRevoke,
            Route::Renew(_) => Action::GrantRenew,
            Route::IssueToken(_) => Action::GrantToken,
            Route::AuditRecords => Action::AuditRead,
            Route::AuditReplay(_) => Action::AuditReplay,
            Route::AuditFlush => Action::AuditFlush,
            Route::AuditStatus => Action::AuditStatus,
            Route::AuditSeal => Action::AuditSeal,
            Route::TokenExchange => Action::GrantExchange,
            Route::CopilotToken => Action::CopilotToken,
            Route::CopilotUser | Route::GithubUser => Action::CopilotUser,
            Route::CopilotNotification => Action::CopilotNotification,
            Route::Agents => Action::CopilotAgents,
            Route::Telemetry => Action::Telemetry,
            Route::Ping => Action::Ping,
            Route::Copilot(call) => call.action(),
            Route::DeviceCode => Action::SignInDeviceCode,
            Route::DeviceToken => Action::SignInToken,
            Route::DeviceBind => Action::SignInBind,
            Route::SignIns => Action::SignInList,
            Route::SignInRevoke(_) => Action::SignInRevoke,
            Route::GithubApiRoot => Action::GithubUser,
            Route::GithubMeta => Action::Ping,
            Route::NotOffered => Action::NotOffered,
            Route::Page(Page::DeviceEntry | Page::Confirm) => Action::PageView,
            Route::Page(Page::DeviceStart) => Action::PageView,
            Route::Page(Page::Callback) => Action::WebLogin,
            Route::Page(Page::ConfirmPost) => Action::SignInBind,
            Route::Page(Page::SignOut | Page::DeviceRevoke(_)) => Action::SignInRevoke,
            Route::Page(Page::Access | Page::Approvals | Page::Devices | Page::CopilotSettings) => {
                Action::PageView
            }
            Route::Page(Page::AccessPost) => Action::AccessRequest,
            Route::GithubLinkStatus | Route::Page(Page::GithubLink) => Action::GithubLinkStatus,
            Route::GithubLinkStart | Route::Page(Page::GithubLinkStart) => Action::GithubLink,
            Route::GithubUnlink | Route::Page(Page::GithubUnlink) => Action::GithubUnlink,
            Route::Page(Page::Act(_, PageAct::Approve)) => Action::AccessApprove,
            Route::Page(Page::Act(_, PageAct::Deny)) => Action::AccessDeny,
            Route::Page(Page::Act(_, PageAct::Revoke)) => Action::GrantRevoke,
            Route::Page(Page::Act(_, PageAct::Renew)) => Action::GrantRenew,
        }
    }

    /// Whether the call must be refused when it could not be recorded.
    /// Reading the spool's state and flushing it stay open, to recover from
    /// an outage.
    pub fn needs_audit_room(&self) -> bool {
        is_recorded(self.action())
            && !matches!(
                self,
                Route::AuditFlush | Route::AuditStatus | Route::AuditSeal
            )
    }
}

/// Probes and dropped telemetry leave no record: they carry no exchange.
/// Unrouted requests are recorded: they may be probing.
pub fn is_recorded(action: Action) -> bool {
    !matches!(
        action,
        Action::Health | Action::Jwks | Action::Ping | Action::Telemetry | Action::NotOffered
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Deny,
}

/// A proxied Copilot endpoint, with the grant scope it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopilotCall {
    ChatCompletions,
    EngineCompletions {
        model: String,
    },
    Models,
    Model {
        id: String,
    },
    EmbeddingsModels,
    Embeddings,
    /// OpenAI Responses API, where upstream offers it.
    Responses,
    /// Anthropic Messages API, where upstream offers it.
    Messages,
}

impl CopilotCall {
    pub fn scope(&self) -> &'static str {
        match self {
            CopilotCall::ChatCompletions | CopilotCall::Responses | CopilotCall::Messages => "chat",
            CopilotCall::EngineCompletions { .. } => "completions",
            CopilotCall::Models | CopilotCall::Model { .. } | CopilotCall::EmbeddingsModels => {
                "models"
            }
            CopilotCall::Embeddings => "embeddings",
        }
    }

    /// Model listings serve every grant: clients need them for any scope.
    pub fn is_listing(&self) -> bool {
        matches!(
            self,
            CopilotCall::Models | CopilotCall::Model { .. } | CopilotCall::EmbeddingsModels
        )
    }

    /// The upstream path (on the proxy host for completions, else the API host).
    pub fn upstream_path(&self) -> String {
        match self {
            CopilotCall::ChatCompletions => "/chat/completions".into(),
            CopilotCall::EngineCompletions { model } => format!("/v1/engines/{model}/completions"),
            CopilotCall::Models => "/models".into(),
            CopilotCall::Model { id } => format!("/models/{id}"),
            CopilotCall::EmbeddingsModels => "/embeddings/models".into(),
            CopilotCall::Embeddings => "/embeddings".into(),
            CopilotCall::Responses => "/responses".into(),
            CopilotCall::Messages => "/v1/messages".into(),
        }
    }

    /// Recorded by the scope it uses.
    pub fn action(&self) -> Action {
        match self.scope() {
            "chat" => Action::CopilotChat,
            "completions" => Action::CopilotCompletions,
            "models" => Action::CopilotModels,
            _ => Action::CopilotEmbeddings,
        }
    }

    /// Which upstream base serves it: the Copilot API or the completions proxy.
    pub fn uses_proxy_host(&self) -> bool {
        matches!(self, CopilotCall::EngineCompletions { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed(&'static str),
}

fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Model ids as Copilot names them (`gpt-4o`, `claude-3.5-sonnet`): no path tricks.
fn model_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let path = path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let only = |allowed: &'static str, route: Route| {
        if method == allowed {
            Ok(route)
        } else {
            Err(RouteError::MethodNotAllowed(allowed))
        }
    };
    match segments.as_slice() {
        ["healthz"] => only("GET", Route::Health),
        [".well-known", "jwks.json"] => only("GET", Route::Jwks),
        ["v1", "access-requests"] => match method {
            "POST" => Ok(Route::CreateRequest),
            "GET" => Ok(Route::ListRequests),
            _ => Err(RouteError::MethodNotAllowed("GET, POST")),
        },
        ["v1", "access-requests", id] if id_ok(id) => {
            only("GET", Route::GetRequest(id.to_string()))
        }
        ["v1", "access-requests", id, "approve"] if id_ok(id) => {
            only("POST", Route::Decide(id.to_string(), Verdict::Approve))
        }
        ["v1", "access-requests", id, "deny"] if id_ok(id) => {
            only("POST", Route::Decide(id.to_string(), Verdict::Deny))
        }
        ["v1", "grants", id, "revoke"] if id_ok(id) => only("POST", Route::Revoke(id.to_string())),
        ["v1", "grants", id, "renew"] if id_ok(id) => only("POST", Route::Renew(id.to_string())),
        ["v1", "grants", id, "token"] if id_ok(id) => {
            only("POST", Route::IssueToken(id.to_string()))
        }
        ["v1", "audit", "records"] => only("GET", Route::AuditRecords),
        ["v1", "audit", "grants", id, "replay"] if id_ok(id) => {
            only("GET", Route::AuditReplay(id.to_string()))
        }
        ["v1", "audit", "flush"] => only("POST", Route::AuditFlush),
        ["v1", "audit", "status"] => only("GET", Route::AuditStatus),
        ["v1", "audit", "seal"] => only("POST", Route::AuditSeal),
        ["v1", "token-exchange"] => only("POST", Route::TokenExchange),
        ["chat", "completions"] => only("POST", Route::Copilot(CopilotCall::ChatCompletions)),
        ["v1", "engines", model, "completions"] if model_ok(model) => only(
            "POST",
            Route::Copilot(CopilotCall::EngineCompletions {
                model: model.to_string(),
            }),
        ),
        ["models"] => only("GET", Route::Copilot(CopilotCall::Models)),
        ["models", id] if model_ok(id) => only(
            "GET",
            Route::Copilot(CopilotCall::Model { id: id.to_string() }),
        ),
        ["embeddings"] => only("POST", Route::Copilot(CopilotCall::Embeddings)),
        ["embeddings", "models"] => only("GET", Route::Copilot(CopilotCall::EmbeddingsModels)),
        ["responses"] => only("POST", Route::Copilot(CopilotCall::Responses)),
        ["v1", "messages"] => only("POST", Route::Copilot(CopilotCall::Messages)),
        ["copilot_internal", "v2", "token"] => only("GET", Route::CopilotToken),
        ["copilot_internal", "user"] => only("GET", Route::CopilotUser),
        ["copilot_internal", "notification"] => only("POST", Route::CopilotNotification),
        ["user"] => only("GET", Route::GithubUser),
        ["agents"] => only("GET", Route::Agents),
        ["telemetry"] => match method {
            "GET" | "POST" => Ok(Route::Telemetry),
            _ => Err(RouteError::MethodNotAllowed("GET, POST")),
        },
        ["_ping"] => only("GET", Route::Ping),
        ["login", "device", "code"] => only("POST", Route::DeviceCode),
        ["login", "device"] => match method {
            "GET" => Ok(Route::Page(Page::DeviceEntry)),
            "POST" => Ok(Route::Page(Page::DeviceStart)),
            _ => Err(RouteError::MethodNotAllowed("GET, POST")),
        },
        ["login", "device", "confirm"] => match method {
            "GET" => Ok(Route::Page(Page::Confirm)),
            "POST" => Ok(Route::Page(Page::ConfirmPost)),
            _ => Err(RouteError::MethodNotAllowed("GET, POST")),
        },
        ["login", "callback"] => only("GET", Route::Page(Page::Callback)),
        ["logout"] => only("POST", Route::Page(Page::SignOut)),
        ["access"] => match method {
            "GET" => Ok(Route::Page(Page::Access)),
            "POST" => Ok(Route::Page(Page::AccessPost)),
            _ => Err(RouteError::MethodNotAllowed("GET, POST")),
        },
        ["access", id, act] if id_ok(id) => {
            let act = match *act {
                "approve" => PageAct::Approve,
                "deny" => PageAct::Deny,
                "revoke" => PageAct::Revoke,
                "renew" => PageAct::Renew,
                _ => return Err(RouteError::NotFound),
            };
            only("POST", Route::Page(Page::Act(id.to_string(), act)))
        }
        ["approvals"] => only("GET", Route::Page(Page::Approvals)),
        // Where the Copilot CLI sends a refused person.
        ["settings", "copilot"] => only("GET", Route::Page(Page::CopilotSettings)),
        ["login", "devices"] => only("GET", Route::Page(Page::Devices)),
        ["login", "devices", id, "revoke"] if id_ok(id) => {
            only("POST", Route::Page(Page::DeviceRevoke(id.to_string())))
        }
        ["login", "oauth", "access_token"] => only("POST", Route::DeviceToken),
        ["v1", "github", "link"] => match method {
            "GET" => Ok(Route::GithubLinkStatus),
            "POST" => Ok(Route::GithubLinkStart),
            _ => Err(RouteError::MethodNotAllowed("GET, POST")),
        },
        ["v1", "github", "unlink"] => only("POST", Route::GithubUnlink),
        ["github", "link"] => match method {
            "GET" => Ok(Route::Page(Page::GithubLink)),
            "POST" => Ok(Route::Page(Page::GithubLinkStart)),
            _ => Err(RouteError::MethodNotAllowed("GET, POST")),
        },
        ["github", "unlink"] => only("POST", Route::Page(Page::GithubUnlink)),
        ["v1", "sign-in", "device"] => only("POST", Route::DeviceBind),
        ["v1", "sign-ins"] => only("GET", Route::SignIns),
        ["v1", "sign-ins", id, "revoke"] if id_ok(id) => {
            only("POST", Route::SignInRevoke(id.to_string()))
        }
        ["api", "v3"] => only("GET", Route::GithubApiRoot),
        ["api", "v3", "user"] => only("GET", Route::GithubUser),
        ["api", "v3", "meta"] => only("GET", Route::GithubMeta),
        ["copilot_internal", "managed_settings" | "team_customizations" | "content_exclusion"]
        | ["copilot", "mcp_registry"]
        | ["mcp", "readonly"]
        | ["agents", "swe", ..] => Ok(Route::NotOffered),
        _ => Err(RouteError::NotFound),
    }
}

/// Query string parameters, percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

pub fn query_params(path_with_query: &str) -> Query {
    let Some((_, query)) = path_with_query.split_once('?') else {
        return Query(Vec::new());
    };
    Query(
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect(),
    )
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_api() {
        assert_eq!(
            route("POST", "/v1/access-requests"),
            Ok(Route::CreateRequest)
        );
        assert_eq!(
            route("GET", "/v1/access-requests?status=pending"),
            Ok(Route::ListRequests)
        );
        assert_eq!(
            route("POST", "/v1/access-requests/req_1/approve"),
            Ok(Route::Decide("req_1".into(), Verdict::Approve))
        );
        assert_eq!(
            route("POST", "/v1/grants/req_1/revoke"),
            Ok(Route::Revoke("req_1".into()))
        );
        assert_eq!(
            route("POST", "/v1/engines/gpt-41-copilot/completions"),
            Ok(Route::Copilot(CopilotCall::EngineCompletions {
                model: "gpt-41-copilot".into()
            }))
        );
    }

    #[test]
    fn model_ids_cannot_walk_paths() {
        assert!(route("POST", "/v1/engines/../completions").is_err());
        assert!(route("POST", "/v1/engines/.hidden/completions").is_err());
        assert!(route("GET", "/models/a%2Fb").is_err());
        assert_eq!(
            route("GET", "/models/claude-3.5-sonnet"),
            Ok(Route::Copilot(CopilotCall::Model {
                id: "claude-3.5-sonnet".into()
            }))
        );
    }

    #[test]
    fn unknown_paths_and_wrong_methods() {
        assert_eq!(route("GET", "/nope"), Err(RouteError::NotFound));
        assert_eq!(
            route("GET", "/v1/access-requests/../x"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            route("GET", "/chat/completions"),
            Err(RouteError::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route("DELETE", "/v1/access-requests"),
            Err(RouteError::MethodNotAllowed("GET, POST"))
        );
    }

    #[test]
    fn routes_are_recorded_as_their_actions() {
        let action = |method, path| route(method, path).map(|r| r.action().name());
        assert_eq!(action("POST", "/v1/access-requests"), Ok("access.request"));
        assert_eq!(action("GET", "/v1/access-requests"), Ok("access.list"));
        assert_eq!(
            action("GET", "/v1/access-requests/req_1"),
            Ok("access.show")
        );
        assert_eq!(
            action("POST", "/v1/access-requests/req_1/approve"),
            Ok("access.approve")
        );
        assert_eq!(
            action("POST", "/v1/access-requests/req_1/deny"),
            Ok("access.deny")
        );
        assert_eq!(
            action("POST", "/v1/grants/req_1/revoke"),
            Ok("grant.revoke")
        );
        assert_eq!(action("POST", "/v1/grants/req_1/renew"), Ok("grant.renew"));
        assert_eq!(action("POST", "/v1/grants/req_1/token"), Ok("grant.token"));
        assert_eq!(action("POST", "/v1/token-exchange"), Ok("grant.exchange"));
        assert_eq!(action("GET", "/v1/audit/records"), Ok("audit.read"));
        assert_eq!(
            action("GET", "/v1/audit/grants/req_1/replay"),
            Ok("audit.replay")
        );
        assert_eq!(
            action("GET", "/copilot_internal/v2/token"),
            Ok("copilot.token")
        );
        assert_eq!(action("GET", "/user"), Ok("copilot.user"));
        assert_eq!(action("GET", "/copilot_internal/user"), Ok("copilot.user"));
        assert_eq!(action("POST", "/chat/completions"), Ok("copilot.chat"));
        assert_eq!(action("POST", "/responses"), Ok("copilot.chat"));
        assert_eq!(action("POST", "/v1/messages"), Ok("copilot.chat"));
        assert_eq!(
            action("POST", "/v1/engines/gpt-4o/completions"),
            Ok("copilot.completions")
        );
        assert_eq!(action("GET", "/models/gpt-4o"), Ok("copilot.models"));
        assert_eq!(action("GET", "/embeddings/models"), Ok("copilot.models"));
        assert_eq!(action("POST", "/embeddings"), Ok("copilot.embeddings"));
    }

    #[test]
    fn probes_are_not_recorded_and_the_spool_stays_reachable() {
        for (method, path) in [
            ("GET", "/healthz"),
            ("GET", "/.well-known/jwks.json"),
            ("GET", "/_ping"),
            ("POST", "/telemetry"),
        ] {
            let r = route(method, path).unwrap();
            assert!(!is_recorded(r.action()), "{path}");
            assert!(!r.needs_audit_room(), "{path}");
        }
        assert!(is_recorded(Action::Unrouted));
        assert!(route("POST", "/chat/completions")
            .unwrap()
            .needs_audit_room());
        assert!(route("GET", "/v1/audit/records")
            .unwrap()
            .needs_audit_room());
        // An outage must stay recoverable while the spool is full.
        assert!(!route("POST", "/v1/audit/flush").unwrap().needs_audit_room());
        assert!(!route("GET", "/v1/audit/status").unwrap().needs_audit_room());
        assert!(!route("POST", "/v1/audit/seal").unwrap().needs_audit_room());
    }

    #[test]
    fn sign_in_and_github_api_routes() {
        assert_eq!(
            route("POST", "/login/device/code?client_id=x"),
            Ok(Route::DeviceCode)
        );
        assert_eq!(
            route("POST", "/login/oauth/access_token"),
            Ok(Route::DeviceToken)
        );
        assert_eq!(
            route("GET", "/login/oauth/access_token"),
            Err(RouteError::MethodNotAllowed("POST"))
        );
        assert_eq!(route("GET", "/api/v3/user"), Ok(Route::GithubUser));
        assert_eq!(route("GET", "/api/v3/"), Ok(Route::GithubApiRoot));
        assert_eq!(
            route("POST", "/v1/sign-ins/0123abcd/revoke"),
            Ok(Route::SignInRevoke("0123abcd".into()))
        );
        for (method, path) in [
            (
                "GET",
                "/copilot_internal/managed_settings?client_id=github/cli",
            ),
            ("GET", "/copilot_internal/team_customizations"),
            ("GET", "/copilot/mcp_registry"),
            ("POST", "/mcp/readonly"),
            ("GET", "/agents/swe/internal/memory/v0/enabled"),
        ] {
            let r = route(method, path).unwrap();
            assert_eq!(r, Route::NotOffered, "{path}");
            assert!(!is_recorded(r.action()), "{path}");
        }
        assert_eq!(
            action("POST", "/login/device/code"),
            Ok("signin.device_code")
        );
        // The language server's answer to the gateway's message is recorded.
        let answered = route("POST", "/copilot_internal/notification").unwrap();
        assert_eq!(answered.action().name(), "copilot.notification");
        assert!(is_recorded(answered.action()));
        assert_eq!(
            route("GET", "/copilot_internal/notification"),
            Err(RouteError::MethodNotAllowed("POST"))
        );
    }

    #[test]
    fn github_link_routes() {
        assert_eq!(route("GET", "/v1/github/link"), Ok(Route::GithubLinkStatus));
        assert_eq!(route("POST", "/v1/github/link"), Ok(Route::GithubLinkStart));
        assert_eq!(route("POST", "/v1/github/unlink"), Ok(Route::GithubUnlink));
        assert_eq!(
            route("GET", "/v1/github/unlink"),
            Err(RouteError::MethodNotAllowed("POST"))
        );
        assert_eq!(
            route("GET", "/github/link"),
            Ok(Route::Page(Page::GithubLink))
        );
        assert_eq!(action("POST", "/github/link"), Ok("github.link"));
        assert_eq!(action("POST", "/github/unlink"), Ok("github.unlink"));
        assert_eq!(action("GET", "/v1/github/link"), Ok("github.link_status"));
    }

    fn action(method: &str, path: &str) -> Result<&'static str, RouteError> {
        route(method, path).map(|r| r.action().name())
    }

    #[test]
    fn query_parameters_are_decoded() {
        let q = query_params("/x?status=pending&status=other");
        assert_eq!(q.get("status").as_deref(), Some("pending"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(
            query_params("/x?status=pending&requester=a%40b.c&q=a+b&bad=%zz&multi=%é").0,
            vec![
                ("status".into(), "pending".into()),
                ("requester".into(), "a@b.c".into()),
                ("q".into(), "a b".into()),
                ("bad".into(), "%zz".into()),
                ("multi".into(), "%é".into()),
            ]
        );
    }
}
