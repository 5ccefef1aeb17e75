//! Every limit in one place. A limit is a named constant with a comment saying what it
//! bounds and why it has this value; settings that users tune live in the server config and
//! are checked against these bounds.

/// Most buckets one table may have. Each bucket is a stream with its own tail and chunk
/// index; this bounds the per-table fan-out of one WAL flush and of a full-table fetch.
pub const MAX_BUCKETS: u32 = 1024;

/// Most columns in one table schema.
pub const MAX_COLUMNS: usize = 1024;

/// Longest database, table or column name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Longest table comment, in bytes: it lives in the table's catalog record, which every
/// node loads and every listing returns.
pub const MAX_COMMENT_BYTES: usize = 4096;

/// Largest Arrow IPC payload accepted by one `Append` request. Bigger requests must be
/// split by the client; this bounds the memory one request can pin in a writer.
pub const MAX_APPEND_BYTES: usize = 64 * 1024 * 1024;

/// Largest gRPC message the server accepts or sends (an append plus framing).
pub const MAX_GRPC_MESSAGE_BYTES: usize = MAX_APPEND_BYTES + 1024 * 1024;

/// Most rows returned in one fetch response batch; larger chunks are sliced.
pub const MAX_FETCH_BATCH_ROWS: usize = 64 * 1024;

/// Most streams whose chunks one WAL object may hold (one chunk per stream per flush).
pub const MAX_CHUNKS_PER_OBJECT: usize = 64 * 1024;

/// Depth of the queue of commit requests waiting for the index owner. Writers wait when it
/// is full, which is how index slowness turns into producer backpressure.
pub const COMMIT_QUEUE_DEPTH: usize = 256;

/// Most commit requests the index owner folds into one SlateDB write batch (group commit).
pub const MAX_COMMITS_PER_BATCH: usize = 128;

/// Per-follower depth of the fetch response channel; a slow consumer stalls its own fetch,
/// never the writer.
pub const FETCH_CHANNEL_DEPTH: usize = 8;

/// Buckets one fetch that does not follow reads at once. Each waits out the store's latency
/// on its own (and reads ahead up to its own byte budget), so reading them one after another
/// made a table read as slow as the sum of its buckets' round trips; more at once = faster
/// cold reads and more memory per fetch (each bucket's read-ahead budget).
pub const FETCH_BUCKETS_IN_FLIGHT: usize = 4;

/// Most rows one request may carry (an append, and later upserts and lookup keys). Rows are
/// what every later stage pays for (offsets, timestamps and the lake's columns are per row),
/// and a column of the Null type or a zero-width struct declares rows without bytes, so the
/// count needs a bound of its own beyond [`MAX_APPEND_BYTES`]. Clients split larger inputs.
pub const MAX_REQUEST_ROWS: usize = 1024 * 1024;

/// Most bytes an append may grow to when the writer conforms it to its table (missing
/// nullable columns filled with nulls): a narrow append to a wide table must not make the
/// writer allocate without bound.
pub const MAX_CONFORMED_APPEND_BYTES: u64 = 4 * MAX_APPEND_BYTES as u64;

/// Deepest nesting of types (a list of structs of lists...) in a schema from outside.
pub const MAX_TYPE_NESTING: usize = 32;

/// Most columns whose byte ranges a chunk's index entry carries. With them, a column-pruned
/// read of a cold chunk GETs the columns straight away instead of first reading the WAL
/// object's footer to find them (one store round trip less, 10-50 ms on S3); each costs the
/// entry 20 bytes, so a wider table's entries would weigh on every listing, and its pruned
/// reads find the ranges in the footer as before.
pub const MAX_INDEXED_COLUMN_RANGES: usize = 64;

/// Parsed schemas the append decoder keeps, by the exact bytes of their IPC schema message
/// (so a producer's stream of appends parses its schema once, not per append). When full the
/// cache is emptied: a client cycling through more schemas loses the caching, nothing else.
pub const MAX_CACHED_SCHEMAS: usize = 64;

/// Largest schema message the append decoder caches, in bytes. With [`MAX_CACHED_SCHEMAS`]
/// it bounds the cache at a few MiB whatever clients send; a 1,000-column schema is ~100 KiB.
pub const MAX_CACHED_SCHEMA_MESSAGE_BYTES: usize = 256 * 1024;

/// Longest encoded primary key, in bytes. Keys are SlateDB keys of the key state (which
/// bounds a key at 64 KiB) and every lookup carries them; a longer key is a request error
/// naming the row.
pub const MAX_PRIMARY_KEY_BYTES: usize = 4 * 1024;

/// Largest encoded row image of a primary-key table, in bytes: the value of one key in the
/// key state and a before image in a change record. Bounds what one upserted row may cost
/// the index owner's write batch and a lookup's reply.
pub const MAX_ROW_IMAGE_BYTES: usize = 1024 * 1024;

/// Most rows one prefix lookup returns (all its prefixes together). A prefix of a
/// bucket-key value may match any number of keys; past this the reply says it was truncated,
/// so a lookup join never makes a node gather an unbounded reply.
pub const MAX_PREFIX_LOOKUP_ROWS: usize = 100_000;
