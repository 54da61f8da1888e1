//! Target 3, structure-aware: an `arbitrary` list of directives, serialized
//! with the `igvm` crate's builder into a well-formed IGVM file (so that the
//! fuzzer spends its time in the planner instead of the checksum), then
//! parsed, planned and checked (`support::checks`: the plan's digest equals
//! an independent PAGE_INFO / SHA-384 chain over `plan.step_pages`, and no
//! GPA is launched twice across all steps). For inputs where the `igvm`
//! crate's SNP measurement follows the IGVM spec as the planner's defaults
//! do, the two digests must also be equal.
//!
//! NOT YET: launching the plan on the SEV-SNP firmware model
//! (`igvm-snp-kvm`, module `sev::model`) and asserting that the model's
//! digest equals the plan's and that the model sees no GPA launched twice.
//! That backend is not on this branch; the launch is to be added in [`run`]
//! when it lands. No stand-in model is used meanwhile.
//!
//! This file is also compiled into crates/igvm-snp/tests/fuzz_regressions.rs
//! (with `#[path]`), which replays the committed inputs through [`run`].

use arbitrary::Arbitrary;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmRevision};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IgvmPageDataFlags, IgvmPageDataType,
    IgvmPlatformType,
};
use igvm_snp::{Error, LaunchPlan};

use crate::support::checks;
use crate::support::seeds::{self, variant};

/// SEV-SNP mask.
const SNP: u32 = 1;
/// NATIVE mask (declared when [`Input::native`] is set).
const NATIVE: u32 = 2;

/// A GPA chosen so that collisions, adjacency and the top of the address
/// space are all likely.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Slot {
    /// Page `n` from GPA 0.
    Low(u8),
    /// Page `n` below 4 GiB (where firmware usually lives).
    Below4G(u8),
    /// Page `n` below 2^64: the last pages of the address space.
    Top(u8),
}

impl Slot {
    fn gpa(self) -> u64 {
        match self {
            Slot::Low(n) => u64::from(n) * 4096,
            Slot::Below4G(n) => (1 << 32) - (u64::from(n) + 1) * 4096,
            Slot::Top(n) => 0u64.wrapping_sub((u64::from(n) + 1) * 4096),
        }
    }
}

/// How a page is imported.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum PageKind {
    /// NORMAL, measured.
    Normal,
    /// NORMAL with the unmeasured flag.
    Unmeasured,
    /// NORMAL with the shared flag.
    Shared,
    /// SECRETS.
    Secrets,
    /// CPUID_DATA.
    Cpuid,
    /// CPUID_XF.
    CpuidXf,
}

/// One directive.
#[derive(Debug, Clone, Arbitrary)]
pub enum Dir {
    /// A 4 KiB page; `data` fills it with one byte (None: file offset 0).
    Page {
        /// Where.
        slot: Slot,
        /// How.
        kind: PageKind,
        /// Contents.
        data: Option<u8>,
        /// Also (or only) for the NATIVE platform.
        mask: u8,
    },
    /// A data-less 2 MiB page at `n` × 2 MiB.
    Huge {
        /// Which 2 MiB frame.
        frame: u8,
    },
    /// A parameter area of 1 to 4 pages.
    Area {
        /// Index.
        index: u8,
        /// Pages - 1 (mod 4).
        pages: u8,
        /// Initial contents (100 bytes of this value).
        initial: Option<u8>,
    },
    /// A parameter of kind `kind % 10`.
    Param {
        /// Kind.
        kind: u8,
        /// Area index.
        index: u8,
        /// Offset in the area.
        offset: u16,
    },
    /// Inserts an area.
    Insert {
        /// Area index.
        index: u8,
        /// Where.
        slot: Slot,
    },
    /// A VP context (the demo's reset-state VMSA).
    Vmsa {
        /// Where.
        slot: Slot,
        /// VP index.
        vp_index: u8,
    },
    /// Required memory.
    Required {
        /// Where.
        slot: Slot,
        /// Pages.
        pages: u8,
    },
    /// An error range.
    ErrorRange {
        /// Where.
        slot: Slot,
        /// Pages.
        pages: u8,
    },
    /// An SNP ID block whose expected digest is 48 copies of `ld`.
    IdBlock {
        /// Digest byte.
        ld: u8,
    },
}

