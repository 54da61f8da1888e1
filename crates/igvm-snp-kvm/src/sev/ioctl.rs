//! Thin wrappers over `KVM_MEMORY_ENCRYPT_OP`: the kvm-bindings payload of
//! each command, built only from borrowed buffers, and the one function
//! that issues every SEV command ([`encrypt_op`]) and logs it.
//!
//! The payload structs hold user addresses as `u64`. [`Payload`] ties those
//! addresses to the lifetime of the borrowed memory and its fields are
//! private to this module, so every address the kernel sees points into
//! memory that outlives the call.

use std::marker::PhantomData;
use std::os::fd::RawFd;

use kvm_bindings::{
    kvm_sev_cmd, kvm_sev_init, kvm_sev_snp_launch_finish, kvm_sev_snp_launch_start,
    kvm_sev_snp_launch_update,
};
use kvm_ioctls::VmFd;
use vm_memory::VolatileSlice;
use vm_memory::bitmap::BitmapSlice;
use zerocopy::IntoBytes;

use super::commands::{GHCB_VERSION, IdInput, PAGE_SIZE, SevCommand};
use super::error::CommandContext;
use super::firmware_error::FirmwareError;
use super::progress::{CallFailure, Remaining};

mod sealed {
    pub trait Sealed {}
}

/// A kvm-bindings struct that is the payload of exactly one SEV command.
pub(crate) trait SevPayload: sealed::Sealed {
    /// The command it belongs to.
    const COMMAND: SevCommand;
}

/// Implements [`SevPayload`] for `$t`, whose size must be the `$size`
/// bytes of the kernel's struct for `$cmd` (checked at compile time: the
/// kernel copies exactly that many bytes from and to `kvm_sev_cmd::data`).
macro_rules! payload_of {
    ($t:ty, $cmd:expr, $size:expr) => {
        const _: () = assert!(size_of::<$t>() == $size);
        impl sealed::Sealed for $t {}
        impl SevPayload for $t {
            const COMMAND: SevCommand = $cmd;
        }
    };
}
const _: () = assert!(size_of::<kvm_sev_cmd>() == 24);
payload_of!(kvm_sev_init, SevCommand::Init2, 48);
payload_of!(kvm_sev_snp_launch_start, SevCommand::LaunchStart, 64);
payload_of!(kvm_sev_snp_launch_update, SevCommand::LaunchUpdate, 64);
payload_of!(kvm_sev_snp_launch_finish, SevCommand::LaunchFinish, 88);

/// A command payload whose user addresses borrow memory for `'a`.
#[derive(Debug)]
pub(crate) struct Payload<'a, T> {
    raw: T,
    _borrows: PhantomData<VolatileSlice<'a>>,
}

impl Payload<'static, kvm_sev_init> {
    /// KVM_SEV_INIT2: `vmsa_features`, flags 0, GHCB version 2.
    pub(crate) fn init2(vmsa_features: u64) -> Self {
        Payload {
            raw: kvm_sev_init {
                vmsa_features,
                ghcb_version: GHCB_VERSION,
                ..Default::default()
            },
            _borrows: PhantomData,
        }
    }
}

impl Payload<'static, kvm_sev_snp_launch_start> {
    /// SNP_LAUNCH_START: policy and GOSVW, flags 0.
    pub(crate) fn launch_start(policy: u64, gosvw: [u8; 16]) -> Self {
        Payload {
            raw: kvm_sev_snp_launch_start {
                policy,
                gosvw,
                ..Default::default()
            },
            _borrows: PhantomData,
        }
    }
}

impl<'a> Payload<'a, kvm_sev_snp_launch_update> {
    /// SNP_LAUNCH_UPDATE of `pages` pages of type `page_type` at `gfn`
    /// from `source`; `None` when `source` is shorter than `pages` pages
    /// or the length overflows. A ZERO update passes no source (`uaddr`
    /// 0, which KVM ignores for ZERO).
    pub(crate) fn launch_update<B: BitmapSlice>(
        gfn: u64,
        pages: u64,
        page_type: u8,
        source: Option<VolatileSlice<'a, B>>,
    ) -> Option<Self> {
        let len = pages.checked_mul(PAGE_SIZE)?;
        let uaddr = match source {
            Some(s) => {
                if (s.len() as u64) < len {
                    return None;
                }
                s.ptr_guard_mut().as_ptr() as u64
            }
            None => 0,
        };
        Some(Payload {
            raw: kvm_sev_snp_launch_update {
                gfn_start: gfn,
                uaddr,
                len,
                type_: page_type,
                ..Default::default()
            },
            _borrows: PhantomData,
        })
    }

