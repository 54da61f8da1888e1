//! Preflight: does this host's KVM and SEV firmware offer what an SEV-SNP
//! launch needs? Probed without creating a VM:
//!
//! * `/dev/kvm` opens;
//! * `KVM_CHECK_EXTENSION(KVM_CAP_VM_TYPES = 235)` has bit 4 (`KVM_X86_SNP_VM`);
//! * `KVM_CAP_GUEST_MEMFD` (234), `KVM_CAP_USER_MEMORY2` (231) are present and
//!   `KVM_CAP_MEMORY_ATTRIBUTES` (233) includes `KVM_MEMORY_ATTRIBUTE_PRIVATE`;
//! * `KVM_GET_DEVICE_ATTR` on the `/dev/kvm` fd, group `KVM_X86_GRP_SEV` (1),
//!   attribute `KVM_X86_SEV_VMSA_FEATURES` (0), gives the supported
//!   `vmsa_features` (INIT2 exists only where it does);
//! * `/dev/sev` opens read-write.
//!
//! ```no_run
//! let report = igvm_snp_kvm::preflight::PreflightReport::probe();
//! println!("{report}");
//! if let Err(e) = report.require_snp() {
//!     eprintln!("{e}");
//! }
//! ```

use std::fmt;
use std::fs::OpenOptions;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use kvm_bindings::{
    KVM_CAP_GUEST_MEMFD, KVM_CAP_MEMORY_ATTRIBUTES, KVM_CAP_USER_MEMORY2, KVM_CAP_VM_TYPES,
    KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES, KVM_X86_SNP_VM,
    kvm_device_attr,
};
use kvm_ioctls::Kvm;
use vmm_sys_util::errno::Error as Errno;
use vmm_sys_util::ioctl::ioctl_with_ref;

use crate::host::HostFeatures;
use igvm_snp::SnpPolicy;

/// The KVM device.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// kvm-ioctls has no device-attribute call on the system fd, and its ioctl
/// numbers are private.
mod nr {
    use kvm_bindings::kvm_device_attr;

    const KVMIO: u32 = 0xAE;
    vmm_sys_util::ioctl_iow_nr!(KVM_GET_DEVICE_ATTR, KVMIO, 0xe2, kvm_device_attr);
}
use nr::KVM_GET_DEVICE_ATTR;

/// The result of reading a KVM device attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrProbe {
    /// Not asked (KVM did not open).
    NotProbed,
    /// The attribute's value.
    Value(u64),
    /// The ioctl failed (`ENXIO`: no such attribute here).
    Failed(Errno),
}

/// `{"value": N}`, `{"error": "…"}` or `null` (not probed).
impl serde::Serialize for AttrProbe {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            AttrProbe::NotProbed => s.serialize_none(),
            AttrProbe::Value(v) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("value", v)?;
                m.end()
            }
            AttrProbe::Failed(e) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("error", &e.to_string())?;
                m.end()
            }
        }
    }
}

/// What the host offers for SEV-SNP.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreflightReport {
    /// The KVM device probed.
    pub kvm_path: PathBuf,
    /// Why it did not open, if it did not.
    pub kvm_error: Option<String>,
    /// `KVM_CAP_VM_TYPES` bitmap (0 when unsupported or not probed).
    pub vm_types: u64,
    /// `KVM_CAP_GUEST_MEMFD`.
    pub guest_memfd: bool,
    /// `KVM_CAP_USER_MEMORY2`.
    pub user_memory2: bool,
    /// `KVM_CAP_MEMORY_ATTRIBUTES` bitmap.
    pub memory_attributes: u64,
    /// `KVM_X86_SEV_VMSA_FEATURES`: the `vmsa_features` INIT2 accepts.
    pub vmsa_features: AttrProbe,
    /// `KVM_X86_SNP_POLICY_BITS`: the guest policy bits SNP_LAUNCH_START
    /// accepts (kernels before it fail with `ENXIO` and apply a fixed mask:
    /// [`PreflightReport::check_policy`]).
    pub snp_policy_bits: AttrProbe,
    /// The SEV device probed.
    pub sev_path: PathBuf,
    /// Why it did not open, if it did not.
    pub sev_error: Option<String>,
    /// Whether SMT is active (`/sys/devices/system/cpu/smt/active`; `None`
    /// when unreadable). The firmware refuses a guest policy without SMT
    /// on such a host. This is Linux's view: a host booted with SMT
    /// switched off in Linux only (`nosmt`) may still have it enabled as
    /// the firmware sees it (PLATFORM_INFO), so only an active SMT is
    /// taken as certain.
    pub smt_active: Option<bool>,
    /// CPU sockets (distinct `physical_package_id`s of the CPUs in sysfs;
    /// `None` when unreadable). The firmware refuses SINGLE_SOCKET on more
    /// than one.
    pub sockets: Option<u32>,
}

