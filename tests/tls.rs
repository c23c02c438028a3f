//! HTTPS on the broker's port with certificates made here: the Rust client
//! and the CLI with `--ca`, a client without it refused, a certificate
//! swapped on disk served without a restart, a broken one not taken, and
//! client certificates when `TLS_CLIENT_CA` is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::Server;
use event_broker_client::{Client, Error};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA of its own, and what it signs.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// A certificate for `names` (host names or IP addresses), as PEM, with its key.
    fn sign(&self, names: &[&str]) -> (String, String) {
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.issuer.pem()).unwrap();
        path
    }
}

/// Replaces a file whole, as a deployment tool would: write aside, rename.
fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn https(server: &Server) -> String {
    format!("https://127.0.0.1:{}", server.port())
}

fn client_trusting(server: &Server, ca: &Path) -> Client {
    Client::builder()
        .url(https(server))
        .ca_file(ca)
        .build()
        .unwrap()
}

fn start(dir: &Path, ca: &Ca, extra: &[(&str, &str)]) -> (Server, PathBuf, PathBuf) {
    let (cert, key) = ca.sign(&["localhost", "127.0.0.1"]);
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let data = dir.join("data");
    let mut settings = vec![
        ("TLS_CERT", cert_path.to_str().unwrap()),
        ("TLS_KEY", key_path.to_str().unwrap()),
        ("TLS_RELOAD_INTERVAL_MS", "100"),
    ];
    settings.extend_from_slice(extra);
    (Server::start_with(&data, &settings), cert_path, key_path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_with_the_ca_connect_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let ca_path = ca.write(dir.path(), "ca.pem");
    let (server, _, _) = start(dir.path(), &ca, &[]);

    let client = client_trusting(&server, &ca_path);
    client.health().await.unwrap();
    assert!(client.status().await.unwrap().config["TLS_CERT"].ends_with("cert.pem"));

    let stranger = Client::new(&https(&server)).unwrap();
    let refused = stranger.health().await.unwrap_err();
    assert!(matches!(refused, Error::Connect { .. }), "{refused}");
    let plain = Client::new(&server.base).unwrap();
    assert!(plain.health().await.is_err(), "plain HTTP on the TLS port");

    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_event-broker"))
            .args(args)
            .env("EVENT_BROKER_URL", https(&server))
            .env_remove("EVENT_BROKER_CA")
            .output()
            .unwrap()
    };
    let with_ca = cli(&["queues", "--ca", ca_path.to_str().unwrap()]);
    assert!(
        with_ca.status.success(),
        "{}",
        String::from_utf8_lossy(&with_ca.stderr)
    );
    let without = cli(&["queues"]);
    assert_eq!(
        without.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );

    // The container's health check speaks TLS when TLS_CERT is set.
    let check = Command::new(env!("CARGO_BIN_EXE_event-broker"))
        .arg("healthcheck")
        .env("PORT", server.port())
        .env("BIND_ADDR", "127.0.0.1")
        .env("TLS_CERT", dir.path().join("cert.pem"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Polls `ok` until it holds, for at most 10 s.
async fn eventually(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swapped_on_disk_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("old CA"), Ca::new("new CA"));
    let old_ca_path = old_ca.write(dir.path(), "old-ca.pem");
    let new_ca_path = new_ca.write(dir.path(), "new-ca.pem");
    let (server, cert_path, key_path) = start(dir.path(), &old_ca, &[]);
    let (trusts_old, trusts_new) = (
        client_trusting(&server, &old_ca_path),
        client_trusting(&server, &new_ca_path),
    );
    trusts_old.health().await.unwrap();
    assert!(trusts_new.health().await.is_err());

    // The key first, then the certificate: in between, the pair does not
    // match and the old one is kept.
    let (cert, key) = new_ca.sign(&["localhost", "127.0.0.1"]);
    replace(&key_path, &key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    trusts_old
        .health()
        .await
        .expect("a key without its certificate is not taken");
    replace(&cert_path, &cert);
    eventually("the new certificate is served", async || {
        trusts_new.health().await.is_ok()
    })
    .await;
    // New connections get it: the old CA's clients are refused from now on.
    let fresh_old = client_trusting(&server, &old_ca_path);
    assert!(fresh_old.health().await.is_err());

    replace(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fresh_new = client_trusting(&server, &new_ca_path);
    fresh_new
        .health()
        .await
        .expect("a broken certificate is not taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_clients_with_its_certificates_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (Ca::new("server CA"), Ca::new("client CA"));
    let server_ca_path = server_ca.write(dir.path(), "server-ca.pem");
    let client_ca_path = client_ca.write(dir.path(), "client-ca.pem");
    let (server, _, _) = start(
        dir.path(),
        &server_ca,
        &[("TLS_CLIENT_CA", client_ca_path.to_str().unwrap())],
    );

    let (cert, key) = client_ca.sign(&["worker-1"]);
    let identity = dir.path().join("identity.pem");
    std::fs::write(&identity, format!("{cert}{key}")).unwrap();
    let with_identity = Client::builder()
        .url(https(&server))
        .ca_file(&server_ca_path)
        .identity_file(&identity)
        .build()
        .unwrap();
    with_identity.list_queues().await.unwrap();

    let anonymous = client_trusting(&server, &server_ca_path);
    assert!(anonymous.list_queues().await.is_err());
    let (other_cert, other_key) = server_ca.sign(&["intruder"]);
    let other = dir.path().join("other.pem");
    std::fs::write(&other, format!("{other_cert}{other_key}")).unwrap();
    let intruder = Client::builder()
        .url(https(&server))
        .ca_file(&server_ca_path)
        .identity_file(&other)
        .build()
        .unwrap();
    assert!(
        intruder.list_queues().await.is_err(),
        "a certificate of another CA"
    );
}

#[test]
fn bad_tls_settings_stop_startup_and_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let run = |settings: &[(&str, &str)]| {
        let out = common::server::command(dir.path(), common::server::free_port())
            .envs(settings.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[("TLS_CERT", "/nonexistent/cert.pem")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("TLS_KEY"), "{err}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let (code, err) = run(&[
        ("TLS_CERT", garbage.to_str().unwrap()),
        ("TLS_KEY", garbage.to_str().unwrap()),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("TLS_CERT"), "{err}");
}
