//! Parse → plan → digest, and the invariants every accepted plan must
//! satisfy. A violated invariant panics (the fuzzer reports a crash); an
//! error from the library is an accepted outcome as long as it formats.
//!
//! The launch digest is recomputed here from `plan.step_pages` with a
//! PAGE_INFO / SHA-384 chain written from the SEV-SNP firmware ABI
//! (SNP_LAUNCH_UPDATE, PAGE_INFO layout), not with the library's
//! `DigestChain` or `PageBytes::hash`, so a wrong digest cannot agree with
//! itself.

use igvm_snp::{
    Error, GpaRange, IgvmFile, LaunchConfig, LaunchPlan, PageBytes, PageType, PlanOptions,
};
use sha2::{Digest, Sha384};

/// Bytes in a page.
const PAGE: u64 = 4096;

/// Above this many launched pages the per-page trace (`measure_trace`, which
/// allocates an entry per page) is not compared.
const TRACE_LIMIT: u64 = 4096;

/// What happened to one input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The parse error, if the file did not parse.
    pub parse_error: Option<Error>,
    /// One entry per configuration: `Ok(launched pages)` or the plan error.
    pub plans: Vec<Result<u64, Error>>,
}

impl Outcome {
    /// Whether at least one configuration produced a plan.
    pub fn planned(&self) -> bool {
        self.plans.iter().any(Result::is_ok)
    }
}

/// The configurations every parsed input is planned with: a VMM that knows
/// its RAM and fills every parameter (spec defaults), and one that knows
/// nothing yet (alternative options of other loaders).
pub fn configs() -> Vec<(LaunchConfig, PlanOptions)> {
    let mut full = LaunchConfig::new(2, vec![GpaRange::new(0, 4 << 30)])
        .with_command_line("console=ttyS0")
        .with_default_policy(0x30000)
        .with_host_data([0x5a; 32]);
    full.mmio_ranges = vec![GpaRange::new(0xE000_0000, 0x1000_0000)];
    full.madt = Some(vec![0x4d; 44]);
    full.srat = Some(vec![0x53; 48]);
    full.slit = Some(vec![0x4c; 40]);
    full.pptt = Some(vec![0x50; 36]);
    full.device_tree = Some(vec![0xd0, 0x0d, 0xfe, 0xed]);
    full.memory_is_shared = true;

    let empty = LaunchConfig::new(1, Vec::new());
    let mut other = PlanOptions::native_zero();
    other.shared_pages = igvm_snp::SharedPages::MeasuredNormal;
    other.parameter_inserts = igvm_snp::ParameterInserts::FirstPageOnly;
    vec![(full, PlanOptions::default()), (empty, other)]
}

/// Parses `bytes`, plans it under every configuration of [`configs`] and
/// checks every plan with [`check_plan`].
///
/// # Panics
/// When an invariant is violated (that is the point).
pub fn exercise(bytes: &[u8]) -> Outcome {
    let file = match IgvmFile::parse(bytes) {
        Ok(file) => file,
        Err(e) => {
            check_error(&e);
            return Outcome {
                parse_error: Some(e),
                plans: Vec::new(),
            };
        }
    };
    let mut plans = Vec::new();
    for (config, options) in configs() {
        match LaunchPlan::from_file(file.clone(), &config, options) {
            Ok(plan) => plans.push(Ok(check_plan(&plan))),
            Err(e) => {
                check_error(&e);
                plans.push(Err(e));
            }
        }
    }
    Outcome {
        parse_error: None,
        plans,
    }
}

/// Byte offset of `total_file_size` in the fixed header.
const TOTAL_SIZE_AT: usize = 16;

/// The input with the fixed header's `total_file_size` set to its length and
/// the CRC-32 recomputed, so that mutated headers reach the parser's later
/// checks (what the `checksummed` and `differential` targets parse).
pub fn with_fixed_checksum(data: &[u8]) -> Vec<u8> {
    let mut bytes = data.to_vec();
    if let (Some(slot), Ok(len)) = (
        bytes.get_mut(TOTAL_SIZE_AT..TOTAL_SIZE_AT + 4),
        u32::try_from(data.len()),
    ) {
        slot.copy_from_slice(&len.to_le_bytes());
    }
    igvm_snp::parse::fix_checksum(&mut bytes);
    bytes
}

/// An error must say something.
pub fn check_error(e: &Error) {
    let text = e.to_string();
    assert!(!text.is_empty(), "error {e:?} formats as an empty string");
}

/// The firmware's PAGE_TYPE value of a page type (SEV-SNP ABI, Table
/// "PAGE_TYPE field encodings"), written out here rather than taken from
/// `PageType::value`.
fn firmware_page_type(t: PageType) -> u8 {
    match t {
        PageType::Normal => 1,
        PageType::Vmsa => 2,
        PageType::Zero => 3,
        PageType::Unmeasured => 4,
        PageType::Secrets => 5,
        PageType::Cpuid => 6,
    }
}

/// Whether the firmware hashes the page contents into PAGE_INFO.CONTENTS
/// (NORMAL and VMSA only; every other type has zeros there).
fn contents_measured(t: PageType) -> bool {
    matches!(t, PageType::Normal | PageType::Vmsa)
}

