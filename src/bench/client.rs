//! A lean HTTP/1.1 client: one keep-alive connection, requests one after the
//! other. hyper's connection layer directly, without a pool or a retry layer,
//! so a measured latency is the broker's answer time plus one socket round
//! trip and nothing else.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::BenchError;
use crate::config::Secret;

/// Where the broker listens and how to address it; cloned into every worker.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header: HTTP/1.1 requires it and the connection layer does not add it.
    host: HeaderValue,
    /// Path of the URL before `/api`, without a trailing slash.
    prefix: String,
    authorization: Option<HeaderValue>,
}

impl Target {
    /// Reads `--url` (`http://host[:port][/prefix]`) and the optional token.
    pub fn new(url: &str, token: Option<&Secret>) -> Result<Target, BenchError> {
        let bad = |reason: &str| BenchError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| bad(&e.to_string()))?;
        let authorization = match token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| BenchError::Token)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Target {
            addr: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            host,
            prefix: uri.path().trim_end_matches('/').to_string(),
            authorization,
        })
    }
}

/// A broker's answer, body read in full.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// `Retry-After` in seconds, when present and numeric.
    pub retry_after: Option<Duration>,
    /// The whole body.
    pub body: Bytes,
}

/// One keep-alive connection to the broker.
pub struct Conn {
    target: Target,
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    /// Connects with `TCP_NODELAY`: requests are small and each waits for its
    /// answer, so Nagle's algorithm would only add delay.
    pub async fn open(target: &Target) -> Result<Conn, BenchError> {
        let connect = |source| BenchError::Connect {
            addr: target.addr.clone(),
            source,
        };
        let stream = TcpStream::connect(&target.addr).await.map_err(connect)?;
        stream.set_nodelay(true).map_err(connect)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // A broken connection also fails the request in flight on it,
            // which is where it is counted; here there is nothing to add.
            if connection.await.is_err() {
                tracing::debug!("bench connection closed with an error");
            }
        });
        Ok(Conn {
            target: target.clone(),
            sender,
        })
    }

    /// `GET {prefix}{path}`.
    pub async fn get(&mut self, path: &str) -> Result<Answer, BenchError> {
        self.send(Method::GET, path, None).await
    }

    /// `POST {prefix}{path}` with a JSON body.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Answer, BenchError> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Answer, BenchError> {
        // The broker may have closed the previous connection (a failed
        // request, a restart): open another rather than fail every request after.
        if self.sender.ready().await.is_err() {
            *self = Conn::open(&self.target).await?;
        }
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.target.prefix))
            .header(HOST, self.target.host.clone());
        if let Some(auth) = &self.target.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_gives_the_address_host_header_and_path_prefix() {
        let t = Target::new("http://127.0.0.1:3100/", None).unwrap();
        assert_eq!(t.addr, "127.0.0.1:3100");
        assert_eq!(t.host, "127.0.0.1:3100");
        assert_eq!(t.prefix, "");
        let t = Target::new("http://localhost/broker", None).unwrap();
        assert_eq!(t.addr, "localhost:80");
        assert_eq!(t.prefix, "/broker");
    }

    #[test]
    fn url_other_than_plain_http_is_refused() {
        assert!(matches!(
            Target::new("https://example.com", None),
            Err(BenchError::Url { .. })
        ));
        assert!(matches!(
            Target::new("not a url", None),
            Err(BenchError::Url { .. })
        ));
    }
}
