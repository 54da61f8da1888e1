//! What this host's KVM offers, probed rather than assumed.
//!
//! KVM hosts differ: the same kernel version may or may not give the
//! default VM type a guest_memfd (`KVM_CREATE_GUEST_MEMFD` → `ENOTTY`), or
//! memory attributes, and only some offer SEV-SNP. [`HostCapabilities`]
//! combines the [`preflight`](crate::preflight) (system-wide capabilities,
//! SEV) with probes of each VM type this library uses: it creates a VM of
//! the type, asks the VM for its capabilities and creates a one-page
//! guest_memfd, because only that answers for the VM type.
//!
//! # Treating a feature as absent
//!
//! [`HOST_WITHOUT_VAR`] (`IGVM_SNP_HOST_WITHOUT=guest_memfd,memory_attributes`)
//! makes the whole library behave as on a host without those features:
//! [`crate::memory::Memslots`] refuses guest_memfd regions and memory
//! attributes with the same typed errors a host without them gives, the
//! preflight reports them missing, and [`HostCapabilities::probe`] reports
//! them [`Support::Disabled`]. It is read once per process. Its purpose is to
//! run the "capability absent" code paths on any host (CI runs the backend's
//! tests once more with it). [`HostCapabilities::without`] does the same for
//! one report.
//!
//! ```
//! use igvm_snp_kvm::host::{HostCapabilities, HostFeatures};
//! let host = HostCapabilities::probe();
//! println!("{host}");
//! // Decisions take the report; a masked copy answers as a host without.
//! let without = host.clone().without(HostFeatures::GUEST_MEMFD);
//! assert!(!without.guest_memfd(igvm_snp_kvm::host::DEFAULT_VM_TYPE));
//! ```

use std::fmt;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use kvm_bindings::{
    KVM_CAP_GUEST_MEMFD, KVM_CAP_MEMORY_ATTRIBUTES, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_X86_SNP_VM,
    kvm_create_guest_memfd,
};
use kvm_ioctls::Kvm;
use serde::Serialize;
use vmm_sys_util::errno::Error as Errno;

use crate::preflight::{KVM_DEVICE, PreflightReport, open_kvm};

/// The environment variable naming features to treat as absent
/// (comma-separated: `guest_memfd`, `memory_attributes`, or `all`).
pub const HOST_WITHOUT_VAR: &str = "IGVM_SNP_HOST_WITHOUT";

/// `KVM_X86_DEFAULT_VM`: the VM type of native runs and model launches.
pub const DEFAULT_VM_TYPE: u64 = 0;

/// `KVM_X86_SNP_VM`: the VM type of SEV-SNP launches.
pub const SNP_VM_TYPE: u64 = KVM_X86_SNP_VM as u64;

bitflags::bitflags! {
    /// Host features the library can be told to treat as absent.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct HostFeatures: u32 {
        /// `KVM_CREATE_GUEST_MEMFD` and guest_memfd memslots.
        const GUEST_MEMFD = 1 << 0;
        /// `KVM_SET_MEMORY_ATTRIBUTES` (private memory).
        const MEMORY_ATTRIBUTES = 1 << 1;
    }
}

impl HostFeatures {
    /// Parses a [`HOST_WITHOUT_VAR`] value: comma- or space-separated
    /// feature names (`guest_memfd`, `memory_attributes`, `all`); `-` and
    /// `_` are alike.
    ///
    /// # Errors
    /// The first name that is not a feature.
    ///
    /// ```
    /// use igvm_snp_kvm::host::HostFeatures;
    /// assert_eq!(HostFeatures::parse_list("guest-memfd"), Ok(HostFeatures::GUEST_MEMFD));
    /// assert_eq!(HostFeatures::parse_list("all"), Ok(HostFeatures::all()));
    /// assert!(HostFeatures::parse_list("sev").is_err());
    /// ```
    pub fn parse_list(list: &str) -> Result<Self, String> {
        let mut features = HostFeatures::empty();
        for name in list.split([',', ' ']).filter(|s| !s.is_empty()) {
            features |= match name.replace('-', "_").as_str() {
                "guest_memfd" => HostFeatures::GUEST_MEMFD,
                "memory_attributes" => HostFeatures::MEMORY_ATTRIBUTES,
                "all" => HostFeatures::all(),
                _ => {
                    return Err(format!(
                        "`{name}` is not a host feature (guest_memfd, memory_attributes, all)"
                    ));
                }
            };
        }
        Ok(features)
    }