/// A whole file.
#[derive(Debug, Clone, Arbitrary)]
pub struct Input {
    /// Format version 2 instead of 1.
    pub v2: bool,
    /// Declare a NATIVE platform (mask 2) besides SEV-SNP (mask 1).
    pub native: bool,
    /// A guest policy header (0x30000 plus this ABI minor).
    pub policy: Option<u8>,
    /// The directives, in file order.
    pub directives: Vec<Dir>,
}

fn mask_of(m: u8, native: bool) -> u32 {
    match (m % 3, native) {
        (1, true) => NATIVE,
        (2, true) => SNP | NATIVE,
        _ => SNP,
    }
}

impl Dir {
    fn header(&self, native: bool) -> IgvmDirectiveHeader {
        let param = |index: u8, offset: u16| IGVM_VHS_PARAMETER {
            parameter_area_index: u32::from(index % 8),
            byte_offset: u32::from(offset),
        };
        match *self {
            Dir::Page {
                slot,
                kind,
                data,
                mask,
            } => {
                let flags = IgvmPageDataFlags::new();
                let (flags, data_type) = match kind {
                    PageKind::Normal => (flags, IgvmPageDataType::NORMAL),
                    PageKind::Unmeasured => (flags.with_unmeasured(true), IgvmPageDataType::NORMAL),
                    PageKind::Shared => (flags.with_shared(true), IgvmPageDataType::NORMAL),
                    PageKind::Secrets => (flags, IgvmPageDataType::SECRETS),
                    PageKind::Cpuid => (flags, IgvmPageDataType::CPUID_DATA),
                    PageKind::CpuidXf => (flags, IgvmPageDataType::CPUID_XF),
                };
                IgvmDirectiveHeader::PageData {
                    gpa: slot.gpa(),
                    compatibility_mask: mask_of(mask, native),
                    flags,
                    data_type,
                    data: data.map(|b| vec![b; 4096]).unwrap_or_default(),
                }
            }
            Dir::Huge { frame } => IgvmDirectiveHeader::PageData {
                gpa: u64::from(frame) << 21,
                compatibility_mask: SNP,
                flags: IgvmPageDataFlags::new().with_is_2mb_page(true),
                data_type: IgvmPageDataType::NORMAL,
                data: Vec::new(),
            },
            Dir::Area {
                index,
                pages,
                initial,
            } => IgvmDirectiveHeader::ParameterArea {
                number_of_bytes: (u64::from(pages % 4) + 1) * 4096,
                parameter_area_index: u32::from(index % 8),
                initial_data: initial.map(|b| vec![b; 100]).unwrap_or_default(),
            },
            Dir::Param {
                kind,
                index,
                offset,
            } => {
                let p = param(index, offset);
                match kind % 10 {
                    0 => IgvmDirectiveHeader::VpCount(p),
                    1 => IgvmDirectiveHeader::EnvironmentInfo(p),
                    2 => IgvmDirectiveHeader::Srat(p),
                    3 => IgvmDirectiveHeader::Madt(p),
                    4 => IgvmDirectiveHeader::Slit(p),
                    5 => IgvmDirectiveHeader::Pptt(p),
                    6 => IgvmDirectiveHeader::MmioRanges(p),
                    7 => IgvmDirectiveHeader::MemoryMap(p),
                    8 => IgvmDirectiveHeader::CommandLine(p),
                    _ => IgvmDirectiveHeader::DeviceTree(p),
                }
            }
            Dir::Insert { index, slot } => {
                IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
                    gpa: slot.gpa(),
                    compatibility_mask: SNP,
                    parameter_area_index: u32::from(index % 8),
                })
            }
            Dir::Vmsa { slot, vp_index } => IgvmDirectiveHeader::SnpVpContext {
                gpa: slot.gpa(),
                compatibility_mask: SNP,
                vp_index: u16::from(vp_index % 3),
                vmsa: Box::new(igvm_snp::demo::vmsa()),
            },
            Dir::Required { slot, pages } => IgvmDirectiveHeader::RequiredMemory {
                gpa: slot.gpa(),
                compatibility_mask: SNP,
                number_of_bytes: u32::from(pages) * 4096,
                vtl2_protectable: false,
            },
            Dir::ErrorRange { slot, pages } => IgvmDirectiveHeader::ErrorRange {
                gpa: slot.gpa(),
                compatibility_mask: SNP,
                size_bytes: u32::from(pages) * 4096,
            },
            Dir::IdBlock { ld } => seeds::id_block([ld; 48], 0),
        }
    }
}

