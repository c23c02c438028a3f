//! The [`Client`]: one reqwest connection pool, the base URL and the token,
//! and the one function every call goes through ([`Client::call`]), which
//! turns answers into types and error answers into [`Error::Api`].

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Error, ErrorCode, Result};
use crate::token::Token;
use crate::types::SettleResult;

/// The variables the client reads when a setting is not given in code, as
/// the CLI and the Python client do.
pub const ENV_URL: &str = "EVENT_BROKER_URL";
/// The bearer token's variable.
pub const ENV_TOKEN: &str = "EVENT_BROKER_TOKEN";
/// The variable naming a PEM file of the CA that signed the broker's certificate.
pub const ENV_CA: &str = "EVENT_BROKER_CA";

/// The variable naming a PEM file of this client's certificate and key, for mutual TLS.
pub const ENV_IDENTITY: &str = "EVENT_BROKER_IDENTITY";

/// The URL of a broker on this machine with the default port.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

/// How calls answered 429 or 503 are tried again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries after the first; 0 gives every error to the caller at once.
    pub retries: u32,
    /// The longest wait between two tries, whatever `Retry-After` asks.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    /// Two more tries, waiting what `Retry-After` says (1 s when it says
    /// nothing), at most 5 s: a broker restarting or a queue draining
    /// briefly does not fail the call.
    fn default() -> Self {
        RetryPolicy {
            retries: 2,
            max_wait: Duration::from_secs(5),
        }
    }
}

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: Option<String>,
    token: Option<Token>,
    ca: Option<PathBuf>,
    identity: Option<PathBuf>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    from_env: bool,
}

impl ClientBuilder {
    /// The broker's base URL: `http(s)://host[:port][/prefix]`, with or
    /// without a trailing `/api`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The bearer token (`BROKER_TOKEN` or `ADMIN_TOKEN` of the broker).
    pub fn token(mut self, token: impl Into<Token>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A PEM file of the CA that signed the broker's certificate; it is then
    /// the only CA trusted.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(path.into());
        self
    }

    /// A PEM file holding this client's certificate and its private key, for
    /// a broker that asks for client certificates (`TLS_CLIENT_CA`).
    pub fn identity_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.identity = Some(path.into());
        self
    }

    /// How long one call may take in all. A long poll's own wait is added
    /// to it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long connecting may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How 429 and 503 answers are tried again.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Fill what was not given from `EVENT_BROKER_URL`, `EVENT_BROKER_TOKEN`
    /// and `EVENT_BROKER_CA`.
    pub fn from_env(mut self) -> Self {
        self.from_env = true;
        self
    }

    /// The client.
    pub fn build(self) -> Result<Client> {
        let env = |name: &str| {
            self.from_env
                .then(|| std::env::var(name).ok())
                .flatten()
                .filter(|v| !v.is_empty())
        };
        let url = self
            .url
            .clone()
            .or_else(|| env(ENV_URL))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let token = self
            .token
            .clone()
            .or_else(|| env(ENV_TOKEN).map(Token::from));
        let ca = self.ca.clone().or_else(|| env(ENV_CA).map(PathBuf::from));
        let identity = self
            .identity
            .clone()
            .or_else(|| env(ENV_IDENTITY).map(PathBuf::from));

        let base = api_base(&url)?;
        let mut headers = HeaderMap::new();
        if let Some(token) = &token {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    Error::Config("token: not a valid header value (printable ASCII only)".into())
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("event-broker-client/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &ca {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Config(format!("ca: cannot read {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!(
                    "ca: {} holds no PEM certificate: {e}",
                    path.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(Error::Config(format!(
                    "ca: {} holds no PEM certificate",
                    path.display()
                )));
            }
            http = http.tls_built_in_root_certs(false);
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if let Some(path) = &identity {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!("identity: cannot read {}: {e}", path.display()))
            })?;
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                Error::Config(format!(
                    "identity: {} needs a PEM certificate and its private key: {e}",
                    path.display()
                ))
            })?;
            http = http.identity(identity);
        }
        let http = http
            .build()
            .map_err(|e| Error::Config(format!("the HTTP client cannot start: {e}")))?;
        Ok(Client {
            http,
            base,
            timeout: self.timeout,
            retry: self.retry,
        })
    }
}

/// `url` as the base every path is appended to: no trailing slash, ending in `/api`.
fn api_base(url: &str) -> Result<String> {
    let trimmed = url.trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|e| Error::Config(format!("url: {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "url: {url:?} must start with http:// or https://"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::Config(format!(
            "url: {url:?} must not have a query or fragment"
        )));
    }
    Ok(if trimmed.ends_with("/api") {
        trimmed.to_owned()
    } else {
        format!("{trimmed}/api")
    })
}

/// A client of one broker. Cloning it is cheap and shares its connections.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
    retry: RetryPolicy,
}

/// The error body every non-2xx answer has.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
    #[serde(default)]
    results: Option<Vec<SettleResult>>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// A request about to be sent.
pub(crate) struct Call<'a, B: Serialize + ?Sized> {
    pub method: Method,
    pub path: String,
    pub query: &'a [(&'a str, String)],
    pub body: Option<&'a B>,
    /// A long poll's wait, added to the timeout.
    pub wait: Duration,
}

impl<'a> Call<'a, ()> {
    /// A call without a body.
    pub fn get(path: String) -> Self {
        Call::new(Method::GET, path)
    }

