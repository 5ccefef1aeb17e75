//! The command line: `inlet serve` and the client commands. Each client command talks to a
//! running server over gRPC; every failure is one line on stderr and a non-zero exit.

pub mod convert;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use inlet_proto::v1 as pb;
use inlet_security::credential::Credential;
use inlet_security::principal::Principal;
use inlet_security::tls::ClientTls;
use inlet_store::Op;
use inlet_store::prices::S3_STANDARD as S3;
use serde_json::json;

use crate::client::{Client, Producer, WriteKind, decode_fetched, path, text};
use crate::config::Config;
use crate::node::Node;
use convert::{InputFormat, OutputFormat, describe_schema, parse_schema, parse_start};

/// Inlet: streaming storage for the lakehouse, on one object-store bucket.
#[derive(Debug, Parser)]
#[command(name = "inlet", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every role in one process (the embedded default: data in ./inlet-data).
    Serve(ServeArgs),
    /// Run only the compactor (lake tiering, WAL garbage collection) against the store of
    /// a running `inlet serve`, which applies its leases and commits.
    Compactor(CompactorArgs),
    /// Create, list, describe or drop tables.
    #[command(subcommand)]
    Table(TableCommand),
    /// Create, list or drop databases.
    #[command(subcommand)]
    Db(DbCommand),
    /// Append JSON lines or CSV (from a file or stdin) to a table.
    Produce(ProduceArgs),
    /// Print a table's rows from a start position, optionally following new ones (for a
    /// primary-key table: its changelog, with `_change_type`).
    Consume(ConsumeArgs),
    /// Print the current rows of keys of a primary-key table: `inlet lookup db.t id=42`.
    Lookup(LookupArgs),
    /// Show what a running node is doing and what its object-store traffic costs.
    Status(ServerArg),
    /// Lake tiering: per table watermarks, lag, last snapshot, files and bytes.
    #[command(subcommand)]
    Lake(LakeCommand),
    /// Bearer tokens for a server with authentication on.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Permissions: grant, revoke or list `read`, `write`, `admin` on `database.table`.
    #[command(subcommand)]
    Acl(AclCommand),
    /// Measure an embedded node: produce, end-to-end and fetch figures, object-store
    /// requests and cost per GB, as tables and JSON.
    Bench(Box<inlet_bench::BenchArgs>),
}

/// `inlet serve`'s flags: a config file, and the settings used most, which override the
/// file and the `INLET_*` environment (every setting has a variable: see `config.rs`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; INLET_* variables and flags override it.
    #[arg(long, env = "INLET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Store URL: a path, file:///path, memory:// or s3://bucket/prefix.
    #[arg(long)]
    pub store: Option<String>,
    /// gRPC listen address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// HTTP listen address (/health, /metrics, /iceberg); `off` disables HTTP.
    #[arg(long)]
    pub http_listen: Option<String>,
    /// Roles of this process, comma separated: index, writer, reader, compactor (default
    /// all). Other nodes of a cluster find the index owner through the store.
    #[arg(long)]
    pub roles: Option<String>,
    /// gRPC address other nodes and clients reach this node on (default: --listen).
    #[arg(long)]
    pub advertise: Option<String>,
    /// With the index role: wait while the current owner answers, take over when it fails.
    #[arg(long)]
    pub standby: bool,
    /// Writer linger, e.g. 5ms or 200ms.
    #[arg(long, value_parser = humantime_duration)]
    pub linger: Option<Duration>,
    /// Flush a WAL object early at this many bytes.
    #[arg(long)]
    pub flush_bytes: Option<usize>,
    /// Most bytes of unacknowledged appends held before producers wait.
    #[arg(long)]
    pub max_buffered_bytes: Option<usize>,
    /// Run the compactor role (lake tiering, WAL garbage collection) in this process.
    #[arg(long)]
    pub compactor: Option<bool>,
    /// Turn lake tiering on for tables created without a `lake.enabled` option.
    #[arg(long)]
    pub lake_by_default: Option<bool>,
    /// This node's certificate chain (PEM): both listeners speak TLS only.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that signs the client certificates the listeners require (mTLS).
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// CA (PEM) trusted when this node calls other nodes over https (default: the system's
    /// roots).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompactorArgs {
    /// TOML config file (its `store` and `[lake]` settings are used).
    #[arg(long, env = "INLET_CONFIG")]
    pub config: Option<PathBuf>,
    /// The store the index owner serves: a path, file:///path or s3://bucket/prefix.
    #[arg(long)]
    pub store: Option<String>,
    /// The index owner (`inlet serve`) that applies leases and lake commits.
    #[command(flatten)]
    pub server: ServerArg,
}

fn humantime_duration(value: &str) -> Result<Duration, String> {
    humantime_serde::re::humantime::parse_duration(value).map_err(|e| e.to_string())
}