    /// What the kernel left to do after a successful call.
    pub(crate) fn remaining(&self) -> Remaining {
        Remaining {
            gfn: self.raw.gfn_start,
            pages: self.raw.len / PAGE_SIZE,
        }
    }
}

impl<'a> Payload<'a, kvm_sev_snp_launch_finish> {
    /// SNP_LAUNCH_FINISH (the 88-byte uAPI struct, with `vcek_disabled`).
    pub(crate) fn launch_finish(
        id: Option<IdInput<'a>>,
        vcek_disabled: bool,
        host_data: [u8; 32],
    ) -> Self {
        let mut raw = kvm_sev_snp_launch_finish {
            vcek_disabled: u8::from(vcek_disabled),
            host_data,
            ..Default::default()
        };
        if let Some(id) = id {
            raw.id_block_uaddr = id.block.as_bytes().as_ptr() as u64;
            raw.id_auth_uaddr = id.auth.as_bytes().as_ptr() as u64;
            raw.id_block_en = 1;
            raw.auth_key_en = u8::from(id.author_key_enabled);
        }
        Payload {
            raw,
            _borrows: PhantomData,
        }
    }
}

/// Issues one SEV command on `vm` with the `/dev/sev` fd `sev_fd`; every
/// `KVM_MEMORY_ENCRYPT_OP` of this crate goes through here. Logs the
/// command, GPA range and page type, and on failure the errno and the
/// firmware status.
pub(crate) fn encrypt_op<T: SevPayload>(
    vm: &VmFd,
    sev_fd: RawFd,
    payload: &mut Payload<'_, T>,
    context: &CommandContext,
) -> Result<(), CallFailure> {
    let mut cmd = kvm_sev_cmd {
        id: T::COMMAND.id(),
        data: std::ptr::from_mut(&mut payload.raw) as u64,
        // A valid fd is never negative; -1 becomes an fd KVM rejects.
        sev_fd: u32::try_from(sev_fd).unwrap_or(u32::MAX),
        ..Default::default()
    };
    tracing::debug!(target: "igvm_snp_kvm::sev", "{context}: issuing");
    // kvm-ioctls' `encrypt_op_sev` is a safe fn, but what makes this call
    // sound is ours to show, so it goes through the unsafe `encrypt_op`.
    // SAFETY: KVM_MEMORY_ENCRYPT_OP reads the 24-byte `kvm_sev_cmd` at
    // `&mut cmd` and copies it back whole (with `error` set), all within
    // `cmd`. `cmd.data` points
    // at `payload.raw`, borrowed mutably for this call, whose type is the
    // kernel's struct for `T::COMMAND` (size checked by `payload_of!`), so
    // the kernel reads and writes exactly that struct. The user addresses
    // inside it point into buffers `payload` borrows for `'_` (`Payload`'s
    // constructors, private to this module): a LAUNCH_UPDATE source of at
    // least `len` bytes (checked there; the kernel advances `uaddr` and
    // `len` together within it on a partial update, and may write a
    // rejected CPUID page back into it: the slice is a mutable volatile
    // one) or 0 for ZERO pages, which KVM does not read; the 96-byte ID
    // block and 4096-byte ID auth of LAUNCH_FINISH.
    let result = unsafe { vm.encrypt_op(&mut cmd) };
    let firmware = FirmwareError::from_code(cmd.error);
    match result {
        Ok(()) => {
            tracing::debug!(target: "igvm_snp_kvm::sev", "{context}: ok");
            Ok(())
        }
        Err(errno) => {
            tracing::warn!(
                target: "igvm_snp_kvm::sev",
                command = T::COMMAND.name(),
                errno = errno.errno(),
                firmware = %firmware,
                "{context}: failed: {errno}, firmware status {firmware}"
            );
            Err(CallFailure {
                errno,
                firmware,
                rejection: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn kvm_sev_cmd_layout() {
        assert_eq!(size_of::<kvm_sev_cmd>(), 24);
        assert_eq!(offset_of!(kvm_sev_cmd, id), 0);
        assert_eq!(offset_of!(kvm_sev_cmd, data), 8);
        assert_eq!(offset_of!(kvm_sev_cmd, error), 16);
        assert_eq!(offset_of!(kvm_sev_cmd, sev_fd), 20);
    }

    #[test]
    fn kvm_sev_init_layout() {
        assert_eq!(size_of::<kvm_sev_init>(), 48);
        assert_eq!(offset_of!(kvm_sev_init, vmsa_features), 0);
        assert_eq!(offset_of!(kvm_sev_init, flags), 8);
        assert_eq!(offset_of!(kvm_sev_init, ghcb_version), 12);
        assert_eq!(offset_of!(kvm_sev_init, pad2), 16);
    }

    #[test]
    fn launch_start_layout() {
        assert_eq!(size_of::<kvm_sev_snp_launch_start>(), 64);
        assert_eq!(offset_of!(kvm_sev_snp_launch_start, policy), 0);
        assert_eq!(offset_of!(kvm_sev_snp_launch_start, gosvw), 8);
        assert_eq!(offset_of!(kvm_sev_snp_launch_start, flags), 0x18);
        assert_eq!(offset_of!(kvm_sev_snp_launch_start, pad1), 0x20);
    }

    #[test]
    fn launch_update_layout() {
        assert_eq!(size_of::<kvm_sev_snp_launch_update>(), 64);
        assert_eq!(offset_of!(kvm_sev_snp_launch_update, gfn_start), 0);
        assert_eq!(offset_of!(kvm_sev_snp_launch_update, uaddr), 8);
        assert_eq!(offset_of!(kvm_sev_snp_launch_update, len), 0x10);
        assert_eq!(offset_of!(kvm_sev_snp_launch_update, type_), 0x18);
        assert_eq!(offset_of!(kvm_sev_snp_launch_update, flags), 0x1a);
        assert_eq!(offset_of!(kvm_sev_snp_launch_update, pad2), 0x20);
    }

    #[test]
    fn launch_finish_layout_is_the_88_byte_uapi() {
        assert_eq!(size_of::<kvm_sev_snp_launch_finish>(), 88);
        assert_eq!(offset_of!(kvm_sev_snp_launch_finish, id_block_uaddr), 0);
        assert_eq!(offset_of!(kvm_sev_snp_launch_finish, id_auth_uaddr), 8);
        assert_eq!(offset_of!(kvm_sev_snp_launch_finish, id_block_en), 0x10);
        assert_eq!(offset_of!(kvm_sev_snp_launch_finish, auth_key_en), 0x11);
        assert_eq!(offset_of!(kvm_sev_snp_launch_finish, vcek_disabled), 0x12);
        assert_eq!(offset_of!(kvm_sev_snp_launch_finish, host_data), 0x13);
        assert_eq!(offset_of!(kvm_sev_snp_launch_finish, flags), 0x36);
        assert_eq!(offset_of!(kvm_sev_snp_launch_finish, pad1), 0x38);
    }

    #[test]
    fn payloads_carry_the_inputs() {
        let p = Payload::init2(0x20);
        assert_eq!(
            (p.raw.vmsa_features, p.raw.flags, p.raw.ghcb_version),
            (0x20, 0, 2)
        );
        let p = Payload::launch_start(0x30000, [7; 16]);
        assert_eq!(
            (p.raw.policy, p.raw.gosvw, p.raw.flags),
            (0x30000, [7; 16], 0)
        );

        let mut buf = vec![0u8; 2 * 4096];
        let addr = buf.as_ptr() as u64;
        let p = Payload::launch_update(0x100, 2, 6, Some((&mut buf[..]).into())).unwrap();
        assert_eq!(
            (
                p.raw.gfn_start,
                p.raw.uaddr,
                p.raw.len,
                p.raw.type_,
                p.raw.flags
            ),
            (0x100, addr, 0x2000, 6, 0)
        );
        assert_eq!(
            p.remaining(),
            Remaining {
                gfn: 0x100,
                pages: 2
            }
        );
        let mut short = vec![0u8; 4096];
        assert!(Payload::launch_update(0, 2, 1, Some((&mut short[..]).into())).is_none());
        assert!(Payload::launch_update::<()>(0, u64::MAX, 3, None).is_none());
        let p = Payload::launch_update::<()>(5, 3, 3, None).unwrap();
        assert_eq!((p.raw.uaddr, p.raw.len), (0, 3 * 4096));
    }

    #[test]
    fn finish_payload_sets_flags_and_addresses() {
        use zerocopy::FromZeros;
        let block = igvm_snp::IdBlock::new_zeroed();
        let auth = igvm_snp::IdAuth::new_zeroed();
        let p = Payload::launch_finish(None, true, [9; 32]);
        assert_eq!(
            (p.raw.id_block_en, p.raw.auth_key_en, p.raw.vcek_disabled),
            (0, 0, 1)
        );
        assert_eq!((p.raw.id_block_uaddr, p.raw.host_data), (0, [9; 32]));
        let id = IdInput {
            block: &block,
            auth: &auth,
            author_key_enabled: true,
        };
        let p = Payload::launch_finish(Some(id), false, [0; 32]);
        assert_eq!(
            (p.raw.id_block_en, p.raw.auth_key_en, p.raw.vcek_disabled),
            (1, 1, 0)
        );
        assert_eq!(p.raw.id_block_uaddr, std::ptr::from_ref(&block) as u64);
        assert_eq!(p.raw.id_auth_uaddr, std::ptr::from_ref(&auth) as u64);
    }
}
