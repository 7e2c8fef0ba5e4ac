//! A person's browser, as far as server-rendered forms need one: it keeps
//! cookies (per host name, every port, as browsers do), follows redirects
//! one hop at a time so tests can look at each, and reads forms.

use std::collections::HashMap;

pub struct Browser {
    client: reqwest::Client,
    /// host → cookie name → value.
    cookies: HashMap<String, HashMap<String, String>>,
    /// Every `Set-Cookie` seen, for attribute checks.
    pub set_cookies: Vec<String>,
    /// Origins reached through another (an HTTPS listener through the same
    /// gateway's plain one: this browser speaks no TLS).
    aliases: Vec<(String, String)>,
}

/// One answer, not followed.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn location(&self) -> Option<String> {
        let to = self.headers.get("location")?.to_str().ok()?;
        Some(resolve(&self.url, to))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The first form's `action`, resolved against this page.
    pub fn form_action(&self) -> Option<String> {
        let at = self.text.find("<form")?;
        let action = attribute(&self.text[at..], "action")?;
        Some(resolve(&self.url, &html_unescape(&action)))
    }

    /// The form whose action is `suffix`: its resolved action and CSRF token.
    pub fn form_ending(&self, suffix: &str) -> (String, String) {
        let at = self
            .text
            .find(&format!("action=\"{suffix}\""))
            .unwrap_or_else(|| panic!("no form for {suffix}: {}", self.text));
        let start = self.text[..at].rfind("<form").expect("form start");
        let chunk = Page {
            url: self.url.clone(),
            status: self.status,
            headers: self.headers.clone(),
            text: self.text[start..].to_string(),
        };
        (
            chunk.form_action().expect("action"),
            chunk.input("csrf").expect("csrf"),
        )
    }

    /// The id of the newest request on a person's access page.
    pub fn first_request_id(&self) -> String {
        let at = self.text.find("data-request=\"").expect("a request row") + 14;
        let len = self.text[at..].find('"').expect("attribute end");
        self.text[at..at + len].to_string()
    }

    /// The value of the (first) input named `name`.
    pub fn input(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\"");
        let at = self.text.find(&needle)?;
        let start = self.text[..at].rfind('<')?;
        let end = at + self.text[at..].find('>')?;
        attribute(&self.text[start..end], "value").map(|v| html_unescape(&v))
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(tag[start..start + len].to_string())
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

fn host_of(url: &str) -> String {
    let o = origin(url);
    let authority = o.split("://").nth(1).unwrap_or(o);
    authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .to_string()
}

fn resolve(base: &str, to: &str) -> String {
    if to.starts_with("http://") || to.starts_with("https://") {
        to.to_string()
    } else if to.starts_with('/') {
        format!("{}{to}", origin(base))
    } else {
        let dir = base.rsplit_once('/').map_or(base, |(d, _)| d);
        format!("{dir}/{to}")
    }
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
            aliases: Vec::new(),
        }
    }

    /// Requests to `origin` go to `via` (same host name, so same cookies).
    pub fn alias(&mut self, origin: &str, via: &str) {
        self.aliases.push((origin.to_string(), via.to_string()));
    }

    fn target(&self, url: &str) -> String {
        for (origin, via) in &self.aliases {
            if let Some(rest) = url.strip_prefix(origin.as_str()) {
                return format!("{via}{rest}");
            }
        }
        url.to_string()
    }

    /// The value this browser holds for cookie `name` on `url`'s host.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.cookies.get(&host_of(url))?.get(name).cloned()
    }

    /// Puts a cookie in the jar (e.g. one copied from another browser).
    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        self.cookies
            .entry(host_of(url))
            .or_default()
            .insert(name.to_string(), value.to_string());
    }

    async fn send(&mut self, url: &str, req: reqwest::RequestBuilder) -> Page {
        let jar = self
            .cookies
            .get(&host_of(url))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let req = if jar.is_empty() {
            req
        } else {
            req.header("cookie", jar)
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: unreachable: {e}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        for set in headers.get_all("set-cookie") {
            let Ok(set) = set.to_str() else { continue };
            self.set_cookies.push(set.to_string());
            let pair = set.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                let jar = self.cookies.entry(host_of(url)).or_default();
                let expired = set.to_ascii_lowercase().contains("max-age=0") || v.is_empty();
                if expired {
                    jar.remove(k.trim());
                } else {
                    jar.insert(k.trim().to_string(), v.to_string());
                }
            }
        }
        let text = resp.text().await.unwrap_or_default();
        Page {
            url: url.to_string(),
            status,
            headers,
            text,
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let req = self.client.get(self.target(url));
        self.send(url, req).await
    }

    pub async fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> Page {
        let req = self.client.post(self.target(url)).form(fields);
        self.send(url, req).await
    }

    /// Follows redirects from `page` until an answer that is not one.
    pub async fn follow(&mut self, mut page: Page) -> Page {
        for _ in 0..20 {
            let Some(to) = page
                .location()
                .filter(|_| (300..400).contains(&page.status))
            else {
                return page;
            };
            page = self.get(&to).await;
        }
        panic!("too many redirects, last at {}", page.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_like_a_browser() {
        assert_eq!(resolve("http://a:1/x/y", "/z"), "http://a:1/z");
        assert_eq!(resolve("http://a:1/x/y", "z"), "http://a:1/x/z");
        assert_eq!(resolve("http://a:1/x", "https://b/"), "https://b/");
        assert_eq!(host_of("http://127.0.0.1:8080/p"), "127.0.0.1");
    }

    #[test]
    fn forms_are_read() {
        let page = Page {
            url: "http://gw/login/device".into(),
            status: 200,
            headers: Default::default(),
            text: r#"<form method="post" action="/login/device"><input type="hidden" name="csrf" value="a&amp;b"></form>"#.into(),
        };
        assert_eq!(
            page.form_action().as_deref(),
            Some("http://gw/login/device")
        );
        assert_eq!(page.input("csrf").as_deref(), Some("a&b"));
        assert_eq!(page.input("nope"), None);
    }
}
