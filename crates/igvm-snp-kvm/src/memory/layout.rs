//! Which GPA ranges guest memory must cover for a plan.

use igvm_snp::{GpaRange, HeaderRef, LaunchPlan, PAGE_SIZE};

use super::{MemoryError, page_span_end};

const PAGE: u64 = PAGE_SIZE as u64;

/// Options for [`layout_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutOptions {
    /// Highest GPA width, in bits, the layout may use (normally
    /// [`host_phys_bits`](super::host_phys_bits)): with two-dimensional
    /// paging KVM refuses memslots above the host physical address width.
    /// Regions ending above `1 << phys_bits` are refused here, before any
    /// memory is mapped.
    pub phys_bits: u8,
    /// Pages loaded outside RAM that get no memory, e.g. the SNP VMSA's own
    /// GPA for a native run. Ranges are widened to whole pages. RAM given by
    /// the caller is never cut.
    pub exclude: Vec<GpaRange>,
}

impl LayoutOptions {
    /// Options with a physical address width and nothing excluded.
    pub fn new(phys_bits: u8) -> Self {
        LayoutOptions {
            phys_bits,
            exclude: Vec::new(),
        }
    }

    /// Adds a range to leave unmapped when outside RAM.
    pub fn excluding(mut self, range: GpaRange) -> Self {
        self.exclude.push(range);
        self
    }
}

/// The sorted, merged regions guest memory needs for `plan`: every RAM
/// range, plus the memory the file needs outside RAM, as QEMU's
/// `qigvm_prepare_memory` gives it regions of its own (`igvm.N`): every
/// page [`LaunchPlan::loaded_ranges`] touches (parameter areas,
/// reset-vector pages below 4 GiB, the VMSA, …) and the file's
/// [`LaunchPlan::required_memory`], minus the excluded pages. Touching or
/// overlapping ranges are merged.
///
/// # Errors
/// [`MemoryError::InvalidRange`] for a RAM range that is empty, unaligned or
/// overflows; [`MemoryError::RegionPartlyInRam`] for memory the file needs
/// that is partly in RAM; [`MemoryError::RegionAboveHostWidth`] for memory
/// the file needs outside RAM above the host's physical address width, and
/// [`MemoryError::AboveHostWidth`] for RAM there.
pub fn layout_for(
    plan: &LaunchPlan<'_>,
    ram: &[GpaRange],
    options: &LayoutOptions,
) -> Result<Vec<GpaRange>, MemoryError> {
    layout(plan, ram, options, true)
}

/// What [`layout_for`] adds to RAM, alone: the regions the file needs
/// outside the RAM ranges, sorted and merged among themselves but never
/// with RAM, for a VMM that maps its RAM itself (its own memfd, huge pages)
/// and gives these their own regions, as QEMU's `igvm.N`.
///
/// # Errors
/// As [`layout_for`].
pub fn regions_outside_ram(
    plan: &LaunchPlan<'_>,
    ram: &[GpaRange],
    options: &LayoutOptions,
) -> Result<Vec<GpaRange>, MemoryError> {
    layout(plan, ram, options, false)
}

fn layout(
    plan: &LaunchPlan<'_>,
    ram: &[GpaRange],
    options: &LayoutOptions,
    with_ram: bool,
) -> Result<Vec<GpaRange>, MemoryError> {
    let mut ram_ranges: Vec<(u64, u64)> = Vec::with_capacity(ram.len());
    for r in ram {
        ram_ranges.push(checked_span(r)?);
    }
    let ram_spans = merge(ram_ranges.clone());
    let mut ranges = if with_ram {
        ram_ranges.clone()
    } else {
        Vec::new()
    };
    for (directive, range) in needed_regions(plan) {
        check_region(directive, range, &ram_spans, options)?;
    }
    // RAM and excluded pages are holes in what the plan loads; the work is
    // proportional to the number of ranges, never to their sizes.
    let holes = merge(
        ram_ranges
            .iter()
            .copied()
            .chain(
                options
                    .exclude
                    .iter()
                    .filter_map(|r| page_span(r.gpa, r.size)),
            )
            .collect(),
    );
    let required = plan.required_memory().iter().map(|r| r.range);
    for loaded in plan.loaded_ranges().chain(required) {
        if let Some(span) = page_span(loaded.gpa, loaded.size) {
            subtract_into(span, &holes, &mut ranges);
        }
    }
    let merged = merge(ranges);
    let limit = 1u128 << options.phys_bits.min(64);
    for &(start, end) in &merged {
        if u128::from(end) > limit {
            return Err(MemoryError::AboveHostWidth {
                gpa: u64::try_from(limit).map_or(start, |l| l.max(start)),
                end,
                phys_bits: options.phys_bits,
            });
        }
    }
    Ok(merged
        .into_iter()
        .map(|(s, e)| GpaRange::new(s, e - s))
        .collect())
}

