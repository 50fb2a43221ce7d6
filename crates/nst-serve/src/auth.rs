//! Who may talk to the studio: the token (bearer header, `?token=` once, then a cookie), loopback
//! `Host` names when there is no token (DNS rebinding), and same-origin for every request that changes
//! state (no CORS for other origins).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What the check needs.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    pub(crate) token: Option<String>,
}

const COOKIE: &str = "nst_token";

/// The middleware: refuses with 401 (no or wrong token) or 403 (foreign host or origin).
pub(crate) async fn check(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let mut set_cookie = false;
    if let Some(token) = &guard.token {
        let from_query = query_token(req.uri().query());
        let given = bearer(headers)
            .or_else(|| cookie(headers))
            .or(from_query.clone());
        if !given.is_some_and(|g| same(g.as_bytes(), token.as_bytes())) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "a token is required: open the URL that `nst serve` printed",
            );
        }
        set_cookie = from_query.is_some();
    } else if !host_is_loopback(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this server answers only to localhost names",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD && !same_origin(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "requests that change state must come from the studio's own page",
        );
    }
    let mut response = next.run(req).await;
    if set_cookie && let Some(token) = &guard.token {
        let value = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

fn refuse(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg }))).into_response()
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(h: &HeaderMap) -> Option<String> {
    let v = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(str::to_owned)
}

fn cookie(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix("nst_token=").map(str::to_owned))
}

fn query_token(q: Option<&str>) -> Option<String> {
    q?.split('&')
        .find_map(|kv| kv.strip_prefix("token=").map(str::to_owned))
}

/// The host name of the `Host` header, without the port.
fn host_name(h: &HeaderMap) -> Option<&str> {
    let host = h.get(header::HOST)?.to_str().ok()?;
    Some(match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    })
}

fn host_is_loopback(h: &HeaderMap) -> bool {
    matches!(host_name(h), Some("localhost" | "127.0.0.1" | "::1"))
}

/// No `Origin` (not a browser, or a same-origin navigation), or one equal to `http://` + `Host`.
fn same_origin(h: &HeaderMap) -> bool {
    let Some(origin) = h.get(header::ORIGIN) else {
        return true;
    };
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin.to_str(), host) {
        (Ok(o), Some(host)) => o.strip_prefix("http://") == Some(host),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn loopback_names_only() {
        for ok in ["127.0.0.1:8080", "localhost:1", "[::1]:9", "localhost"] {
            assert!(host_is_loopback(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1.evil.example", "", "[::2]:1"] {
            assert!(!host_is_loopback(&headers(&[("host", bad)])), "{bad}");
        }
    }

    #[test]
    fn origins_must_match_the_host() {
        let h = headers(&[("host", "127.0.0.1:80"), ("origin", "http://127.0.0.1:80")]);
        assert!(same_origin(&h));
        let h = headers(&[("host", "127.0.0.1:80"), ("origin", "http://evil.example")]);
        assert!(!same_origin(&h));
        let h = headers(&[("host", "127.0.0.1:80"), ("origin", "null")]);
        assert!(!same_origin(&h));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd") && !same(b"abc", b"ab"));
        let h = headers(&[("cookie", "a=b; nst_token=xyz")]);
        assert_eq!(cookie(&h).as_deref(), Some("xyz"));
    }
}
