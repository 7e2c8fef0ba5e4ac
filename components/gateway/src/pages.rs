//! Server-rendered pages: plain HTML forms, usable without JavaScript, every
//! value escaped, styles allowed by a per-response nonce only.

/// HTML text and attribute escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A strict policy: nothing but this page's own styles (by nonce), forms to
/// the gateway and, for the login redirect, the IdP; never framed.
pub fn content_security_policy(style_nonce: &str, idp_origin: &str) -> String {
    format!(
        "default-src 'none'; style-src 'nonce-{style_nonce}'; img-src 'self'; form-action 'self' {idp_origin}; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// Headers every page carries beside its CSP.
pub const PAGE_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1f2328}\
h1{font-size:1.5rem}input[name=user_code]{font:1.5rem monospace;letter-spacing:.2em;width:12ch;text-transform:uppercase}\
button{font-size:1rem;padding:.4rem 1rem;margin-right:.5rem}.error{color:#b00020}.muted{color:#59636e}\
table{border-collapse:collapse}td,th{padding:.3rem .6rem;border-bottom:1px solid #d0d7de;text-align:left}";

pub fn layout(title: &str, body: &str, style_nonce: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>{title} · copilot-jit</title><style nonce=\"{style_nonce}\">{STYLE}</style></head>\
<body><main>{body}</main></body></html>",
        title = escape(title)
    )
}

fn error_line(error: Option<&str>) -> String {
    error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default()
}

/// The device flow's verification page: the person types the code their
/// editor shows.
pub fn device_entry(prefill: &str, csrf: &str, error: Option<&str>) -> String {
    format!(
        "<h1>Sign in a device</h1><p>Enter the code shown by your editor or the Copilot CLI. \
You will sign in with your organisation's account.</p>{}\
<form method=\"post\" action=\"/login/device\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
<label>Code <input type=\"text\" name=\"user_code\" value=\"{}\" maxlength=\"12\" autocomplete=\"off\" autofocus required></label> \
<button type=\"submit\">Continue</button></form>",
        error_line(error),
        escape(csrf),
        escape(prefill)
    )
}

/// After the IdP: the person confirms the device (device-flow phishing is
/// someone else's code; they see whose client it is first).
pub fn device_confirm(client: &str, who: &str, user_code: &str, csrf: &str) -> String {
    format!(
        "<h1>Sign in {client}?</h1><p>You are signed in as <strong>{who}</strong>. \
Allow the device showing <strong>{code}</strong> to use Copilot as you? \
Signing in grants no access by itself: Copilot works once you have an approved grant.</p>\
<form method=\"post\" action=\"/login/device/confirm\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">This was not me</button></form>",
        client = escape(client),
        who = escape(who),
        code = escape(user_code),
        csrf = escape(csrf)
    )
}

pub fn device_done(allowed: bool, client: &str) -> String {
    if allowed {
        format!(
            "<h1>Device signed in</h1><p>{} is signed in. You can close this page and return to it.</p>\
<p><a href=\"/access\">Request Copilot access</a> · <a href=\"/login/devices\">Your signed-in devices</a></p>",
            escape(client)
        )
    } else {
        "<h1>Device refused</h1><p>The code was refused; the device stays signed out.</p>".into()
    }
}

/// A readable page for an error.
pub fn message(title: &str, text: &str) -> String {
    format!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/login/device\">Sign in a device</a></p>",
        escape(title),
        escape(text)
    )
}

fn text(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(|x| x.as_str())
        .unwrap_or("")
        .to_string()
}

fn list(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// One small POST form (a button and the CSRF token; a comment box if asked).
fn action_form(action: &str, label: &str, csrf: &str, comment: bool) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{}<button type=\"submit\">{}</button></form>",
        escape(action),
        escape(csrf),
        if comment { "<input type=\"text\" name=\"comment\" maxlength=\"1000\" placeholder=\"comment\"> " } else { "" },
        escape(label)
    )
}

fn nav(who: &str, csrf: &str) -> String {
    format!(
        "<p class=\"muted\">Signed in as <strong>{}</strong> · <a href=\"/access\">Access</a> · <a href=\"/approvals\">Approvals</a> · <a href=\"/login/devices\">Devices</a> · <a href=\"/github/link\">GitHub</a></p>{}",
        escape(who),
        action_form("/logout", "Sign out", csrf, false)
    )
}

/// What a request is waiting for, or what it is.
pub fn status_line(r: &serde_json::Value) -> String {
    match r.get("status").and_then(|s| s.as_str()).unwrap_or("") {
        "pending" => format!(
            "waiting for {} approval(s) from {}",
            r.get("required_approvals")
                .and_then(|n| n.as_u64())
                .unwrap_or(1),
            list(r, "approver_groups")
        ),
        "approved" => "approved".into(),
        other => other.to_string(),
    }
}

