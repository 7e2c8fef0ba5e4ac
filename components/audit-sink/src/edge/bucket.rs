//! wasi:http to the bucket: records, the log's tiles and checkpoints.

use copilot_jit_audit_log::layout::{self, Bucket, SignedRequest};
use copilot_jit_audit_log::store::Blobs;
use copilot_jit_common::unix_now_ms as now_ms;
use copilot_jit_wasi::http::{Method, Request};

/// Slow storage counts as down: every wait is bounded by `timeout_ms`, and
/// the record is spooled instead of holding the request.
fn send(request: &SignedRequest, body: &[u8], timeout_ms: u64) -> Result<(u16, Vec<u8>), String> {
    let method = match request.method {
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        _ => Method::Get,
    };
    let mut outgoing = Request::at(
        method,
        request.https,
        &request.host,
        &request.path_and_query,
    )
    .timeout_ms(timeout_ms)
    .between_bytes_timeout_ms(timeout_ms);
    for (name, value) in &request.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing
        .send((!body.is_empty()).then_some(body))
        .map_err(|e| format!("storage unreachable: {e}"))?;
    let status = response.status();
    let bytes = response
        .read_body(64 * 1024 * 1024)
        .map_err(|e| format!("storage response: {e}"))?;
    Ok((status, bytes))
}

fn storage_error(what: &str, status: u16, body: &[u8]) -> String {
    let code = layout::error_code(&String::from_utf8_lossy(body)).unwrap_or_default();
    format!("{what}: storage answered {status} {code}")
}

/// A bucket with the timeout its calls may take.
pub struct BucketBlobs<'a> {
    pub bucket: &'a Bucket,
    pub timeout_ms: u64,
}

impl BucketBlobs<'_> {
    /// Writes a new object (a record): `If-None-Match: *`, so a store that
    /// honours it answers 412 when it is there already — the same record,
    /// since its name is its id: stored.
    pub fn put_new(&self, key: &str, body: &[u8]) -> Result<(), String> {
        let request = self.bucket.put_new_object(key, body, now_ms() / 1000);
        match send(&request, body, self.timeout_ms)? {
            (200..=299 | 412, _) => Ok(()),
            (status, answer) => Err(storage_error("storing a record", status, &answer)),
        }
    }
}

impl Blobs for BucketBlobs<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let request = self.bucket.get_object(key, now_ms() / 1000);
        match send(&request, b"", self.timeout_ms)? {
            (200..=299, body) => Ok(Some(body)),
            (404, _) => Ok(None),
            (status, body) => Err(storage_error("reading an object", status, &body)),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        let request = self.bucket.put_object(key, bytes, now_ms() / 1000);
        match send(&request, bytes, self.timeout_ms)? {
            (200..=299, _) => Ok(()),
            (status, body) => Err(storage_error("writing an object", status, &body)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        copilot_jit_common::all_pages(|next| {
            let request = self.bucket.list_objects(prefix, next, now_ms() / 1000);
            let (status, body) = send(&request, b"", self.timeout_ms)?;
            if !(200..=299).contains(&status) {
                return Err(storage_error("listing objects", status, &body));
            }
            let page = layout::parse_list_page(&String::from_utf8_lossy(&body))?;
            Ok((page.keys, page.next))
        })
    }
}
