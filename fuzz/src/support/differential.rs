//! Differential parsing against the `igvm` crate (v0.5.0,
//! `IgvmFile::new_from_binary` without a platform filter).
//!
//! When both accept a file they must read the same platforms and the same
//! directives; otherwise the test panics. When only one accepts, the other's
//! stated reason is returned as a [`Verdict`] so the fuzz target can record
//! every kind of disagreement, in both directions. A panic inside the `igvm`
//! crate is caught and reported as a verdict of its own: it is a finding
//! about that crate, not about ours.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

use igvm::{IgvmDirectiveHeader, IgvmPlatformHeader};
use igvm_defs::IgvmPlatformType;
use igvm_snp::IgvmFile;
use igvm_snp::parse::DirectiveKind;
use zerocopy::IntoBytes;

use super::seeds::variant;

/// A directive as both parsers can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Norm {
    /// `PAGE_DATA` (data: the first 4 KiB, or empty for a zero page).
    PageData {
        /// GPA.
        gpa: u64,
        /// Compatibility mask.
        mask: u32,
        /// Flag bits.
        flags: u32,
        /// Data type.
        data_type: u16,
        /// Contents.
        data: Vec<u8>,
    },
    /// `PARAMETER_AREA`.
    ParameterArea {
        /// Size.
        bytes: u64,
        /// Index.
        index: u32,
        /// Initial contents.
        initial: Vec<u8>,
    },
    /// One of the ten parameter kinds.
    Parameter {
        /// Spec name.
        name: &'static str,
        /// Area index.
        index: u32,
        /// Byte offset.
        offset: u32,
    },
    /// `PARAMETER_INSERT`.
    Insert {
        /// GPA.
        gpa: u64,
        /// Mask.
        mask: u32,
        /// Area index.
        index: u32,
    },
    /// `VP_CONTEXT`; for SEV-SNP / SEV-ES masks also GPA, VP index and the
    /// 4 KiB VMSA.
    VpContext {
        /// Mask.
        mask: u32,
        /// GPA, VP index, VMSA bytes.
        snp: Option<(u64, u16, Vec<u8>)>,
    },
    /// `REQUIRED_MEMORY`.
    RequiredMemory {
        /// GPA.
        gpa: u64,
        /// Mask.
        mask: u32,
        /// Size.
        bytes: u32,
        /// VTL2 protectable.
        vtl2: bool,
    },
    /// `ERROR_RANGE`.
    ErrorRange {
        /// GPA.
        gpa: u64,
        /// Mask.
        mask: u32,
        /// Size.
        size: u32,
    },
    /// `SNP_ID_BLOCK` (the fields a launch uses).
    IdBlock {
        /// Mask.
        mask: u32,
        /// Expected launch digest.
        ld: [u8; 48],
        /// Family, image, version, guest SVN, ID and author key algorithms,
        /// author key enabled.
        ids: ([u8; 16], [u8; 16], u32, u32, u32, u32, u8),
    },
    /// `VBS_MEASUREMENT`.
    Vbs {
        /// Mask.
        mask: u32,
    },
    /// An optional header of unknown type that our parser skipped.
    Optional {
        /// Header type.
        typ: u32,
    },
}

/// How the two parsers judged one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both rejected it.
    BothRejected,
    /// Both accepted it and read the same directives. `notes` lists known,
    /// documented differences in what was read (compared on the common part).
    BothAccepted {
        /// Known differences.
        notes: Vec<&'static str>,
    },
    /// The `igvm` crate accepted it; we rejected it with this reason (the
    /// `Error` variant).
    OnlyIgvmAccepted {
        /// Our error variant.
        ours: String,
    },
    /// We accepted it; the `igvm` crate rejected it with this reason.
    OnlyOursAccepted {
        /// The `igvm` crate's error, without numbers.
        igvm: String,
    },
    /// The `igvm` crate panicked (caught); `ours` is our verdict.
    IgvmPanicked {
        /// Panic location and message.
        at: String,
        /// Whether we accepted the file.
        ours_accepted: bool,
    },
}

impl Verdict {
    /// A short key naming the kind of agreement or disagreement, for tallies.
    pub fn key(&self) -> String {
        match self {
            Verdict::BothRejected => "both reject".into(),
            Verdict::BothAccepted { notes } if notes.is_empty() => "both accept, same".into(),
            Verdict::BothAccepted { notes } => format!("both accept; {}", notes.join("; ")),
            Verdict::OnlyIgvmAccepted { ours } => format!("only igvm accepts; ours: {ours}"),
            Verdict::OnlyOursAccepted { igvm } => format!("only ours accepts; igvm: {igvm}"),
            Verdict::IgvmPanicked { at, ours_accepted } => {
                format!("igvm panics at {at}; ours accepts: {ours_accepted}")
            }
        }
    }
}

