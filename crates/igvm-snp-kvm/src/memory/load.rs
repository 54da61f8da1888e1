//! Writing a plan's pages into guest memory.

use igvm_snp::{LaunchPlan, PAGE_SIZE, PageBytes, StepSource};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::{MemoryError, VmsaPage};

const PAGE: u64 = PAGE_SIZE as u64;

/// Options of [`load_plan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOptions {
    /// Whether the VMSA page is written.
    pub vmsa: VmsaPage,
    /// Whether data-less pages are written as zeros. `false` (the default)
    /// leaves them as they are: right for fresh memory, which is zero, and
    /// it keeps untouched memory unbacked (a plan of many data-less 2 MiB
    /// pages would otherwise make the host back all of them with zeros).
    pub write_zero_pages: bool,
    /// Whether the launch steps' pages are written. `false` writes only the
    /// shared (not launched) pages: a windowed launch
    /// ([`crate::launch::Launcher::load_windowed`]) writes each step's pages
    /// just before its SNP_LAUNCH_UPDATE, with [`load_pages`].
    pub launch_steps: bool,
}

impl LoadOptions {
    /// Load every page but data-less ones into fresh memory; the VMSA as
    /// `vmsa` says.
    pub fn new(vmsa: VmsaPage) -> Self {
        LoadOptions {
            vmsa,
            write_zero_pages: false,
            launch_steps: true,
        }
    }

    /// Write only the shared pages, not the launch steps'.
    pub fn shared_only(mut self) -> Self {
        self.launch_steps = false;
        self
    }

    /// Also write zeros for data-less pages (memory that is not fresh).
    pub fn writing_zero_pages(mut self) -> Self {
        self.write_zero_pages = true;
        self
    }
}

/// Writes every page of every launch step (unless
/// [`LoadOptions::shared_only`]) and every shared run of `plan` into
/// `memory`, through vm-memory's volatile accesses (a vCPU may be
/// running); returns the number of pages written. Works on any
/// [`GuestMemoryBackend`], as linux-loader's loaders do.
///
/// # Errors
/// [`MemoryError::Unmapped`] naming the first page no region covers (size
/// the memory with [`super::layout_for`]); pages before it were written.
///
/// ```
/// use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
/// use igvm_snp_kvm::memory::{Bytes, GuestAddress, LoadOptions, VmsaPage, anonymous, load_plan};
/// let bytes = igvm_snp::demo::demo_igvm();
/// let ram = vec![GpaRange::new(0, 16 << 20)];
/// let plan = LaunchPlan::new(&bytes, &LaunchConfig::new(1, ram.clone()), PlanOptions::default())?;
/// let memory = anonymous(&[ram[0], GpaRange::new(0xFFFF_B000, 0x5000)])?;
/// let written = load_plan(&plan, &memory, LoadOptions::new(VmsaPage::Skip))?;
/// let mut page = vec![0u8; 4096];
/// memory.read_slice(&mut page, GuestAddress(igvm_snp::demo::DATA_GPA))?;
/// assert_eq!(page, igvm_snp::demo::data_page());
/// # assert!(written > 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_plan<M: GuestMemoryBackend>(
    plan: &LaunchPlan<'_>,
    memory: &M,
    options: LoadOptions,
) -> Result<u64, MemoryError> {
    let mut pages = 0u64;
    if options.launch_steps {
        for step in plan.steps() {
            if step.source == StepSource::Vmsa && options.vmsa == VmsaPage::Skip {
                continue;
            }
            pages += load_pages(memory, plan.step_pages(step), options)?;
        }
    }
    for run in plan.shared_runs() {
        pages += load_pages(memory, plan.shared_pages(run), options)?;
    }
    Ok(pages)
}

/// Writes `pages` (GPA and contents, as [`LaunchPlan::step_pages`] yields
/// them) into `memory` through volatile accesses; data-less pages only with
/// [`LoadOptions::write_zero_pages`]. Returns the number of pages written.
///
/// # Errors
/// [`MemoryError::Unmapped`] naming the first page no region covers; pages
/// before it were written.
pub fn load_pages<'a, M: GuestMemoryBackend>(
    memory: &M,
    pages: impl IntoIterator<Item = (u64, PageBytes<'a>)>,
    options: LoadOptions,
) -> Result<u64, MemoryError> {
    let mut written = 0u64;
    let mut buf = Vec::new();
    for (gpa, bytes) in pages {
        let unmapped = MemoryError::Unmapped { gpa, len: PAGE };
        if !memory.check_range(GuestAddress(gpa), PAGE_SIZE) {
            return Err(unmapped);
        }
        match bytes {
            PageBytes::Zero if !options.write_zero_pages => continue,
            PageBytes::Data(d) if d.len() == PAGE_SIZE => memory.write_slice(d, GuestAddress(gpa)),
            other => {
                buf.resize(PAGE_SIZE, 0);
                other.write_to(&mut buf);
                memory.write_slice(&buf, GuestAddress(gpa))
            }
        }
        .map_err(|_| unmapped)?;
        written += 1;
    }
    Ok(written)
}
