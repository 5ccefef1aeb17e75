//! Permissions (issue 14, item 3): grants of `read`, `write` or `admin` to a principal (or to
//! every principal, `*`) on `database.table` resources, either part a name, a prefix ending
//! in `*`, or `*` alone. `admin` includes `read` and `write`; `read` and `write` are apart
//! (a producer need not read, a consumer need not write). What is not granted is denied.
//!
//! The grants live in the index (every node enforces the same ones); this module only decides.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::principal::Principal;

/// Most grants a cluster holds: they are all read on every check and kept in one record.
pub const MAX_GRANTS: usize = 10_000;

/// What a grant allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Fetch, lookup, scan, list offsets, describe; see the table in lists and the catalog.
    Read,
    /// Append, upsert, delete.
    Write,
    /// Create, alter and drop; includes read and write. On `*.*`: manage grants.
    Admin,
}

impl Permission {
    /// Whether holding `self` allows `wanted`.
    pub fn covers(self, wanted: Permission) -> bool {
        self == wanted || self == Permission::Admin
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        })
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "read" => Ok(Permission::Read),
            "write" => Ok(Permission::Write),
            "admin" => Ok(Permission::Admin),
            other => Err(format!(
                "`{other}` is not a permission: read, write or admin"
            )),
        }
    }
}

/// One part of a resource pattern: `*`, `prefix*`, or a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Pattern(String);

impl Pattern {
    fn parse(text: &str, what: &str) -> Result<Self, String> {
        let name = text.strip_suffix('*').unwrap_or(text);
        if name.contains('*') {
            return Err(format!(
                "{what} pattern `{text}` may have `*` only at its end"
            ));
        }
        if text.is_empty()
            || text.len() > 256
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "{what} pattern `{}` is not a name, a prefix ending in `*`, or `*`",
                text.escape_debug()
            ));
        }
        Ok(Self(text.to_owned()))
    }

    fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.0 == name,
        }
    }

    /// Whether every name matches (`*`).
    fn is_any(&self) -> bool {
        self.0 == "*"
    }
}

/// `database.table` patterns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Resource {
    pub database: Pattern,
    pub table: Pattern,
}

impl FromStr for Resource {
    type Err = String;

    /// `db.table`, `db.*`, `db` (= `db.*`), `*` (= `*.*`), with prefixes like `etl_*`.
    fn from_str(text: &str) -> Result<Self, String> {
        let (database, table) = text.split_once('.').unwrap_or((text, "*"));
        Ok(Self {
            database: Pattern::parse(database, "database")?,
            table: Pattern::parse(table, "table")?,
        })
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database.0, self.table.0)
    }
}

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grantee {
    Everyone,
    Principal(Principal),
}

impl FromStr for Grantee {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "*" {
            Ok(Grantee::Everyone)
        } else {
            Principal::new(text).map(Grantee::Principal)
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Everyone => f.write_str("*"),
            Grantee::Principal(principal) => write!(f, "{principal}"),
        }
    }
}

/// One grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub resource: Resource,
    pub permission: Permission,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.grantee, self.permission, self.resource)
    }
}

impl Grant {
    fn applies_to(&self, principal: &Principal) -> bool {
        match &self.grantee {
            Grantee::Everyone => true,
            Grantee::Principal(grantee) => grantee == principal,
        }
    }
}

/// What a call needs: a permission on a table, or on a database as a whole (its every
/// table: `db.*` grants), or on everything (`*.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    Table { database: &'a str, table: &'a str },
    Database(&'a str),
    Everything,
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Table { database, table } => write!(f, "table {database}.{table}"),
            Target::Database(database) => write!(f, "database {database}"),
            Target::Everything => f.write_str("every database"),
        }
    }
}

/// Every grant of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    grants: BTreeSet<Grant>,
}

