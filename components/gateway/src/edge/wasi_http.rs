//! The gateway's side of wasi:http and wasi:config: request headers and
//! bodies, JSON replies, variables. Outgoing calls go through the shared
//! client (`copilot_jit_wasi::http`).

use copilot_jit_wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use copilot_jit_wasi::http::BodyReader;
use copilot_jit_wasi::io::streams::StreamError;

pub(super) use copilot_jit_wasi::config::variable;
pub(super) use copilot_jit_wasi::http::{header, write_all, BodyError};

use super::Ctx;
use crate::body;
use crate::config::Settings;
use crate::error::ApiError;

/// The gateway's variables, read from wasi:config.
pub(super) fn settings() -> Settings<fn(&str) -> Option<String>> {
    Settings::new(variable as fn(&str) -> Option<String>)
}

pub(super) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The id is for correlation only; a zeroed id is still a valid response.
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

pub(super) fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.to_uppercase(),
    }
}

/// The request body, refused before reading when its declared length is
/// over `limit`, and while reading once it grows past it.
pub(super) fn read_request_body(
    request: &IncomingRequest,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = header(&request.headers(), "content-length");
    if body::declared_too_large(declared.as_deref(), limit) {
        return Err(body::too_large(limit));
    }
    let incoming = request.consume().map_err(|_| body::unreadable())?;
    BodyReader::new(incoming)
        .and_then(|reader| reader.read_to_end(limit))
        .map_err(|e| match e {
            BodyError::TooLarge(_) => body::too_large(limit),
            BodyError::Unavailable | BodyError::Unreadable => body::unreadable(),
        })
}

/// Response headers: the content type, the request ids clients log, and
/// `extra` (an upstream's `x-github-request-id` replaces ours).
pub(super) fn response_fields(ctx: &Ctx, content_type: &str, extra: &[(String, String)]) -> Fields {
    let mut list: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), content_type.as_bytes().to_vec()),
        ("x-request-id".into(), ctx.visible_request_id().into_bytes()),
    ];
    if !extra.iter().any(|(k, _)| k == "x-github-request-id") {
        list.push((
            "x-github-request-id".into(),
            ctx.request_id.clone().into_bytes(),
        ));
    }
    for (k, v) in extra {
        list.push((k.clone(), v.clone().into_bytes()));
    }
    Fields::from_list(&list).unwrap_or_else(|_| Fields::new())
}

/// Hands the host a response with `status` and `fields`; returns the body
/// to write it to, if the host gave one.
pub(super) fn respond(out: ResponseOutparam, status: u16, fields: Fields) -> Option<OutgoingBody> {
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let body = response.body().ok();
    ResponseOutparam::set(out, Ok(response));
    body
}

/// A whole response. An error means the client went away mid-body.
pub(super) fn send_bytes(
    out: ResponseOutparam,
    status: u16,
    fields: Fields,
    body: &[u8],
) -> Result<(), StreamError> {
    let Some(outgoing) = respond(out, status, fields) else {
        return Ok(());
    };
    let result = match outgoing.write() {
        Ok(stream) => {
            let r = write_all(&stream, body);
            drop(stream);
            r
        }
        Err(()) => Ok(()),
    };
    let _ = OutgoingBody::finish(outgoing, None);
    result
}
