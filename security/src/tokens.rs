//! Bearer tokens and the tokens file.
//!
//! A token is `inlet_` and 64 hex digits (256 random bits), made by `inlet token create`,
//! shown once and never stored: the tokens file keeps only its SHA-256, one line per token:
//!
//! ```text
//! # principal  hash                                                                     [expiry]
//! alice        sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
//! etl          sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9 expires=2027-06-30T00:00:00Z
//! ```
//!
//! A principal may have several lines (rotation: add the new token, remove the old line).
//! Revoking a token is deleting its line; the server reloads the file when it changes. A
//! plain hash suffices because tokens are random: there is nothing to guess from a leaked
//! file that is cheaper than guessing 256 bits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use aws_lc_rs::digest;

use crate::principal::Principal;

/// What every token starts with (it tells a leaked token for what it is).
pub const TOKEN_PREFIX: &str = "inlet_";

/// Random bytes in a token.
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// Longest token looked up: anything longer is refused unhashed.
pub const MAX_TOKEN_CHARS: usize = 512;

/// Largest tokens file read.
pub const MAX_TOKENS_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A new token and the line of the tokens file that accepts it.
#[derive(Debug)]
pub struct NewToken {
    /// Shown to the user once; kept nowhere.
    pub token: String,
    pub line: String,
}

/// Makes a token for `principal`, valid until `expires` if given.
pub fn create(principal: &Principal, expires: Option<SystemTime>) -> Result<NewToken, String> {
    let mut random = [0u8; TOKEN_RANDOM_BYTES];
    aws_lc_rs::rand::fill(&mut random).map_err(|_| "the system's random source failed")?;
    let token = format!("{TOKEN_PREFIX}{}", hex::encode(random));
    let mut line = format!("{principal} sha256:{}", hex::encode(hash(&token)));
    if let Some(expires) = expires {
        line.push_str(&format!(
            " expires={}",
            humantime::format_rfc3339_seconds(expires)
        ));
    }
    Ok(NewToken { token, line })
}

fn hash(token: &str) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    digest
        .as_ref()
        .try_into()
        .expect("a SHA-256 digest is 32 bytes")
}

/// Why a presented token is not accepted. The caller is told only that its credential is
/// invalid; the reason is for the server's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
}

/// One accepted token.
#[derive(Clone, Debug)]
struct Entry {
    principal: Principal,
    expires: Option<SystemTime>,
}

/// The accepted tokens, by hash.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], Entry>,
}

impl Tokens {
    /// Parses a tokens file; an error names the line and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_hash = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let number = number + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |what: String| format!("line {number}: {what}");
            let mut fields = line.split_whitespace();
            let principal = Principal::new(fields.next().unwrap_or_default()).map_err(bad)?;
            let digest = fields
                .next()
                .and_then(|field| field.strip_prefix("sha256:"))
                .ok_or_else(|| bad("the second field is `sha256:<64 hex digits>`".to_owned()))?;
            let digest: [u8; 32] = hex::decode(digest)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| bad(format!("`{digest}` is not 64 hex digits")))?;
            let mut expires = None;
            for field in fields {
                let time = field
                    .strip_prefix("expires=")
                    .ok_or_else(|| bad(format!("unknown field `{field}`")))?;
                expires =
                    Some(humantime::parse_rfc3339(time).map_err(|e| {
                        bad(format!("expires `{time}` is not an RFC 3339 time: {e}"))
                    })?);
            }
            if by_hash
                .insert(digest, Entry { principal, expires })
                .is_some()
            {
                return Err(bad("the same token is listed twice".to_owned()));
            }
        }
        Ok(Self { by_hash })
    }

    /// The principal of `token` at `now`.
    pub fn authenticate(&self, token: &str, now: SystemTime) -> Result<&Principal, Refusal> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(Refusal::Unknown);
        }
        let entry = self.by_hash.get(&hash(token)).ok_or(Refusal::Unknown)?;
        match entry.expires {
            Some(expires) if expires <= now => Err(Refusal::Expired),
            _ => Ok(&entry.principal),
        }
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// The tokens file of a running server: read at start (an error stops the start), read
/// again by [`TokensFile::reload`] whenever its contents changed. A changed file that does
/// not parse is logged and the tokens in force stay.
#[derive(Debug)]
pub struct TokensFile {
    path: PathBuf,
    current: RwLock<Arc<Tokens>>,
    /// The bytes the current tokens were parsed from.
    read: Mutex<Vec<u8>>,
}

