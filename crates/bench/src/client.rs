//! A lean HTTP/1.1 client: one keep-alive connection, one request at a
//! time. Each request goes out in one `write`; its answer is read into a
//! buffer kept across requests, `httparse` reads the status line and
//! headers, and `Content-Length` frames the body, which is how the broker
//! answers. There is no connection task, pool or retry layer: a measured
//! latency is the broker's answer time plus one socket round trip, and the
//! bench spends little of the machine's CPU that the broker could use.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::header::HeaderValue;
use hyper::{StatusCode, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::BenchError;
use event_broker_client::Token;

/// Where the broker listens and how to address it; cloned into every worker.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    addr: String,
    /// The `Host` header: HTTP/1.1 requires it.
    host: String,
    /// Path of the URL before `/api`, without a trailing slash.
    prefix: String,
    /// `Bearer <token>`, checked to be a valid header value.
    authorization: Option<String>,
}

impl Target {
    /// Reads `--url` (`http://host[:port][/prefix]`) and the optional token.
    /// A path ending in `/api` names the API itself, whose routes the bench
    /// asks for under `/api/...` already: that `/api` is dropped, so that
    /// `http://host:3000/api` reaches the same routes as `http://host:3000`.
    pub fn new(url: &str, token: Option<&Token>) -> Result<Target, BenchError> {
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
        let authorization = match token {
            Some(token) => {
                let value = format!("Bearer {}", token.expose());
                HeaderValue::from_str(&value).map_err(|_| BenchError::Token)?;
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
            host: authority.as_str().to_string(),
            prefix: api_prefix(uri.path()).to_string(),
            authorization,
        })
    }

    /// The broker's base URL as the bench uses it, for messages.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.host, self.prefix)
    }
}

/// The path before the broker's `/api` routes, without a trailing slash.
fn api_prefix(path: &str) -> &str {
    let path = path.trim_end_matches('/');
    path.strip_suffix("/api").unwrap_or(path)
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

/// The head of an answer, read out of the buffer before its body is.
struct Head {
    len: usize,
    status: StatusCode,
    body_len: usize,
    retry_after: Option<Duration>,
    close: bool,
}

/// Most headers an answer may have; the broker sends about ten.
const MAX_HEADERS: usize = 64;

/// One keep-alive connection to the broker.
pub struct Conn {
    target: Target,
    stream: TcpStream,
    /// The request being sent; kept for its allocation.
    out: Vec<u8>,
    /// Bytes read and not yet part of an answer.
    input: BytesMut,
    /// Whether an answer came on this connection: only then can a connection
    /// that closes before answering be one the broker closed while idle.
    answered: bool,
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
        Ok(Conn {
            target: target.clone(),
            stream,
            out: Vec::with_capacity(1024),
            input: BytesMut::with_capacity(16 << 10),
            answered: false,
        })
    }

    /// `GET {prefix}{path}`.
    pub async fn get(&mut self, path: &str) -> Result<Answer, BenchError> {
        self.send("GET", path, None).await
    }

    /// `POST {prefix}{path}` with a JSON body.
    pub async fn post(&mut self, path: &str, body: Bytes) -> Result<Answer, BenchError> {
        self.send("POST", path, Some(&body)).await
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Answer, BenchError> {
        self.encode(method, path, body);
        match self.exchange().await {
            // A connection the broker closed while it was idle (it restarted,
            // or gave up on an earlier request) fails before any answer:
            // send again on a new one.
            Err(e) if self.answered && self.input.is_empty() && closed(&e) => {
                let out = std::mem::take(&mut self.out);
                *self = Conn::open(&self.target).await?;
                self.out = out;
                Ok(self.exchange().await?)
            }
            answer => Ok(answer?),
        }
    }

    fn encode(&mut self, method: &str, path: &str, body: Option<&[u8]>) {
        let out = &mut self.out;
        out.clear();
        for part in [
            method,
            " ",
            &self.target.prefix,
            path,
            " HTTP/1.1\r\nhost: ",
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        out.extend_from_slice(self.target.host.as_bytes());
        if let Some(auth) = &self.target.authorization {
            out.extend_from_slice(b"\r\nauthorization: ");
            out.extend_from_slice(auth.as_bytes());
        }
        if let Some(body) = body {
            out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body.unwrap_or_default());
    }

    async fn exchange(&mut self) -> io::Result<Answer> {
        self.stream.write_all(&self.out).await?;
        let head = loop {
            if let Some(head) = parse_head(&self.input)? {
                break head;
            }
            self.read_more().await?;
        };
        while self.input.len() < head.len + head.body_len {
            self.read_more().await?;
        }
        let mut message = self.input.split_to(head.len + head.body_len);
        let body = message.split_off(head.len).freeze();
        self.answered = true;
        if head.close {
            self.stream.shutdown().await.ok();
        }
        Ok(Answer {
            status: head.status,
            retry_after: head.retry_after,
            body,
        })
    }

    async fn read_more(&mut self) -> io::Result<()> {
        self.input.reserve(4096);
        if self.stream.read_buf(&mut self.input).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the broker closed the connection before answering",
            ));
        }
        Ok(())
    }
}

/// Whether an exchange failed because the connection was gone.
fn closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected
    )
}

/// The head of the answer at the start of `input`, once all of it is there.
fn parse_head(input: &[u8]) -> io::Result<Option<Head>> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(format!("unreadable answer: {e}"))),
    };
    let code = response.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| invalid(format!("status code {code}")))?;
    let mut head = Head {
        len,
        status,
        body_len: 0,
        retry_after: None,
        close: false,
    };
    for header in response.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or_default().trim();
        if header.name.eq_ignore_ascii_case("content-length") {
            head.body_len = value
                .parse()
                .map_err(|_| invalid(format!("content-length {value:?}")))?;
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(format!(
                "transfer-encoding {value} is not supported"
            )));
        } else if header.name.eq_ignore_ascii_case("retry-after") {
            head.retry_after = value.parse().ok().map(Duration::from_secs);
        } else if header.name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some(head))
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
    fn a_url_ending_in_api_names_the_same_routes_as_without_it() {
        for (url, prefix) in [
            ("http://127.0.0.1:3000/api", ""),
            ("http://127.0.0.1:3000/api/", ""),
            ("http://127.0.0.1:3000/broker/api", "/broker"),
            ("http://127.0.0.1:3000/apis", "/apis"),
        ] {
            let t = Target::new(url, None).unwrap();
            assert_eq!(t.prefix, prefix, "{url}");
        }
        let t = Target::new("http://127.0.0.1:3000/api", None).unwrap();
        assert_eq!(t.url(), "http://127.0.0.1:3000");
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

    #[test]
    fn an_answer_head_is_read_once_complete() {
        let answer = b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\nRetry-After: 3\r\nconnection: close\r\n\r\n{}";
        let head_len = answer.len() - 2;
        assert!(parse_head(&answer[..head_len - 1]).unwrap().is_none());
        let head = parse_head(answer).unwrap().unwrap();
        assert_eq!(head.len, head_len);
        assert_eq!(head.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(head.body_len, 2);
        assert_eq!(head.retry_after, Some(Duration::from_secs(3)));
        assert!(head.close);
    }

    #[test]
    fn answers_the_client_cannot_frame_are_errors() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"SMTP ready\r\n\r\n",
        ] {
            let err = parse_head(answer).err().expect("refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
    }
}
