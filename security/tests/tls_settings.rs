//! The `[tls]` settings load only when every file they name is what it should be, and each
//! refusal names the setting and the file.

use inlet_security::tls::{ClientTls, TlsError, TlsSettings};
use inlet_testkit::pki::TestPki;

#[test]
fn a_certificate_and_its_key_make_tls_listeners_and_a_client_ca_makes_them_mtls() {
    let pki = TestPki::new();
    let node = pki.issue("node");
    let plain = TlsSettings::default().load().expect("no TLS");
    assert!(plain.server.is_none());
    assert_eq!(plain.scheme(), "http");

    let settings = TlsSettings {
        cert: Some(node.cert.clone()),
        key: Some(node.key.clone()),
        ..TlsSettings::default()
    };
    let tls = settings.load().expect("certificate and key");
    assert_eq!(tls.scheme(), "https");
    let server = tls.server.as_ref().expect("TLS listeners");
    assert!(!server.requires_client_certificates());
    assert_eq!(server.http().alpn_protocols, vec![b"http/1.1".to_vec()]);

    let mtls = TlsSettings {
        client_ca: Some(pki.ca().to_owned()),
        ca: Some(pki.ca().to_owned()),
        ..settings
    }
    .load()
    .expect("mTLS");
    assert!(
        mtls.server
            .as_ref()
            .expect("TLS listeners")
            .requires_client_certificates()
    );
}

#[test]
fn incomplete_or_wrong_files_are_refused_naming_the_setting_and_the_file() {
    let pki = TestPki::new();
    let node = pki.issue("node");
    let other = pki.issue("other");
    let not_pem = pki.file("notes.txt", "this is not a certificate\n");
    let missing = pki.file("gone.pem", "");
    std::fs::remove_file(&missing).expect("remove");

    let refused = |settings: TlsSettings| match settings.load() {
        Ok(_) => panic!("{settings:?} loaded"),
        Err(error) => error,
    };
    let error = refused(TlsSettings {
        cert: Some(node.cert.clone()),
        ..TlsSettings::default()
    });
    assert!(
        matches!(
            error,
            TlsError::Incomplete {
                missing: "tls.key",
                ..
            }
        ),
        "{error}"
    );
    let error = refused(TlsSettings {
        client_ca: Some(pki.ca().to_owned()),
        ..TlsSettings::default()
    });
    assert!(error.to_string().contains("tls.client_ca"), "{error}");

    // A key that is not the certificate's.
    let error = refused(TlsSettings {
        cert: Some(node.cert.clone()),
        key: Some(other.key.clone()),
        ..TlsSettings::default()
    });
    let text = error.to_string();
    assert!(matches!(error, TlsError::Unusable { .. }), "{text}");
    assert!(
        text.contains("node.crt") && text.contains("other.key"),
        "{text}"
    );

    for (settings, setting) in [
        (
            TlsSettings {
                cert: Some(not_pem.clone()),
                key: Some(node.key.clone()),
                ..TlsSettings::default()
            },
            "tls.cert",
        ),
        (
            TlsSettings {
                cert: Some(node.cert.clone()),
                key: Some(node.cert.clone()),
                ..TlsSettings::default()
            },
            "tls.key",
        ),
        (
            TlsSettings {
                ca: Some(missing.clone()),
                ..TlsSettings::default()
            },
            "tls.ca",
        ),
        (
            TlsSettings {
                cert: Some(node.cert.clone()),
                key: Some(node.key.clone()),
                client_ca: Some(not_pem.clone()),
                ..TlsSettings::default()
            },
            "tls.client_ca",
        ),
    ] {
        let text = refused(settings).to_string();
        assert!(text.contains(setting), "{setting}: {text}");
    }
    let text = refused(TlsSettings {
        ca: Some(missing.clone()),
        ..TlsSettings::default()
    })
    .to_string();
    assert!(text.contains("gone.pem"), "{text}");
}

#[test]
fn endpoints_get_tls_by_scheme_and_other_schemes_are_refused() {
    let pki = TestPki::new();
    let client = pki.issue("client");
    let tls = ClientTls::from_files(Some(pki.ca()), Some(&client.cert), Some(&client.key))
        .expect("client files");
    for url in [
        "http://127.0.0.1:7070",
        "https://127.0.0.1:7070",
        "127.0.0.1:7070",
    ] {
        tls.endpoint(url).expect(url);
    }
    let error = tls.endpoint("ftp://127.0.0.1:7070").expect_err("ftp");
    assert!(error.to_string().contains("http:// or https://"), "{error}");
    let error = ClientTls::from_files(None, Some(&client.cert), None).expect_err("no key");
    assert!(
        error.to_string().contains("the client key is not"),
        "{error}"
    );
}
