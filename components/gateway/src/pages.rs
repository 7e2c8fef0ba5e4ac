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
h1{font-size:1.5rem}input[type=text]{font:1.5rem monospace;letter-spacing:.2em;width:12ch;text-transform:uppercase}\
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

#[cfg(test)]
mod tests {
    use super::*;

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
