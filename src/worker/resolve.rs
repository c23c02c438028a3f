//! The webhook client's resolver unless `WEBHOOK_ALLOW_PRIVATE` is set: it
//! resolves a host name as the system does, then keeps only the public
//! addresses ([`non_public`]). The connection is made to what it returns,
//! so a name that resolved to a public address when its subscription was
//! set, and to a private one now (DNS rebinding), gets no connection.
//! A URL with a literal address is not resolved: the pusher checks it.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use event_broker_core::address::non_public;

/// Resolves to public addresses only, or fails saying why.
pub(super) struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            // Port 0: the client puts the URL's port on what comes back.
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(public_only(found.collect())?)
        })
    }
}

/// The public addresses of `found`; an error naming what was refused when
/// there are none.
fn public_only(found: Vec<SocketAddr>) -> Result<Addrs, std::io::Error> {
    let refused = found
        .iter()
        .find_map(|a| non_public(a.ip()).map(|why| (a.ip(), why)));
    let public: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| non_public(a.ip()).is_none())
        .collect();
    if !public.is_empty() {
        return Ok(Box::new(public.into_iter()));
    }
    let why = match refused {
        Some((ip, why)) => format!(
            "the host resolves to no public address ({ip} is {why}); \
             WEBHOOK_ALLOW_PRIVATE=true allows it"
        ),
        None => "the host resolves to no address".to_string(),
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        why,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn only_public_addresses_are_kept_in_their_order() {
        let kept: Vec<SocketAddr> = public_only(addrs(&[
            "127.0.0.1:0",
            "93.184.215.14:0",
            "[fd00::1]:0",
            "[2606:4700::1111]:0",
        ]))
        .unwrap()
        .collect();
        assert_eq!(kept, addrs(&["93.184.215.14:0", "[2606:4700::1111]:0"]));
    }

    #[test]
    fn a_name_with_no_public_address_fails_saying_why() {
        let err = public_only(addrs(&["127.0.0.1:0", "[::1]:0"]))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "the host resolves to no public address (127.0.0.1 is loopback); \
             WEBHOOK_ALLOW_PRIVATE=true allows it"
        );
        let err = public_only(Vec::new()).err().unwrap().to_string();
        assert_eq!(err, "the host resolves to no address");
    }
}
