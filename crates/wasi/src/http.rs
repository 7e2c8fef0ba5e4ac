//! One outgoing wasi:http client, and the body loops every caller needs:
//! read to a bound, write in chunks the host accepts.
//!
//! ```ignore
//! let response = Request::new(Method::Post, "https://hooks.example.com/x")?
//!     .header("content-type", "application/json")
//!     .timeout_ms(3000)
//!     .send(Some(body))?;
//! let answer = response.read_body(64 * 1024)?;
//! ```

use wasip2::http::types::{
    IncomingBody, IncomingResponse, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

pub use wasip2::http::types::{Fields, Method};
/// wasi:http 0.2.12, for `with` mappings and for the types callers name.
pub use wasip2::http::{outgoing_handler, types};

const NANOS_PER_MS: u64 = 1_000_000;
/// Bytes asked of an input stream per read.
const READ_CHUNK: u64 = 64 * 1024;
/// `blocking-write-and-flush` takes at most 4096 bytes at a time.
const WRITE_CHUNK: usize = 4096;

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not an absolute http(s) URL, or one the host would not take.
    Url(String),
    Headers(String),
    /// The host did not send it (not an allowed host, unreachable, timed out).
    NotSent(String),
    /// The body could not be written to the host.
    BodyNotWritten(String),
    /// Sent, but no response came.
    NoResponse(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Url(m) => write!(f, "{m}"),
            HttpError::Headers(m) => write!(f, "headers: {m}"),
            HttpError::NotSent(m) => write!(f, "not sent: {m}"),
            HttpError::BodyNotWritten(m) => write!(f, "writing the request body: {m}"),
            HttpError::NoResponse(m) => write!(f, "no response: {m}"),
        }
    }
}

/// Why a body (of a response, or of a request a component received) could
/// not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the reader's limit (bytes).
    TooLarge(usize),
    /// The body or its stream was already taken.
    Unavailable,
    /// The stream failed before its end.
    Unreadable,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => write!(f, "body larger than {limit} bytes"),
            BodyError::Unavailable => write!(f, "no body"),
            BodyError::Unreadable => write!(f, "body unreadable"),
        }
    }
}

/// One outgoing request, built and then sent.
pub struct Request {
    method: Method,
    scheme: Scheme,
    authority: String,
    path_and_query: String,
    headers: Vec<(String, Vec<u8>)>,
    first_byte_timeout_ms: Option<u64>,
    between_bytes_timeout_ms: Option<u64>,
}

impl Request {
    /// A request to an absolute `http://` or `https://` URL.
    pub fn new(method: Method, url: &str) -> Result<Request, HttpError> {
        let parts = copilot_jit_common::split_url(url).map_err(HttpError::Url)?;
        Ok(Request::at(
            method,
            parts.https,
            parts.authority,
            parts.path,
        ))
    }