/// Something an SEV-SNP launch needs that the host lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The KVM device does not open.
    Kvm {
        /// Path.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// `KVM_X86_SNP_VM` is not among the VM types.
    SnpVmType {
        /// The VM types bitmap.
        vm_types: u64,
    },
    /// No guest_memfd.
    GuestMemfd,
    /// No `KVM_SET_USER_MEMORY_REGION2`.
    UserMemory2,
    /// No private memory attribute.
    PrivateMemoryAttribute {
        /// The attributes bitmap.
        memory_attributes: u64,
    },
    /// No `KVM_X86_SEV_VMSA_FEATURES` (so no KVM_SEV_INIT2).
    VmsaFeatures {
        /// The errno, if the ioctl ran.
        errno: Option<Errno>,
    },
    /// The SEV device does not open.
    SevDevice {
        /// Path.
        path: PathBuf,
        /// Why.
        error: String,
    },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Kvm { path, error } => {
                write!(f, "{} cannot be opened: {error}", path.display())
            }
            Missing::SnpVmType { vm_types } => write!(
                f,
                "KVM does not offer the SEV-SNP VM type (KVM_CAP_VM_TYPES = {vm_types:#x}, bit 4 clear)"
            ),
            Missing::GuestMemfd => write!(f, "KVM lacks guest_memfd (KVM_CAP_GUEST_MEMFD)"),
            Missing::UserMemory2 => {
                write!(
                    f,
                    "KVM lacks KVM_SET_USER_MEMORY_REGION2 (KVM_CAP_USER_MEMORY2)"
                )
            }
            Missing::PrivateMemoryAttribute { memory_attributes } => write!(
                f,
                "KVM lacks the private memory attribute (KVM_CAP_MEMORY_ATTRIBUTES = {memory_attributes:#x})"
            ),
            Missing::VmsaFeatures { errno } => {
                write!(
                    f,
                    "KVM does not report SEV VMSA features (no KVM_SEV_INIT2)"
                )?;
                match errno {
                    Some(e) => write!(f, ": KVM_GET_DEVICE_ATTR: {e}"),
                    None => Ok(()),
                }
            }
            Missing::SevDevice { path, error } => {
                write!(f, "{} cannot be opened: {error}", path.display())
            }
        }
    }
}

/// The host cannot launch SEV-SNP guests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SEV-SNP is not available on this host: {}", list(.missing))]
pub struct PreflightError {
    /// Everything missing.
    pub missing: Vec<Missing>,
}

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn open_kvm(path: &Path) -> Result<Kvm, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| e.to_string())?;
    // Every probe issues KVM ioctls (some with pointers, some returning
    // fds that kvm-ioctls then owns) on this fd: another device answering
    // those numbers could write anywhere or hand out any fd number. So the
    // fd must be the KVM device itself, checked on the open fd.
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.file_type().is_char_device() || meta.rdev() != KVM_DEVICE_NUMBER {
        return Err(format!(
            "not the KVM device (character device {}:{})",
            libc::major(KVM_DEVICE_NUMBER),
            libc::minor(KVM_DEVICE_NUMBER)
        ));
    }
    // SAFETY: `file` is an open fd of the KVM device (checked above), and
    // `into_raw_fd` hands its ownership over: `Kvm` is now its only owner.
    let kvm = unsafe { Kvm::from_raw_fd(file.into_raw_fd()) };
    match kvm.get_api_version() {
        KVM_API_VERSION => Ok(kvm),
        v => Err(format!("KVM API version {v}, not {KVM_API_VERSION}")),
    }
}

/// The device number of `/dev/kvm`: misc major 10, KVM_MINOR 232
/// (`include/linux/miscdevice.h`).
const KVM_DEVICE_NUMBER: libc::dev_t = libc::makedev(10, 232);