impl Grants {
    pub fn new(grants: impl IntoIterator<Item = Grant>) -> Self {
        Self {
            grants: grants.into_iter().collect(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Adds `grant`; false if it was there.
    pub fn insert(&mut self, grant: Grant) -> bool {
        self.grants.insert(grant)
    }

    /// Removes `grant`; false if it was not there.
    pub fn remove(&mut self, grant: &Grant) -> bool {
        self.grants.remove(grant)
    }

    /// Whether `principal` holds `permission` on `target`.
    pub fn allows(
        &self,
        principal: &Principal,
        permission: Permission,
        target: Target<'_>,
    ) -> bool {
        self.grants.iter().any(|grant| {
            grant.applies_to(principal)
                && grant.permission.covers(permission)
                && match target {
                    Target::Table { database, table } => {
                        grant.resource.database.matches(database)
                            && grant.resource.table.matches(table)
                    }
                    Target::Database(database) => {
                        grant.resource.database.matches(database) && grant.resource.table.is_any()
                    }
                    Target::Everything => {
                        grant.resource.database.is_any() && grant.resource.table.is_any()
                    }
                }
        })
    }

    /// Whether `principal` holds any permission on anything in `database` (it sees the
    /// database in lists).
    pub fn sees_database(&self, principal: &Principal, database: &str) -> bool {
        self.grants
            .iter()
            .any(|grant| grant.applies_to(principal) && grant.resource.database.matches(database))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(text: &str) -> Grant {
        let parts: Vec<&str> = text.split(' ').collect();
        Grant {
            grantee: parts[0].parse().expect("grantee"),
            permission: parts[1].parse().expect("permission"),
            resource: parts[2].parse().expect("resource"),
        }
    }

    #[test]
    fn grants_allow_what_they_name_and_admin_includes_the_rest() {
        let grants = Grants::new(
            [
                "alice read shop.orders",
                "alice write shop.clicks_*",
                "bob admin shop",
                "* read public.*",
                "root admin *",
            ]
            .map(grant),
        );
        let p = |name: &str| Principal::new(name).expect("name");
        let table = |database, table| Target::Table { database, table };
        let (alice, bob, carol, root) = (p("alice"), p("bob"), p("carol"), p("root"));
        use Permission::*;
        assert!(grants.allows(&alice, Read, table("shop", "orders")));
        assert!(!grants.allows(&alice, Write, table("shop", "orders")));
        assert!(grants.allows(&alice, Write, table("shop", "clicks_eu")));
        assert!(!grants.allows(&alice, Read, table("shop", "clicks_eu")));
        assert!(!grants.allows(&alice, Read, table("shop", "ordersx")));
        assert!(!grants.allows(&alice, Admin, Target::Database("shop")));
        for permission in [Read, Write, Admin] {
            assert!(grants.allows(&bob, permission, table("shop", "anything")));
            assert!(grants.allows(&bob, permission, Target::Database("shop")));
            assert!(!grants.allows(&bob, permission, table("other", "t")));
        }
        assert!(!grants.allows(&bob, Admin, Target::Everything));
        assert!(grants.allows(&root, Admin, Target::Everything));
        assert!(grants.allows(&carol, Read, table("public", "t")));
        assert!(!grants.allows(&carol, Write, table("public", "t")));
        assert!(grants.sees_database(&alice, "shop") && !grants.sees_database(&alice, "other"));
        assert!(grants.sees_database(&carol, "public"));
    }

    #[test]
    fn patterns_and_permissions_are_checked() {
        for bad in ["sh*op.t", "shop.t t", "", "shop.", ".t", "a.b.c"] {
            assert!(bad.parse::<Resource>().is_err(), "{bad}");
        }
        assert_eq!(
            "shop".parse::<Resource>().expect("db").to_string(),
            "shop.*"
        );
        assert_eq!("*".parse::<Resource>().expect("all").to_string(), "*.*");
        assert!("owner".parse::<Permission>().is_err());
        assert!("a b".parse::<Grantee>().is_err());
    }
}
