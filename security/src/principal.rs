//! Principals: the names calls are made as. A principal comes from a bearer token (the name
//! the tokens file gives it) or from a verified client certificate (its subject's common
//! name, else its first DNS name).

use std::fmt;

use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

/// Longest principal name.
pub const MAX_PRINCIPAL_CHARS: usize = 128;

/// A checked principal name: 1 to [`MAX_PRINCIPAL_CHARS`] characters of ASCII letters,
/// digits and `. _ - @ :`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Principal(String);

impl TryFrom<String> for Principal {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Self::new(&name)
    }
}

impl From<Principal> for String {
    fn from(principal: Principal) -> String {
        principal.0
    }
}

impl Principal {
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() || name.len() > MAX_PRINCIPAL_CHARS {
            return Err(format!(
                "a principal is 1 to {MAX_PRINCIPAL_CHARS} characters, not {}",
                name.len()
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':')))
        {
            return Err(format!(
                "principal `{}` has {bad:?}; a principal is ASCII letters, digits and . _ - @ :",
                name.escape_debug()
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The principal of a client certificate the TLS handshake verified: its subject's
    /// common name, else its first DNS subject alternative name; `None` when it has neither
    /// or the name is not a valid principal.
    pub fn of_certificate(certificate: &CertificateDer<'_>) -> Option<Self> {
        let (_, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
        let common_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok().map(str::to_owned));
        let dns_name = || {
            let names = parsed.subject_alternative_name().ok()??;
            names
                .value
                .general_names
                .iter()
                .find_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
        };
        Self::new(&common_name.or_else(dns_name)?).ok()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["alice", "svc.etl-1", "bob@example.com", "node:7"] {
            assert_eq!(Principal::new(good).expect(good).as_str(), good);
        }
        for bad in ["", "a b", "x\n", "é", &"a".repeat(MAX_PRINCIPAL_CHARS + 1)] {
            assert!(Principal::new(bad).is_err(), "{bad:?}");
        }
    }
}
