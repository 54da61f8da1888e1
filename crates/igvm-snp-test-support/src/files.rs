//! Small SEV-SNP IGVM files built with the `igvm` crate's builder, the
//! demo file edited, and launches of them on the firmware model.

use igvm::snp_defs::{SevSelector, SevVmsa};
use igvm::{
    IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader, IgvmRevision,
};
use igvm_defs::{IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags, IgvmPlatformType};
use zerocopy::FromZeros;

/// The SEV-SNP compatibility mask the test files use.
pub const MASK: u32 = 1;
/// Where the test files put their VMSA (as KVM's legacy VMSAs are).
pub const VMSA_GPA: u64 = 0xFFFF_FFFF_F000;

/// A serialized SEV-SNP IGVM file: one platform (mask 1), guest policy
/// 0x30000, a NORMAL page per `(gpa, data)` and the VMSA of VP 0.
pub fn snp_igvm(pages: &[(u64, Vec<u8>)], vmsa: SevVmsa) -> Vec<u8> {
    let pages: Vec<_> = pages
        .iter()
        .map(|(gpa, data)| (*gpa, data.clone(), IgvmPageDataFlags::new()))
        .collect();
    snp_igvm_with_flags(&pages, vmsa)
}

/// As [`snp_igvm`], with page-data flags (shared, unmeasured) per page.
pub fn snp_igvm_with_flags(pages: &[(u64, Vec<u8>, IgvmPageDataFlags)], vmsa: SevVmsa) -> Vec<u8> {
    let mut directives: Vec<IgvmDirectiveHeader> = pages
        .iter()
        .map(|(gpa, data, flags)| igvm_snp::demo::page_data(*gpa, MASK, *flags, data.clone()))
        .collect();
    directives.push(IgvmDirectiveHeader::SnpVpContext {
        gpa: VMSA_GPA,
        compatibility_mask: MASK,
        vp_index: 0,
        vmsa: Box::new(vmsa),
    });
    let file = IgvmFile::new(
        IgvmRevision::V1,
        vec![IgvmPlatformHeader::SupportedPlatform(
            IGVM_VHS_SUPPORTED_PLATFORM {
                compatibility_mask: MASK,
                highest_vtl: 0,
                platform_type: IgvmPlatformType::SEV_SNP,
                platform_version: 1,
                shared_gpa_boundary: 0,
            },
        )],
        vec![IgvmInitializationHeader::GuestPolicy {
            policy: 0x30000,
            compatibility_mask: MASK,
        }],
        directives,
    )
    .expect("test IGVM file is valid");
    let mut out = Vec::new();
    file.serialize(&mut out).expect("test IGVM file serializes");
    out
}

/// A segment as the VMSA stores it.
pub fn seg(selector: u16, attrib: u16, limit: u32, base: u64) -> SevSelector {
    SevSelector {
        selector,
        attrib,
        limit,
        base,
    }
}

/// A VMSA with the SNP feature bit, EFER.SVME (as SNP VMSAs carry it),
/// reset values for RFLAGS, DR6/DR7, PAT, XCR0, MXCSR and FCW, and the
/// given entry point. Segments are left zero for the caller.
pub fn base_vmsa(rip: u64) -> SevVmsa {
    // The demo's reset state, less its real-mode segments and CR0.
    let mut v = igvm_snp::demo::vmsa();
    let zero = SevSelector::new_zeroed();
    (v.es, v.cs, v.ss, v.ds, v.fs, v.gs) = (zero, zero, zero, zero, zero, zero);
    (v.gdtr, v.idtr) = (zero, zero);
    v.cr0 = 0;
    v.rip = rip;
    v
}

/// A flat protected-mode VMSA ([`base_vmsa`] plus segments): CS 0x08 with
/// `cs_attrib` (0xC9B: 32-bit code, type 0xB, S, P, D/B, G; 0xA9B: 64-bit
/// code with L instead of D/B), data segments 0x10 with 0xC93, 4 GiB
/// byte-granular limits, GDTR at `gdt` (24 bytes), CR0 = PE|ET.
pub fn flat_vmsa(rip: u64, cs_attrib: u16, gdt: u64) -> SevVmsa {
    let mut v = base_vmsa(rip);
    v.cs = seg(0x08, cs_attrib, 0xFFFF_FFFF, 0);
    let data = seg(0x10, 0xC93, 0xFFFF_FFFF, 0);
    (v.ds, v.es, v.ss, v.fs, v.gs) = (data, data, data, data, data);
    v.gdtr = seg(0, 0, 23, gdt);
    v.cr0 = 0x11;
    v
}

