//! Forwards every request to `upstream_url` unchanged and streams the answer
//! back: no checks, no parsing. What it costs is what any wasi:http gateway
//! costs on the same host.

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "passthrough",
        generate_all,
    });

    use exports::wasi::http::incoming_handler::Guest;
    use wasi::http::outgoing_handler;
    use wasi::http::types::{
        ErrorCode, Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingRequest,
        OutgoingResponse, ResponseOutparam, Scheme,
    };
    use wasi::io::streams::StreamError;

    fn copy(from: &wasi::io::streams::InputStream, to: &wasi::io::streams::OutputStream) -> bool {
        loop {
            match from.blocking_read(16 * 1024) {
                Ok(chunk) => {
                    for piece in chunk.chunks(4096) {
                        if to.blocking_write_and_flush(piece).is_err() {
                            return false;
                        }
                    }
                }
                Err(StreamError::Closed) => return true,
                Err(_) => return false,
            }
        }
    }

    fn forward(request: IncomingRequest) -> Result<(u16, Fields, IncomingBody), ErrorCode> {
        let upstream = wasi::config::store::get("upstream_url")
            .ok()
            .flatten()
            .ok_or(ErrorCode::ConfigurationError)?;
        let authority = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let headers = request.headers().clone();
        let outgoing = OutgoingRequest::new(headers);
        let _ = outgoing.set_method(&request.method());
        let _ = outgoing.set_scheme(Some(&Scheme::Http));
        let _ = outgoing.set_authority(Some(&authority));
        let _ = outgoing.set_path_with_query(request.path_with_query().as_deref());
        let out_body = outgoing
            .body()
            .map_err(|_| ErrorCode::InternalError(None))?;
        let pending = outgoing_handler::handle(outgoing, None)?;
        if let Ok(in_body) = request.consume() {
            if let (Ok(src), Ok(dst)) = (in_body.stream(), out_body.write()) {
                copy(&src, &dst);
            }
        }
        let _ = OutgoingBody::finish(out_body, None);
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(r)) => r?,
            _ => return Err(ErrorCode::InternalError(None)),
        };
        let body = response
            .consume()
            .map_err(|_| ErrorCode::InternalError(None))?;
        Ok((response.status(), response.headers().clone(), body))
    }

    struct Component;

    impl Guest for Component {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            match forward(request) {
                Ok((status, headers, body)) => {
                    let response = OutgoingResponse::new(headers);
                    let _ = response.set_status_code(status);
                    let Ok(client_body) = response.body() else {
                        return;
                    };
                    ResponseOutparam::set(out, Ok(response));
                    if let (Ok(src), Ok(dst)) = (body.stream(), client_body.write()) {
                        copy(&src, &dst);
                    }
                    let _ = OutgoingBody::finish(client_body, None);
                }
                Err(e) => ResponseOutparam::set(out, Err(e)),
            }
        }
    }

    export!(Component);
}