/// `KVM_GET_API_VERSION`'s only value since Linux 2.6.22.
const KVM_API_VERSION: i32 = 12;

fn extension(kvm: &Kvm, cap: u32) -> u64 {
    u64::try_from(kvm.check_extension_raw(cap.into())).unwrap_or(0)
}

/// Reads an `u64` attribute of the KVM system fd.
fn system_attr(kvm: &Kvm, group: u32, attr: u64) -> AttrProbe {
    let mut value = 0u64;
    let request = kvm_device_attr {
        flags: 0,
        group,
        attr,
        addr: std::ptr::from_mut(&mut value) as u64,
    };
    // SAFETY: `kvm` is an open /dev/kvm fd; KVM_GET_DEVICE_ATTR reads the
    // `kvm_device_attr` (borrowed for the call) and writes at most one u64
    // to `request.addr`, which points to `value`, alive and not otherwise
    // borrowed until after the call.
    let ret = unsafe { ioctl_with_ref(kvm, KVM_GET_DEVICE_ATTR(), &request) };
    if ret == 0 {
        AttrProbe::Value(value)
    } else {
        AttrProbe::Failed(Errno::last())
    }
}

impl PreflightReport {
    /// Probes [`KVM_DEVICE`] and [`crate::sev::SEV_DEVICE`]; features named
    /// by [`crate::host::HOST_WITHOUT_VAR`] are reported absent.
    pub fn probe() -> Self {
        PreflightReport::probe_paths(Path::new(KVM_DEVICE), Path::new(crate::sev::SEV_DEVICE))
            .without(HostFeatures::disabled_by_environment())
    }

    /// This report as a host without `features` would give it.
    pub fn without(mut self, features: HostFeatures) -> Self {
        if features.contains(HostFeatures::GUEST_MEMFD) {
            self.guest_memfd = false;
        }
        if features.contains(HostFeatures::MEMORY_ATTRIBUTES) {
            self.memory_attributes = 0;
        }
        self
    }

    /// Probes the given devices.
    pub fn probe_paths(kvm_path: &Path, sev_path: &Path) -> Self {
        let mut report = PreflightReport {
            kvm_path: kvm_path.to_path_buf(),
            kvm_error: None,
            vm_types: 0,
            guest_memfd: false,
            user_memory2: false,
            memory_attributes: 0,
            vmsa_features: AttrProbe::NotProbed,
            snp_policy_bits: AttrProbe::NotProbed,
            sev_path: sev_path.to_path_buf(),
            sev_error: None,
            smt_active: smt_active(Path::new(SYSFS_CPU)),
            sockets: sockets(Path::new(SYSFS_CPU)),
        };
        match open_kvm(kvm_path) {
            Ok(kvm) => {
                report.vm_types = extension(&kvm, KVM_CAP_VM_TYPES);
                report.guest_memfd = extension(&kvm, KVM_CAP_GUEST_MEMFD) > 0;
                report.user_memory2 = extension(&kvm, KVM_CAP_USER_MEMORY2) > 0;
                report.memory_attributes = extension(&kvm, KVM_CAP_MEMORY_ATTRIBUTES);
                report.vmsa_features =
                    system_attr(&kvm, KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES.into());
                report.snp_policy_bits =
                    system_attr(&kvm, KVM_X86_GRP_SEV, KVM_X86_SNP_POLICY_BITS);
            }
            Err(e) => report.kvm_error = Some(e),
        }
        let sev = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(sev_path);
        if let Err(e) = sev {
            report.sev_error = Some(e.to_string());
        }
        report
    }

    /// Whether KVM offers `KVM_X86_SNP_VM`.
    pub fn snp_vm_type(&self) -> bool {
        self.vm_types & (1 << KVM_X86_SNP_VM) != 0
    }

    /// The supported `vmsa_features`, if KVM reported them.
    pub fn supported_vmsa_features(&self) -> Option<u64> {
        match self.vmsa_features {
            AttrProbe::Value(v) => Some(v),
            _ => None,
        }
    }

    /// Whether INIT2 would accept these `vmsa_features` (false when KVM
    /// did not report its supported set).
    pub fn supports_vmsa_features(&self, requested: u64) -> bool {
        self.supported_vmsa_features()
            .is_some_and(|supported| requested & !supported == 0)
    }