/// A data page whose bytes are `i * mul + add` (mod 256).
pub fn pattern_page(mul: u32, add: u32) -> Vec<u8> {
    (0..4096u32).map(|i| (i * mul + add) as u8).collect()
}

/// The 32-bit sum of a page's bytes, as the test guests compute it, in the
/// eight upper-case hex digits they print.
pub fn byte_sum_hex(page: &[u8]) -> String {
    let sum = page.iter().fold(0u32, |s, b| s.wrapping_add(u32::from(*b)));
    format!("{sum:08X}")
}

/// Collects serial output.
#[derive(Debug, Default)]
pub struct Serial(pub Vec<u8>);

impl Serial {
    /// The output as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// The demo file (`igvm_snp::demo`) with its directives edited.
pub fn demo_with(edit: impl FnOnce(&mut Vec<IgvmDirectiveHeader>)) -> Vec<u8> {
    let file = igvm_snp::demo::demo_file();
    let mut dirs = file.directives().to_vec();
    edit(&mut dirs);
    let file = IgvmFile::new(
        IgvmRevision::V1,
        file.platforms().to_vec(),
        file.initializations().to_vec(),
        dirs,
    )
    .unwrap();
    let mut bytes = Vec::new();
    file.serialize(&mut bytes).unwrap();
    bytes
}

/// The demo file with its VMSA edited.
pub fn demo_with_vmsa(edit: impl Fn(&mut SevVmsa)) -> Vec<u8> {
    demo_with(|dirs| {
        for d in dirs.iter_mut() {
            if let IgvmDirectiveHeader::SnpVpContext { vmsa, .. } = d {
                edit(vmsa);
            }
        }
    })
}

/// A launch of a file on the firmware model without the VMSA page type,
/// through the register fallback, with what kvm_legacy predicts for it.
#[derive(Debug)]
pub struct FallbackLaunch {
    /// The launch.
    pub done: igvm_snp_kvm::launch::ModelLaunch,
    /// The kvm-legacy profile's digest of the file.
    pub predicted: igvm_snp::LaunchDigest,
    /// The VMSAs kvm_legacy predicts KVM builds.
    pub vmsas: igvm_snp::kvm_legacy::FinishVmsas,
}

/// Launches `bytes` with `vcpus` and 16 MiB of RAM on a model configured
/// as `config` but without the VMSA page type, with the register fallback
/// and KVM's reset RDX for the APs.
pub fn fallback_on_model(
    bytes: &[u8],
    vcpus: u32,
    config: igvm_snp_kvm::sev::ModelConfig,
) -> FallbackLaunch {
    use igvm_snp::kvm_legacy::{FinishVmsas, KVM_RESET_RDX, KvmLegacyInputs};
    use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions, VmsaPlacement};
    use igvm_snp_kvm::launch::{LaunchOptions, VmsaFallback, launch_model};
    use igvm_snp_kvm::sev::{FirmwareModel, ModelConfig};

    let ram = vec![GpaRange::new(0, 16 << 20)];
    let launch_config = LaunchConfig::new(vcpus, ram.clone());
    let plan = LaunchPlan::new(bytes, &launch_config, PlanOptions::default()).unwrap();
    let model = FirmwareModel::new(ModelConfig {
        vmsa_page_type: false,
        ..config
    });
    let options =
        LaunchOptions::new(ram, vcpus).with_vmsa_fallback(VmsaFallback::TranslateToRegisters);
    let done = launch_model(&plan, &options, model).unwrap();
    let legacy = KvmLegacyInputs::new(vcpus, plan.init2_vmsa_features(), KVM_RESET_RDX);
    let mut legacy_options = PlanOptions::default();
    legacy_options.vmsa = VmsaPlacement::KvmFinish(legacy);
    let predicted = LaunchPlan::new(bytes, &launch_config, legacy_options)
        .unwrap()
        .launch_digest();
    let vmsas = FinishVmsas::new(&plan.vmsa().vmsa, legacy);
    FallbackLaunch {
        done,
        predicted,
        vmsas,
    }
}
