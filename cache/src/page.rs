//! What the cache stores: a page of an immutable object, keyed by the object's path, the page
//! size and the page's index. The encoding below is persisted by the SSD tier, which is
//! recovered on restart: bump `KEY_FORMAT` when it changes, never reuse a value.

use std::io::{Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use foyer::{Code, Error, ErrorKind};

/// Version of the encoding of [`PageKey`] (persisted: never renumber). Entries written with
/// another version fail to decode and are fetched again.
const KEY_FORMAT: u8 = 1;

/// Largest page the cache accepts; also bounds what decoding an SSD entry may allocate.
pub(crate) const MAX_PAGE_BYTES: usize = 1 << 30;

/// Longest object path a key may hold.
const MAX_PATH_BYTES: usize = 64 * 1024;

/// Which bytes a page holds: `index * page_size ..` of `object`, up to `page_size` bytes (the
/// object's last page is short). The page size is part of the key so that pages recovered from
/// an SSD tier written with another page size never match.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PageKey {
    pub(crate) object: Arc<str>,
    pub(crate) page_size: u64,
    pub(crate) index: u64,
}

/// The bytes of one page. Each page owns exactly its bytes (never a slice of a larger buffer),
/// so the memory tier's weight is the memory it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Page(pub(crate) Bytes);

fn io(e: std::io::Error) -> Error {
    Error::io_error(e)
}

fn read_u64(reader: &mut impl Read) -> foyer::Result<u64> {
    let mut buf = [0u8; 8];
    reader.read_exact(&mut buf).map_err(io)?;
    Ok(u64::from_le_bytes(buf))
}

fn read_len(reader: &mut impl Read, max: usize, what: &'static str) -> foyer::Result<usize> {
    let len = read_u64(reader)?;
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(Error::new(ErrorKind::Parse, "length out of bounds")
            .with_context("field", what)
            .with_context("length", len)),
    }
}

fn read_bytes(reader: &mut impl Read, len: usize) -> foyer::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    reader.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}

impl Code for PageKey {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        writer.write_all(&[KEY_FORMAT]).map_err(io)?;
        writer
            .write_all(&self.page_size.to_le_bytes())
            .map_err(io)?;
        writer.write_all(&self.index.to_le_bytes()).map_err(io)?;
        writer
            .write_all(&(self.object.len() as u64).to_le_bytes())
            .map_err(io)?;
        writer.write_all(self.object.as_bytes()).map_err(io)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut format = [0u8; 1];
        reader.read_exact(&mut format).map_err(io)?;
        if format[0] != KEY_FORMAT {
            return Err(Error::new(ErrorKind::Parse, "unknown page key format")
                .with_context("format", format[0]));
        }
        let page_size = read_u64(reader)?;
        let index = read_u64(reader)?;
        let len = read_len(reader, MAX_PATH_BYTES, "object path")?;
        let object = String::from_utf8(read_bytes(reader, len)?)
            .map_err(|e| Error::new(ErrorKind::Parse, "object path is not utf-8").with_source(e))?;
        Ok(Self {
            object: object.into(),
            page_size,
            index,
        })
    }

    fn estimated_size(&self) -> usize {
        1 + 8 + 8 + 8 + self.object.len()
    }
}

impl Code for Page {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        writer
            .write_all(&(self.0.len() as u64).to_le_bytes())
            .map_err(io)?;
        writer.write_all(&self.0).map_err(io)
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let len = read_len(reader, MAX_PAGE_BYTES, "page")?;
        Ok(Self(Bytes::from(read_bytes(reader, len)?)))
    }

    fn estimated_size(&self) -> usize {
        8 + self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_page_round_trip() {
        let key = PageKey {
            object: "wal/00000000000000000042.wal".into(),
            page_size: 1 << 20,
            index: 7,
        };
        let mut buf = Vec::new();
        key.encode(&mut buf).expect("encode key");
        assert_eq!(buf.len(), key.estimated_size());
        assert_eq!(
            PageKey::decode(&mut buf.as_slice()).expect("decode key"),
            key
        );

        let page = Page(Bytes::from_static(b"some page bytes"));
        let mut buf = Vec::new();
        page.encode(&mut buf).expect("encode page");
        assert_eq!(buf.len(), page.estimated_size());
        assert_eq!(
            Page::decode(&mut buf.as_slice()).expect("decode page"),
            page
        );
    }

    #[test]
    fn key_of_another_format_or_absurd_length_is_refused() {
        let key = PageKey {
            object: "a".into(),
            page_size: 4,
            index: 0,
        };
        let mut buf = Vec::new();
        key.encode(&mut buf).expect("encode key");
        buf[0] = KEY_FORMAT + 1;
        assert!(PageKey::decode(&mut buf.as_slice()).is_err());

        let absurd = u64::MAX.to_le_bytes();
        assert!(Page::decode(&mut absurd.as_slice()).is_err());
    }
}