    /// Everything an SEV-SNP launch needs that is missing, in probe order.
    pub fn missing(&self) -> Vec<Missing> {
        let mut missing = Vec::new();
        if let Some(error) = &self.kvm_error {
            missing.push(Missing::Kvm {
                path: self.kvm_path.clone(),
                error: error.clone(),
            });
        } else {
            if !self.snp_vm_type() {
                missing.push(Missing::SnpVmType {
                    vm_types: self.vm_types,
                });
            }
            if !self.guest_memfd {
                missing.push(Missing::GuestMemfd);
            }
            if !self.user_memory2 {
                missing.push(Missing::UserMemory2);
            }
            if self.memory_attributes & u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE) == 0 {
                missing.push(Missing::PrivateMemoryAttribute {
                    memory_attributes: self.memory_attributes,
                });
            }
            match self.vmsa_features {
                AttrProbe::Value(_) => {}
                AttrProbe::Failed(e) => missing.push(Missing::VmsaFeatures { errno: Some(e) }),
                AttrProbe::NotProbed => missing.push(Missing::VmsaFeatures { errno: None }),
            }
        }
        if let Some(error) = &self.sev_error {
            missing.push(Missing::SevDevice {
                path: self.sev_path.clone(),
                error: error.clone(),
            });
        }
        missing
    }

    /// Succeeds when nothing is missing.
    ///
    /// # Errors
    /// [`PreflightError`] listing everything missing.
    pub fn require_snp(&self) -> Result<(), PreflightError> {
        let missing = self.missing();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PreflightError { missing })
        }
    }

    /// Whether SNP_LAUNCH_START on this host takes the guest policy
    /// `policy`. KVM refuses with a bare `EINVAL` (firmware status 0) bits
    /// outside `KVM_X86_SNP_POLICY_BITS`, or, on kernels without that
    /// attribute, bits outside ABI, SMT, the must-be-one bit, DEBUG and
    /// SINGLE_SOCKET. (Kernels before 6.17 also required SMT and refused
    /// SINGLE_SOCKET; 6.17 left those to the firmware, before the attribute
    /// existed, so without it they are not judged by the kernel's rules
    /// here.) Not probed (KVM did not open): nothing to check against. The
    /// firmware then refuses (POLICY_FAILURE) a policy without SMT while
    /// SMT is active, and SINGLE_SOCKET on more than one socket, as far as
    /// [`PreflightReport::smt_active`] and [`PreflightReport::sockets`]
    /// know.
    ///
    /// # Errors
    /// [`PolicyRefused`] naming the bits and the rule.
    pub fn check_policy(&self, policy: u64) -> Result<(), PolicyRefused> {
        let refused = |bits, rule: String| Err(PolicyRefused { policy, bits, rule });
        match self.snp_policy_bits {
            AttrProbe::NotProbed => return Ok(()),
            AttrProbe::Value(supported) => match policy & !supported {
                0 => {}
                bits => return refused(bits, "not among KVM_X86_SNP_POLICY_BITS".into()),
            },
            AttrProbe::Failed(_) => match policy & !OLD_KERNEL_POLICY_BITS {
                0 => {}
                bits => {
                    return refused(
                        bits,
                        "not among the bits kernels without KVM_X86_SNP_POLICY_BITS take".into(),
                    );
                }
            },
        }
        if self.smt_active == Some(true) && policy & SnpPolicy::SMT == 0 {
            return refused(
                SnpPolicy::SMT,
                "clear (SMT not allowed) while the host has SMT active: the firmware's \
                 POLICY_FAILURE"
                    .into(),
            );
        }
        match self.sockets {
            Some(n) if n > 1 && policy & SnpPolicy::SINGLE_SOCKET != 0 => refused(
                SnpPolicy::SINGLE_SOCKET,
                format!(
                    "set (SINGLE_SOCKET) on a host with {n} sockets: the firmware's POLICY_FAILURE"
                ),
            ),
            _ => Ok(()),
        }
    }
}

/// Where sysfs describes the CPUs.
const SYSFS_CPU: &str = "/sys/devices/system/cpu";