/// Every range of memory the plan needs, with the directive it comes from
/// (a step's first directive).
fn needed_regions<'p>(
    plan: &'p LaunchPlan<'_>,
) -> impl Iterator<Item = (HeaderRef, GpaRange)> + 'p {
    let directive = move |i: usize| plan.file().directives()[i].at;
    let steps = plan
        .steps()
        .iter()
        .map(move |s| (directive(s.directives.start), s.range()));
    let shared = plan.shared_runs().iter().map(move |r| {
        (
            directive(r.directives.start),
            GpaRange::new(r.gpa, r.pages * PAGE),
        )
    });
    let errors = plan.error_ranges().iter().map(|e| (e.at, e.range));
    let required = plan.required_memory().iter().map(|r| (r.at, r.range));
    steps.chain(shared).chain(errors).chain(required)
}

/// Checks one range the file needs: wholly in RAM, or wholly outside it
/// and below the host's physical address width.
fn check_region(
    directive: HeaderRef,
    range: GpaRange,
    ram: &[(u64, u64)],
    options: &LayoutOptions,
) -> Result<(), MemoryError> {
    if range.size == 0 {
        return Ok(());
    }
    // A range past the end of the address space is above any host's width
    // (plans refuse such ranges; this keeps the check whole on its own).
    let Some((start, end)) = page_span(range.gpa, range.size) else {
        return Err(MemoryError::RegionAboveHostWidth {
            directive,
            gpa: range.gpa,
            size: range.size,
            phys_bits: options.phys_bits,
        });
    };
    let inside = ram.iter().any(|&(s, e)| s <= start && end <= e);
    if inside {
        return Ok(());
    }
    if ram.iter().any(|&(s, e)| s < end && start < e) {
        return Err(MemoryError::RegionPartlyInRam {
            directive,
            gpa: range.gpa,
            size: range.size,
        });
    }
    if u128::from(end) > 1u128 << options.phys_bits.min(64) {
        // Pages the caller excludes (e.g. the VMSA of a native run) get no
        // memory, so their GPA does not matter.
        let excluded = options
            .exclude
            .iter()
            .filter_map(|r| page_span(r.gpa, r.size))
            .any(|(s, e)| s <= start && end <= e);
        if !excluded {
            return Err(MemoryError::RegionAboveHostWidth {
                directive,
                gpa: range.gpa,
                size: range.size,
                phys_bits: options.phys_bits,
            });
        }
    }
    Ok(())
}

/// `(start, end)` of a RAM range after checking it.
fn checked_span(r: &GpaRange) -> Result<(u64, u64), MemoryError> {
    let end = page_span_end(r).map_err(|reason| MemoryError::InvalidRange {
        gpa: r.gpa,
        size: r.size,
        reason,
    })?;
    Ok((r.gpa, end))
}

/// The whole pages covering `gpa..gpa + size`, or `None` when empty or
/// overflowing.
fn page_span(gpa: u64, size: u64) -> Option<(u64, u64)> {
    if size == 0 {
        return None;
    }
    let start = gpa - gpa % PAGE;
    let last = gpa.checked_add(size - 1)?;
    let end = (last - last % PAGE).checked_add(PAGE)?;
    Some((start, end))
}

/// Pushes the parts of `span` outside `holes` (sorted, disjoint) to `out`.
fn subtract_into(span: (u64, u64), holes: &[(u64, u64)], out: &mut Vec<(u64, u64)>) {
    let (mut start, end) = span;
    for &(hs, he) in holes {
        if he <= start {
            continue;
        }
        if hs >= end {
            break;
        }
        if hs > start {
            out.push((start, hs));
        }
        start = he;
        if start >= end {
            return;
        }
    }
    out.push((start, end));
}

