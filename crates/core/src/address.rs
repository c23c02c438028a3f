//! Which addresses a webhook may be delivered to. Unless
//! `WEBHOOK_ALLOW_PRIVATE` is set, only public unicast addresses: anyone who
//! may set a subscription could otherwise have the broker POST to what only
//! the broker's host can reach, such as its own admin routes on loopback,
//! the cloud metadata service at 169.254.169.254 or a private network.
//!
//! The rule is applied twice: to a literal address when a subscription is
//! set, and to every address a host name resolves to when a delivery
//! connects (the worker's resolver), so that a name that resolves to a
//! public address when checked and a private one when used gets nowhere.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` is not a public unicast address, if it is not: `loopback`,
/// `private`, `link-local` and so on, in words an error message can use.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match () {
        // 0.0.0.0 connects to the host itself on Linux, and so does the rest
        // of "this network", 0.0.0.0/8.
        () if a == 0 => "unspecified",
        () if ip.is_loopback() => "loopback",
        () if ip.is_private() => "private",
        // Carrier-grade NAT space, 100.64.0.0/10: private to a provider, and
        // where some clouds put their metadata service.
        () if a == 100 && (b & 0xc0) == 64 => "private",
        () if ip.is_link_local() => "link-local",
        () if ip.is_broadcast() => "broadcast",
        () if ip.is_multicast() => "multicast",
        // 240.0.0.0/4 and the protocol assignments of 192.0.0.0/24.
        () if a >= 240 || (a == 192 && b == 0 && c == 0) => "reserved",
        () => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // An IPv4 address in IPv6 clothing reaches what the IPv4 address does.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        return non_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    }
    Some(match segments[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // ::/16 holds no public address; the deprecated IPv4-compatible
        // ::a.b.c.d are among what it holds.
        0 => "reserved",
        s if (s & 0xfe00) == 0xfc00 => "private",
        s if (s & 0xffc0) == 0xfe80 => "link-local",
        // Site-local, fec0::/10: deprecated, private in effect.
        s if (s & 0xffc0) == 0xfec0 => "private",
        s if (s & 0xff00) == 0xff00 => "multicast",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_pass() {
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("100.100.100.200", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("0.1.2.3", "unspecified"),
            ("255.255.255.255", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("239.1.2.3", "multicast"),
            ("240.0.0.1", "reserved"),
            ("192.0.0.8", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "reserved"),
            ("64:ff9b::a00:1", "private"),
            ("fc00::1", "private"),
            ("fd12:3456::1", "private"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "private"),
            ("ff02::1", "multicast"),
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public(parsed), Some(why), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.0.1",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2001:4860:4860::8888",
            "2606:4700::1111",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(non_public(parsed), None, "{ip}");
        }
    }
}