impl Input {
    /// The `igvm` crate's file for this input, or `None` when its builder
    /// refuses the headers (e.g. a parameter before its area).
    pub fn to_file(&self) -> Option<IgvmFile> {
        let revision = if self.v2 {
            IgvmRevision::V2 {
                arch: igvm::Arch::X64,
                page_size: 4096,
            }
        } else {
            IgvmRevision::V1
        };
        let platform = seeds::platform;
        let mut platforms = vec![platform(SNP, IgvmPlatformType::SEV_SNP)];
        if self.native {
            platforms.push(platform(NATIVE, IgvmPlatformType::NATIVE));
        }
        let inits = self
            .policy
            .map(|minor| IgvmInitializationHeader::GuestPolicy {
                policy: 0x30000 | u64::from(minor),
                compatibility_mask: SNP,
            })
            .into_iter()
            .collect();
        let directives = self
            .directives
            .iter()
            .map(|d| d.header(self.native))
            .collect();
        IgvmFile::new(revision, platforms, inits, directives).ok()
    }

    /// Whether the `igvm` crate's SNP measurement follows the IGVM spec for
    /// this input the way the planner's defaults do. It does not for 2 MiB
    /// pages (it measures one 4 KiB page) nor for SECRETS / CPUID pages with
    /// the shared flag (it skips every shared page); the generator never
    /// sets the shared flag on those, so only 2 MiB pages are excluded.
    pub fn igvm_measurement_comparable(&self) -> bool {
        !self
            .directives
            .iter()
            .any(|d| matches!(d, Dir::Huge { .. }))
    }
}

/// Errors that would mean our reader misread a file the `igvm` builder
/// wrote: the builder's output is well-formed by construction.
fn structural(e: &Error) -> bool {
    matches!(
        e,
        Error::TruncatedFixedHeader { .. }
            | Error::BadMagic { .. }
            | Error::UnsupportedVersion(_)
            | Error::FileSizeMismatch { .. }
            | Error::VariableHeaderSectionOutOfBounds { .. }
            | Error::VariableHeaderSectionUnaligned { .. }
            | Error::ChecksumMismatch { .. }
            | Error::TruncatedHeader { .. }
            | Error::UnknownHeaderType { .. }
            | Error::HeaderLength { .. }
            | Error::HeaderOutOfOrder { .. }
            | Error::NonZeroPadding { .. }
    )
}

/// The body of the `structured` target.
///
/// # Panics
/// When a check fails: a structural parse error on builder output, a plan
/// invariant of `support::checks`, or a digest that differs from the `igvm`
/// crate's where that is comparable.
pub fn run(input: &Input, record: &mut dyn FnMut(String)) {
    let Some(file) = input.to_file() else {
        record("igvm builder refuses".into());
        return;
    };
    let mut bytes = Vec::new();
    if file.serialize(&mut bytes).is_err() {
        record("igvm serializer refuses".into());
        return;
    }
    let outcome = checks::exercise(&bytes);
    if let Some(e) = &outcome.parse_error {
        assert!(!structural(e), "builder output misread: {e}");
        record(format!("parse error {}", variant(e)));
        return;
    }
    let Some(first) = outcome.plans.first() else {
        return;
    };
    match first {
        Ok(_) => record("planned".into()),
        Err(e) => record(format!("plan error {}", variant(e))),
    }
    if first.is_ok() && input.igvm_measurement_comparable() {
        let (config, options) = checks::configs().swap_remove(0);
        let ours = LaunchPlan::new(&bytes, &config, options)
            .expect("planned above")
            .launch_digest();
        match igvm::measurement::generate_snp_measurement(
            file.initializations(),
            file.directives(),
            SNP,
        ) {
            Ok(theirs) => {
                assert_eq!(ours.0, theirs, "digest differs from the igvm crate's");
                record("digest equals the igvm crate's".into());
            }
            Err(e) => record(format!("igvm measurement refuses: {e}")),
        }
    }
}
