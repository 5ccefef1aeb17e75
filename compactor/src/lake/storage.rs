//! The lake's file I/O: iceberg-rust's pluggable [`Storage`] over Inlet's one object store.
//!
//! The lake lives in the same bucket as the WAL and the index, and every byte of it goes
//! through the same `Arc<dyn ObjectStore>` (so the instrumented store counts it as `lake`),
//! whether the store is a local directory, memory or S3. Two things make that work:
//!
//! - **URLs.** Iceberg metadata names files by absolute URL, and engines outside Inlet open
//!   those URLs themselves. [`LakeRoot::url`] is the one mapping from our store to the URL of
//!   its root (`file:///abs/dir`, `s3://bucket/prefix`, `memory://name`); an object at
//!   `lake/...` under the store root has the URL `<root url>/lake/...`, and
//!   [`LakeRoot::path_of`] maps a URL back. The storage refuses any URL outside `lake/`, so a
//!   wrong location in some metadata file can never make the compactor read or delete the WAL
//!   or the index.
//! - **Serialization.** iceberg's `Storage` and `StorageFactory` traits are
//!   `#[typetag::serde]`, but a live store handle cannot be serialized. A [`LakeStorage`]
//!   serializes as its root URL only; every `LakeStorage` registers its store in a
//!   process-wide registry keyed by that URL (holding a weak reference, so the registry never
//!   keeps a store alive), and deserializing looks the store up again. Deserializing in a
//!   process that holds no live store for that root is an error, not a silent new store.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use serde::{Deserialize, Serialize};
use slatedb::object_store::buffered::BufWriter;
use slatedb::object_store::path::Path as ObjectPath;
use slatedb::object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

/// The top-level folder of the store that holds every lake table. The lake storage refuses
/// anything outside it.
pub const LAKE_DIR: &str = "lake";

/// Bytes a lake file buffers before its upload turns into a multipart upload, and the size of
/// each part: files smaller than this are one PUT. S3 needs parts of at least 5 MiB.
const UPLOAD_PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one lake file in flight at once (so at most this many parts are buffered).
const UPLOAD_CONCURRENCY: usize = 4;

/// Where the root of the Inlet store is, as Iceberg metadata names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LakeRoot {
    /// A local directory (the embedded default), by its absolute path: `file:///abs/dir`.
    Local(PathBuf),
    /// An S3 (or S3-compatible) bucket and the prefix of the Inlet store in it:
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
    /// An in-memory store, named so that several can live in one process: `memory://name`.
    Memory(String),
}

/// A URL or path the lake storage cannot map onto the store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LakePathError {
    #[error("lake directory `{dir}` is not an absolute UTF-8 path")]
    NotAbsolute { dir: String },
    #[error("lake directory `{dir}` cannot be resolved: {reason}")]
    Unresolvable { dir: String, reason: String },
    #[error("`{url}` is not under the store root `{root}`")]
    OutsideRoot { url: String, root: String },
    #[error("`{url}` is outside the lake folder `{LAKE_DIR}/` of the store")]
    OutsideLake { url: String },
    #[error("`{url}` is not a valid object path: {reason}")]
    InvalidPath { url: String, reason: String },
}

