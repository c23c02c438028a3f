//! The client's address, for the request log and the rate limit. The
//! connection's address is set once per request as a task-local value
//! around the router's future, rather than inserted into each request's
//! extensions as `into_make_service_with_connect_info` does: that insert
//! costs an allocation and about 1,300 instructions per request.

use std::convert::Infallible;
use std::fmt::{self, Write as _};
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use tokio::task::futures::TaskLocalFuture;
use tower::Service;

tokio::task_local! {
    /// The address of the client whose request is being answered.
    static CLIENT: SocketAddr;
}

/// The address of the client that sent `req`: the connection's, when
/// served through [`ClientAddrs`], else a `ConnectInfo` a test server put
/// there; `None` when the router was called without a socket.
pub fn client_addr(req: &Request) -> Option<SocketAddr> {
    CLIENT.try_with(|addr| *addr).ok().or_else(|| {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0)
    })
}

/// The longest text of a socket address: an IPv6 address of eight full
/// groups with a scope id, in brackets, and a port.
const ADDR_TEXT: usize = 64;

/// A client's address as text, on the stack (`192.0.2.7:40123`,
/// `[2001:db8::1]:8080`). An IPv4 address, the common case, is written
/// with `itoa`: the `Display` of `SocketAddr` goes through the formatting
/// machinery for each of its five numbers, on every request.
pub(super) struct AddrText {
    bytes: [u8; ADDR_TEXT],
    len: usize,
}

impl AddrText {
    /// The text of `addr`, as its `Display` writes it.
    pub fn of(addr: SocketAddr) -> AddrText {
        let mut text = AddrText {
            bytes: [0; ADDR_TEXT],
            len: 0,
        };
        // Cannot fail: ADDR_TEXT holds the longest address.
        let _fits = match addr {
            SocketAddr::V4(v4) => {
                let [a, b, c, d] = v4.ip().octets();
                let mut digits = itoa::Buffer::new();
                for (i, octet) in [a, b, c, d].into_iter().enumerate() {
                    if i > 0 {
                        text.push(".");
                    }
                    text.push(digits.format(octet));
                }
                text.push(":");
                text.push(digits.format(v4.port()));
                Ok(())
            }
            SocketAddr::V6(v6) => write!(text, "{v6}"),
        };
        text
    }

    fn push(&mut self, part: &str) {
        let end = (self.len + part.len()).min(ADDR_TEXT);
        self.bytes[self.len..end].copy_from_slice(&part.as_bytes()[..end - self.len]);
        self.len = end;
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Whole `str`s were pushed, and no address is long enough to be cut.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for AddrText {
    fn write_str(&mut self, part: &str) -> fmt::Result {
        if self.len + part.len() > ADDR_TEXT {
            return Err(fmt::Error);
        }
        self.push(part);
        Ok(())
    }
}

/// What `axum::serve` takes to serve a router with each connection's
/// address known to the requests on it.
#[derive(Clone)]
pub struct ClientAddrs(Router);

impl ClientAddrs {
    /// Serves `router`.
    pub fn new(router: Router) -> ClientAddrs {
        ClientAddrs(router)
    }
}

// Any listener whose peers are socket addresses: plain TCP, or TLS over it.
impl<L> Service<IncomingStream<'_, L>> for ClientAddrs
where
    L: Listener<Addr = SocketAddr>,
{
    type Response = WithClientAddr;
    type Error = Infallible;
    type Future = Ready<Result<WithClientAddr, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, L>) -> Self::Future {
        ready(Ok(WithClientAddr {
            router: self.0.clone(),
            addr: *stream.remote_addr(),
        }))
    }
}

/// The router serving one connection, its address set around each request.
#[derive(Clone)]
pub struct WithClientAddr {
    router: Router,
    addr: SocketAddr,
}

impl Service<Request> for WithClientAddr {
    type Response = Response;
    type Error = Infallible;
    type Future = TaskLocalFuture<SocketAddr, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        <Router as Service<Request>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        CLIENT.scope(self.addr, self.router.call(req))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn echo() -> Router {
        Router::new().route(
            "/",
            get(|req: Request| async move {
                client_addr(&req).map_or_else(|| "none".to_string(), |a| a.to_string())
            }),
        )
    }

    async fn answer(
        service: impl Service<Request, Response = Response, Error = Infallible>,
    ) -> String {
        let req = Request::get("/").body(Body::empty()).unwrap();
        let response = service.oneshot(req).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[test]
    fn an_addresss_text_is_what_display_writes() {
        for addr in [
            "192.0.2.7:40123",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.0.1:80",
            "[::1]:3000",
            "[2001:db8::1]:8080",
            "[::ffff:192.0.2.128]:1",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(AddrText::of(addr).as_str(), addr.to_string());
        }
    }

    #[tokio::test]
    async fn a_request_on_a_connection_knows_the_connections_address() {
        let addr: SocketAddr = "192.0.2.7:40123".parse().unwrap();
        let service = WithClientAddr {
            router: echo(),
            addr,
        };
        assert_eq!(answer(service).await, "192.0.2.7:40123");
    }

    #[tokio::test]
    async fn without_a_connection_the_address_is_a_connect_info_or_none() {
        assert_eq!(answer(echo()).await, "none");
        let addr: SocketAddr = "[2001:db8::1]:8080".parse().unwrap();
        // What `into_make_service_with_connect_info` puts on each request.
        let router = echo().layer(axum::Extension(ConnectInfo(addr)));
        assert_eq!(answer(router).await, "[2001:db8::1]:8080");
    }
}
