//! Where records live in an S3-compatible bucket, and how a bucket is
//! addressed.
//!
//! One object per record, named by its own id: `{prefix}dt=YYYY-MM-DD/{id}.json`,
//! the id time-ordered (`aud_{ms:013}_{random}`), so names sort by time
//! within a day and writing one never needs to know another. The name is a
//! pure function of the record: shipping it twice writes the same object
//! (with `If-None-Match: *` where the store honours it).

use crate::sigv4::{self, Credentials};

/// A time-ordered, unique record id: milliseconds, then 8 random bytes.
pub fn record_id(time_ms: u64, random: &[u8; 8]) -> String {
    format!("aud_{time_ms:013}_{}", hex::encode(random))
}

/// The milliseconds a record id starts with.
pub fn id_time_ms(id: &str) -> Option<u64> {
    let rest = id.strip_prefix("aud_")?;
    let (ms, random) = rest.split_once('_')?;
    if ms.len() != 13 || random.len() != 16 || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    ms.parse().ok()
}

/// The record's name under the audit prefix: `dt=YYYY-MM-DD/{id}.json`.
pub fn record_name(id: &str, time_ms: u64) -> String {
    format!("dt={}/{id}.json", crate::time::day_of_ms(time_ms))
}

pub fn object_key(prefix: &str, id: &str, time_ms: u64) -> String {
    format!("{prefix}{}", record_name(id, time_ms))
}

/// The partition prefix of one day (`YYYY-MM-DD`).
pub fn day_prefix(prefix: &str, day: &str) -> String {
    format!("{prefix}dt={day}/")
}

/// (day, id) from a record's key (or name) written by `object_key`.
pub fn parse_object_key(key: &str) -> Option<(String, String)> {
    let at = key.rfind("dt=")?;
    let rest = &key[at + 3..];
    let (day, name) = rest.split_once('/')?;
    let id = name.strip_suffix(".json")?;
    id_time_ms(id)?;
    if day.len() != 10 || name.contains('/') {
        return None;
    }
    Some((day.to_string(), id.to_string()))
}

/// An S3-compatible bucket. `endpoint` is the origin requests go to: for
/// path-style addressing the service (`http://127.0.0.1:3900`,
/// `https://<account>.r2.cloudflarestorage.com`), for virtual-host style the
/// bucket's own host (`https://audit.s3.eu-west-1.amazonaws.com`).
#[derive(Clone, Debug)]
pub struct Bucket {
    pub https: bool,
    pub host: String,
    pub name: String,
    pub path_style: bool,
    pub region: String,
    pub credentials: Credentials,
}

/// A request ready to send: method, URL parts and every header to set.
#[derive(Debug)]
pub struct SignedRequest {
    pub method: &'static str,
    pub https: bool,
    pub host: String,
    /// Encoded path and query, as sent.
    pub path_and_query: String,
    pub headers: Vec<(String, String)>,
}

impl SignedRequest {
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.host, self.path_and_query)
    }
}

impl Bucket {
    pub fn new(
        endpoint: &str,
        name: &str,
        path_style: bool,
        region: &str,
        credentials: Credentials,
    ) -> Result<Bucket, String> {
        let url = copilot_jit_common::split_url(endpoint.trim().trim_end_matches('/'))?;
        if url.path != "/" {
            return Err(
                "the S3 endpoint is an origin (scheme://host[:port]), without a path".into(),
            );
        }
        if path_style && name.trim().is_empty() {
            return Err("path-style addressing needs a bucket name".into());
        }
        Ok(Bucket {
            https: url.https,
            host: url.authority.to_string(),
            name: name.trim().to_string(),
            path_style,
            region: region.to_string(),
            credentials,
        })
    }

    fn path(&self, key: &str) -> String {
        if self.path_style {
            format!("/{}/{key}", self.name)
        } else {
            format!("/{key}")
        }
    }

    fn signed(
        &self,
        method: &'static str,
        path: String,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload: &[u8],
        unix_secs: u64,
    ) -> SignedRequest {
        let request = sigv4::Request {
            method,
            host: &self.host,
            path: &path,
            query,
            headers,
            payload,
        };
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.extend(sigv4::sign(
            &request,
            &self.credentials,
            &self.region,
            unix_secs,
        ));
        let query = sigv4::canonical_query(query);
        let mut path_and_query = sigv4::uri_encode(&path, true);
        if !query.is_empty() {
            path_and_query.push('?');
            path_and_query.push_str(&query);
        }
        SignedRequest {
            method,
            https: self.https,
            host: self.host.clone(),
            path_and_query,
            headers: all,
        }
    }

    pub fn put_object(&self, key: &str, body: &[u8], unix_secs: u64) -> SignedRequest {
        self.signed(
            "PUT",
            self.path(key),
            &[],
            &[("content-type", content_type(key))],
            body,
            unix_secs,
        )
    }

    /// A PUT that the store refuses (412) when the object exists, where it
    /// honours `If-None-Match: *` (AWS S3, R2, MinIO, GCS; Garage 2.5 does
    /// not look at it and overwrites).
    pub fn put_new_object(&self, key: &str, body: &[u8], unix_secs: u64) -> SignedRequest {
        self.signed(
            "PUT",
            self.path(key),
            &[],
            &[("content-type", content_type(key)), ("if-none-match", "*")],
            body,
            unix_secs,
        )
    }

