//! What the security layer decodes from outside: a client certificate's DER (its principal,
//! after the handshake verified it), a principal named in `inlet-principal`, a bearer token,
//! and a tokens file. Each must give an answer or an error, never a panic.
#![no_main]

use inlet_security::principal::Principal;
use inlet_security::tokens::Tokens;
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;

fuzz_target!(|data: &[u8]| {
    let _ = Principal::of_certificate(&CertificateDer::from(data));
    let text = String::from_utf8_lossy(data);
    let _ = Principal::new(&text);
    if let Ok(tokens) = Tokens::parse(&text) {
        let _ = tokens.authenticate(&text, std::time::SystemTime::UNIX_EPOCH);
    }
    let _ = Tokens::default().authenticate(&text, std::time::SystemTime::UNIX_EPOCH);
});
