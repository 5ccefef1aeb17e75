//! The seeded counterpart of the `security_inputs` fuzz target (which needs nightly): any
//! bytes as a client certificate, a principal, a token or a tokens file give an answer or an
//! error, never a panic.

use std::time::SystemTime;

use inlet_security::principal::Principal;
use inlet_security::tokens::Tokens;
use proptest::prelude::*;
use rustls::pki_types::CertificateDer;

proptest! {
    #[test]
    fn any_bytes_are_answered_without_a_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Principal::of_certificate(&CertificateDer::from(data.as_slice()));
        let text = String::from_utf8_lossy(&data);
        let _ = Principal::new(&text);
        if let Ok(tokens) = Tokens::parse(&text) {
            let _ = tokens.authenticate(&text, SystemTime::UNIX_EPOCH);
        }
    }

    #[test]
    fn tokens_file_like_text_is_answered_without_a_panic(
        lines in proptest::collection::vec("[a-z@.:_-]{0,8} (sha256:[0-9a-f]{0,70})?( expires=[0-9TZ:-]{0,25})?", 0..8)
    ) {
        let _ = Tokens::parse(&lines.join("\n"));
    }
}

/// A real certificate, truncated at every length, still never panics.
#[test]
fn truncated_certificates_have_no_principal_and_do_not_panic() {
    let pki = inlet_testkit::pki::TestPki::new();
    let files = pki.issue("alice");
    let der = rustls::pki_types::pem::PemObject::from_pem_file(&files.cert)
        .map(|der: CertificateDer<'static>| der.to_vec())
        .expect("certificate");
    assert_eq!(
        Principal::of_certificate(&CertificateDer::from(der.as_slice())),
        Some(Principal::new("alice").expect("name"))
    );
    for end in 0..der.len() {
        assert_eq!(
            Principal::of_certificate(&CertificateDer::from(&der[..end])),
            None,
            "{end} bytes"
        );
    }
}