    /// The features named by [`HOST_WITHOUT_VAR`] in this process's
    /// environment, read once. An unknown name is logged and ignored
    /// ([`HostFeatures::environment_error`] says why).
    pub fn disabled_by_environment() -> HostFeatures {
        HostFeatures::from_environment()
            .as_ref()
            .copied()
            .unwrap_or(HostFeatures::empty())
    }

    /// Why [`HOST_WITHOUT_VAR`] was ignored, when it was: the first name in
    /// it that is not a feature.
    pub fn environment_error() -> Option<&'static str> {
        HostFeatures::from_environment()
            .as_ref()
            .err()
            .map(String::as_str)
    }

    fn from_environment() -> &'static Result<HostFeatures, String> {
        static PARSED: OnceLock<Result<HostFeatures, String>> = OnceLock::new();
        PARSED.get_or_init(|| {
            let parsed = match std::env::var_os(HOST_WITHOUT_VAR) {
                None => Ok(HostFeatures::empty()),
                Some(value) => HostFeatures::parse_list(&value.to_string_lossy()),
            };
            // Once per process, however often the features are asked for.
            if let Err(error) = &parsed {
                tracing::warn!(%error, "{HOST_WITHOUT_VAR} ignored");
            }
            parsed
        })
    }

    /// The features' names as [`HostFeatures::parse_list`] takes them.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter_names()
            .map(|(name, _)| match name {
                "GUEST_MEMFD" => "guest_memfd",
                _ => "memory_attributes",
            })
            .collect()
    }
}

/// Whether a feature is available for a VM type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Support {
    /// It works: the probe used it.
    Yes,
    /// KVM refused it.
    No {
        /// The errno KVM gave (`None` when a capability check said 0).
        #[serde(serialize_with = "errno_name")]
        errno: Option<Errno>,
    },
    /// Treated as absent ([`HOST_WITHOUT_VAR`] or
    /// [`HostCapabilities::without`]).
    Disabled,
    /// Not probed (KVM did not open, or VMs of the type cannot be created).
    NotProbed,
}

fn errno_name<S: serde::Serializer>(errno: &Option<Errno>, s: S) -> Result<S::Ok, S::Error> {
    match errno {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl Support {
    /// Whether the feature can be used.
    pub fn available(self) -> bool {
        self == Support::Yes
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Support::Yes => write!(f, "yes"),
            Support::No { errno: Some(e) } => write!(f, "no ({e})"),
            Support::No { errno: None } => write!(f, "no"),
            Support::Disabled => write!(f, "no (disabled by {HOST_WITHOUT_VAR})"),
            Support::NotProbed => write!(f, "not probed"),
        }
    }
}

/// What one VM type offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmTypeCapabilities {
    /// The VM type (`KVM_CREATE_VM` argument).
    pub vm_type: u64,
    /// Why `KVM_CREATE_VM` of this type failed, if it did.
    #[serde(serialize_with = "errno_name")]
    pub create_error: Option<Errno>,
    /// `KVM_CREATE_GUEST_MEMFD` of one page on a VM of this type.
    pub guest_memfd: Support,
    /// `KVM_CAP_MEMORY_ATTRIBUTES` asked of a VM of this type (0 when
    /// absent or disabled).
    pub memory_attributes: u64,
    /// Whether [`VmTypeCapabilities::memory_attributes`] was masked.
    pub memory_attributes_disabled: bool,
}