/// The person's page: ask for access (the policy answers at once), see
/// their requests and grants, revoke or renew them. It refreshes itself
/// while something is pending.
pub fn access_page(
    who: &str,
    csrf: &str,
    own: &[serde_json::Value],
    notice: Option<&str>,
) -> String {
    let mut rows = String::new();
    for r in own {
        let id = text(r, "id");
        let mut actions = String::new();
        if text(r, "status") == "approved" {
            actions.push_str(&action_form(
                &format!("/access/{id}/revoke"),
                "Revoke",
                csrf,
                false,
            ));
            actions.push_str(&action_form(
                &format!("/access/{id}/renew"),
                "Renew",
                csrf,
                false,
            ));
        }
        rows.push_str(&format!(
            "<tr data-request=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"status\">{}</td><td>{}</td></tr>",
            escape(&id),
            escape(&id),
            escape(&list(r, "scopes")),
            escape(&text(r, "reason")),
            escape(&status_line(r)),
            actions
        ));
    }
    format!(
        "<h1>Copilot access</h1>{nav}{notice}\
<h2>Ask for access</h2><form method=\"post\" action=\"/access\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<p><label><input type=\"checkbox\" name=\"scope\" value=\"chat\" checked> chat</label> \
<label><input type=\"checkbox\" name=\"scope\" value=\"completions\"> completions</label> \
<label><input type=\"checkbox\" name=\"scope\" value=\"embeddings\"> embeddings</label></p>\
<p><label>Models (optional, comma-separated) <input type=\"text\" name=\"models\" maxlength=\"500\"></label></p>\
<p><label>For <select name=\"duration\"><option>1h</option><option>4h</option><option selected>8h</option></select></label></p>\
<p><label>Repository (optional) <input type=\"text\" name=\"repository\" maxlength=\"200\"></label></p>\
<p><label>Reason <input type=\"text\" name=\"reason\" maxlength=\"500\" required></label></p>\
<button type=\"submit\">Request access</button></form>\
<h2>Your requests</h2><table><tr><th>id</th><th>scopes</th><th>reason</th><th>status</th><th></th></tr>{rows}</table>",
        nav = nav(who, csrf),
        notice = notice.map(|n| format!("<p class=\"notice\" role=\"status\">{}</p>", escape(n))).unwrap_or_default(),
        csrf = escape(csrf),
    )
}