impl ServeArgs {
    /// The settings: defaults, the config file, `INLET_*` variables, then these flags.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut flags = serde_json::Map::new();
        let mut set = |path: &[&str], value: serde_json::Value| {
            let mut table = &mut flags;
            for key in &path[..path.len() - 1] {
                table = table
                    .entry(*key)
                    .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()))
                    .as_object_mut()
                    .expect("flag sections are tables");
            }
            table.insert(path[path.len() - 1].to_owned(), value);
        };
        let duration =
            |d: Duration| json!(humantime_serde::re::humantime::format_duration(d).to_string());
        if let Some(store) = &self.store {
            set(&["store"], json!(store));
        }
        if let Some(listen) = self.listen {
            set(&["listen"], json!(listen.to_string()));
        }
        if let Some(http) = &self.http_listen {
            set(&["http_listen"], json!(http));
        }
        if let Some(roles) = &self.roles {
            set(&["roles"], json!(roles));
        }
        if let Some(advertise) = &self.advertise {
            set(&["advertise"], json!(advertise));
        }
        if self.standby {
            set(&["standby"], json!(true));
        }
        if let Some(linger) = self.linger {
            set(&["writer", "linger"], duration(linger));
        }
        if let Some(bytes) = self.flush_bytes {
            set(&["writer", "flush_bytes"], json!(bytes));
        }
        if let Some(bytes) = self.max_buffered_bytes {
            set(&["writer", "max_buffered_bytes"], json!(bytes));
        }
        if let Some(compactor) = self.compactor {
            set(&["lake", "compactor"], json!(compactor));
        }
        if let Some(default) = self.lake_by_default {
            set(&["lake", "tables_default"], json!(default));
        }
        for (key, path) in [
            ("cert", &self.tls_cert),
            ("key", &self.tls_key),
            ("client_ca", &self.tls_client_ca),
            ("ca", &self.tls_ca),
        ] {
            if let Some(path) = path {
                set(&["tls", key], json!(path));
            }
        }
        Config::load(self.config.as_deref(), serde_json::Value::Object(flags))
    }
}

/// Where the client commands find the server, and how they trust it.
#[derive(Debug, Args)]
pub struct ServerArg {
    /// Address of a running `inlet serve` (`https://` when it serves TLS).
    #[arg(long, env = "INLET_SERVER", default_value = "http://127.0.0.1:7070")]
    pub server: String,
    /// CA certificate (PEM) that signed the server's certificate (default: the system's
    /// roots).
    #[arg(long, env = "INLET_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM), for a server that requires one (mTLS).
    #[arg(long, env = "INLET_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "INLET_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Bearer token (from `inlet token create`), for a server with authentication on.
    #[arg(long, env = "INLET_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ServerArg {
    /// How this command makes its TLS connections, if any TLS flag was given.
    fn client_tls(&self) -> anyhow::Result<Option<ClientTls>> {
        if self.ca_cert.is_none() && self.client_cert.is_none() && self.client_key.is_none() {
            return Ok(None);
        }
        let tls = ClientTls::from_files(
            self.ca_cert.as_deref(),
            self.client_cert.as_deref(),
            self.client_key.as_deref(),
        )?;
        Ok(Some(tls))
    }

    /// The token this command presents, if given.
    fn credential(&self) -> anyhow::Result<Option<Credential>> {
        self.token
            .as_deref()
            .map(|token| Credential::bearer(token).map_err(|e| anyhow::anyhow!("--token: {e}")))
            .transpose()
    }