/// One link of the launch digest chain: SHA-384 of the 112-byte PAGE_INFO.
pub fn page_info_link(ld: &[u8; 48], contents: &[u8; 48], page_type: u8, gpa: u64) -> [u8; 48] {
    let mut info = [0u8; 0x70];
    info[..0x30].copy_from_slice(ld);
    info[0x30..0x60].copy_from_slice(contents);
    info[0x60..0x62].copy_from_slice(&0x70u16.to_le_bytes());
    info[0x62] = page_type;
    // 0x63 IMI_PAGE, 0x64 reserved, 0x65..0x68 VMPL3/2/1 permissions: zero.
    info[0x68..0x70].copy_from_slice(&gpa.to_le_bytes());
    Sha384::digest(info).into()
}

/// Checks an accepted plan and returns its launched page count.
///
/// * steps are numbered in order, non-empty, and `step_pages` yields exactly
///   `pages` pages at ascending contiguous GPAs from `gpa`;
/// * the launch digest equals an independent PAGE_INFO chain over
///   `step_pages`, and every measured page's `hash()` is the SHA-384 of what
///   `write_to` writes;
/// * no GPA is launched twice, and no shared page or error range lies on a
///   launched page (recomputed page by page from the steps);
/// * exactly one VMSA step, at the boot VMSA's GPA;
/// * the trace ends at the digest; the plan serializes to JSON.
///
/// # Panics
/// When one of these does not hold.
pub fn check_plan(plan: &LaunchPlan<'_>) -> u64 {
    let digest = plan.launch_digest();
    let mut ld = [0u8; 48];
    let mut buf = vec![0u8; PAGE as usize];
    let mut launched: Vec<u64> = Vec::new();
    let mut vmsa_steps = 0;
    for (i, step) in plan.steps().iter().enumerate() {
        assert_eq!(step.index, i, "step {i} is numbered {}", step.index);
        assert!(step.pages > 0, "step {i} launches no page");
        if step.page_type == PageType::Vmsa {
            vmsa_steps += 1;
            assert_eq!(
                step.gpa,
                plan.vmsa().gpa,
                "VMSA step {i} is not at the boot VMSA's GPA"
            );
            assert_eq!(step.pages, 1, "VMSA step {i} has {} pages", step.pages);
        }
        let mut expect = Some(step.gpa);
        let mut n = 0u64;
        for (gpa, page) in plan.step_pages(step) {
            assert_eq!(Some(gpa), expect, "step {i} page {n} is out of order");
            n += 1;
            expect = gpa.checked_add(PAGE);
            let contents = if contents_measured(step.page_type) {
                page.write_to(&mut buf);
                let h: [u8; 48] = Sha384::digest(&buf).into();
                assert_eq!(
                    page.hash(),
                    h,
                    "step {i} page {gpa:#x}: hash() differs from write_to"
                );
                h
            } else {
                if n == 1 || n == step.pages {
                    // Unmeasured pages are still written to guest memory.
                    page.write_to(&mut buf);
                    if let PageBytes::Zero = page {
                        assert!(buf.iter().all(|b| *b == 0), "a zero page wrote data");
                    }
                }
                [0; 48]
            };
            ld = page_info_link(&ld, &contents, firmware_page_type(step.page_type), gpa);
            launched.push(gpa);
        }
        assert_eq!(
            n, step.pages,
            "step {i} claims {} pages, yields {n}",
            step.pages
        );
    }
    assert_eq!(vmsa_steps, 1, "the plan has {vmsa_steps} VMSA steps");
    assert_eq!(
        ld, digest.0,
        "the plan's launch digest differs from the PAGE_INFO chain over its steps"
    );
    let total = launched.len() as u64;
    assert_eq!(plan.launched_pages(), total);

    launched.sort_unstable();
    if let Some(w) = launched.windows(2).find(|w| w[0] == w[1]) {
        panic!("GPA {:#x} is launched twice", w[0]);
    }
    let is_launched = |gpa: u64| launched.binary_search(&gpa).is_ok();
    let mut shared: Vec<u64> = Vec::new();
    for run in plan.shared_runs() {
        let mut n = 0;
        for (gpa, page) in plan.shared_pages(run) {
            assert!(!is_launched(gpa), "shared page {gpa:#x} is also launched");
            page.write_to(&mut buf);
            shared.push(gpa);
            n += 1;
        }
        assert_eq!(
            n, run.pages,
            "shared run at {:#x} yields {n} pages",
            run.gpa
        );
    }
    shared.sort_unstable();
    if let Some(w) = shared.windows(2).find(|w| w[0] == w[1]) {
        panic!("shared GPA {:#x} is loaded twice", w[0]);
    }
    for e in plan.error_ranges() {
        let end = e
            .range
            .gpa
            .checked_add(e.range.size)
            .expect("error range overflows");
        let first = launched.partition_point(|g| *g < e.range.gpa);
        assert!(
            launched.get(first).is_none_or(|g| *g >= end),
            "error range {:#x}+{:#x} covers a launched page",
            e.range.gpa,
            e.range.size
        );
    }

    if total <= TRACE_LIMIT {
        let trace = plan.measure_trace();
        assert_eq!(trace.len() as u64, total, "trace length");
        if let Some(last) = trace.last() {
            assert_eq!(last.digest, digest, "trace ends elsewhere than the digest");
        }
    }
    // Outputs a VMM reads; none may panic.
    let _ = plan.check_id_block(&digest);
    let _ = plan.require_all_parameters();
    let _ = (plan.policy(), plan.init2_vmsa_features(), plan.finish());
    serde_json::to_string(plan).expect("a plan serializes to JSON");
    total
}