/// The `igvm` crate's error without the numbers in it.
fn igvm_reason(e: &igvm::Error) -> String {
    let s = format!("{e:?}");
    let end = s
        .find(|c: char| !(c.is_ascii_alphabetic() || c == '(' || c == '_'))
        .unwrap_or(s.len());
    s[..end].trim_end_matches('(').to_owned()
}

thread_local! {
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs the `igvm` crate's parser, catching a panic (libFuzzer's panic hook
/// would abort, so it is swapped out for the call).
fn igvm_parse(bytes: &[u8]) -> Result<Result<igvm::IgvmFile, igvm::Error>, String> {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file().rsplit('/').next().unwrap_or(""), l.line()))
            .unwrap_or_default();
        PANIC_AT.with(|p| *p.borrow_mut() = Some(at));
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        igvm::IgvmFile::new_from_binary(bytes, None)
    }));
    panic::set_hook(previous);
    result.map_err(|_| PANIC_AT.with(|p| p.borrow_mut().take()).unwrap_or_default())
}

/// Our directives, normalized; pushes a note for each known difference.
fn ours(file: &IgvmFile<'_>, notes: &mut Vec<&'static str>) -> Vec<Norm> {
    let snp_like = |mask: u32| {
        file.platforms().iter().any(|p| {
            p.mask() == mask
                && matches!(
                    p.platform_type(),
                    IgvmPlatformType::SEV_SNP | IgvmPlatformType::SEV_ES
                )
        })
    };
    let mut out = Vec::new();
    for d in file.directives() {
        out.push(match &d.kind {
            DirectiveKind::PageData { header, data } => {
                if data.len() > 4096 {
                    notes.push("2 MiB page with data: igvm reads only its first 4 KiB");
                }
                Norm::PageData {
                    gpa: header.gpa,
                    mask: header.compatibility_mask,
                    flags: header.flags.into_bits(),
                    data_type: header.data_type.0,
                    data: data[..data.len().min(4096)].to_vec(),
                }
            }
            DirectiveKind::ParameterArea { header, initial } => Norm::ParameterArea {
                bytes: header.number_of_bytes,
                index: header.parameter_area_index,
                initial: initial.to_vec(),
            },
            DirectiveKind::Parameter { kind, header } => Norm::Parameter {
                name: kind.name(),
                index: header.parameter_area_index,
                offset: header.byte_offset,
            },
            DirectiveKind::ParameterInsert(h) => Norm::Insert {
                gpa: h.gpa,
                mask: h.compatibility_mask,
                index: h.parameter_area_index,
            },
            DirectiveKind::VpContext { header, data } => Norm::VpContext {
                mask: header.compatibility_mask,
                snp: snp_like(header.compatibility_mask)
                    .then(|| (header.gpa.get(), header.vp_index, data.to_vec())),
            },
            DirectiveKind::RequiredMemory(h) => Norm::RequiredMemory {
                gpa: h.gpa,
                mask: h.compatibility_mask,
                bytes: h.number_of_bytes,
                vtl2: h.flags.vtl2_protectable(),
            },
            DirectiveKind::SnpIdBlock(h) => Norm::IdBlock {
                mask: h.compatibility_mask,
                ld: h.ld,
                ids: (
                    h.family_id,
                    h.image_id,
                    h.version,
                    h.guest_svn,
                    h.id_key_algorithm,
                    h.author_key_algorithm,
                    h.author_key_enabled,
                ),
            },
            DirectiveKind::ErrorRange(h) => Norm::ErrorRange {
                gpa: h.gpa,
                mask: h.compatibility_mask,
                size: h.size_bytes,
            },
            DirectiveKind::VbsMeasurement { compatibility_mask } => Norm::Vbs {
                mask: *compatibility_mask,
            },
            DirectiveKind::Optional { typ } => Norm::Optional { typ: *typ },
            other => panic!("directive kind {} has no normal form here", other.name()),
        });
    }
    out
}