impl TokensFile {
    pub fn open(path: &Path) -> Result<Self, String> {
        let bytes = read(path)?;
        let tokens = parse_bytes(path, &bytes)?;
        Ok(Self {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(tokens)),
            read: Mutex::new(bytes),
        })
    }

    /// The tokens in force.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.current.read().expect("tokens lock").clone()
    }

    /// Reads the file again; returns whether the tokens in force changed. An unreadable or
    /// invalid file leaves them as they are and is returned as the error.
    pub fn reload(&self) -> Result<bool, String> {
        let bytes = read(&self.path)?;
        let mut read = self.read.lock().expect("tokens file lock");
        if *read == bytes {
            return Ok(false);
        }
        let tokens = parse_bytes(&self.path, &bytes)?;
        *self.current.write().expect("tokens lock") = Arc::new(tokens);
        *read = bytes;
        Ok(true)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let error = |e: std::io::Error| format!("cannot read the tokens file {}: {e}", path.display());
    let size = std::fs::metadata(path).map_err(error)?.len();
    if size > MAX_TOKENS_FILE_BYTES {
        return Err(format!(
            "the tokens file {} is {size} bytes; at most {MAX_TOKENS_FILE_BYTES}",
            path.display()
        ));
    }
    std::fs::read(path).map_err(error)
}

fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Tokens, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("the tokens file {} is not UTF-8: {e}", path.display()))?;
    Tokens::parse(text).map_err(|e| format!("the tokens file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_created_token_is_accepted_by_its_line_until_it_expires() {
        let alice = Principal::new("alice").expect("name");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let new = create(&alice, None).expect("token");
        assert!(new.token.starts_with(TOKEN_PREFIX));
        assert_eq!(new.token.len(), TOKEN_PREFIX.len() + 2 * TOKEN_RANDOM_BYTES);
        let expiring = create(&alice, Some(now + Duration::from_secs(60))).expect("token");
        let text = format!("# comment\n\n{}\n{}\n", new.line, expiring.line);
        let tokens = Tokens::parse(&text).expect("parses");
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.authenticate(&new.token, now), Ok(&alice));
        assert_eq!(tokens.authenticate(&expiring.token, now), Ok(&alice));
        assert_eq!(
            tokens.authenticate(&expiring.token, now + Duration::from_secs(61)),
            Err(Refusal::Expired)
        );
        let other = create(&alice, None).expect("token");
        assert_eq!(
            tokens.authenticate(&other.token, now),
            Err(Refusal::Unknown)
        );
        assert_eq!(
            tokens.authenticate(&"x".repeat(MAX_TOKEN_CHARS + 1), now),
            Err(Refusal::Unknown)
        );
    }

    #[test]
    fn a_bad_line_is_refused_naming_its_number() {
        let good = create(&Principal::new("a").expect("name"), None).expect("token");
        for (text, said) in [
            ("a\n", "line 1"),
            ("a md5:00\n", "sha256:"),
            ("a sha256:zz\n", "not 64 hex"),
            (
                &format!("{}\n{}\n", good.line, good.line),
                "line 2: the same token",
            ),
            (&format!("{} color=red\n", good.line), "unknown field"),
            (&format!("{} expires=tomorrow\n", good.line), "RFC 3339"),
            ("bad name sha256:00\n", "line 1"),
        ] {
            let error = Tokens::parse(text).expect_err(text);
            assert!(error.contains(said), "{text:?}: {error}");
        }
    }
}
