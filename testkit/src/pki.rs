//! Certificates for TLS tests, made by the test itself (no private key is ever committed): a
//! CA, certificates it signs for `127.0.0.1` and `localhost` that serve both as server and as
//! client certificates, and a second CA that the first knows nothing of. Every file lives in
//! a temporary directory that goes with the [`TestPki`].

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA that signs certificates.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    cert: PathBuf,
}

/// Two unrelated CAs in a temporary directory.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca: Authority,
    other: Authority,
}

impl TestPki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let ca = authority(dir.path(), "inlet-test-ca");
        let other = authority(dir.path(), "inlet-other-ca");
        Self { dir, ca, other }
    }

    /// The CA's certificate (PEM), to trust.
    pub fn ca(&self) -> &Path {
        &self.ca.cert
    }

    /// The other CA's certificate (PEM).
    pub fn other_ca(&self) -> &Path {
        &self.other.cert
    }

    /// A certificate for `name` signed by the CA, valid for 127.0.0.1 and localhost.
    pub fn issue(&self, name: &str) -> CertFiles {
        issue(self.dir.path(), &self.ca, name)
    }

    /// The same, signed by the other CA.
    pub fn issue_by_other(&self, name: &str) -> CertFiles {
        issue(self.dir.path(), &self.other, &format!("{name}-other"))
    }

    /// A file in the directory with `text` in it (a broken certificate, say).
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

fn authority(dir: &Path, name: &str) -> Authority {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    let issuer = CertifiedIssuer::self_signed(params, key).expect("self-signed CA");
    let cert = dir.join(format!("{name}.pem"));
    std::fs::write(&cert, issuer.pem()).expect("write CA certificate");
    Authority { issuer, cert }
}

fn issue(dir: &Path, authority: &Authority, name: &str) -> CertFiles {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params
        .signed_by(&key, &authority.issuer)
        .expect("signed leaf");
    let files = CertFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, cert.pem()).expect("write certificate");
    std::fs::write(&files.key, key.serialize_pem()).expect("write key");
    files
}