    /// A call of `method` without a body.
    pub fn new(method: Method, path: String) -> Self {
        Call {
            method,
            path,
            query: &[],
            body: None,
            wait: Duration::ZERO,
        }
    }
}

impl<'a, B: Serialize + ?Sized> Call<'a, B> {
    /// A call with a JSON body.
    pub fn with_body(method: Method, path: String, body: &'a B) -> Self {
        Call {
            method,
            path,
            query: &[],
            body: Some(body),
            wait: Duration::ZERO,
        }
    }
}

impl Client {
    /// A client of the broker at `url`, with the default settings.
    pub fn new(url: &str) -> Result<Client> {
        Client::builder().url(url).build()
    }

    /// The settings, to change before [`ClientBuilder::build`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            url: None,
            token: None,
            ca: None,
            identity: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            from_env: false,
        }
    }

    /// The base of every path, ending in `/api`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The client with another retry policy, sharing its connections.
    pub fn with_retry(&self, retry: RetryPolicy) -> Client {
        Client {
            retry,
            ..self.clone()
        }
    }

    /// Sends `call`, trying again on 429 and 503 as the retry policy says,
    /// and gives the answer's body as bytes with its status.
    pub(crate) async fn send<B: Serialize + ?Sized>(
        &self,
        call: &Call<'_, B>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut tries = 0;
        loop {
            match self.send_once(call).await {
                Err(Error::Api(e))
                    if tries < self.retry.retries
                        && matches!(
                            e.code,
                            ErrorCode::RateLimited | ErrorCode::Unavailable | ErrorCode::QueueFull
                        ) =>
                {
                    tries += 1;
                    let wait = e.retry_after.unwrap_or(Duration::from_secs(1));
                    tokio::time::sleep(wait.min(self.retry.max_wait)).await;
                }
                other => return other,
            }
        }
    }

    async fn send_once<B: Serialize + ?Sized>(
        &self,
        call: &Call<'_, B>,
    ) -> Result<(StatusCode, Bytes)> {
        let url = format!("{}{}", self.base, call.path);
        let mut request = self
            .http
            .request(call.method.clone(), &url)
            .timeout(self.timeout + call.wait);
        if !call.query.is_empty() {
            request = request.query(call.query);
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| transport(&url, e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(|e| transport(&url, e))?;
        if status.is_success() {
            return Ok((status, body));
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(answer) => {
                let code = ErrorCode::parse(&answer.error.code);
                let field = field_of(&code, &answer.error.message);
                Err(Error::Api(ApiError {
                    status: status.as_u16(),
                    code,
                    message: answer.error.message,
                    field,
                    retry_after,
                    results: answer.results,
                }))
            }
            Err(e) => Err(Error::BadAnswer {
                url,
                status: status.as_u16(),
                detail: format!("an error answer without the error body ({e})"),
            }),
        }
    }

    /// Sends `call` and decodes its answer as `T`.
    pub(crate) async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        call: &Call<'_, B>,
    ) -> Result<T> {
        let (status, body) = self.send(call).await?;
        self.decode(&call.path, status, &body)
    }

    /// Sends `call`, whose answer has no body (204).
    pub(crate) async fn call_empty<B: Serialize + ?Sized>(&self, call: &Call<'_, B>) -> Result<()> {
        self.send(call).await.map(|_| ())
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        path: &str,
        status: StatusCode,
        body: &[u8],
    ) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| Error::BadAnswer {
            url: format!("{}{}", self.base, path),
            status: status.as_u16(),
            detail: e.to_string(),
        })
    }
}

fn transport(url: &str, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            url: url.to_owned(),
        }
    } else if e.is_decode() {
        Error::BadAnswer {
            url: url.to_owned(),
            status: e.status().map_or(0, |s| s.as_u16()),
            detail: e.to_string(),
        }
    } else {
        Error::Connect {
            url: url.to_owned(),
            source: e,
        }
    }
}

/// The field an error message names: its text before the first `": "`,
/// when that is a field's name (`events[3].delay_ms`, `receipts[2]`, `limit`).
fn field_of(code: &ErrorCode, message: &str) -> Option<String> {
    if !matches!(
        code,
        ErrorCode::InvalidRequest | ErrorCode::PayloadTooLarge | ErrorCode::Conflict
    ) {
        return None;
    }
    let (head, _) = message.split_once(": ")?;
    let is_field = !head.is_empty()
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    is_field.then(|| head.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gains_api_once() {
        assert_eq!(api_base("http://h:1").unwrap(), "http://h:1/api");
        assert_eq!(api_base("http://h:1/").unwrap(), "http://h:1/api");
        assert_eq!(api_base("http://h:1/api/").unwrap(), "http://h:1/api");
        assert_eq!(api_base("https://h/p").unwrap(), "https://h/p/api");
        assert!(api_base("ftp://h").is_err());
        assert!(api_base("h:1").is_err());
    }

    #[test]
    fn the_field_is_what_the_message_names_first() {
        let bad = ErrorCode::InvalidRequest;
        assert_eq!(
            field_of(&bad, "events[3].delay_ms: expected a whole number").as_deref(),
            Some("events[3].delay_ms")
        );
        assert_eq!(
            field_of(&bad, "queue: a name of 1 to 128 characters").as_deref(),
            Some("queue")
        );
        assert_eq!(field_of(&bad, "the body is empty"), None);
        assert_eq!(field_of(&ErrorCode::NotFound, "queue: x"), None);
    }
}