/// The approver's inbox: what they may decide, and grants they may revoke.
pub fn approvals_page(
    who: &str,
    csrf: &str,
    decidable: &[serde_json::Value],
    active: &[serde_json::Value],
) -> String {
    let row = |r: &serde_json::Value, actions: String| {
        let requester = r
            .get("requester")
            .map(|q| {
                q.get("email")
                    .and_then(|e| e.as_str())
                    .or_else(|| q.get("subject").and_then(|s| s.as_str()))
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        format!(
            "<tr data-request=\"{id}\"><td>{id}</td><td>{who}</td><td>{scopes}</td><td>{reason}</td><td>{status}</td><td>{actions}</td></tr>",
            id = escape(&text(r, "id")),
            who = escape(&requester),
            scopes = escape(&list(r, "scopes")),
            reason = escape(&text(r, "reason")),
            status = escape(&status_line(r)),
        )
    };
    let mut pending = String::new();
    for r in decidable {
        let id = text(r, "id");
        pending.push_str(&row(
            r,
            format!(
                "{}{}",
                action_form(&format!("/access/{id}/approve"), "Approve", csrf, true),
                action_form(&format!("/access/{id}/deny"), "Deny", csrf, true)
            ),
        ));
    }
    let mut granted = String::new();
    for r in active {
        let id = text(r, "id");
        granted.push_str(&row(
            r,
            action_form(
                &format!("/access/{id}/revoke?from=approvals"),
                "Revoke",
                csrf,
                true,
            ),
        ));
    }
    format!(
        "<h1>Approvals</h1>{}<h2>Waiting for you</h2><table id=\"pending\">{}</table><h2>Active grants</h2><table id=\"active\">{}</table>",
        nav(who, csrf),
        pending,
        granted
    )
}

/// The person's signed-in devices, each revocable.
pub fn devices_page(who: &str, csrf: &str, devices: &[serde_json::Value]) -> String {
    let mut rows = String::new();
    for d in devices {
        let id = text(d, "id");
        rows.push_str(&format!(
            "<tr data-device=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&id),
            escape(&text(d, "client")),
            d.get("signed_in_at").and_then(|n| n.as_u64()).unwrap_or(0),
            d.get("expires_at").and_then(|n| n.as_u64()).unwrap_or(0),
            action_form(
                &format!("/login/devices/{id}/revoke"),
                "Sign out this device",
                csrf,
                false
            )
        ));
    }
    format!(
        "<h1>Signed-in devices</h1>{}<table><tr><th>client</th><th>signed in (unix time)</th><th>until</th><th></th></tr>{}</table>",
        nav(who, csrf),
        rows
    )
}

/// The person's GitHub link: link it (GitHub's code and link while
/// pending: the page reloads itself, and each view asks GitHub once), see
/// which account is linked, unlink, link again when broken.
pub fn github_link_page(who: &str, csrf: &str, status: &serde_json::Value) -> String {
    let link_form = |label: &str| action_form("/github/link", label, csrf, false);
    let unlink_form = action_form("/github/unlink", "Unlink", csrf, false);
    let login = text(status, "login");
    let mut body = match text(status, "status").as_str() {
        "pending" => {
            let uri = text(status, "verification_uri");
            format!(
                "<p>Open <a href=\"{uri}\" rel=\"noopener noreferrer\">{uri_text}</a>, sign in to GitHub as yourself \
and enter this code:</p><p class=\"code\" id=\"user-code\"><strong>{code}</strong></p>\
<p class=\"muted\">This page checks with GitHub every {interval} seconds and shows the result here.</p>{again}",
                uri = escape(&uri),
                uri_text = escape(&uri),
                code = escape(&text(status, "user_code")),
                interval = status.get("interval").and_then(|i| i.as_u64()).unwrap_or(5),
                again = link_form("Start again"),
            )
        }
        "linked" => format!(
            "<p id=\"linked\">Linked to the GitHub account <strong>{}</strong>. Your Copilot calls use its seat.</p>{}\
<p class=\"muted\">Unlinking makes the gateway forget the account's tokens at once. To end them at GitHub too, \
revoke the app under Settings → Applications on github.com.</p>",
            escape(&login),
            unlink_form
        ),
        "broken" => format!(
            "<p class=\"error\" id=\"broken\">The gateway can no longer use the GitHub account <strong>{}</strong>: {}.</p>\
<p>Link it again to go on using Copilot.</p>{}{}",
            escape(&login),
            escape(&text(status, "reason")),
            link_form("Link again"),
            unlink_form
        ),
        _ => format!(
            "<p>Your Copilot calls are made with your own GitHub account's Copilot seat. \
Link your GitHub account once; the gateway keeps its tokens encrypted and never shows them.</p>{}",
            link_form("Link GitHub account")
        ),
    };
    match text(status, "last_attempt").as_str() {
        "denied" => body.insert_str(0, "<p class=\"error\" role=\"alert\">GitHub says the link was refused.</p>"),
        "expired" => body.insert_str(0, "<p class=\"error\" role=\"alert\">The code expired before it was entered; start again.</p>"),
        _ => {}
    }
    format!("<h1>Your GitHub account</h1>{}{}", nav(who, csrf), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_github_page_shows_each_state() {
        let pending = github_link_page(
            "alice",
            "t",
            &serde_json::json!({"status": "pending", "user_code": "AB<C", "verification_uri": "https://github.com/login/device", "interval": 5}),
        );
        assert!(pending.contains("AB&lt;C") && pending.contains("https://github.com/login/device"));
        let linked = github_link_page(
            "alice",
            "t",
            &serde_json::json!({"status": "linked", "login": "octo"}),
        );
        assert!(linked.contains("octo") && linked.contains("/github/unlink"));
        let broken = github_link_page(
            "alice",
            "t",
            &serde_json::json!({"status": "broken", "login": "octo", "reason": "refused"}),
        );
        assert!(broken.contains("Link again") && broken.contains("refused"));
        let none = github_link_page("alice", "t", &serde_json::json!({"status": "none"}));
        assert!(none.contains("Link GitHub account"));
    }

    #[test]
    fn every_value_is_escaped() {
        let page = device_confirm("<script>", "a\"b", "X'Y", "c&d");
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;") && page.contains("a&quot;b"));
        assert!(page.contains("X&#39;Y") && page.contains("c&amp;d"));
        let entry = device_entry("\"><img src=x>", "t", Some("<b>"));
        assert!(!entry.contains("<img") && !entry.contains("<b>"));
    }

    #[test]
    fn pages_allow_only_their_own_styles() {
        let csp = content_security_policy("n0nce", "https://idp.example");
        assert!(csp.starts_with("default-src 'none'"));
        assert!(csp.contains("style-src 'nonce-n0nce'"));
        assert!(csp.contains("form-action 'self' https://idp.example"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("script-src"));
        let html = layout("T<", "<p>x</p>", "n0nce");
        assert!(html.contains("<style nonce=\"n0nce\">") && html.contains("T&lt;"));
    }
}
