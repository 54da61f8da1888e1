//! The boot CPU's VMSA, taken from the file's SEV-SNP VP context.

use igvm::snp_defs::SevVmsa;
use serde::Serialize;
use zerocopy::FromBytes;

use crate::error::{Error, HeaderRef, Result};
use crate::parse::{DirectiveKind, IgvmFile};

/// SEV_FEATURES bit 0, SNPActive.
pub const SEV_FEATURE_SNP_ACTIVE: u64 = 1;

/// The boot CPU's VMSA as the file gives it.
#[derive(Debug, Clone, Serialize)]
pub struct BootVmsa<'a> {
    /// The VP_CONTEXT directive.
    pub at: HeaderRef,
    /// GPA the file places the VMSA at.
    pub gpa: u64,
    /// VP index (always 0).
    pub vp_index: u16,
    /// The 4096 VMSA bytes in the file; these are measured.
    #[serde(skip)]
    pub bytes: &'a [u8],
    /// The decoded VMSA.
    #[serde(skip)]
    pub vmsa: Box<SevVmsa>,
}

impl<'a> BootVmsa<'a> {
    /// Decodes and checks a VMSA: SNPActive set, VMPL 0.
    pub(crate) fn new(at: HeaderRef, gpa: u64, vp_index: u16, bytes: &'a [u8]) -> Result<Self> {
        let vmsa = SevVmsa::read_from_bytes(bytes).map_err(|_| Error::FileDataOutOfBounds {
            at,
            file_offset: 0,
            len: 4096,
            data_start: 0,
            file_len: bytes.len(),
        })?;
        let b = BootVmsa {
            at,
            gpa,
            vp_index,
            bytes,
            vmsa: Box::new(vmsa),
        };
        if b.sev_features() & SEV_FEATURE_SNP_ACTIVE == 0 {
            return Err(Error::VmsaNotSnp {
                at,
                sev_features: b.sev_features(),
            });
        }
        if b.vmsa.vmpl != 0 {
            return Err(Error::VmsaVmpl {
                at,
                vmpl: b.vmsa.vmpl,
            });
        }
        Ok(b)
    }

    /// The boot VMSA of a parsed file (the VP context of VP index 0 for its
    /// SEV-SNP platform), found without planning the file: what a file
    /// that cannot be planned asks for (`check` reports the VMSA features
    /// such a file needs).
    ///
    /// # Errors
    /// [`Error::NoSnpPlatform`], [`Error::NoVmsa`], or the VMSA's own
    /// ([`Error::VmsaNotSnp`], [`Error::VmsaVmpl`]).
    pub fn of_file(file: &IgvmFile<'a>) -> Result<Self> {
        let mask = crate::plan::snp_platform(file)?.compatibility_mask;
        for d in file.directives() {
            if let DirectiveKind::VpContext { header, data } = &d.kind {
                if header.compatibility_mask & mask != 0 && header.vp_index == 0 {
                    return BootVmsa::new(d.at, header.gpa.get(), 0, data);
                }
            }
        }
        Err(Error::NoVmsa)
    }

    /// The VMSA's SEV_FEATURES.
    pub fn sev_features(&self) -> u64 {
        self.vmsa.sev_features.into_bits()
    }

    /// The `vmsa_features` for KVM_SEV_INIT2: the SEV features without
    /// SNPActive, which KVM adds itself for SNP VMs.
    pub fn init2_vmsa_features(&self) -> u64 {
        self.sev_features() & !SEV_FEATURE_SNP_ACTIVE
    }
}
