//! Text for Slack-compatible webhooks: what a requester or approver wrote
//! must not become a mention (`<!channel>`) or a disguised link
//! (`<https://evil|Approve>`). Slack asks for `&`, `<` and `>` escaped.

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn mentions_and_links_are_not_formatting() {
        assert_eq!(
            super::escape("<!channel> see <https://evil|Approve> & go"),
            "&lt;!channel&gt; see &lt;https://evil|Approve&gt; &amp; go"
        );
        assert_eq!(super::escape("plain"), "plain");
    }
}