/// The `igvm` crate's directives, normalized.
fn theirs(file: &igvm::IgvmFile) -> Vec<Norm> {
    let param = |name, p: &igvm_defs::IGVM_VHS_PARAMETER| Norm::Parameter {
        name,
        index: p.parameter_area_index,
        offset: p.byte_offset,
    };
    file.directives()
        .iter()
        .map(|d| match d {
            IgvmDirectiveHeader::PageData {
                gpa,
                compatibility_mask,
                flags,
                data_type,
                data,
            } => Norm::PageData {
                gpa: *gpa,
                mask: *compatibility_mask,
                flags: flags.into_bits(),
                data_type: data_type.0,
                data: data.clone(),
            },
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                initial_data,
            } => Norm::ParameterArea {
                bytes: *number_of_bytes,
                index: *parameter_area_index,
                initial: initial_data.clone(),
            },
            IgvmDirectiveHeader::VpCount(p) => param("VP_COUNT", p),
            IgvmDirectiveHeader::EnvironmentInfo(p) => param("ENVIRONMENT_INFO", p),
            IgvmDirectiveHeader::Srat(p) => param("SRAT", p),
            IgvmDirectiveHeader::Madt(p) => param("MADT", p),
            IgvmDirectiveHeader::Slit(p) => param("SLIT", p),
            IgvmDirectiveHeader::Pptt(p) => param("PPTT", p),
            IgvmDirectiveHeader::MmioRanges(p) => param("MMIO_RANGES", p),
            IgvmDirectiveHeader::MemoryMap(p) => param("MEMORY_MAP", p),
            IgvmDirectiveHeader::CommandLine(p) => param("COMMAND_LINE", p),
            IgvmDirectiveHeader::DeviceTree(p) => param("DEVICE_TREE", p),
            IgvmDirectiveHeader::RequiredMemory {
                gpa,
                compatibility_mask,
                number_of_bytes,
                vtl2_protectable,
            } => Norm::RequiredMemory {
                gpa: *gpa,
                mask: *compatibility_mask,
                bytes: *number_of_bytes,
                vtl2: *vtl2_protectable,
            },
            IgvmDirectiveHeader::SnpVpContext {
                gpa,
                compatibility_mask,
                vp_index,
                vmsa,
            } => Norm::VpContext {
                mask: *compatibility_mask,
                snp: Some((*gpa, *vp_index, vmsa.as_bytes().to_vec())),
            },
            IgvmDirectiveHeader::X64NativeVpContext {
                compatibility_mask, ..
            }
            | IgvmDirectiveHeader::X64VbsVpContext {
                compatibility_mask, ..
            }
            | IgvmDirectiveHeader::AArch64VbsVpContext {
                compatibility_mask, ..
            }
            | IgvmDirectiveHeader::AArch64CcaVpContext {
                compatibility_mask, ..
            } => Norm::VpContext {
                mask: *compatibility_mask,
                snp: None,
            },
            IgvmDirectiveHeader::ParameterInsert(h) => Norm::Insert {
                gpa: h.gpa,
                mask: h.compatibility_mask,
                index: h.parameter_area_index,
            },
            IgvmDirectiveHeader::ErrorRange {
                gpa,
                compatibility_mask,
                size_bytes,
            } => Norm::ErrorRange {
                gpa: *gpa,
                mask: *compatibility_mask,
                size: *size_bytes,
            },
            IgvmDirectiveHeader::SnpIdBlock {
                compatibility_mask,
                author_key_enabled,
                ld,
                family_id,
                image_id,
                version,
                guest_svn,
                id_key_algorithm,
                author_key_algorithm,
                ..
            } => Norm::IdBlock {
                mask: *compatibility_mask,
                ld: *ld,
                ids: (
                    *family_id,
                    *image_id,
                    *version,
                    *guest_svn,
                    *id_key_algorithm,
                    *author_key_algorithm,
                    *author_key_enabled,
                ),
            },
            IgvmDirectiveHeader::VbsMeasurement {
                compatibility_mask, ..
            } => Norm::Vbs {
                mask: *compatibility_mask,
            },
        })
        .collect()
}

/// Parses `bytes` with both parsers and compares.
///
/// # Panics
/// When both accept the file but read different platforms or directives.
pub fn compare(bytes: &[u8]) -> Verdict {
    let mine = IgvmFile::parse(bytes);
    let other = match igvm_parse(bytes) {
        Ok(r) => r,
        Err(at) => {
            return Verdict::IgvmPanicked {
                at,
                ours_accepted: mine.is_ok(),
            };
        }
    };
    match (mine, other) {
        (Err(_), Err(_)) => Verdict::BothRejected,
        (Err(e), Ok(_)) => Verdict::OnlyIgvmAccepted { ours: variant(&e) },
        (Ok(_), Err(e)) => Verdict::OnlyOursAccepted {
            igvm: igvm_reason(&e),
        },
        (Ok(mine), Ok(other)) => {
            let their_platforms: Vec<_> = other
                .platforms()
                .iter()
                .map(|p| match p {
                    IgvmPlatformHeader::SupportedPlatform(h) => *h,
                })
                .collect();
            let our_platforms: Vec<_> = mine.platforms().iter().map(|p| p.header).collect();
            assert_eq!(
                our_platforms, their_platforms,
                "the parsers read different platforms"
            );
            let mut notes = Vec::new();
            let a = ours(&mine, &mut notes);
            let b = theirs(&other);
            if let Some(i) = (0..a.len().max(b.len())).find(|i| a.get(*i) != b.get(*i)) {
                panic!(
                    "both parsers accept the file but read directive #{i} differently:\n ours: {:?}\n igvm: {:?}",
                    a.get(i),
                    b.get(i)
                );
            }
            notes.sort_unstable();
            notes.dedup();
            Verdict::BothAccepted { notes }
        }
    }
}