impl LakeRoot {
    /// A local directory; the path is made absolute and canonical (as `LocalFileSystem`
    /// does), so the URLs in the metadata name the files the store actually writes.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self, LakePathError> {
        let dir = dir.as_ref();
        let canonical =
            std::fs::canonicalize(dir).map_err(|error| LakePathError::Unresolvable {
                dir: dir.display().to_string(),
                reason: error.to_string(),
            })?;
        if !canonical.is_absolute() || canonical.to_str().is_none() {
            return Err(LakePathError::NotAbsolute {
                dir: canonical.display().to_string(),
            });
        }
        Ok(Self::Local(canonical))
    }

    /// An S3 bucket and the prefix the Inlet store was opened on (`""` for the bucket root).
    pub fn s3(bucket: &str, prefix: &str) -> Self {
        Self::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    /// An in-memory store; `name` must be unique among the live stores of the process.
    pub fn memory(name: &str) -> Self {
        Self::Memory(name.trim_matches('/').to_owned())
    }

    /// The URL of the store's root, without a trailing slash. The one place the mapping from
    /// our store to Iceberg URLs is made: an object at path `p` under the store root is at
    /// `<url>/p`, e.g. `file:///var/inlet/lake/shop/orders-7/metadata/...`.
    pub fn url(&self) -> String {
        match self {
            // An absolute path already starts with `/`: `file://` + `/abs` = `file:///abs`.
            LakeRoot::Local(dir) => {
                let dir = dir.to_str().unwrap_or_default().trim_end_matches('/');
                format!("file://{dir}")
            }
            LakeRoot::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            LakeRoot::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            LakeRoot::Memory(name) => format!("memory://{name}"),
        }
    }

    /// The URL of the object at `path` under the store root.
    pub fn url_of(&self, path: &ObjectPath) -> String {
        format!("{}/{}", self.url(), path)
    }

    /// The other spellings of the root URL that name the same objects: `file:/abs` and the
    /// bare absolute path for a local directory (what Java and pyiceberg write), `s3a://` and
    /// `s3n://` for S3.
    fn aliases(&self) -> Vec<String> {
        let url = self.url();
        match self {
            LakeRoot::Local(_) => {
                let path = url.trim_start_matches("file://").to_owned();
                vec![url, format!("file:{path}"), path]
            }
            LakeRoot::S3 { .. } => {
                let rest = url.trim_start_matches("s3://").to_owned();
                vec![url, format!("s3a://{rest}"), format!("s3n://{rest}")]
            }
            LakeRoot::Memory(_) => vec![url],
        }
    }

    /// The object path of `url`, which must be under the store root and inside `lake/`.
    pub fn path_of(&self, url: &str) -> Result<ObjectPath, LakePathError> {
        let relative = self
            .aliases()
            .iter()
            .find_map(|root| url.strip_prefix(root.as_str())?.strip_prefix('/'))
            .ok_or_else(|| LakePathError::OutsideRoot {
                url: url.to_owned(),
                root: self.url(),
            })?;
        let path = ObjectPath::parse(relative).map_err(|error| LakePathError::InvalidPath {
            url: url.to_owned(),
            reason: error.to_string(),
        })?;
        if path
            .parts()
            .next()
            .is_none_or(|top| top.as_ref() != LAKE_DIR)
            || path.parts().count() < 2
        {
            return Err(LakePathError::OutsideLake {
                url: url.to_owned(),
            });
        }
        Ok(path)
    }
}

/// Live stores by root URL, so a deserialized [`LakeStorage`] finds its store again. Weak
/// references: the registry never keeps a store alive.
static REGISTRY: LazyLock<Mutex<HashMap<String, Registered>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// A registered store: its root, and the store while anything else keeps it alive.
type Registered = (LakeRoot, Weak<dyn ObjectStore>);

fn register(root: &LakeRoot, store: &Arc<dyn ObjectStore>) {
    let mut registry = REGISTRY.lock().expect("lake store registry lock poisoned");
    registry.retain(|_, (_, store)| store.strong_count() > 0);
    registry.insert(root.url(), (root.clone(), Arc::downgrade(store)));
}

fn lookup(url: &str) -> Option<(LakeRoot, Arc<dyn ObjectStore>)> {
    let registry = REGISTRY.lock().expect("lake store registry lock poisoned");
    let (root, store) = registry.get(url)?;
    Some((root.clone(), store.upgrade()?))
}

/// Iceberg file I/O over the Inlet object store; see the module docs. Cheap to clone.
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "StorageHandle", try_from = "StorageHandle")]
pub struct LakeStorage {
    root: LakeRoot,
    store: Arc<dyn ObjectStore>,
}

/// The serialized form of a [`LakeStorage`]: the root URL its store is registered under.
#[derive(Serialize, Deserialize)]
struct StorageHandle {
    root: String,
}