impl VmTypeCapabilities {
    /// Whether `KVM_MEMORY_ATTRIBUTE_PRIVATE` is supported.
    pub fn private_memory(&self) -> bool {
        self.memory_attributes & u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE) != 0
    }

    fn probe(kvm: &Kvm, vm_type: u64, disabled: HostFeatures) -> Self {
        let mut caps = VmTypeCapabilities {
            vm_type,
            create_error: None,
            guest_memfd: Support::NotProbed,
            memory_attributes: 0,
            memory_attributes_disabled: disabled.contains(HostFeatures::MEMORY_ATTRIBUTES),
        };
        let vm = match kvm.create_vm_with_type(vm_type) {
            Ok(vm) => vm,
            Err(e) => {
                caps.create_error = Some(e);
                return caps;
            }
        };
        if !caps.memory_attributes_disabled {
            caps.memory_attributes =
                u64::try_from(vm.check_extension_raw(KVM_CAP_MEMORY_ATTRIBUTES.into()))
                    .unwrap_or(0);
        }
        caps.guest_memfd = if disabled.contains(HostFeatures::GUEST_MEMFD) {
            Support::Disabled
        } else {
            match vm.create_guest_memfd(kvm_create_guest_memfd {
                size: 4096,
                flags: 0,
                ..Default::default()
            }) {
                Ok(raw) => {
                    // SAFETY: `raw` is a new file descriptor the kernel just
                    // returned; nothing else owns it. Dropping it closes it.
                    drop(unsafe { OwnedFd::from_raw_fd(raw) });
                    Support::Yes
                }
                Err(e) => Support::No { errno: Some(e) },
            }
        };
        // Not needed for the answer, but a mismatch is worth a log line:
        // the capability is what VMMs usually trust.
        let cap = vm.check_extension_raw(KVM_CAP_GUEST_MEMFD.into()) > 0;
        if cap != matches!(caps.guest_memfd, Support::Yes) && caps.guest_memfd != Support::Disabled
        {
            tracing::debug!(
                vm_type,
                cap,
                created = ?caps.guest_memfd,
                "KVM_CAP_GUEST_MEMFD and KVM_CREATE_GUEST_MEMFD disagree"
            );
        }
        caps
    }
}

/// What this host's KVM offers: the preflight's system-wide view plus a
/// probe of each VM type the library uses (the default type always, the
/// SEV-SNP type when KVM lists it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCapabilities {
    /// The SEV-SNP preflight (system capabilities, SEV device, INIT2).
    pub preflight: PreflightReport,
    /// One entry per VM type probed.
    pub vm_types: Vec<VmTypeCapabilities>,
    /// Features treated as absent.
    #[serde(serialize_with = "feature_names")]
    pub disabled: HostFeatures,
}

fn feature_names<S: serde::Serializer>(f: &HostFeatures, s: S) -> Result<S::Ok, S::Error> {
    f.names().serialize(s)
}

impl HostCapabilities {
    /// Probes `/dev/kvm` and `/dev/sev`, treating the features named by
    /// [`HOST_WITHOUT_VAR`] as absent. Creates (and drops) one VM per VM
    /// type probed.
    pub fn probe() -> Self {
        HostCapabilities::probe_paths(
            Path::new(KVM_DEVICE),
            Path::new(crate::sev::SEV_DEVICE),
            HostFeatures::disabled_by_environment(),
        )
    }

    /// Probes the given devices, treating `disabled` as absent.
    pub fn probe_paths(kvm_path: &Path, sev_path: &Path, disabled: HostFeatures) -> Self {
        let preflight = PreflightReport::probe_paths(kvm_path, sev_path);
        let mut vm_types = Vec::new();
        if let Ok(kvm) = open_kvm(kvm_path) {
            vm_types.push(VmTypeCapabilities::probe(&kvm, DEFAULT_VM_TYPE, disabled));
            if preflight.snp_vm_type() {
                vm_types.push(VmTypeCapabilities::probe(&kvm, SNP_VM_TYPE, disabled));
            }
        }
        HostCapabilities {
            preflight: preflight.without(disabled),
            vm_types,
            disabled,
        }
    }

    /// This report as a host without `features` would give it.
    pub fn without(mut self, features: HostFeatures) -> Self {
        self.disabled |= features;
        self.preflight = self.preflight.without(features);
        for vm in &mut self.vm_types {
            if features.contains(HostFeatures::GUEST_MEMFD) {
                vm.guest_memfd = Support::Disabled;
            }
            if features.contains(HostFeatures::MEMORY_ATTRIBUTES) {
                vm.memory_attributes = 0;
                vm.memory_attributes_disabled = true;
            }
        }
        self
    }

    /// Whether KVM opened.
    pub fn kvm(&self) -> bool {
        self.preflight.kvm_error.is_none()
    }

    /// The probe of `vm_type`, if it was probed.
    pub fn vm_type(&self, vm_type: u64) -> Option<&VmTypeCapabilities> {
        self.vm_types.iter().find(|v| v.vm_type == vm_type)
    }

    /// guest_memfd for `vm_type`.
    pub fn guest_memfd_support(&self, vm_type: u64) -> Support {
        self.vm_type(vm_type)
            .map_or(Support::NotProbed, |v| v.guest_memfd)
    }

    /// Whether VMs of `vm_type` can have guest_memfd memory.
    pub fn guest_memfd(&self, vm_type: u64) -> bool {
        self.guest_memfd_support(vm_type).available()
    }