/// `smt/active` under `cpu_dir`: `Some(true)` for "1".
fn smt_active(cpu_dir: &Path) -> Option<bool> {
    let text = std::fs::read_to_string(cpu_dir.join("smt/active")).ok()?;
    match text.trim() {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// The distinct `cpuN/topology/physical_package_id` values under
/// `cpu_dir` (offline CPUs have no topology directory and are skipped).
fn sockets(cpu_dir: &Path) -> Option<u32> {
    let mut packages = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(cpu_dir).ok()?.flatten() {
        let name = entry.file_name();
        let is_cpu = name
            .to_str()
            .and_then(|n| n.strip_prefix("cpu"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let id = entry.path().join("topology/physical_package_id");
        if let Ok(text) = std::fs::read_to_string(id) {
            packages.insert(text.trim().to_string());
        }
    }
    u32::try_from(packages.len()).ok().filter(|&n| n > 0)
}

/// `KVM_X86_SNP_POLICY_BITS` (`arch/x86/include/uapi/asm/kvm.h`; not in
/// kvm-bindings 0.14).
const KVM_X86_SNP_POLICY_BITS: u64 = 1;
/// What kernels before `KVM_X86_SNP_POLICY_BITS` take (`sev.c`'s fixed
/// mask): ABI minor and major (bits 0-15), SMT (16), the must-be-one bit
/// 17, DEBUG (19) and SINGLE_SOCKET (20).
const OLD_KERNEL_POLICY_BITS: u64 = 0xFFFF | 1 << 16 | 1 << 17 | 1 << 19 | 1 << 20;

/// A guest policy SNP_LAUNCH_START on this host would refuse (KVM or the
/// firmware).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SNP_LAUNCH_START would refuse guest policy {policy:#x}: bits {bits:#x} are {rule}")]
pub struct PolicyRefused {
    /// The policy.
    pub policy: u64,
    /// The bits at fault.
    pub bits: u64,
    /// The rule they break.
    pub rule: String,
}

impl fmt::Display for PreflightReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes = |b: bool| if b { "yes" } else { "no" };
        match &self.kvm_error {
            Some(e) => writeln!(f, "{}: cannot open: {e}", self.kvm_path.display())?,
            None => {
                writeln!(f, "{}: open", self.kvm_path.display())?;
                writeln!(
                    f,
                    "  VM types {:#x} (SEV-SNP: {})",
                    self.vm_types,
                    yes(self.snp_vm_type())
                )?;
                writeln!(f, "  guest_memfd: {}", yes(self.guest_memfd))?;
                writeln!(f, "  user memory region 2: {}", yes(self.user_memory2))?;
                writeln!(f, "  memory attributes: {:#x}", self.memory_attributes)?;
                match self.vmsa_features {
                    AttrProbe::Value(v) => writeln!(f, "  SEV VMSA features: {v:#x}")?,
                    AttrProbe::Failed(e) => writeln!(f, "  SEV VMSA features: unavailable ({e})")?,
                    AttrProbe::NotProbed => writeln!(f, "  SEV VMSA features: not probed")?,
                }
                match self.snp_policy_bits {
                    AttrProbe::Value(v) => writeln!(f, "  SNP policy bits: {v:#x}")?,
                    AttrProbe::Failed(e) => writeln!(
                        f,
                        "  SNP policy bits: unavailable ({e}: no SEV-SNP, or a kernel before the \
                         attribute, whose fixed mask then applies)"
                    )?,
                    AttrProbe::NotProbed => writeln!(f, "  SNP policy bits: not probed")?,
                }
            }
        }
        match &self.sev_error {
            Some(e) => writeln!(f, "{}: cannot open: {e}", self.sev_path.display())?,
            None => writeln!(f, "{}: open", self.sev_path.display())?,
        }
        let smt = match self.smt_active {
            Some(active) => yes(active),
            None => "unknown",
        };
        let sockets = self
            .sockets
            .map_or_else(|| "unknown".to_string(), |n| n.to_string());
        write!(
            f,
            "CPUs: SMT active {smt}, sockets {sockets} (Linux's view; a guest policy must \
             allow SMT where it is active)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_device_attr_layout() {
        use std::mem::{offset_of, size_of};
        assert_eq!(size_of::<kvm_device_attr>(), 24);
        assert_eq!(offset_of!(kvm_device_attr, flags), 0);
        assert_eq!(offset_of!(kvm_device_attr, group), 4);
        assert_eq!(offset_of!(kvm_device_attr, attr), 8);
        assert_eq!(offset_of!(kvm_device_attr, addr), 16);
    }

    #[test]
    fn ioctl_number_matches_the_uapi() {
        // _IOW(KVMIO, 0xe2, struct kvm_device_attr) with a 24-byte struct.
        assert_eq!(KVM_GET_DEVICE_ATTR(), 0x4018_aee2);
    }

    /// Another device, or a file, is never taken for KVM: no KVM ioctl is
    /// issued on it.
    #[test]
    fn only_the_kvm_device_is_probed() {
        let file = std::env::temp_dir().join(format!("not-kvm-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        for path in [Path::new("/dev/null"), file.as_path()] {
            let r = PreflightReport::probe_paths(path, Path::new("/nonexistent/sev"));
            let e = r.kvm_error.as_deref().unwrap_or("");
            assert!(
                e.contains("not the KVM device (character device 10:232)"),
                "{}: {e:?}",
                path.display()
            );
            assert_eq!((r.vm_types, r.guest_memfd), (0, false));
        }
        std::fs::remove_file(file).unwrap();
        // Where this process can open /dev/kvm, the check takes it.
        let usable = OpenOptions::new().read(true).write(true).open(KVM_DEVICE);
        if usable.is_ok() {
            assert_eq!(open_kvm(Path::new(KVM_DEVICE)).err(), None);
        }
    }

    /// The policy rules of both kinds of kernel (sev.c's
    /// `snp_launch_start`): with KVM_X86_SNP_POLICY_BITS, bits outside it;
    /// without (ENXIO), bits outside the fixed mask.
    #[test]
    fn policies_kvm_would_refuse_are_named() {
        let mut host = PreflightReport::probe_paths(
            Path::new("/nonexistent/kvm"),
            Path::new("/nonexistent/sev"),
        );
        let default = 0x30000; // SMT, must-be-one
        // The kernel's rules alone: a single-socket host without SMT.
        (host.smt_active, host.sockets) = (Some(false), Some(1));
        assert_eq!(host.check_policy(default | 1 << 18), Ok(()), "not probed");

        // A newer kernel taking the ABI fields, SMT, the must-be-one bit,
        // DEBUG and SINGLE_SOCKET (not MIGRATE_MA, bit 18).
        host.snp_policy_bits = AttrProbe::Value(0x1B_FFFF);
        assert_eq!(host.check_policy(default | 1 << 20), Ok(()));
        assert_eq!(host.check_policy(0x20000), Ok(()), "SMT may be clear");
        let e = host.check_policy(default | 1 << 18 | 1 << 21).unwrap_err();
        assert_eq!(
            (e.bits, e.rule.as_str()),
            (0x24_0000, "not among KVM_X86_SNP_POLICY_BITS")
        );
        assert_eq!(
            e.to_string(),
            "SNP_LAUNCH_START would refuse guest policy 0x270000: bits 0x240000 are not among \
             KVM_X86_SNP_POLICY_BITS"
        );

        // A kernel without the attribute: its fixed mask. SMT clear and
        // SINGLE_SOCKET are left to the kernel (6.17 stopped refusing them).
        host.snp_policy_bits = AttrProbe::Failed(Errno::new(libc::ENXIO));
        for policy in [default | 1 << 19 | 0x0102, 0x20000, default | 1 << 20] {
            assert_eq!(host.check_policy(policy), Ok(()), "{policy:#x}");
        }
        for (policy, bits) in [
            (default | 1 << 18, 1 << 18),
            (default | 1 << 21, 1 << 21),
            (default | 1 << 18 | 1 << 25, 1 << 18 | 1 << 25),
        ] {
            let e = host.check_policy(policy).unwrap_err();
            assert_eq!(e.bits, bits, "{policy:#x}: {e}");
        }
    }

    /// What the firmware refuses at SNP_LAUNCH_START whatever KVM takes
    /// (POLICY_FAILURE): SMT not allowed on a host with SMT active (the
    /// kernel's own sev_smoke_test sets the policy's SMT bit exactly when
    /// `smt/active` is 1), SINGLE_SOCKET on several sockets.
    #[test]
    fn policies_the_firmware_would_refuse_on_this_host_are_named() {
        let mut host = PreflightReport::probe_paths(
            Path::new("/nonexistent/kvm"),
            Path::new("/nonexistent/sev"),
        );
        host.snp_policy_bits = AttrProbe::Value(0x1B_FFFF);
        (host.smt_active, host.sockets) = (Some(true), Some(2));
        assert_eq!(host.check_policy(0x30000), Ok(()));
        let e = host.check_policy(0x20000).unwrap_err();
        assert_eq!(e.bits, 1 << 16);
        assert_eq!(
            e.to_string(),
            "SNP_LAUNCH_START would refuse guest policy 0x20000: bits 0x10000 are clear (SMT \
             not allowed) while the host has SMT active: the firmware's POLICY_FAILURE"
        );
        let e = host.check_policy(0x13_0000).unwrap_err();
        assert_eq!(e.bits, 1 << 20);
        assert!(
            e.rule
                .starts_with("set (SINGLE_SOCKET) on a host with 2 sockets"),
            "{e}"
        );
        // Unknown topology: left to the firmware.
        (host.smt_active, host.sockets) = (None, None);
        assert_eq!(host.check_policy(0x13_0000 & !(1 << 16)), Ok(()));
        (host.smt_active, host.sockets) = (Some(false), Some(1));
        assert_eq!(host.check_policy(0x12_0000), Ok(()));
    }

    /// sysfs as this host has it, and as an SMT host with two sockets and
    /// an offline CPU has it.
    #[test]
    fn smt_and_sockets_are_read_from_sysfs() {
        let dir = std::env::temp_dir().join(format!("igvm-snp-sysfs-{}", std::process::id()));
        let cpu = |n: u32, package: Option<&str>| {
            let topology = dir.join(format!("cpu{n}/topology"));
            std::fs::create_dir_all(&topology).unwrap();
            if let Some(p) = package {
                std::fs::write(topology.join("physical_package_id"), format!("{p}\n")).unwrap();
            }
        };
        cpu(0, Some("0"));
        cpu(1, Some("0"));
        cpu(2, Some("1"));
        cpu(3, None); // offline: no topology
        std::fs::create_dir_all(dir.join("cpufreq")).unwrap();
        std::fs::create_dir_all(dir.join("smt")).unwrap();
        std::fs::write(dir.join("smt/active"), "1\n").unwrap();
        assert_eq!((smt_active(&dir), sockets(&dir)), (Some(true), Some(2)));
        std::fs::write(dir.join("smt/active"), "0\n").unwrap();
        assert_eq!(smt_active(&dir), Some(false));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!((smt_active(&dir), sockets(&dir)), (None, None));
    }

    #[test]
    fn missing_devices_are_reported_not_panicked() {
        let r = PreflightReport::probe_paths(
            Path::new("/nonexistent/kvm"),
            Path::new("/nonexistent/sev"),
        );
        let missing = r.missing();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(
            matches!(&missing[0], Missing::Kvm { path, .. } if path == Path::new("/nonexistent/kvm"))
        );
        assert!(matches!(&missing[1], Missing::SevDevice { .. }));
        let e = r.require_snp().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/kvm cannot be opened"), "{e}");
        assert!(e.contains("/nonexistent/sev cannot be opened"), "{e}");
    }

    #[test]
    fn a_complete_host_passes() {
        let r = PreflightReport {
            kvm_path: KVM_DEVICE.into(),
            kvm_error: None,
            vm_types: 0b1_0001,
            guest_memfd: true,
            user_memory2: true,
            memory_attributes: 8,
            vmsa_features: AttrProbe::Value(0x20),
            snp_policy_bits: AttrProbe::Value(0x1B_FFFF),
            sev_path: "/dev/sev".into(),
            sev_error: None,
            smt_active: Some(true),
            sockets: Some(1),
        };
        assert_eq!(r.require_snp(), Ok(()));
        assert_eq!(r.supported_vmsa_features(), Some(0x20));
        assert!(r.supports_vmsa_features(0x20) && r.supports_vmsa_features(0));
        assert!(!r.supports_vmsa_features(0x21));
        let no_snp = PreflightReport {
            vm_types: 1,
            memory_attributes: 0,
            ..r
        };
        assert_eq!(
            no_snp.missing(),
            vec![
                Missing::SnpVmType { vm_types: 1 },
                Missing::PrivateMemoryAttribute {
                    memory_attributes: 0
                }
            ]
        );
    }
}