    /// A client of the server.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let tls = self.client_tls()?.unwrap_or_else(ClientTls::system);
        let credential = self.credential()?.unwrap_or_else(Credential::none);
        Client::connect_with(&self.server, &tls, credential).await
    }
}

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Grant a permission: `inlet acl grant alice read shop.orders` (`*` is everyone, or
    /// every database or table; `etl_*` a prefix).
    Grant {
        #[command(flatten)]
        grant: GrantArgs,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Revoke a permission granted exactly so.
    Revoke {
        #[command(flatten)]
        grant: GrantArgs,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List every grant.
    List {
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    /// A principal, or `*` for every principal.
    pub principal: String,
    /// read, write or admin (admin includes read and write).
    pub permission: String,
    /// `database.table`, `database` (its every table), or `*`.
    pub resource: String,
}

impl GrantArgs {
    fn message(&self) -> anyhow::Result<pb::AccessGrant> {
        let grant = inlet_security::acl::Grant {
            grantee: self.principal.parse().map_err(anyhow::Error::msg)?,
            permission: self.permission.parse().map_err(anyhow::Error::msg)?,
            resource: self.resource.parse().map_err(anyhow::Error::msg)?,
        };
        Ok(inlet_wire::convert::grant_message(&grant))
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token for a principal: prints the token (shown once, kept nowhere) and the
    /// line that the server's tokens file (auth.tokens_file) needs to accept it.
    Create {
        /// The principal the token authenticates as, e.g. `alice` or `etl.orders`.
        principal: String,
        /// Expire the token this long from now, e.g. `90d` (default: never).
        #[arg(long, value_parser = humantime_duration)]
        ttl: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Per table: watermark and lag per bucket, last snapshot, file count and bytes.
    Status {
        /// `database.table`, a `database`, or nothing for every table.
        target: Option<String>,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create a table (its database is created if missing): a log table, or with
    /// `--primary-key` a primary-key table.
    Create {
        /// `database.table`, or `table` for database `default`.
        table: String,
        /// Columns: `name:type[ not null], ...`, e.g. "id:int64 not null, name:string".
        #[arg(long)]
        schema: String,
        /// Number of buckets (streams) the table is split into.
        #[arg(long, default_value_t = 1)]
        buckets: u32,
        /// Columns whose values choose a row's bucket; none: round-robin per append (for a
        /// primary-key table: the primary key).
        #[arg(long, value_delimiter = ',')]
        bucket_key: Vec<String>,
        /// Primary-key columns (declared `not null`): the table takes upserts and deletes.
        #[arg(long, value_delimiter = ',')]
        primary_key: Vec<String>,
        /// Columns whose values choose a row's partition (declared `not null`; integers,
        /// strings, dates or booleans; at most 4). A partition is created by the first append
        /// of its values, or up front with `table partitions --add`; each has `--buckets`
        /// buckets. A primary key must contain these columns; no lake tiering yet.
        #[arg(long, value_delimiter = ',')]
        partition_key: Vec<String>,
        /// Table option `key=value`, repeatable: `lake.enabled=true`, `lake.freshness=30s`,
        /// `lake.snapshots.retained=100`, `retention=7d`, `retention.bytes=10GiB`; for
        /// primary-key tables `merge.engine=last_row|first_row|versioned`
        /// and `merge.version-column=<column>`.
        #[arg(long = "option", value_parser = parse_option)]
        options: Vec<(String, String)>,
        /// Succeed without change if the table exists.
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List the tables of a database.
    List {
        #[arg(default_value = "default")]
        database: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Show a table's schema, buckets and offsets.
    Describe {
        table: String,
        #[command(flatten)]
        server: ServerArg,
    },
    /// List a partitioned table's partitions with their rows and WAL bytes, or create
    /// partitions up front with `--add`.
    Partitions {
        table: String,
        /// A partition to create: its values in partition-key order, comma-separated (e.g.
        /// `2026-12-07,eu`); repeatable. Partitions that exist are left as they are.
        #[arg(long)]
        add: Vec<String>,
        /// A partition to drop, written as for `--add`; repeatable. It leaves the table at
        /// once; its rows are deleted after the compactors' drop grace.
        #[arg(long)]
        drop: Vec<String>,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Drop a table. Its name is free at once; its WAL and index entries are deleted once
    /// the compactors' drop grace (`lake.drop_grace`) passed. Its lake table (Iceberg folder)
    /// stays in the bucket for engines that read it, unless `--purge`.
    Drop {
        table: String,
        #[arg(long)]
        if_exists: bool,
        /// Delete the lake table too.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    /// Change a table's options, comment or columns. Options that can change: `lake.enabled`
    /// (turning it on tiers the table's history too), `lake.freshness`,
    /// `lake.snapshots.retained`, `retention`, `retention.bytes`. Columns can be added at the
    /// end (nullable; rows written before read as null in them; a lake table's Iceberg
    /// schema gains them with its next round), widened, renamed and dropped; key and
    /// partition-key columns stay.
    Alter {
        table: String,
        /// Option `key=value` to set, repeatable.
        #[arg(long = "set", value_parser = parse_option)]
        set: Vec<(String, String)>,
        /// Option to remove (back to its default), repeatable; removed before `--set`.
        #[arg(long = "unset")]
        unset: Vec<String>,
        /// A new comment.
        #[arg(long)]
        comment: Option<String>,
        /// Columns to add after the existing ones: `name:type, ...` (the syntax of
        /// `table create --schema`; added columns are nullable).
        #[arg(long)]
        add_columns: Option<String>,
        /// Columns whose type widens: `name:type, ...` with the new types (int32 to int64,
        /// float32 to float64, a decimal's precision at the same scale); each keeps its
        /// nullability.
        #[arg(long)]
        widen_columns: Option<String>,
        /// Columns to drop, comma-separated (applied first). Rows written before keep their
        /// values but reads no longer return them.
        #[arg(long, value_delimiter = ',')]
        drop_columns: Vec<String>,
        /// A column to rename, `old:new`, repeatable (after the drops). Rows written before
        /// read under the new name.
        #[arg(long = "rename-column", value_parser = parse_rename)]
        rename_columns: Vec<(String, String)>,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    Create {
        name: String,
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        server: ServerArg,
    },
    List {
        #[command(flatten)]
        server: ServerArg,
    },
    Drop {
        name: String,
        #[arg(long)]
        if_exists: bool,
        /// Drop its tables too.
        #[arg(long)]
        cascade: bool,
        /// Delete its tables' lake tables too (see `table drop --purge`).
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// `database.table`, or `table` for database `default`.
    pub table: String,
    /// Input file; stdin when absent or `-`.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Input format; guessed from the file extension, JSON lines otherwise.
    #[arg(long)]
    pub format: Option<InputFormat>,
    /// Rows per append request.
    #[arg(long, default_value_t = 10_000)]
    pub batch_rows: usize,
    /// What the rows do: append (log tables), upsert, partial (an upsert of the `--columns`
    /// only) or delete (primary-key tables; a delete needs only the key columns). Default:
    /// upsert for primary-key tables.
    #[arg(long, value_enum)]
    pub op: Option<ProduceOp>,
    /// With `--op partial`: the columns the rows set, the primary key among them.
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProduceOp {
    Append,
    Upsert,
    Partial,
    Delete,
}

#[derive(Debug, Args)]
pub struct LookupArgs {
    /// `database.table`, or `table` for database `default`.
    pub table: String,
    /// Keys as `column=value`, comma separated for a key of several columns
    /// (`id=42,region=eu`); one argument per key.
    #[arg(required = true)]
    pub keys: Vec<String>,
    /// Columns to print (all when none); `_offset` and `_bucket` are added.
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// The keys are values of the bucket key (which the primary key starts with): print
    /// every row whose bucket key equals one of them.
    #[arg(long)]
    pub prefix: bool,
    /// With `--prefix`: most rows to print (0: the server's limit).
    #[arg(long, default_value_t = 0)]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub server: ServerArg,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// `database.table`, or `table` for database `default`.
    pub table: String,
    /// Start: earliest, latest, an offset, a time like 2026-01-31T12:00:00Z, or (primary-key
    /// tables) snapshot: the current rows, then the changelog from there.
    #[arg(long, default_value = "earliest")]
    pub from: String,
    /// Columns to print (system columns _bucket, _offset, _timestamp are always added).
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Only these buckets (of each partition read).
    #[arg(long, value_delimiter = ',')]
    pub buckets: Vec<u32>,
    /// Partitioned tables: only these partitions, by name (`table partitions` lists them).
    #[arg(long, value_delimiter = ',')]
    pub partitions: Vec<String>,
    /// Keep printing rows as they are appended.
    #[arg(long)]
    pub follow: bool,
    /// Stop after this many rows.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Primary-key tables: leave out `-U` rows (before images of updates).
    #[arg(long)]
    pub omit_update_before: bool,
    /// A `--from` offset that retention expired starts at the earliest readable offset
    /// instead of failing.
    #[arg(long)]
    pub reset_to_earliest: bool,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub server: ServerArg,
}

/// A table's options as `key=value, ...` in key order.
fn options_line(options: &std::collections::HashMap<String, String>) -> String {
    let sorted: std::collections::BTreeMap<_, _> = options.iter().collect();
    sorted
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Splits `database.table`; a bare name is in database `default`.
pub fn split_table(name: &str) -> (String, String) {
    match name.split_once('.') {
        Some((database, table)) => (database.to_owned(), table.to_owned()),
        None => ("default".to_owned(), name.to_owned()),
    }
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Compactor(args) => compactor(args).await,
        Command::Table(command) => table(command).await,
        Command::Db(command) => db(command).await,
        Command::Acl(command) => acl(command).await,
        Command::Produce(args) => produce(args).await,
        Command::Consume(args) => consume(args).await,
        Command::Lookup(args) => lookup(args).await,
        Command::Bench(args) => inlet_bench::run(&args, &crate::bench::ServerHost).await,
        Command::Status(server) => status(server).await,
        Command::Token(TokenCommand::Create { principal, ttl }) => {
            let principal = Principal::new(&principal).map_err(anyhow::Error::msg)?;
            let now = crate::auth::system_time(inlet_core::clock::Env::system().clock.now());
            let expires = ttl.map(|ttl| now + ttl);
            let new =
                inlet_security::tokens::create(&principal, expires).map_err(anyhow::Error::msg)?;
            println!("token: {}", new.token);
            println!("line:  {}", new.line);
            eprintln!(
                "add the line to the tokens file (auth.tokens_file); present the token as \
                 `--token` / INLET_TOKEN (it is shown only now)"
            );
            Ok(())
        }
        Command::Lake(LakeCommand::Status { target, server }) => lake_status(target, server).await,
    }
}

async fn acl(command: AclCommand) -> anyhow::Result<()> {
    let (grant, server, add) = match command {
        AclCommand::Grant { grant, server } => (grant, server, true),
        AclCommand::Revoke { grant, server } => (grant, server, false),
        AclCommand::List { server } => {
            let mut client = server.connect().await?;
            let grants = client
                .raw()
                .list_grants(pb::ListGrantsRequest {})
                .await
                .map_err(crate::client::status_error)?
                .into_inner()
                .grants;
            let mut rows = text::table(&["principal", "permission", "resource"], &[0, 1, 2]);
            for grant in grants {
                rows.add_row(vec![grant.grantee, grant.permission, grant.resource]);
            }
            println!("{rows}");
            return Ok(());
        }
    };
    let request = pb::GrantRequest {
        grant: Some(grant.message()?),
    };
    let mut client = server.connect().await?;
    let raw = client.raw();
    let reply = if add {
        raw.grant(request).await
    } else {
        raw.revoke(request).await
    }
    .map_err(crate::client::status_error)?
    .into_inner();
    let what = format!(
        "{} {} {}",
        grant.principal, grant.permission, grant.resource
    );
    println!(
        "{}: {what}",
        match (add, reply.changed) {
            (true, true) => "granted",
            (true, false) => "already granted",
            (false, true) => "revoked",
            (false, false) => "not granted, nothing revoked",
        }
    );
    Ok(())
}

async fn compactor(args: CompactorArgs) -> anyhow::Result<()> {
    let flags = match &args.store {
        Some(store) => json!({ "store": store }),
        None => json!({}),
    };
    let config = Config::load(args.config.as_deref(), flags)?;
    if config.store.starts_with("memory:") {
        anyhow::bail!(
            "a standalone compactor needs the owner's store; memory:// is private to a process"
        );
    }
    let store = crate::store::open_store(&config.store)?;
    crate::store::check_store(store.as_ref(), &config.store).await?;
    let root = crate::store::lake_root(&config.store)?;
    // The compactor's index calls are internal traffic: the `[tls]` settings, unless this
    // command was given TLS flags of its own.
    let tls = match args.server.client_tls()? {
        Some(tls) => tls,
        None => config.tls.load().context("invalid [tls] settings")?.client,
    };
    let credential = match (args.server.credential()?, &config.auth.token_file) {
        (Some(credential), _) => credential,
        (None, Some(path)) => Credential::from_file(path).map_err(anyhow::Error::msg)?,
        (None, None) => Credential::none(),
    };
    let index = inlet_wire::RemoteIndex::connect(
        inlet_wire::OwnerSource::Fixed(args.server.server.clone()),
        None,
        inlet_wire::RemoteOptions {
            tls,
            credential,
            ..inlet_wire::RemoteOptions::default()
        },
    );
    let cache = inlet_reader::PagedCache::open(store.clone(), config.cache.clone())
        .await
        .context("cannot open the read cache")?;
    let compactor = inlet_compactor::Compactor::start(
        index,
        cache,
        inlet_compactor::lake::LakeStorage::new(root, store),
        config.lake.tiering.clone(),
        inlet_core::clock::Env::system(),
    );
    println!(
        "inlet compactor {} tiering for {} (store: {})",
        compactor.owner(),
        args.server.server,
        config.store
    );
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    tracing::info!("interrupted; stopping the compactor");
    compactor.stop().await;
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let mut node = Node::start(&config).await?;
    println!(
        "inlet serving on {} (store: {})",
        node.endpoint(),
        config.store
    );
    tokio::select! {
        result = node.wait() => result?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; shutting down");
            node.shutdown().await?;
        }
    }
    Ok(())
}

async fn table(command: TableCommand) -> anyhow::Result<()> {
    match command {
        TableCommand::Create {
            table,
            schema,
            buckets,
            bucket_key,
            primary_key,
            partition_key,
            options,
            if_not_exists,
            server,
        } => {
            let schema = parse_schema(&schema)?;
            let (database, name) = split_table(&table);
            let mut client = server.connect().await?;
            client.create_database(&database, true).await?;
            let descriptor = pb::TableDescriptor {
                schema_ipc: inlet_core::ipc::schema_to_ipc(&schema)?,
                bucket_count: buckets,
                bucket_key,
                partition_key,
                primary_key,
                options: options.into_iter().collect(),
                ..Default::default()
            };
            let info = client
                .create_table_from(&database, &name, descriptor, if_not_exists)
                .await?;
            println!("created table {database}.{name} (id {})", info.table_id);
        }
        TableCommand::List { database, server } => {
            let mut client = server.connect().await?;
            let tables = client
                .raw()
                .list_tables(pb::ListTablesRequest { database })
                .await
                .map_err(crate::client::status_error)?
                .into_inner()
                .tables;
            for table in tables {
                let path = table.path.unwrap_or_default();
                let buckets = table.descriptor.map(|d| d.bucket_count).unwrap_or_default();
                println!("{}.{}\t{} buckets", path.database, path.table, buckets);
            }
        }
        TableCommand::Describe { table, server } => {
            let (database, name) = split_table(&table);
            let mut client = server.connect().await?;
            let table = client.table(&database, &name).await?;
            let descriptor = table.info.descriptor.clone().unwrap_or_default();
            println!("table {database}.{name} (id {})", table.info.table_id);
            println!("columns:\n{}", describe_schema(&table.schema));
            println!("buckets: {}", descriptor.bucket_count);
            if !descriptor.primary_key.is_empty() {
                println!("primary key: {}", descriptor.primary_key.join(", "));
            }
            if !descriptor.bucket_key.is_empty() {
                println!("bucket key: {}", descriptor.bucket_key.join(", "));
            }
            if !descriptor.partition_key.is_empty() {
                println!(
                    "partition key: {} ({} partitions)",
                    descriptor.partition_key.join(", "),
                    table.info.partitions.len()
                );
            }
            if !descriptor.options.is_empty() {
                println!("options: {}", options_line(&descriptor.options));
            }
            if !descriptor.comment.is_empty() {
                println!("comment: {}", descriptor.comment);
            }
            let partitioned = !descriptor.partition_key.is_empty();
            let names: std::collections::HashMap<u32, &str> = table
                .info
                .partitions
                .iter()
                .map(|partition| (partition.id, partition.name.as_str()))
                .collect();
            match partitioned {
                true => println!("partition\tbucket\tearliest\tlatest\twal_bytes"),
                false => println!("bucket\tearliest\tlatest\twal_bytes"),
            }
            for bucket in &table.buckets {
                if partitioned {
                    let name = names.get(&bucket.partition_id).copied().unwrap_or("?");
                    print!("{name}\t");
                }
                println!(
                    "{}\t{}\t{}\t{}",
                    bucket.bucket, bucket.earliest_offset, bucket.latest_offset, bucket.wal_bytes
                );
            }
        }
        TableCommand::Partitions {
            table,
            add,
            drop,
            server,
        } => {
            let (database, name) = split_table(&table);
            let mut client = server.connect().await?;
            let values = |list: &[String]| -> Vec<pb::PartitionValues> {
                list.iter()
                    .map(|values| pb::PartitionValues {
                        values: values.split(',').map(|v| v.trim().to_owned()).collect(),
                    })
                    .collect()
            };
            if !drop.is_empty() {
                let dropped = client
                    .raw()
                    .drop_partitions(pb::DropPartitionsRequest {
                        path: Some(path(&database, &name)),
                        partitions: values(&drop),
                        if_exists: false,
                    })
                    .await
                    .map_err(crate::client::status_error)?
                    .into_inner()
                    .dropped_ids;
                println!("dropped {} partitions", dropped.len());
            }
            if !add.is_empty() {
                let partitions = values(&add);
                let created = client
                    .raw()
                    .create_partitions(pb::CreatePartitionsRequest {
                        path: Some(path(&database, &name)),
                        partitions,
                    })
                    .await
                    .map_err(crate::client::status_error)?
                    .into_inner()
                    .partitions;
                for partition in created {
                    println!("partition {} (id {})", partition.name, partition.id);
                }
            }
            if !add.is_empty() || !drop.is_empty() {
                return Ok(());
            }
            let table = client.table(&database, &name).await?;
            println!("id\tpartition\tcreated\trows\twal_bytes");
            for partition in &table.info.partitions {
                let buckets = table
                    .buckets
                    .iter()
                    .filter(|bucket| bucket.partition_id == partition.id);
                let (rows, bytes) = buckets.fold((0, 0), |(rows, bytes), bucket| {
                    (
                        rows + bucket.latest_offset - bucket.earliest_offset,
                        bytes + bucket.wal_bytes,
                    )
                });
                let created = std::time::UNIX_EPOCH
                    + std::time::Duration::from_micros(
                        u64::try_from(partition.created_at_micros).unwrap_or(0),
                    );
                println!(
                    "{}\t{}\t{}\t{rows}\t{bytes}",
                    partition.id,
                    partition.name,
                    humantime::format_rfc3339_seconds(created)
                );
            }
        }
        TableCommand::Alter {
            table,
            set,
            unset,
            comment,
            add_columns,
            widen_columns,
            drop_columns,
            rename_columns,
            server,
        } => {
            let (database, name) = split_table(&table);
            let columns_ipc = |spec: Option<String>| -> anyhow::Result<Vec<u8>> {
                match spec {
                    Some(spec) => Ok(inlet_core::ipc::schema_to_ipc(&parse_schema(&spec)?)?),
                    None => Ok(Vec::new()),
                }
            };
            let add_columns_ipc = columns_ipc(add_columns)?;
            let widen_columns_ipc = columns_ipc(widen_columns)?;
            let mut client = server.connect().await?;
            let altered = client
                .raw()
                .alter_table(pb::AlterTableRequest {
                    path: Some(path(&database, &name)),
                    set_options: set.into_iter().collect(),
                    unset_options: unset,
                    comment,
                    add_columns_ipc,
                    widen_columns_ipc,
                    drop_columns,
                    rename_columns: rename_columns
                        .into_iter()
                        .map(|(from, to)| pb::ColumnRename { from, to })
                        .collect(),
                })
                .await
                .map_err(crate::client::status_error)?
                .into_inner();
            let table = altered.table.unwrap_or_default();
            let options = table
                .descriptor
                .map(|descriptor| options_line(&descriptor.options))
                .unwrap_or_default();
            println!(
                "altered table {database}.{name} (schema {}): {options}",
                table.schema_id
            );
        }
        TableCommand::Drop {
            table,
            if_exists,
            purge,
            server,
        } => {
            let (database, name) = split_table(&table);
            let mut client = server.connect().await?;
            client
                .raw()
                .drop_table(pb::DropTableRequest {
                    path: Some(path(&database, &name)),
                    if_exists,
                    purge,
                })
                .await
                .map_err(crate::client::status_error)?;
            println!("dropped table {database}.{name}");
        }
    }
    Ok(())
}

async fn db(command: DbCommand) -> anyhow::Result<()> {
    match command {
        DbCommand::Create {
            name,
            if_not_exists,
            server,
        } => {
            server
                .connect()
                .await?
                .create_database(&name, if_not_exists)
                .await?;
            println!("created database {name}");
        }
        DbCommand::List { server } => {
            let mut client = server.connect().await?;
            let databases = client
                .raw()
                .list_databases(pb::ListDatabasesRequest {})
                .await
                .map_err(crate::client::status_error)?
                .into_inner()
                .databases;
            for database in databases {
                println!("{}", database.name);
            }
        }
        DbCommand::Drop {
            name,
            if_exists,
            cascade,
            purge,
            server,
        } => {
            let mut client = server.connect().await?;
            client
                .raw()
                .drop_database(pb::DropDatabaseRequest {
                    name: name.clone(),
                    if_exists,
                    cascade,
                    purge,
                })
                .await
                .map_err(crate::client::status_error)?;
            println!("dropped database {name}");
        }
    }
    Ok(())
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    if args.batch_rows == 0 {
        bail!("--batch-rows must be at least 1");
    }
    let (database, name) = split_table(&args.table);
    let mut client = args.server.connect().await?;
    let table = client.table(&database, &name).await?;
    let format = args.format.unwrap_or(match &args.file {
        Some(file)
            if file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv")) =>
        {
            InputFormat::Csv
        }
        _ => InputFormat::Json,
    });
    let input: Box<dyn BufRead> = match &args.file {
        Some(file) if file.as_os_str() != "-" => Box::new(BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        )),
        _ => Box::new(BufReader::new(std::io::stdin())),
    };
    let keyed = !table
        .info
        .descriptor
        .as_ref()
        .is_none_or(|d| d.primary_key.is_empty());
    let kind = match args.op {
        Some(ProduceOp::Append) => WriteKind::Append,
        Some(ProduceOp::Upsert) => WriteKind::Upsert,
        Some(ProduceOp::Partial) => WriteKind::PartialUpsert,
        Some(ProduceOp::Delete) => WriteKind::Delete,
        None if keyed => WriteKind::Upsert,
        None => WriteKind::Append,
    };
    if (kind == WriteKind::PartialUpsert) == args.columns.is_empty() {
        bail!("--columns goes with --op partial, and --op partial needs --columns");
    }
    // A delete's rows are keys, a partial update's the columns it sets: read them so.
    let schema = match kind {
        WriteKind::Delete => key_schema(&table)?,
        WriteKind::PartialUpsert => {
            let fields =
                args.columns
                    .iter()
                    .map(|name| {
                        table.schema.field_with_name(name).cloned().map_err(|_| {
                            anyhow::anyhow!("{database}.{name} has no column `{name}`")
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
            std::sync::Arc::new(arrow_schema::Schema::new(fields))
        }
        _ => table.schema.clone(),
    };
    let batches = convert::read_input(input, format, &schema, args.batch_rows)?;
    // Idempotent by default: a retried append after a lost reply lands once.
    let mut producer = Producer::new(client, &database, &name).writing(kind);
    let mut rows = 0u64;
    for batch in &batches {
        let appended = producer
            .send(&batch.schema(), std::slice::from_ref(batch))
            .await?;
        rows += appended.iter().map(|a| a.row_count).sum::<u64>();
    }
    println!("produced {rows} rows to {database}.{name}");
    Ok(())
}

/// The primary-key columns of a table, as a schema.
fn key_schema(table: &crate::client::Table) -> anyhow::Result<arrow_schema::SchemaRef> {
    columns_schema(table, |d| d.primary_key.clone())
}

/// The columns `pick` names of a primary-key table's descriptor, as a schema.
fn columns_schema(
    table: &crate::client::Table,
    pick: impl Fn(&pb::TableDescriptor) -> Vec<String>,
) -> anyhow::Result<arrow_schema::SchemaRef> {
    let descriptor = table.info.descriptor.clone().unwrap_or_default();
    if descriptor.primary_key.is_empty() {
        bail!("the table has no primary key");
    }
    let fields = pick(&descriptor)
        .iter()
        .map(|name| table.schema.field_with_name(name).cloned())
        .collect::<Result<Vec<_>, _>>()
        .context("the server described a primary key that is not in the schema")?;
    Ok(std::sync::Arc::new(arrow_schema::Schema::new(fields)))
}

async fn lookup(args: LookupArgs) -> anyhow::Result<()> {
    let (database, name) = split_table(&args.table);
    let mut client = args.server.connect().await?;
    let table = client.table(&database, &name).await?;
    let schema = if args.prefix {
        columns_schema(&table, |d| d.bucket_key.clone())?
    } else {
        key_schema(&table)?
    };
    // Each `column=value,...` argument becomes one JSON line of the key columns.
    let mut lines = String::new();
    for key in &args.keys {
        let mut object = serde_json::Map::new();
        for pair in key.split(',') {
            let (column, value) = pair
                .split_once('=')
                .with_context(|| format!("expected column=value in `{key}`"))?;
            let field = schema.field_with_name(column.trim()).map_err(|_| {
                anyhow::anyhow!(
                    "`{column}` is not a key column of {database}.{name} (expected: {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let value = value.trim();
            let json = match field.data_type() {
                arrow_schema::DataType::Utf8 | arrow_schema::DataType::LargeUtf8 => json!(value),
                _ => serde_json::from_str(value).unwrap_or_else(|_| json!(value)),
            };
            object.insert(column.trim().to_owned(), json);
        }
        lines.push_str(&serde_json::Value::Object(object).to_string());
        lines.push('\n');
    }
    let keys = convert::read_input(
        Box::new(std::io::Cursor::new(lines.into_bytes())),
        InputFormat::Json,
        &schema,
        args.keys.len().max(1),
    )?;
    let keys = arrow_select::concat::concat_batches(&schema, &keys)?;
    let columns: Vec<&str> = args.columns.iter().map(String::as_str).collect();
    let (rows, found, truncated) = if args.prefix {
        client
            .lookup_prefix(&database, &name, &keys, &columns, args.limit)
            .await?
    } else {
        let (rows, found) = client.lookup(&database, &name, &keys, &columns).await?;
        (rows, found, false)
    };
    convert::write_output(&mut std::io::stdout().lock(), args.format, &[rows])?;
    let missing = found.iter().filter(|f| !**f).count();
    if missing > 0 {
        eprintln!("{missing} of {} keys have no row", found.len());
    }
    if truncated {
        eprintln!("more rows match: the output stops at the limit");
    }
    Ok(())
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let (database, name) = split_table(&args.table);
    let mut client = args.server.connect().await?;
    let request = pb::FetchRequest {
        path: Some(path(&database, &name)),
        partitions: args.partitions,
        buckets: args.buckets,
        start: Some(parse_start(&args.from)?),
        columns: args.columns,
        follow: args.follow,
        limit: args.limit.unwrap_or(0),
        omit_update_before: args.omit_update_before,
        reset_to_earliest: args.reset_to_earliest,
    };
    let mut stream = client.fetch(request).await?;
    let stdout = std::io::stdout();
    // Without --follow, a table is printed once, aligned over all rows.
    let mut collected = Vec::new();
    while let Some(response) = stream
        .message()
        .await
        .map_err(crate::client::status_error)?
    {
        let batches = decode_fetched(&response)?;
        if args.follow || args.format == OutputFormat::Json {
            let mut out = stdout.lock();
            convert::write_output(&mut out, args.format, &batches)?;
            std::io::Write::flush(&mut out)?;
        } else {
            collected.extend(batches);
        }
    }
    if !collected.is_empty() {
        convert::write_output(&mut stdout.lock(), args.format, &collected)?;
    }
    Ok(())
}

async fn status(server: ServerArg) -> anyhow::Result<()> {
    let mut client = server.connect().await?;
    let status = client
        .raw()
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(crate::client::status_error)?
        .into_inner();
    println!("roles: {}", status.roles.join(","));
    println!("index: {}", status.index_status);
    println!(
        "owner: {}",
        if status.owner_endpoint.is_empty() {
            "unknown (not reachable yet)"
        } else {
            &status.owner_endpoint
        }
    );
    if !status.members.is_empty() {
        println!("\ncluster");
        let mut members = text::table(&["node", "endpoint", "roles"], &[0, 1, 2]);
        for member in &status.members {
            members.add_row(vec![
                member.node_id.clone(),
                member.address.clone(),
                member.roles.join(","),
            ]);
        }
        println!("{members}");
    }
    println!(
        "appended: {} rows, {} bytes; fetched: {} rows, {} bytes",
        status.appended_rows, status.appended_bytes, status.fetched_rows, status.fetched_bytes
    );
    let lookups = status.cache_hits + status.cache_misses;
    let ratio = if lookups == 0 {
        0.0
    } else {
        status.cache_hits as f64 / lookups as f64
    };
    println!(
        "cache: {} hits, {} misses ({:.1}% hit), {} bytes fetched, {} bytes in memory",
        status.cache_hits,
        status.cache_misses,
        ratio * 100.0,
        status.cache_bytes_fetched,
        status.cache_memory_bytes
    );
    println!("\nobject store (since start)");
    let mut usages = text::table(
        &[
            "purpose",
            "op",
            "requests",
            "errors",
            "misses",
            "bytes_in",
            "bytes_out",
            "cost_usd",
        ],
        &[0, 1],
    );
    let mut total = 0.0;
    for usage in &status.store {
        // An operation this client does not know is priced as a PUT, the dearest class.
        let price = Op::ALL
            .into_iter()
            .find(|op| op.label() == usage.op)
            .map_or(S3.put_copy_post_list_per_1000, |op| S3.per_1000(op));
        let cost = usage.requests as f64 / 1000.0 * price;
        total += cost;
        usages.add_row([
            usage.purpose.clone(),
            usage.op.clone(),
            usage.requests.to_string(),
            usage.errors.to_string(),
            usage.expected_misses.to_string(),
            usage.bytes_in.to_string(),
            usage.bytes_out.to_string(),
            format!("{cost:.6}"),
        ]);
    }
    let mut out = String::new();
    text::write_table(&mut out, &usages);
    print!("{out}");
    println!(
        "estimated request cost: ${total:.6} at S3 Standard list prices \
         (${} per 1,000 PUT/COPY/LIST, ${} per 1,000 GET, \
         DELETE free; storage and transfer not included)",
        S3.put_copy_post_list_per_1000, S3.get_head_per_1000
    );
    println!(
        "errors: requests the store failed to answer; misses: expected \"no\" answers (not \
         found, conditional write refused, not supported) that lookups and SlateDB rely on"
    );
    Ok(())
}

fn parse_option(value: &str) -> Result<(String, String), String> {
    let (key, value) = value
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got `{value}`"))?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

/// `old:new`, a column rename.
fn parse_rename(value: &str) -> Result<(String, String), String> {
    let (from, to) = value
        .split_once(':')
        .ok_or_else(|| format!("expected old:new, got `{value}`"))?;
    Ok((from.trim().to_owned(), to.trim().to_owned()))
}

async fn lake_status(target: Option<String>, server: ServerArg) -> anyhow::Result<()> {
    let (database, table) = match target.as_deref() {
        None => (String::new(), String::new()),
        Some(target) => match target.split_once('.') {
            Some((database, table)) => (database.to_owned(), table.to_owned()),
            None => (target.to_owned(), String::new()),
        },
    };
    let mut client = server.connect().await?;
    let tables = client
        .raw()
        .get_lake_status(pb::GetLakeStatusRequest { database, table })
        .await
        .map_err(crate::client::status_error)?
        .into_inner()
        .tables;
    for table in tables {
        println!(
            "{}.{}: lake {}, snapshot {}, {} files, {} bytes, {} rows",
            table.database,
            table.table,
            if table.lake_enabled { "on" } else { "off" },
            if table.snapshot_id == 0 {
                "none".to_owned()
            } else {
                table.snapshot_id.to_string()
            },
            table.file_count,
            table.file_bytes,
            table.file_rows
        );
        if !table.metadata_location.is_empty() {
            println!("  metadata: {}", table.metadata_location);
        }
        let mut buckets = text::table(
            &[
                "bucket",
                "earliest",
                "watermark",
                "next",
                "lag_offsets",
                "lag_s",
            ],
            &[],
        );
        for bucket in &table.buckets {
            buckets.add_row([
                bucket.bucket.to_string(),
                bucket.earliest_offset.to_string(),
                bucket.watermark.to_string(),
                bucket.next_offset.to_string(),
                bucket.lag_offsets.to_string(),
                format!("{:.1}", bucket.lag_seconds),
            ]);
        }
        let mut out = String::new();
        text::write_table(&mut out, &buckets);
        for line in out.lines() {
            println!("  {line}");
        }
    }
    Ok(())
}

/// Used by `main` to turn any error into one line.
pub fn one_line(error: &anyhow::Error) -> String {
    let message = format!("{error:#}");
    message.replace('\n', " ")
}