impl From<LakeStorage> for StorageHandle {
    fn from(storage: LakeStorage) -> Self {
        Self {
            root: storage.root.url(),
        }
    }
}

impl TryFrom<StorageHandle> for LakeStorage {
    type Error = String;

    fn try_from(handle: StorageHandle) -> Result<Self, String> {
        let (root, store) = lookup(&handle.root).ok_or_else(|| {
            format!(
                "no live lake store for `{}` in this process: a LakeStorage deserializes only \
                 where one for the same root was created",
                handle.root
            )
        })?;
        Ok(Self { root, store })
    }
}

impl std::fmt::Debug for LakeStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeStorage")
            .field("root", &self.root.url())
            .finish_non_exhaustive()
    }
}

impl LakeStorage {
    /// The lake over `store`, the store opened on the root of the Inlet layout (paths start
    /// with `wal/`, `index/`, `lake/`), whose root is `root`. Registers the store under the
    /// root URL (replacing an earlier registration) so the storage can be deserialized.
    pub fn new(root: LakeRoot, store: Arc<dyn ObjectStore>) -> Self {
        register(&root, &store);
        Self { root, store }
    }

    /// Where the store's root is.
    pub fn root(&self) -> &LakeRoot {
        &self.root
    }

    /// The object store every lake byte goes through.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The URL of `path` (relative to the store root, e.g. `lake/db/t-1`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.root.url(), path.trim_matches('/'))
    }

    /// An iceberg [`FileIO`] whose every operation goes through this storage.
    pub fn file_io(&self) -> FileIO {
        FileIOBuilder::new(Arc::new(LakeStorageFactory {
            storage: self.clone(),
        }))
        .build()
    }

    fn path(&self, url: &str) -> iceberg::Result<ObjectPath> {
        self.root.path_of(url).map_err(|error| {
            iceberg::Error::new(iceberg::ErrorKind::DataInvalid, error.to_string())
        })
    }
}

/// An object-store error as iceberg reports it, naming the operation and the URL.
fn store_error(op: &str, url: &str, error: slatedb::object_store::Error) -> iceberg::Error {
    let kind = match error {
        slatedb::object_store::Error::NotFound { .. } => iceberg::ErrorKind::DataInvalid,
        _ => iceberg::ErrorKind::Unexpected,
    };
    iceberg::Error::new(kind, format!("lake {op} of `{url}` failed")).with_source(error)
}

