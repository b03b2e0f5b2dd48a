//! HTTP plumbing shared by every handler: a fully-read request value and
//! JSON response builders.
//!
//! Handlers work on [`Req`] (body already collected, host normalized) and
//! return [`Resp`], so they are plain synchronous functions that unit tests
//! can call without sockets. Nothing here logs, and no builder can panic:
//! header values that are not valid are dropped.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::Value;

use crate::cloud;

/// Response type of every handler.
pub(crate) type Resp = Response<Full<Bytes>>;

/// Largest request body the fake reads.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request whose body has been read.
#[derive(Debug)]
pub(crate) struct Req {
    pub method: Method,
    /// Normalized host (lowercase, no port).
    pub host: String,
    /// Path, not decoded.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

// === impl Req ===

impl Req {
    /// Builds a request from hyper parts; the host comes from the URI
    /// authority (HTTP/2 `:authority`, absolute-form) or the `Host` header.
    pub(crate) fn from_parts(parts: &hyper::http::request::Parts, body: Bytes) -> Self {
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(hyper::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        // Strip any userinfo an absolute-form URI might carry.
        let host = host.rsplit('@').next().unwrap_or_default();
        Self::new(
            parts.method.clone(),
            host,
            parts.uri.path(),
            parts.uri.query().unwrap_or(""),
            parts.headers.clone(),
            body,
        )
    }

    /// Builds a request from pieces (used directly by unit tests).
    pub(crate) fn new(
        method: Method,
        host: &str,
        path: &str,
        query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Self {
        Self {
            method,
            host: cloud::normalize_host(host),
            path: path.to_string(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            headers,
            body,
        }
    }

    /// First value of a query parameter.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header as text, if present and valid.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body read as `application/x-www-form-urlencoded`.
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// Path segments, without empty ones from leading or doubled slashes;
    /// `trailing_slash` tells whether the path ended with `/`.
    pub(crate) fn segments(&self) -> (Vec<&str>, bool) {
        let segs = self.path.split('/').filter(|s| !s.is_empty()).collect();
        (segs, self.path.len() > 1 && self.path.ends_with('/'))
    }
}

/// First value of a form field.
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads a request body up to [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, String> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(e.to_string()),
    }
}

/// A JSON response.
pub(crate) fn json(status: u16, value: &Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set_header(&mut resp, "content-type", "application/json; charset=utf-8");
    resp
}

/// A plain-text response.
pub(crate) fn text(status: u16, body: String, content_type: &str) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    set_header(&mut resp, "content-type", content_type);
    resp
}

/// An empty response.
pub(crate) fn empty(status: u16) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// Sets a header, silently skipping values that are not valid header text.
pub(crate) fn set_header(resp: &mut Resp, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_query_form_and_segments() {
        let req = Req::new(
            Method::POST,
            "Login.MicrosoftOnline.com:443",
            "/tenant/oauth2/v2.0/token/",
            "api-version=7.4&%24skiptoken=a%2Bb",
            HeaderMap::new(),
            Bytes::from_static(
                b"scope=https%3A%2F%2Fvault.azure.net%2F.default&grant_type=client_credentials",
            ),
        );
        assert_eq!(req.host, "login.microsoftonline.com");
        assert_eq!(req.query("api-version"), Some("7.4"));
        assert_eq!(req.query("$skiptoken"), Some("a+b"));
        let form = req.form();
        assert_eq!(
            field(&form, "scope"),
            Some("https://vault.azure.net/.default")
        );
        let (segs, trailing) = req.segments();
        assert_eq!(segs, ["tenant", "oauth2", "v2.0", "token"]);
        assert!(trailing);
    }

    #[test]
    fn invalid_header_values_are_dropped() {
        let mut resp = json(200, &serde_json::json!({}));
        set_header(&mut resp, "x-test", "bad\nvalue");
        assert!(resp.headers().get("x-test").is_none());
        assert_eq!(
            json(1000, &Value::Null).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