    /// A request to a URL already in parts (`path_and_query` starts with `/`).
    pub fn at(method: Method, https: bool, authority: &str, path_and_query: &str) -> Request {
        Request {
            method,
            scheme: if https { Scheme::Https } else { Scheme::Http },
            authority: authority.to_string(),
            path_and_query: path_and_query.to_string(),
            headers: Vec::new(),
            first_byte_timeout_ms: None,
            between_bytes_timeout_ms: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    /// Gives up after `ms` to connect, and again after `ms` to the first
    /// response byte.
    pub fn timeout_ms(mut self, ms: u64) -> Request {
        self.first_byte_timeout_ms = Some(ms);
        self
    }

    /// Gives up when the response pauses longer than `ms` between bytes.
    pub fn between_bytes_timeout_ms(mut self, ms: u64) -> Request {
        self.between_bytes_timeout_ms = Some(ms);
        self
    }

    /// Sends the request and waits for the response head. The body is
    /// written after the request is handed to the host, so a large body
    /// streams instead of filling the host's buffer.
    pub fn send(self, body: Option<&[u8]>) -> Result<Response, HttpError> {
        let fields =
            Fields::from_list(&self.headers).map_err(|e| HttpError::Headers(format!("{e:?}")))?;
        let request = OutgoingRequest::new(fields);
        let accepted = request.set_method(&self.method).is_ok()
            && request.set_scheme(Some(&self.scheme)).is_ok()
            && request.set_authority(Some(&self.authority)).is_ok()
            && request
                .set_path_with_query(Some(&self.path_and_query))
                .is_ok();
        if !accepted {
            return Err(HttpError::Url(format!(
                "invalid URL {}{}",
                self.authority, self.path_and_query
            )));
        }
        let outgoing_body = request
            .body()
            .map_err(|_| HttpError::BodyNotWritten("request body unavailable".into()))?;
        let pending = outgoing_handler::handle(request, self.options())
            .map_err(|e| HttpError::NotSent(format!("{e:?}")))?;
        if let Some(bytes) = body.filter(|b| !b.is_empty()) {
            let stream = outgoing_body
                .write()
                .map_err(|_| HttpError::BodyNotWritten("request body stream unavailable".into()))?;
            write_all(&stream, bytes).map_err(|e| HttpError::BodyNotWritten(format!("{e:?}")))?;
            drop(stream);
        }
        OutgoingBody::finish(outgoing_body, None)
            .map_err(|e| HttpError::BodyNotWritten(format!("{e:?}")))?;
        pending.subscribe().block();
        match pending.get() {
            Some(Ok(Ok(response))) => Ok(Response {
                status: response.status(),
                inner: response,
            }),
            Some(Ok(Err(e))) => Err(HttpError::NoResponse(format!("{e:?}"))),
            _ => Err(HttpError::NoResponse("the host gave no response".into())),
        }
    }

    fn options(&self) -> Option<RequestOptions> {
        if self.first_byte_timeout_ms.is_none() && self.between_bytes_timeout_ms.is_none() {
            return None;
        }
        let options = RequestOptions::new();
        // A host that cannot set a timeout still sends the request.
        if let Some(ms) = self.first_byte_timeout_ms {
            let _ = options.set_connect_timeout(Some(ms.saturating_mul(NANOS_PER_MS)));
            let _ = options.set_first_byte_timeout(Some(ms.saturating_mul(NANOS_PER_MS)));
        }
        if let Some(ms) = self.between_bytes_timeout_ms {
            let _ = options.set_between_bytes_timeout(Some(ms.saturating_mul(NANOS_PER_MS)));
        }
        Some(options)
    }
}

/// A response head; its body is read whole or as a stream.
pub struct Response {
    status: u16,
    inner: IncomingResponse,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The response headers (drop them before the body is taken).
    pub fn headers(&self) -> Fields {
        self.inner.headers()
    }

    /// The whole body, at most `limit` bytes.
    pub fn read_body(self, limit: usize) -> Result<Vec<u8>, BodyError> {
        self.into_body()?.read_to_end(limit)
    }

    /// The body as a stream; dropping the reader early cancels the rest.
    pub fn into_body(self) -> Result<BodyReader, BodyError> {
        let body = self.inner.consume().map_err(|_| BodyError::Unavailable)?;
        BodyReader::new(body)
    }
}

/// Reads an incoming body (a response's, or a request's a component
/// received) chunk by chunk.
pub struct BodyReader {
    // Declared first so that it is dropped first: the stream is a child of
    // the body.
    stream: InputStream,
    body: IncomingBody,
}

impl BodyReader {
    pub fn new(body: IncomingBody) -> Result<BodyReader, BodyError> {
        let stream = body.stream().map_err(|_| BodyError::Unavailable)?;
        Ok(BodyReader { stream, body })
    }

    /// The next chunk of at most `max` bytes, `None` at the end.
    pub fn read(&mut self, max: u64) -> Result<Option<Vec<u8>>, BodyError> {
        match self.stream.blocking_read(max) {
            Ok(chunk) => Ok(Some(chunk)),
            Err(StreamError::Closed) => Ok(None),
            Err(StreamError::LastOperationFailed(_)) => Err(BodyError::Unreadable),
        }
    }

    /// The rest of the body, at most `limit` bytes.
    pub fn read_to_end(mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.read(READ_CHUNK)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > limit {
                return Err(BodyError::TooLarge(limit));
            }
        }
        let BodyReader { stream, body } = self;
        drop(stream);
        // Trailers are not used; finishing releases the body.
        drop(IncomingBody::finish(body));
        Ok(bytes)
    }
}

/// Writes all of `bytes`, in chunks the host accepts.
pub fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

/// The first value of header `name`, if it is UTF-8.
pub fn header(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok())
}