/// Sorts and merges touching or overlapping spans.
fn merge(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use igvm_snp::{LaunchConfig, PlanOptions, demo};

    fn demo_plan(bytes: &[u8]) -> LaunchPlan<'_> {
        let config = LaunchConfig::new(1, vec![GpaRange::new(0, 1 << 20)]);
        LaunchPlan::new(bytes, &config, PlanOptions::default()).unwrap()
    }

    #[test]
    fn demo_layout_adds_pages_below_4g_and_excludes_vmsa() {
        let bytes = demo::demo_igvm();
        let plan = demo_plan(&bytes);
        let ram = [GpaRange::new(0, 1 << 20)];
        let opts = LayoutOptions::new(48).excluding(GpaRange::new(demo::VMSA_GPA, 4096));
        let layout = layout_for(&plan, &ram, &opts).unwrap();
        // Demo pages: 0xFFFFB000 (parameter), 0xFFFFC000 (zero),
        // 0xFFFFE000 (data), 0xFFFFF000 (code); 0xFFFFD000 is not loaded.
        assert_eq!(
            layout,
            vec![
                GpaRange::new(0, 1 << 20),
                GpaRange::new(0xFFFF_B000, 0x2000),
                GpaRange::new(0xFFFF_E000, 0x2000),
            ]
        );
    }

    /// A range that runs past the end of the address space (plans refuse
    /// them) is above any host width, not skipped.
    #[test]
    fn a_range_past_the_address_space_is_refused_and_an_empty_one_skipped() {
        let at = HeaderRef {
            section: igvm_snp::Section::Directive,
            index: 3,
            offset: 0x200,
        };
        let top = 0xFFFF_FFFF_FFFF_F000;
        let opts = LayoutOptions::new(52);
        let err = check_region(at, GpaRange::new(top, 0x2000), &[], &opts).unwrap_err();
        assert!(
            matches!(
                err,
                MemoryError::RegionAboveHostWidth {
                    gpa: 0xFFFF_FFFF_FFFF_F000,
                    size: 0x2000,
                    ..
                }
            ),
            "{err}"
        );
        check_region(at, GpaRange::new(top, 0), &[], &opts).unwrap();
    }

    /// Memory the file needs right after RAM merges into RAM in
    /// `layout_for`, and stays apart in `regions_outside_ram`.
    #[test]
    fn regions_outside_ram_are_never_merged_with_it() {
        let bytes = demo::demo_igvm();
        let plan = demo_plan(&bytes);
        // RAM ends right where the demo's first page outside it would
        // start: 0xFFFF_B000 (the parameter page).
        let ram = [GpaRange::new(0, 0xFFFF_B000)];
        let opts = LayoutOptions::new(48).excluding(GpaRange::new(demo::VMSA_GPA, 4096));
        assert_eq!(
            layout_for(&plan, &ram, &opts).unwrap(),
            vec![
                GpaRange::new(0, 0xFFFF_D000),
                GpaRange::new(0xFFFF_E000, 0x2000)
            ]
        );
        assert_eq!(
            regions_outside_ram(&plan, &ram, &opts).unwrap(),
            vec![
                GpaRange::new(0xFFFF_B000, 0x2000),
                GpaRange::new(0xFFFF_E000, 0x2000)
            ]
        );
    }

    #[test]
    fn vmsa_page_kept_unless_excluded() {
        let bytes = demo::demo_igvm();
        let plan = demo_plan(&bytes);
        let ram = [GpaRange::new(0, 1 << 20)];
        let layout = layout_for(&plan, &ram, &LayoutOptions::new(48)).unwrap();
        assert_eq!(layout.last(), Some(&GpaRange::new(0xFFFF_FFFF_F000, 4096)));
    }

    #[test]
    fn rejects_regions_above_host_width() {
        let bytes = demo::demo_igvm();
        let plan = demo_plan(&bytes);
        let ram = [GpaRange::new(0, 1 << 20)];
        let err = layout_for(&plan, &ram, &LayoutOptions::new(40)).unwrap_err();
        match err {
            MemoryError::RegionAboveHostWidth {
                directive,
                gpa,
                size,
                phys_bits,
            } => {
                assert_eq!((gpa, size, phys_bits), (0xFFFF_FFFF_F000, 4096, 40));
                assert_eq!(directive, plan.vmsa().at);
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err_text(&plan, &ram, 40);
        assert!(text.contains("0xfffffffff000"), "{text}");
        assert!(text.contains("directive #"), "{text}");
        // RAM above the width is refused too.
        let high = [GpaRange::new(1 << 40, 1 << 20)];
        let opts = LayoutOptions::new(40).excluding(GpaRange::new(demo::VMSA_GPA, 1));
        assert!(matches!(
            layout_for(&plan, &high, &opts),
            Err(MemoryError::AboveHostWidth { .. })
        ));
        // Below 4 GiB only, a 32-bit host width suffices.
        let opts = LayoutOptions::new(32).excluding(GpaRange::new(demo::VMSA_GPA, 1));
        assert!(layout_for(&plan, &ram, &opts).is_ok());
    }

    fn err_text(plan: &LaunchPlan<'_>, ram: &[GpaRange], bits: u8) -> String {
        layout_for(plan, ram, &LayoutOptions::new(bits))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn ram_ranges_validated_and_merged() {
        let bytes = demo::demo_igvm();
        let plan = demo_plan(&bytes);
        let opts = LayoutOptions::new(48).excluding(GpaRange::new(demo::VMSA_GPA, 4096));
        for (bad, reason) in [
            (GpaRange::new(0, 0), "empty"),
            (GpaRange::new(0x800, 0x1000), "not 4 KiB aligned"),
            (
                GpaRange::new(u64::MAX - 0xFFF, 0x2000),
                "overflows the address space",
            ),
        ] {
            match layout_for(&plan, &[bad], &opts) {
                Err(MemoryError::InvalidRange { reason: r, .. }) => assert_eq!(r, reason),
                other => panic!("unexpected {other:?}"),
            }
        }
        // RAM touching the demo pages absorbs them; overlapping RAM merges.
        let ram = [
            GpaRange::new(0xFFF0_0000, 0xF_C000),
            GpaRange::new(0xFFF0_0000, 0x1000),
        ];
        let layout = layout_for(&plan, &ram, &opts).unwrap();
        assert_eq!(
            layout,
            vec![
                GpaRange::new(0xFFF0_0000, 0xF_D000),
                GpaRange::new(0xFFFF_E000, 0x2000),
            ]
        );
    }

    /// coconut-svsm igvmbuilder's shape: required memory far above RAM gets
    /// a region of its own, as QEMU's igvm.N regions.
    #[test]
    fn required_memory_outside_ram_gets_its_own_region() {
        let bytes = demo::igvmbuilder_shaped_igvm().unwrap();
        let ram = [GpaRange::new(0, 512 << 20)];
        let config = LaunchConfig::new(1, ram.to_vec());
        let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
        let layout = layout_for(&plan, &ram, &LayoutOptions::new(48)).unwrap();
        let required = GpaRange::new(
            demo::REQUIRED_MEMORY_GPA,
            u64::from(demo::REQUIRED_MEMORY_SIZE),
        );
        assert!(layout.contains(&required), "{layout:x?}");
        assert!(layout.contains(&GpaRange::new(0, 512 << 20)));
        // Beyond a 42-bit host (0x7FF80000000 + 16 MiB > 4 TiB), refused,
        // naming the REQUIRED_MEMORY directive (#0).
        let opts = LayoutOptions::new(42).excluding(GpaRange::new(demo::VMSA_GPA, 4096));
        match layout_for(&plan, &ram, &opts) {
            Err(MemoryError::RegionAboveHostWidth { directive, gpa, .. }) => {
                assert_eq!((directive.index, gpa), (0, demo::REQUIRED_MEMORY_GPA));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn memory_partly_in_ram_is_refused() {
        let bytes = demo::igvmbuilder_shaped_igvm().unwrap();
        let config = LaunchConfig::new(1, vec![]);
        let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
        // RAM ending 4 MiB into the required memory.
        let ram = [
            GpaRange::new(0, 1 << 20),
            GpaRange::new(demo::REQUIRED_MEMORY_GPA - (1 << 20), 5 << 20),
        ];
        match layout_for(&plan, &ram, &LayoutOptions::new(48)) {
            Err(MemoryError::RegionPartlyInRam {
                directive,
                gpa,
                size,
            }) => {
                assert_eq!(directive.index, 0);
                assert_eq!(
                    (gpa, size),
                    (
                        demo::REQUIRED_MEMORY_GPA,
                        u64::from(demo::REQUIRED_MEMORY_SIZE)
                    )
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        // Wholly inside RAM is fine.
        let ram = [
            GpaRange::new(0, 1 << 20),
            GpaRange::new(demo::REQUIRED_MEMORY_GPA, 32 << 20),
        ];
        assert!(layout_for(&plan, &ram, &LayoutOptions::new(48)).is_ok());
    }

    #[test]
    fn subtract_leaves_the_parts_outside_holes() {
        let holes = [(0x1000, 0x2000), (0x4000, 0x6000)];
        type Span = (u64, u64);
        let cases: [(Span, Vec<Span>); 6] = [
            (
                (0, 0x8000),
                vec![(0, 0x1000), (0x2000, 0x4000), (0x6000, 0x8000)],
            ),
            ((0x1000, 0x2000), vec![]),
            ((0x1800, 0x5000), vec![(0x2000, 0x4000)]),
            ((0x6000, 0x7000), vec![(0x6000, 0x7000)]),
            ((0, 0x1000), vec![(0, 0x1000)]),
            ((0x4000, 0x6000), vec![]),
        ];
        for (span, want) in cases {
            let mut out = Vec::new();
            subtract_into(span, &holes, &mut out);
            assert_eq!(out, want, "{span:x?}");
        }
        // A 4 GiB span with one hole: two pieces, not a million pages.
        let mut out = Vec::new();
        subtract_into((0, 1 << 32), &[(0x1000, 0x2000)], &mut out);
        assert_eq!(out, vec![(0, 0x1000), (0x2000, 1 << 32)]);
    }

    #[test]
    fn page_span_rounds_out() {
        assert_eq!(page_span(0x1001, 1), Some((0x1000, 0x2000)));
        assert_eq!(page_span(0x1FFF, 2), Some((0x1000, 0x3000)));
        assert_eq!(page_span(5, 0), None);
        assert_eq!(page_span(u64::MAX - 10, 5), None);
    }
}