    pub fn get_object(&self, key: &str, unix_secs: u64) -> SignedRequest {
        self.signed("GET", self.path(key), &[], &[], b"", unix_secs)
    }

    pub fn delete_object(&self, key: &str, unix_secs: u64) -> SignedRequest {
        self.signed("DELETE", self.path(key), &[], &[], b"", unix_secs)
    }

    /// ListObjectsV2 of one page under `prefix`.
    pub fn list_objects(
        &self,
        prefix: &str,
        continuation: Option<&str>,
        unix_secs: u64,
    ) -> SignedRequest {
        let mut query = vec![("list-type", "2"), ("prefix", prefix)];
        if let Some(token) = continuation {
            query.push(("continuation-token", token));
        }
        let path = if self.path_style {
            format!("/{}", self.name)
        } else {
            "/".to_string()
        };
        self.signed("GET", path, &query, &[], b"", unix_secs)
    }
}

fn content_type(key: &str) -> &'static str {
    if key.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// One page of a ListObjectsV2 answer: the keys and the token for the next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub next: Option<String>,
}

fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// Reads the keys (and the continuation token) from a ListObjectsV2 answer.
pub fn parse_list_page(xml: &str) -> Result<ListPage, String> {
    if !xml.contains("<ListBucketResult") {
        return Err("not a ListBucketResult document".into());
    }
    let truncated = elements(xml, "IsTruncated").first() == Some(&"true");
    let next = elements(xml, "NextContinuationToken")
        .first()
        .map(|t| xml_unescape(t));
    if truncated && next.is_none() {
        return Err("a truncated listing without a continuation token".into());
    }
    Ok(ListPage {
        keys: elements(xml, "Key").into_iter().map(xml_unescape).collect(),
        next: if truncated { next } else { None },
    })
}

/// The S3 error code of an error answer (`<Code>…</Code>`), for messages.
pub fn error_code(xml: &str) -> Option<String> {
    elements(xml, "Code").first().map(|c| xml_unescape(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "AK".into(),
            secret_access_key: "SK".into(),
            session_token: None,
        }
    }

    #[test]
    fn object_keys_are_partitioned_by_day_and_parse_back() {
        let id = record_id(1_796_000_000_000, &[0xab; 8]);
        assert_eq!(id, "aud_1796000000000_abababababababab");
        let key = object_key("audit/", &id, 1_796_000_000_000);
        assert_eq!(key, format!("audit/dt=2026-11-30/{id}.json"));
        assert_eq!(
            parse_object_key(&key),
            Some(("2026-11-30".into(), id.clone()))
        );
        assert_eq!(id_time_ms(&id), Some(1_796_000_000_000));
        assert_eq!(parse_object_key("audit/dt=2026-11-30/other.txt"), None);
        assert_eq!(parse_object_key("audit/dt=2026-11-30/aud_1.json"), None);
        assert_eq!(parse_object_key("audit/log/tile/0/000"), None);
        // Later ids sort after earlier ones.
        assert!(record_id(1_796_000_000_001, &[0; 8]) > id);
    }

    #[test]
    fn path_and_virtual_host_addressing() {
        let path = Bucket::new("http://127.0.0.1:3900", "audit", true, "garage", creds()).unwrap();
        let put = path.put_object("a/dt=2026-01-01/main-1.jsonl", b"{}", 0);
        let new = path.put_new_object("a/x.json", b"{}", 0);
        assert!(new
            .headers
            .iter()
            .any(|(k, v)| k == "if-none-match" && v == "*"));
        assert_eq!(
            put.url(),
            "http://127.0.0.1:3900/audit/a/dt%3D2026-01-01/main-1.jsonl"
        );
        let vhost = Bucket::new(
            "https://audit.s3.eu-west-1.amazonaws.com/",
            "audit",
            false,
            "eu-west-1",
            creds(),
        )
        .unwrap();
        let list = vhost.list_objects("a/", Some("t+1"), 0);
        assert_eq!(
            list.url(),
            "https://audit.s3.eu-west-1.amazonaws.com/?continuation-token=t%2B1&list-type=2&prefix=a%2F"
        );
        assert!(list.headers.iter().any(|(k, _)| k == "authorization"));
        assert!(Bucket::new("https://s3.example/x", "b", true, "r", creds()).is_err());
        assert!(Bucket::new("s3.example", "b", true, "r", creds()).is_err());
    }

    #[test]
    fn list_pages_parse() {
        let xml = r#"<?xml version="1.0"?><ListBucketResult><Name>b</Name>
            <Contents><Key>a/dt=1/m-1.jsonl</Key></Contents>
            <Contents><Key>a&amp;b</Key></Contents>
            <IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken>
            </ListBucketResult>"#;
        let page = parse_list_page(xml).unwrap();
        assert_eq!(page.keys, vec!["a/dt=1/m-1.jsonl", "a&b"]);
        assert_eq!(page.next.as_deref(), Some("tok"));
        assert!(parse_list_page("<Error><Code>AccessDenied</Code></Error>").is_err());
        assert_eq!(
            error_code("<Error><Code>AccessDenied</Code></Error>").as_deref(),
            Some("AccessDenied")
        );
    }
}
