//! A byte-level IGVM writer for crafted files the `igvm` builder refuses to
//! produce (2 MiB pages with data, optional headers, hostile sizes and
//! offsets). It writes exactly what it is given: the checks of the format
//! are the parser's job.

use igvm_defs::{IGVM_FIXED_HEADER, IGVM_MAGIC_VALUE};
use zerocopy::IntoBytes;

/// Header type numbers (IGVM specification, `IGVM_VHT_*`).
pub mod typ {
    /// `SUPPORTED_PLATFORM`.
    pub const SUPPORTED_PLATFORM: u32 = 0x001;
    /// `GUEST_POLICY`.
    pub const GUEST_POLICY: u32 = 0x101;
    /// `VERSION_STRING`.
    pub const VERSION_STRING: u32 = 0x107;
    /// `PARAMETER_AREA`.
    pub const PARAMETER_AREA: u32 = 0x301;
    /// `PAGE_DATA`.
    pub const PAGE_DATA: u32 = 0x302;
    /// `PARAMETER_INSERT`.
    pub const PARAMETER_INSERT: u32 = 0x303;
    /// `VP_CONTEXT`.
    pub const VP_CONTEXT: u32 = 0x304;
    /// `REQUIRED_MEMORY`.
    pub const REQUIRED_MEMORY: u32 = 0x305;
    /// `VP_COUNT_PARAMETER`.
    pub const VP_COUNT_PARAMETER: u32 = 0x307;
    /// `ERROR_RANGE`.
    pub const ERROR_RANGE: u32 = 0x30D;
    /// Bit 31: a header loaders may skip.
    pub const OPTIONAL: u32 = 1 << 31;
}

/// Where in a header body a file offset sits that is relative to the start
/// of the file-data section until [`RawFile::build`] makes it absolute.
#[derive(Debug, Clone)]
struct Header {
    typ: u32,
    /// Value of the length field (normally `body.len()`).
    length: u32,
    body: Vec<u8>,
    /// Byte position in `body` of a u32 file offset to rebase.
    rebase_at: Option<usize>,
}

/// An IGVM v1 file under construction.
#[derive(Debug, Clone, Default)]
pub struct RawFile {
    headers: Vec<Header>,
    data: Vec<u8>,
}

impl RawFile {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a header whose body is `body`'s bytes.
    pub fn header<T: IntoBytes + zerocopy::Immutable>(&mut self, typ: u32, body: &T) -> &mut Self {
        self.header_bytes(typ, body.as_bytes().to_vec())
    }

    /// Appends a header with raw body bytes.
    pub fn header_bytes(&mut self, typ: u32, body: Vec<u8>) -> &mut Self {
        self.headers.push(Header {
            typ,
            length: body.len() as u32,
            body,
            rebase_at: None,
        });
        self
    }

    /// Appends a header whose u32 at body position `at` is an offset into
    /// the file-data section (see [`RawFile::data`]) to be made absolute.
    pub fn header_with_data<T: IntoBytes + zerocopy::Immutable>(
        &mut self,
        typ: u32,
        body: &T,
        at: usize,
    ) -> &mut Self {
        self.header(typ, body);
        if let Some(h) = self.headers.last_mut() {
            h.rebase_at = Some(at);
        }
        self
    }

    /// Appends bytes to the file-data section; returns their offset in it.
    pub fn data(&mut self, bytes: &[u8]) -> u32 {
        let at = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        at
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.headers.len()
    }

    /// Whether there is no header.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// The file: fixed header, headers (each padded to 8 bytes), data, with
    /// a correct total size and checksum.
    pub fn build(&self) -> Vec<u8> {
        let fixed = size_of::<IGVM_FIXED_HEADER>();
        let var_size: usize = self
            .headers
            .iter()
            .map(|h| 8 + h.body.len().next_multiple_of(8))
            .sum();
        let data_start = (fixed + var_size) as u32;
        let mut out = Vec::with_capacity(fixed + var_size + self.data.len());
        let header = IGVM_FIXED_HEADER {
            magic: IGVM_MAGIC_VALUE,
            format_version: 1,
            variable_header_offset: fixed as u32,
            variable_header_size: var_size as u32,
            total_file_size: (fixed + var_size + self.data.len()) as u32,
            checksum: 0,
        };
        out.extend_from_slice(header.as_bytes());
        for h in &self.headers {
            out.extend_from_slice(&h.typ.to_le_bytes());
            out.extend_from_slice(&h.length.to_le_bytes());
            let start = out.len();
            out.extend_from_slice(&h.body);
            if let Some(at) = h.rebase_at {
                let slot = &mut out[start + at..start + at + 4];
                let rel = u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]);
                slot.copy_from_slice(&(rel + data_start).to_le_bytes());
            }
            out.resize(out.len().next_multiple_of(8), 0);
        }
        out.extend_from_slice(&self.data);
        igvm_snp::parse::fix_checksum(&mut out);
        out
    }
}