#[async_trait]
#[typetag::serde(name = "inlet.LakeStorage")]
impl Storage for LakeStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let location = self.path(path)?;
        match self.store.head(&location).await {
            Ok(_) => Ok(true),
            Err(slatedb::object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(store_error("head", path, error)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let location = self.path(path)?;
        let meta = (self.store.head(&location).await).map_err(|e| store_error("head", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let location = self.path(path)?;
        let result = (self.store.get(&location).await).map_err(|e| store_error("get", path, e))?;
        result
            .bytes()
            .await
            .map_err(|e| store_error("get", path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        Ok(Box::new(LakeFileRead {
            store: self.store.clone(),
            location: self.path(path)?,
            url: path.to_owned(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let location = self.path(path)?;
        (self.store.put(&location, bs.into()).await).map_err(|e| store_error("put", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let location = self.path(path)?;
        let writer = BufWriter::with_capacity(self.store.clone(), location, UPLOAD_PART_BYTES)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        Ok(Box::new(LakeFileWrite {
            writer: Some(writer),
            url: path.to_owned(),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let location = self.path(path)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(slatedb::object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(store_error("delete", path, error)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let prefix = self.path(path.trim_end_matches('/'))?;
        let locations = self
            .store
            .list(Some(&prefix))
            .map(|meta| meta.map(|meta| meta.location))
            .boxed();
        let mut deleted = self.store.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(slatedb::object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(store_error("delete", path, error)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        self.path(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_owned()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        self.path(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_owned()))
    }
}

/// Builds a [`FileIO`]'s storage: always the one [`LakeStorage`] it was made with (the
/// storage configuration properties play no part, the store is already configured).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LakeStorageFactory {
    storage: LakeStorage,
}

#[typetag::serde(name = "inlet.LakeStorageFactory")]
impl StorageFactory for LakeStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.storage.clone()))
    }
}

/// Ranged reads of one lake object: one GET per range.
struct LakeFileRead {
    store: Arc<dyn ObjectStore>,
    location: ObjectPath,
    url: String,
}

#[async_trait]
impl FileRead for LakeFileRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        (self.store.get_range(&self.location, range).await)
            .map_err(|e| store_error("ranged get", &self.url, e))
    }
}

/// Writes one lake object: one PUT when it is small, a multipart upload when it outgrows
/// [`UPLOAD_PART_BYTES`]. Nothing is visible until `close`.
struct LakeFileWrite {
    writer: Option<BufWriter>,
    url: String,
}

impl LakeFileWrite {
    fn open(&mut self) -> iceberg::Result<&mut BufWriter> {
        self.writer.as_mut().ok_or_else(|| {
            iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("lake file `{}` is already closed", self.url),
            )
        })
    }
}

#[async_trait]
impl FileWrite for LakeFileWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let url = self.url.clone();
        let writer = self.open()?;
        if let Err(error) = writer.put(bs).await {
            // Best effort: a failed multipart upload should not linger; the error that
            // matters is the one we return.
            let _ = writer.abort().await;
            self.writer = None;
            return Err(store_error("upload", &url, error));
        }
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let url = self.url.clone();
        let mut writer = self.writer.take().ok_or_else(|| {
            iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("lake file `{url}` is already closed"),
            )
        })?;
        writer.shutdown().await.map_err(|error| {
            iceberg::Error::new(
                iceberg::ErrorKind::Unexpected,
                format!("lake upload of `{url}` failed"),
            )
            .with_source(error)
        })
    }
}

#[cfg(test)]
mod tests {
    use slatedb::object_store::memory::InMemory;

    use super::*;

    #[test]
    fn root_urls_are_what_outside_engines_open() {
        let local = LakeRoot::Local(PathBuf::from("/var/inlet/data"));
        assert_eq!(local.url(), "file:///var/inlet/data");
        assert_eq!(
            local.url_of(&ObjectPath::from("lake/shop/orders-7/metadata/v.json")),
            "file:///var/inlet/data/lake/shop/orders-7/metadata/v.json"
        );
        assert_eq!(LakeRoot::s3("b", "/inlet/prod/").url(), "s3://b/inlet/prod");
        assert_eq!(LakeRoot::s3("b", "").url(), "s3://b");
        assert_eq!(LakeRoot::memory("t1").url(), "memory://t1");
        assert_eq!(LakeRoot::Local(PathBuf::from("/")).url(), "file://");
    }

    #[test]
    fn urls_map_back_to_paths_inside_the_lake_only() {
        let local = LakeRoot::Local(PathBuf::from("/var/inlet/data"));
        let path = ObjectPath::from("lake/shop/orders-7/data/_bucket=3/x.parquet");
        for url in [
            local.url_of(&path),
            "file:/var/inlet/data/lake/shop/orders-7/data/_bucket=3/x.parquet".to_owned(),
            "/var/inlet/data/lake/shop/orders-7/data/_bucket=3/x.parquet".to_owned(),
        ] {
            assert_eq!(local.path_of(&url), Ok(path.clone()), "{url}");
        }
        // The root of the filesystem maps too.
        let slash = LakeRoot::Local(PathBuf::from("/"));
        assert_eq!(slash.path_of(&slash.url_of(&path)), Ok(path.clone()));

        let s3 = LakeRoot::s3("b", "inlet");
        assert_eq!(
            s3.path_of("s3://b/inlet/lake/t/m.json")
                .map(|p| p.to_string()),
            Ok("lake/t/m.json".into())
        );
        assert_eq!(
            s3.path_of("s3a://b/inlet/lake/t/m.json")
                .map(|p| p.to_string()),
            Ok("lake/t/m.json".into())
        );

        // Never outside the lake, never outside the root, never a sibling prefix.
        assert!(matches!(
            s3.path_of("s3://b/inlet/wal/0001.wal"),
            Err(LakePathError::OutsideLake { .. })
        ));
        assert!(matches!(
            s3.path_of("s3://b/inlet/lake"),
            Err(LakePathError::OutsideLake { .. })
        ));
        assert!(matches!(
            s3.path_of("s3://b/inlet2/lake/t/m.json"),
            Err(LakePathError::OutsideRoot { .. })
        ));
        assert!(matches!(
            s3.path_of("s3://other/inlet/lake/t/m.json"),
            Err(LakePathError::OutsideRoot { .. })
        ));
        assert!(matches!(
            s3.path_of("s3://b/inlet/lake/../index/x"),
            Err(LakePathError::InvalidPath { .. })
        ));
        assert!(matches!(
            LakeRoot::memory("m").path_of("memory://m/index/manifest"),
            Err(LakePathError::OutsideLake { .. })
        ));
    }

    #[test]
    fn local_roots_are_canonical() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let nested = dir.path().join("a");
        std::fs::create_dir(&nested)?;
        let root = LakeRoot::local(nested.join("..").join("a"))?;
        assert_eq!(root, LakeRoot::Local(std::fs::canonicalize(&nested)?));
        assert!(matches!(
            LakeRoot::local(dir.path().join("missing")),
            Err(LakePathError::Unresolvable { .. })
        ));
        Ok(())
    }

    #[tokio::test]
    async fn storage_round_trips_through_serde_while_its_store_lives() -> anyhow::Result<()> {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let storage = LakeStorage::new(LakeRoot::memory("serde-test"), store.clone());
        let url = storage.url("lake/t/x.bin");
        storage.write(&url, Bytes::from_static(b"hello")).await?;

        let boxed: Box<dyn Storage> = Box::new(storage.clone());
        let json = serde_json::to_string(&boxed)?;
        assert!(json.contains("memory://serde-test"), "{json}");
        let back: Box<dyn Storage> = serde_json::from_str(&json)?;
        assert_eq!(back.read(&url).await?, Bytes::from_static(b"hello"));

        drop((storage, boxed, back, store));
        let gone = serde_json::from_str::<Box<dyn Storage>>(&json);
        assert!(gone.is_err(), "a dropped store must not deserialize");
        Ok(())
    }

    #[tokio::test]
    async fn file_io_reads_writes_and_deletes_through_the_store() -> anyhow::Result<()> {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let storage = LakeStorage::new(LakeRoot::memory("io-test"), store.clone());
        let io = storage.file_io();
        let a = storage.url("lake/t/metadata/a.json");
        let b = storage.url("lake/t/data/b.parquet");
        io.new_output(&a)?.write(Bytes::from_static(b"{}")).await?;
        let mut writer = io.new_output(&b)?.writer().await?;
        let big = Bytes::from(vec![7u8; UPLOAD_PART_BYTES + 10]);
        writer.write(big.clone()).await?;
        writer.write(Bytes::from_static(b"tail")).await?;
        writer.close().await?;

        assert!(io.exists(&a).await?);
        let input = io.new_input(&b)?;
        assert_eq!(input.metadata().await?.size, big.len() as u64 + 4);
        assert_eq!(
            input.reader().await?.read(3..5).await?,
            Bytes::from_static(&[7, 7])
        );
        let stored = store
            .get(&ObjectPath::from("lake/t/data/b.parquet"))
            .await?;
        assert_eq!(stored.bytes().await?.len(), big.len() + 4);

        io.delete_prefix(storage.url("lake/t/data")).await?;
        assert!(!io.exists(&b).await?);
        assert!(io.exists(&a).await?);
        io.delete(&a).await?;
        io.delete(&a).await?; // deleting twice is fine
        assert!(!io.exists(&a).await?);

        assert!(io.new_output(storage.url("wal/0.wal")).is_err());
        assert!(io.delete_prefix(storage.url("index")).await.is_err());
        Ok(())
    }
}
