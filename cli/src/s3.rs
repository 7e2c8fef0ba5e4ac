//! A small blocking S3 client over the shared SigV4 signer.

use copilot_jit_audit_log::layout::{self, Bucket, SignedRequest};
use copilot_jit_audit_log::sigv4::Credentials;

pub struct S3 {
    pub bucket: Bucket,
    agent: ureq::Agent,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl S3 {
    pub fn new(
        endpoint: &str,
        bucket: &str,
        path_style: bool,
        region: &str,
        credentials: Credentials,
    ) -> Result<S3, String> {
        Ok(S3 {
            bucket: Bucket::new(endpoint, bucket, path_style, region, credentials)?,
            agent: ureq::AgentBuilder::new()
                .timeout(std::time::Duration::from_secs(30))
                .build(),
        })
    }

    fn call(&self, request: SignedRequest, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
        let mut call = self.agent.request(request.method, &request.url());
        for (k, v) in &request.headers {
            call = call.set(k, v);
        }
        let response = match call.send_bytes(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(format!("{}: {e}", request.url())),
        };
        let status = response.status();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)
            .map_err(|e| format!("reading {}: {e}", request.url()))?;
        Ok((status, bytes))
    }

    fn expect_ok(what: &str, (status, body): (u16, Vec<u8>)) -> Result<Vec<u8>, String> {
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            let code = layout::error_code(&String::from_utf8_lossy(&body)).unwrap_or_default();
            Err(format!("{what}: storage answered {status} {code}"))
        }
    }

    pub fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        copilot_jit_common::all_pages(|next| {
            let request = self.bucket.list_objects(prefix, next, now());
            let body = Self::expect_ok("listing the bucket", self.call(request, b"")?)?;
            let page = layout::parse_list_page(&String::from_utf8_lossy(&body))?;
            Ok((page.keys, page.next))
        })
    }

    pub fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        Self::expect_ok(
            &format!("reading {key}"),
            self.call(self.bucket.get_object(key, now()), b"")?,
        )
    }

    /// The object, or `None` when the bucket has none under `key`.
    pub fn get_optional(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        match self.call(self.bucket.get_object(key, now()), b"")? {
            (404, _) => Ok(None),
            answer => Self::expect_ok(&format!("reading {key}"), answer).map(Some),
        }
    }

    pub fn put(&self, key: &str, body: &[u8]) -> Result<(), String> {
        Self::expect_ok(
            &format!("writing {key}"),
            self.call(self.bucket.put_object(key, body, now()), body)?,
        )
        .map(|_| ())
    }

    pub fn delete(&self, key: &str) -> Result<(), String> {
        Self::expect_ok(
            &format!("deleting {key}"),
            self.call(self.bucket.delete_object(key, now()), b"")?,
        )
        .map(|_| ())
    }
}