    /// Whether VMs of `vm_type` can have private memory attributes.
    pub fn private_memory(&self, vm_type: u64) -> bool {
        self.vm_type(vm_type)
            .is_some_and(VmTypeCapabilities::private_memory)
    }

    /// One line naming what a test or a log should know: which branch
    /// this host takes for guest_memfd on the default VM type.
    pub fn guest_memfd_branch(&self) -> String {
        match self.guest_memfd_support(DEFAULT_VM_TYPE) {
            Support::Yes => "guest_memfd present for VM type 0".into(),
            other => format!("guest_memfd absent for VM type 0: {other}"),
        }
    }
}

fn vm_type_name(t: u64) -> &'static str {
    match t {
        DEFAULT_VM_TYPE => "default",
        SNP_VM_TYPE => "SEV-SNP",
        _ => "other",
    }
}

impl fmt::Display for HostCapabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.preflight)?;
        for vm in &self.vm_types {
            write!(f, "VM type {} ({}): ", vm.vm_type, vm_type_name(vm.vm_type))?;
            if let Some(e) = vm.create_error {
                writeln!(f, "KVM_CREATE_VM failed: {e}")?;
                continue;
            }
            let attributes = if vm.memory_attributes_disabled {
                format!("no (disabled by {HOST_WITHOUT_VAR})")
            } else {
                format!("{:#x}", vm.memory_attributes)
            };
            writeln!(
                f,
                "guest_memfd {}, memory attributes {attributes}",
                vm.guest_memfd
            )?;
        }
        if !self.disabled.is_empty() {
            writeln!(
                f,
                "treated as absent ({HOST_WITHOUT_VAR}): {}",
                self.disabled.names().join(", ")
            )?;
        }
        let vmsa = if self.preflight.snp_vm_type() {
            "probed at launch (SNP_LAUNCH_UPDATE answers EINVAL early when it is unknown)"
        } else {
            "unknown (needs an SEV-SNP VM)"
        };
        write!(f, "VMSA page type: {vmsa}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_unknown_names_are_refused() {
        assert_eq!(
            HostFeatures::parse_list("memory_attributes, guest_memfd"),
            Ok(HostFeatures::all())
        );
        assert_eq!(HostFeatures::parse_list(""), Ok(HostFeatures::empty()));
        let e = HostFeatures::parse_list("guest_memfd,sev").unwrap_err();
        assert!(e.contains("`sev`"), "{e}");
    }

    #[test]
    fn a_missing_device_probes_nothing() {
        let h = HostCapabilities::probe_paths(
            Path::new("/nonexistent/kvm"),
            Path::new("/nonexistent/sev"),
            HostFeatures::empty(),
        );
        assert!(!h.kvm());
        assert!(h.vm_types.is_empty());
        assert_eq!(h.guest_memfd_support(DEFAULT_VM_TYPE), Support::NotProbed);
        assert!(!h.guest_memfd(DEFAULT_VM_TYPE));
        assert!(h.to_string().contains("/nonexistent/kvm: cannot open"));
    }

    #[test]
    fn without_masks_every_vm_type_and_the_preflight() {
        let vm = |t| VmTypeCapabilities {
            vm_type: t,
            create_error: None,
            guest_memfd: Support::Yes,
            memory_attributes: 8,
            memory_attributes_disabled: false,
        };
        let mut preflight = PreflightReport::probe_paths(
            Path::new("/nonexistent/kvm"),
            Path::new("/nonexistent/sev"),
        );
        preflight.kvm_error = None;
        preflight.guest_memfd = true;
        preflight.memory_attributes = 8;
        let full = HostCapabilities {
            preflight,
            vm_types: vec![vm(0), vm(4)],
            disabled: HostFeatures::empty(),
        };
        assert!(full.guest_memfd(0) && full.guest_memfd(4) && full.private_memory(4));
        let h = full.clone().without(HostFeatures::GUEST_MEMFD);
        assert_eq!(h.guest_memfd_support(0), Support::Disabled);
        assert_eq!(h.guest_memfd_support(4), Support::Disabled);
        assert!(h.private_memory(4), "attributes were not disabled");
        assert!(!h.preflight.guest_memfd);
        assert!(h.guest_memfd_branch().contains("disabled by"), "{h}");
        let h = h.without(HostFeatures::MEMORY_ATTRIBUTES);
        assert!(!h.private_memory(0) && h.preflight.memory_attributes == 0);
        assert_eq!(h.disabled, HostFeatures::all());
    }
}
