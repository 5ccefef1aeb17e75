//! The roles one `inlet serve` process runs (`--roles index,writer,reader,compactor`, all by
//! default): exactly one process at a time holds `index` (SlateDB fences the others); any
//! number run `writer`, `reader` and `compactor` against the same store.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A set of roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Owns the index: the catalog, the sequencer, the REST catalog.
    pub index: bool,
    /// Takes appends: validates, batches, uploads WAL objects, commits through the owner.
    pub writer: bool,
    /// Serves fetches, offset lookups and union reads.
    pub reader: bool,
    /// Tiers tables into the lake and garbage-collects the WAL.
    pub compactor: bool,
}

/// The names, in the order they are shown.
const NAMES: [&str; 4] = ["index", "writer", "reader", "compactor"];

impl Roles {
    pub const ALL: Roles = Roles {
        index: true,
        writer: true,
        reader: true,
        compactor: true,
    };

    /// Parses a comma-separated list, e.g. `writer,reader`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut roles = Roles {
            index: false,
            writer: false,
            reader: false,
            compactor: false,
        };
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "index" => roles.index = true,
                "writer" => roles.writer = true,
                "reader" => roles.reader = true,
                "compactor" => roles.compactor = true,
                other => {
                    return Err(format!(
                        "unknown role `{other}`; the roles are {}",
                        NAMES.join(", ")
                    ));
                }
            }
        }
        if roles.names().is_empty() {
            return Err(format!("no role given; choose any of {}", NAMES.join(", ")));
        }
        Ok(roles)
    }

    /// Whether the role called `name` is in the set.
    pub fn has(&self, name: &str) -> bool {
        match name {
            "index" => self.index,
            "writer" => self.writer,
            "reader" => self.reader,
            "compactor" => self.compactor,
            _ => false,
        }
    }

    /// The roles' names, in a fixed order.
    pub fn names(&self) -> Vec<&'static str> {
        NAMES.into_iter().filter(|name| self.has(name)).collect()
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::ALL
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A comma-separated string (`INLET_ROLES=writer,reader`, `--roles`) or a TOML list.
impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Text(String),
            List(Vec<String>),
        }
        let text = match Written::deserialize(deserializer)? {
            Written::Text(text) => text,
            Written::List(list) => list.join(","),
        };
        Roles::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_names_unknown_roles() {
        let roles = Roles::parse("writer, reader").expect("valid");
        assert_eq!(roles.names(), vec!["writer", "reader"]);
        assert_eq!(
            Roles::parse("index,writer,reader,compactor"),
            Ok(Roles::ALL)
        );
        let error = Roles::parse("writer,indexer").expect_err("unknown role");
        assert!(error.contains("`indexer`"), "{error}");
        assert!(Roles::parse(" , ").is_err());
        let list: Roles = serde_json::from_str(r#"["reader","compactor"]"#).expect("list");
        assert_eq!(list.names(), vec!["reader", "compactor"]);
        assert_eq!(
            serde_json::to_string(&Roles::ALL).expect("json"),
            "\"index,writer,reader,compactor\""
        );
    }
}
