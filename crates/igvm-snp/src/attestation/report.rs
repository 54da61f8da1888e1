//! The SEV-SNP ATTESTATION_REPORT: its wire layout ([`RawReport`]) and a
//! checked, typed view of it ([`AttestationReport`]).
//!
//! Layout (SEV-SNP firmware ABI, "ATTESTATION_REPORT Structure"; the same
//! offsets in the virtee `sev` crate's `AttestationReport` decoder and in
//! go-sev-guest's `abi` package), all integers little-endian:
//!
//! ```text
//! 0x000 VERSION            u32   2, 3, 4 or 5
//! 0x004 GUEST_SVN          u32
//! 0x008 POLICY             u64   the guest policy given to SNP_LAUNCH_START
//! 0x010 FAMILY_ID          [16]
//! 0x020 IMAGE_ID           [16]
//! 0x030 VMPL               u32   the VMPL the report was requested for
//! 0x034 SIGNATURE_ALGO     u32   1 = ECDSA P-384 with SHA-384
//! 0x038 CURRENT_TCB        u64
//! 0x040 PLATFORM_INFO      u64
//! 0x048 KEY_INFO           u32   bit 0 AUTHOR_KEY_EN, 1 MASK_CHIP_KEY, 4:2 SIGNING_KEY
//! 0x04C reserved           [4]
//! 0x050 REPORT_DATA        [64]  chosen by the guest
//! 0x090 MEASUREMENT        [48]  the launch digest
//! 0x0C0 HOST_DATA          [32]  given to SNP_LAUNCH_FINISH
//! 0x0E0 ID_KEY_DIGEST      [48]  SHA-384 of the ID public key
//! 0x110 AUTHOR_KEY_DIGEST  [48]  SHA-384 of the author public key
//! 0x140 REPORT_ID          [32]
//! 0x160 REPORT_ID_MA       [32]
//! 0x180 REPORTED_TCB       u64   the TCB of the VCEK that signed the report
//! 0x188 CPUID_FAM_ID       u8    version 3 and later (reserved in version 2)
//! 0x189 CPUID_MOD_ID       u8    version 3 and later
//! 0x18A CPUID_STEP         u8    version 3 and later
//! 0x18B reserved           [21]
//! 0x1A0 CHIP_ID            [64]
//! 0x1E0 COMMITTED_TCB      u64
//! 0x1E8 CURRENT_BUILD, CURRENT_MINOR, CURRENT_MAJOR  u8 each; 0x1EB reserved
//! 0x1EC COMMITTED_BUILD, COMMITTED_MINOR, COMMITTED_MAJOR; 0x1EF reserved
//! 0x1F0 LAUNCH_TCB         u64
//! 0x1F8 LAUNCH_MIT_VECTOR  u64   version 5 (reserved before)
//! 0x200 CURRENT_MIT_VECTOR u64   version 5 (reserved before)
//! 0x208 reserved           [152]
//! 0x2A0 SIGNATURE          [512] R [72] and S [72], little-endian; reserved
//! 0x4A0 end (1184 bytes); the signature covers bytes 0x000..0x2A0
//! ```
//!
//! Version 4 is accepted with the version 3 layout: firmware 1.55.31 on
//! Milan emits it with no public layout change (virtee/sev PR #307,
//! go-sev-guest PR #158).

use std::fmt;

use serde::Serialize;
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::digest::LaunchDigest;
use crate::id_block::Signature;

/// Bytes in an attestation report.
pub const REPORT_SIZE: usize = 0x4A0;

/// Bytes the signature covers: the report up to the signature.
pub const SIGNED_SIZE: usize = 0x2A0;

/// `SIGNATURE_ALGO` for ECDSA P-384 with SHA-384, the only one defined.
pub const SIGNATURE_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// The report versions this module reads.
pub const KNOWN_VERSIONS: [u32; 4] = [2, 3, 4, 5];

/// The attestation report as the firmware writes it: every field at its
/// offset, little-endian, no padding. [`AttestationReport::parse`] checks
/// it; this struct is also how a report is built (tests, fuzzing).
#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct RawReport {
    /// `VERSION`.
    pub version: U32,
    /// `GUEST_SVN`.
    pub guest_svn: U32,
    /// `POLICY`.
    pub policy: U64,
    /// `FAMILY_ID`.
    pub family_id: [u8; 16],
    /// `IMAGE_ID`.
    pub image_id: [u8; 16],
    /// `VMPL`.
    pub vmpl: U32,
    /// `SIGNATURE_ALGO`.
    pub signature_algo: U32,
    /// `CURRENT_TCB`.
    pub current_tcb: U64,
    /// `PLATFORM_INFO`.
    pub platform_info: U64,
    /// `KEY_INFO`.
    pub key_info: U32,
    /// Reserved.
    pub reserved0: [u8; 4],
    /// `REPORT_DATA`.
    pub report_data: [u8; 64],
    /// `MEASUREMENT`.
    pub measurement: [u8; 48],
    /// `HOST_DATA`.
    pub host_data: [u8; 32],
    /// `ID_KEY_DIGEST`.
    pub id_key_digest: [u8; 48],
    /// `AUTHOR_KEY_DIGEST`.
    pub author_key_digest: [u8; 48],
    /// `REPORT_ID`.
    pub report_id: [u8; 32],
    /// `REPORT_ID_MA`.
    pub report_id_ma: [u8; 32],
    /// `REPORTED_TCB`.
    pub reported_tcb: U64,
    /// `CPUID_FAM_ID`, `CPUID_MOD_ID`, `CPUID_STEP` (version 3 and later;
    /// reserved in version 2).
    pub cpuid: [u8; 3],
    /// Reserved.
    pub reserved1: [u8; 21],
    /// `CHIP_ID`.
    pub chip_id: [u8; 64],
    /// `COMMITTED_TCB`.
    pub committed_tcb: U64,
    /// `CURRENT_BUILD`, `CURRENT_MINOR`, `CURRENT_MAJOR`.
    pub current_version: [u8; 3],
    /// Reserved.
    pub reserved2: u8,
    /// `COMMITTED_BUILD`, `COMMITTED_MINOR`, `COMMITTED_MAJOR`.
    pub committed_version: [u8; 3],
    /// Reserved.
    pub reserved3: u8,
    /// `LAUNCH_TCB`.
    pub launch_tcb: U64,
    /// `LAUNCH_MIT_VECTOR` (version 5; reserved before).
    pub launch_mit_vector: U64,
    /// `CURRENT_MIT_VECTOR` (version 5; reserved before).
    pub current_mit_vector: U64,
    /// Reserved.
    pub reserved4: [u8; 152],
    /// `SIGNATURE`: R and S little-endian, zero-extended to 72 bytes.
    pub signature: Signature,
}

impl RawReport {
    /// Signs the report as the firmware does, for tests and models of the
    /// firmware: SIGNATURE_ALGO 1, then ECDSA P-384 / SHA-384 over bytes
    /// 0x000..0x2A0 into SIGNATURE.
    ///
    /// ```
    /// use igvm_snp::attestation::RawReport;
    /// use p384::ecdsa::SigningKey;
    /// use zerocopy::{FromZeros, IntoBytes};
    /// let key = SigningKey::from_slice(&[7; 48]).unwrap();
    /// let mut raw = RawReport::new_zeroed();
    /// raw.version.set(3);
    /// raw.sign_with(&key);
    /// assert_eq!(raw.signature_algo.get(), 1);
    /// assert_ne!(raw.signature.r, [0; 72]);
    /// ```
    pub fn sign_with(&mut self, key: &p384::ecdsa::SigningKey) {
        use p384::ecdsa::signature::Signer;
        self.signature_algo.set(SIGNATURE_ALGO_ECDSA_P384_SHA384);
        let sig: p384::ecdsa::Signature = key.sign(&self.as_bytes()[..SIGNED_SIZE]);
        self.signature = Signature::from_p384(&sig);
    }
}

/// Why bytes are not an attestation report this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Fewer bytes than a report.
    #[error("an attestation report is {REPORT_SIZE} bytes; got only {len}")]
    Short {
        /// Bytes given.
        len: usize,
    },
    /// More bytes than a report.
    #[error("an attestation report is {REPORT_SIZE} bytes; got {len} (trailing bytes)")]
    Long {
        /// Bytes given.
        len: usize,
    },
    /// A `VERSION` other than 2, 3, 4 or 5.
    #[error("report VERSION {version} (offset 0x0) is not one of 2, 3, 4, 5")]
    UnknownVersion {
        /// The version field.
        version: u32,
    },
    /// A reserved field with a byte other than zero.
    #[error(
        "reserved field {field} (offset {offset:#x}, {len} bytes) is not zero: byte {at:#x} is {value:#04x}"
    )]
    ReservedNotZero {
        /// The field, by the name the layout gives it.
        field: &'static str,
        /// Its offset in the report.
        offset: usize,
        /// Its length.
        len: usize,
        /// Offset of the first non-zero byte.
        at: usize,
        /// That byte.
        value: u8,
    },
    /// Reserved bits set in `KEY_INFO`.
    #[error("KEY_INFO (offset 0x48) has reserved bits 31:5 set: {key_info:#x}")]
    KeyInfoReservedBits {
        /// The whole field.
        key_info: u32,
    },
}

/// How a report's 64-bit TCB fields are laid out, which depends on the
/// processor generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TcbLayout {
    /// Milan and Genoa: BOOT_LOADER byte 0, TEE byte 1, SNP byte 6,
    /// MICROCODE byte 7.
    MilanGenoa,
    /// Turin and later (family 0x1A): FMC byte 0, BOOT_LOADER byte 1, TEE
    /// byte 2, SNP byte 3, MICROCODE byte 7.
    Turin,
}

/// A TCB version: the security version numbers of the firmware components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct TcbVersion {
    /// The 64-bit field as it is in the report.
    pub raw: u64,
    /// How `raw` was decoded.
    pub layout: TcbLayout,
    /// FMC SVN (Turin and later).
    pub fmc: Option<u8>,
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS (TEE) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Lowest microcode patch level of all cores.
    pub microcode: u8,
}

impl TcbVersion {
    /// Decodes a TCB field.
    ///
    /// ```
    /// use igvm_snp::attestation::{TcbLayout, TcbVersion};
    /// let t = TcbVersion::decode(0x7308_0000_0000_0003, TcbLayout::MilanGenoa);
    /// assert_eq!((t.bootloader, t.tee, t.snp, t.microcode), (3, 0, 8, 0x73));
    /// assert_eq!(t.fmc, None);
    /// ```
    pub fn decode(raw: u64, layout: TcbLayout) -> Self {
        let b = raw.to_le_bytes();
        match layout {
            TcbLayout::MilanGenoa => TcbVersion {
                raw,
                layout,
                fmc: None,
                bootloader: b[0],
                tee: b[1],
                snp: b[6],
                microcode: b[7],
            },
            TcbLayout::Turin => TcbVersion {
                raw,
                layout,
                fmc: Some(b[0]),
                bootloader: b[1],
                tee: b[2],
                snp: b[3],
                microcode: b[7],
            },
        }
    }
}

impl fmt::Display for TcbVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let svns = [self.bootloader, self.tee, self.snp, self.microcode];
        write_tcb(f, self.fmc, svns)
    }
}

/// A TCB's components as `[fmc N, ]bootloader N, tee N, snp N, microcode N`
/// (`svns` in that order, FMC only where there is one).
pub(crate) fn write_tcb(f: &mut fmt::Formatter<'_>, fmc: Option<u8>, svns: [u8; 4]) -> fmt::Result {
    if let Some(fmc) = fmc {
        write!(f, "fmc {fmc}, ")?;
    }
    let [bootloader, tee, snp, microcode] = svns;
    write!(
        f,
        "bootloader {bootloader}, tee {tee}, snp {snp}, microcode {microcode}"
    )
}

/// The key that signed a report (`KEY_INFO` bits 4:2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningKey {
    /// The Versioned Chip Endorsement Key (0).
    Vcek,
    /// The Versioned Loaded Endorsement Key (1).
    Vlek,
    /// Not signed (7).
    None,
    /// A reserved value (2 to 6).
    Reserved(u8),
}

/// `KEY_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct KeyInfo {
    /// `AUTHOR_KEY_EN`: AUTHOR_KEY_DIGEST holds the author key's digest.
    pub author_key_en: bool,
    /// `MASK_CHIP_KEY`: the firmware wrote zeros instead of a signature.
    pub mask_chip_key: bool,
    /// `SIGNING_KEY`.
    pub signing_key: SigningKey,
}

impl KeyInfo {
    fn decode(v: u32) -> Self {
        KeyInfo {
            author_key_en: v & 1 != 0,
            mask_chip_key: v & 2 != 0,
            signing_key: match (v >> 2) & 7 {
                0 => SigningKey::Vcek,
                1 => SigningKey::Vlek,
                7 => SigningKey::None,
                r => SigningKey::Reserved(r as u8),
            },
        }
    }
}

/// The processor the report was made on (`CPUID_FAM_ID`, `CPUID_MOD_ID`,
/// `CPUID_STEP`; report version 3 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CpuId {
    /// Family, extended family included (0x19 Milan/Genoa, 0x1A Turin).
    pub family: u8,
    /// Model, extended model included.
    pub model: u8,
    /// Stepping.
    pub stepping: u8,
}

impl CpuId {
    /// The CPUID 1 EAX signature of this family, model and stepping: what a
    /// VMM such as QEMU writes into the APs' RDX, and so what the
    /// kvm-legacy profile takes as `cpu_signature`.
    ///
    /// ```
    /// use igvm_snp::attestation::CpuId;
    /// let milan = CpuId { family: 0x19, model: 0x01, stepping: 0x01 };
    /// assert_eq!(milan.signature(), 0xA00F11);
    /// ```
    pub fn signature(&self) -> u32 {
        crate::kvm_legacy::cpu_signature(
            u32::from(self.family),
            u32::from(self.model),
            u32::from(self.stepping),
        )
    }
}

/// A firmware version: major, minor, build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct FirmwareVersion {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Build.
    pub build: u8,
}

impl FirmwareVersion {
    /// From the report's byte order: build, minor, major.
    fn from_bytes(b: [u8; 3]) -> Self {
        FirmwareVersion {
            build: b[0],
            minor: b[1],
            major: b[2],
        }
    }
}

impl fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.build)
    }
}

/// A checked attestation report: known version, zero reserved fields,
/// fields decoded.
///
/// ```
/// use igvm_snp::attestation::{AttestationReport, RawReport, REPORT_SIZE};
/// use zerocopy::{FromZeros, IntoBytes};
/// let mut raw = RawReport::new_zeroed();
/// raw.version.set(3);
/// raw.cpuid = [0x19, 0x01, 0x01];
/// raw.measurement = [0xAB; 48];
/// let report = AttestationReport::parse(raw.as_bytes())?;
/// assert_eq!(report.cpuid.unwrap().signature(), 0xA00F11);
/// assert_eq!(report.measurement.as_bytes(), &[0xAB; 48]);
/// assert!(AttestationReport::parse(&raw.as_bytes()[..100]).is_err());
/// # Ok::<(), igvm_snp::attestation::ReportError>(())
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct AttestationReport {
    /// `VERSION`.
    pub version: u32,
    /// `GUEST_SVN`.
    pub guest_svn: u32,
    /// `POLICY`, the guest policy.
    pub policy: u64,
    /// `FAMILY_ID`.
    pub family_id: [u8; 16],
    /// `IMAGE_ID`.
    pub image_id: [u8; 16],
    /// `VMPL`.
    pub vmpl: u32,
    /// `SIGNATURE_ALGO`.
    pub signature_algo: u32,
    /// `CURRENT_TCB`.
    pub current_tcb: TcbVersion,
    /// `PLATFORM_INFO` (bit 0 SMT enabled, 1 TSME enabled, 2 ECC, 3 RAPL
    /// disabled, 4 ciphertext hiding, 5 alias check complete).
    pub platform_info: u64,
    /// `KEY_INFO`.
    pub key_info: KeyInfo,
    /// `REPORT_DATA`.
    #[serde(serialize_with = "hex")]
    pub report_data: [u8; 64],
    /// `MEASUREMENT`: the launch digest.
    pub measurement: LaunchDigest,
    /// `HOST_DATA`.
    #[serde(serialize_with = "hex")]
    pub host_data: [u8; 32],
    /// `ID_KEY_DIGEST`.
    #[serde(serialize_with = "hex")]
    pub id_key_digest: [u8; 48],
    /// `AUTHOR_KEY_DIGEST`.
    #[serde(serialize_with = "hex")]
    pub author_key_digest: [u8; 48],
    /// `REPORT_ID`.
    #[serde(serialize_with = "hex")]
    pub report_id: [u8; 32],
    /// `REPORT_ID_MA`.
    #[serde(serialize_with = "hex")]
    pub report_id_ma: [u8; 32],
    /// `REPORTED_TCB`: the TCB of the key that signed the report.
    pub reported_tcb: TcbVersion,
    /// `CPUID_FAM_ID`, `CPUID_MOD_ID`, `CPUID_STEP` (version 3 and later).
    pub cpuid: Option<CpuId>,
    /// `CHIP_ID` (zeros when the platform masks it: MASK_CHIP_ID in SNP_CONFIG).
    #[serde(serialize_with = "hex")]
    pub chip_id: [u8; 64],
    /// `COMMITTED_TCB`.
    pub committed_tcb: TcbVersion,
    /// `CURRENT_MAJOR.CURRENT_MINOR.CURRENT_BUILD`.
    pub current_version: FirmwareVersion,
    /// `COMMITTED_MAJOR.COMMITTED_MINOR.COMMITTED_BUILD`.
    pub committed_version: FirmwareVersion,
    /// `LAUNCH_TCB`.
    pub launch_tcb: TcbVersion,
    /// `LAUNCH_MIT_VECTOR` (version 5).
    pub launch_mit_vector: Option<u64>,
    /// `CURRENT_MIT_VECTOR` (version 5).
    pub current_mit_vector: Option<u64>,
    #[serde(skip)]
    raw: Box<RawReport>,
}

fn hex<S: serde::Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&HexBytes(v))
}

/// Bytes shown as lower-case hexadecimal digits.
struct HexBytes<'a>(&'a [u8]);

impl fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Lower-case hexadecimal digits of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    HexBytes(bytes).to_string()
}

/// Fails on the first non-zero byte of a reserved range.
fn reserved(
    bytes: &[u8],
    field: &'static str,
    offset: usize,
    len: usize,
) -> Result<(), ReportError> {
    match bytes[offset..offset + len].iter().position(|b| *b != 0) {
        None => Ok(()),
        Some(i) => Err(ReportError::ReservedNotZero {
            field,
            offset,
            len,
            at: offset + i,
            value: bytes[offset + i],
        }),
    }
}

impl AttestationReport {
    /// Parses and checks a report: exactly [`REPORT_SIZE`] bytes, a known
    /// version, zero reserved fields (those of its version) and no reserved
    /// `KEY_INFO` bit. The signature is not checked here (see
    /// [`crate::attestation::verify_report_signature`]).
    ///
    /// # Errors
    /// [`ReportError`], naming the field and its offset.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReportError> {
        let len = bytes.len();
        if len < REPORT_SIZE {
            return Err(ReportError::Short { len });
        }
        if len > REPORT_SIZE {
            return Err(ReportError::Long { len });
        }
        let raw = RawReport::read_from_bytes(bytes).map_err(|_| ReportError::Short { len })?;
        let version = raw.version.get();
        if !KNOWN_VERSIONS.contains(&version) {
            return Err(ReportError::UnknownVersion { version });
        }
        reserved(bytes, "after KEY_INFO", 0x4C, 4)?;
        if version == 2 {
            reserved(
                bytes,
                "after REPORTED_TCB (CPUID fields before version 3)",
                0x188,
                0x18,
            )?;
        } else {
            reserved(bytes, "after CPUID_STEP", 0x18B, 0x15)?;
        }
        reserved(bytes, "after CURRENT_MAJOR", 0x1EB, 1)?;
        reserved(bytes, "after COMMITTED_MAJOR", 0x1EF, 1)?;
        if version >= 5 {
            reserved(bytes, "after CURRENT_MIT_VECTOR", 0x208, 0x98)?;
        } else {
            reserved(
                bytes,
                "after LAUNCH_TCB (mitigation vectors before version 5)",
                0x1F8,
                0xA8,
            )?;
        }
        reserved(bytes, "SIGNATURE after R and S", 0x330, 0x170)?;
        let key_info = raw.key_info.get();
        if key_info >> 5 != 0 {
            return Err(ReportError::KeyInfoReservedBits { key_info });
        }
        let cpuid = (version >= 3).then(|| CpuId {
            family: raw.cpuid[0],
            model: raw.cpuid[1],
            stepping: raw.cpuid[2],
        });
        let layout = tcb_layout(cpuid, &raw.chip_id);
        let tcb = |v: U64| TcbVersion::decode(v.get(), layout);
        let v5 = |v: U64| (version >= 5).then(|| v.get());
        Ok(AttestationReport {
            version,
            guest_svn: raw.guest_svn.get(),
            policy: raw.policy.get(),
            family_id: raw.family_id,
            image_id: raw.image_id,
            vmpl: raw.vmpl.get(),
            signature_algo: raw.signature_algo.get(),
            current_tcb: tcb(raw.current_tcb),
            platform_info: raw.platform_info.get(),
            key_info: KeyInfo::decode(key_info),
            report_data: raw.report_data,
            measurement: LaunchDigest(raw.measurement),
            host_data: raw.host_data,
            id_key_digest: raw.id_key_digest,
            author_key_digest: raw.author_key_digest,
            report_id: raw.report_id,
            report_id_ma: raw.report_id_ma,
            reported_tcb: tcb(raw.reported_tcb),
            cpuid,
            chip_id: raw.chip_id,
            committed_tcb: tcb(raw.committed_tcb),
            current_version: FirmwareVersion::from_bytes(raw.current_version),
            committed_version: FirmwareVersion::from_bytes(raw.committed_version),
            launch_tcb: tcb(raw.launch_tcb),
            launch_mit_vector: v5(raw.launch_mit_vector),
            current_mit_vector: v5(raw.current_mit_vector),
            raw: Box::new(raw),
        })
    }

    /// The report's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.raw.as_bytes()
    }

    /// The bytes the signature covers (0x000..0x2A0).
    pub fn signed_bytes(&self) -> &[u8] {
        &self.raw.as_bytes()[..SIGNED_SIZE]
    }

    /// The signature field (R, S little-endian).
    pub fn signature(&self) -> &Signature {
        &self.raw.signature
    }

    /// Whether `CHIP_ID` is all zeros (the platform's MASK_CHIP_ID
    /// configuration, set by the host with SNP_CONFIG: not the guest's policy).
    pub fn chip_id_masked(&self) -> bool {
        self.chip_id.iter().all(|b| *b == 0)
    }
}

/// The TCB layout of a report: from the CPUID family when the report has
/// it (0x1A and later: Turin's), else from CHIP_ID (Turin's hardware ID is
/// 8 bytes, the rest zero; the virtee `sev` crate's rule).
fn tcb_layout(cpuid: Option<CpuId>, chip_id: &[u8; 64]) -> TcbLayout {
    let turin = match cpuid {
        Some(c) => c.family >= 0x1A,
        None => chip_id[8..].iter().all(|b| *b == 0) && chip_id[..8].iter().any(|b| *b != 0),
    };
    if turin {
        TcbLayout::Turin
    } else {
        TcbLayout::MilanGenoa
    }
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use zerocopy::FromZeros;

    use super::*;

    /// Offsets from the firmware ABI's table (module docs), written out.
    #[test]
    fn wire_layout() {
        assert_eq!(size_of::<RawReport>(), 1184);
        assert_eq!(align_of::<RawReport>(), 1);
        assert_eq!(offset_of!(RawReport, guest_svn), 0x004);
        assert_eq!(offset_of!(RawReport, policy), 0x008);
        assert_eq!(offset_of!(RawReport, family_id), 0x010);
        assert_eq!(offset_of!(RawReport, image_id), 0x020);
        assert_eq!(offset_of!(RawReport, vmpl), 0x030);
        assert_eq!(offset_of!(RawReport, signature_algo), 0x034);
        assert_eq!(offset_of!(RawReport, current_tcb), 0x038);
        assert_eq!(offset_of!(RawReport, platform_info), 0x040);
        assert_eq!(offset_of!(RawReport, key_info), 0x048);
        assert_eq!(offset_of!(RawReport, reserved0), 0x04C);
        assert_eq!(offset_of!(RawReport, report_data), 0x050);
        assert_eq!(offset_of!(RawReport, measurement), 0x090);
        assert_eq!(offset_of!(RawReport, host_data), 0x0C0);
        assert_eq!(offset_of!(RawReport, id_key_digest), 0x0E0);
        assert_eq!(offset_of!(RawReport, author_key_digest), 0x110);
        assert_eq!(offset_of!(RawReport, report_id), 0x140);
        assert_eq!(offset_of!(RawReport, report_id_ma), 0x160);
        assert_eq!(offset_of!(RawReport, reported_tcb), 0x180);
        assert_eq!(offset_of!(RawReport, cpuid), 0x188);
        assert_eq!(offset_of!(RawReport, reserved1), 0x18B);
        assert_eq!(offset_of!(RawReport, chip_id), 0x1A0);
        assert_eq!(offset_of!(RawReport, committed_tcb), 0x1E0);
        assert_eq!(offset_of!(RawReport, current_version), 0x1E8);
        assert_eq!(offset_of!(RawReport, reserved2), 0x1EB);
        assert_eq!(offset_of!(RawReport, committed_version), 0x1EC);
        assert_eq!(offset_of!(RawReport, reserved3), 0x1EF);
        assert_eq!(offset_of!(RawReport, launch_tcb), 0x1F0);
        assert_eq!(offset_of!(RawReport, launch_mit_vector), 0x1F8);
        assert_eq!(offset_of!(RawReport, current_mit_vector), 0x200);
        assert_eq!(offset_of!(RawReport, reserved4), 0x208);
        assert_eq!(offset_of!(RawReport, signature), 0x2A0);
        assert_eq!(
            offset_of!(RawReport, signature) + offset_of!(Signature, s),
            0x2E8
        );
        assert_eq!(
            offset_of!(RawReport, signature) + offset_of!(Signature, reserved),
            0x330
        );
    }

    fn raw(version: u32) -> RawReport {
        let mut r = RawReport::new_zeroed();
        r.version.set(version);
        r
    }

    #[test]
    fn lengths_and_versions() {
        let r = raw(2);
        let b = r.as_bytes();
        assert_eq!(
            AttestationReport::parse(&b[..1183]).unwrap_err(),
            ReportError::Short { len: 1183 }
        );
        assert_eq!(
            AttestationReport::parse(&[]).unwrap_err(),
            ReportError::Short { len: 0 }
        );
        let mut long = b.to_vec();
        long.push(0);
        assert_eq!(
            AttestationReport::parse(&long).unwrap_err(),
            ReportError::Long { len: 1185 }
        );
        for v in [0, 1, 6, u32::MAX] {
            assert_eq!(
                AttestationReport::parse(raw(v).as_bytes()).unwrap_err(),
                ReportError::UnknownVersion { version: v }
            );
        }
        for v in KNOWN_VERSIONS {
            assert_eq!(
                AttestationReport::parse(raw(v).as_bytes()).unwrap().version,
                v
            );
        }
    }

    /// Every reserved byte of each version is caught, with its field's
    /// offset; bytes that are fields in that version are not.
    #[test]
    fn reserved_bytes_by_version() {
        for version in KNOWN_VERSIONS {
            let mut reserved: Vec<usize> = Vec::new();
            reserved.extend(0x4C..0x50);
            reserved.extend(if version == 2 { 0x188 } else { 0x18B }..0x1A0);
            reserved.extend([0x1EB, 0x1EF]);
            reserved.extend(if version >= 5 { 0x208 } else { 0x1F8 }..0x2A0);
            reserved.extend(0x330..0x4A0);
            for at in 4..REPORT_SIZE {
                let mut r = raw(version);
                r.as_mut_bytes()[at] = 0x01;
                match AttestationReport::parse(r.as_bytes()) {
                    Err(ReportError::ReservedNotZero {
                        at: got,
                        offset,
                        len,
                        value,
                        ..
                    }) => {
                        assert!(reserved.contains(&at), "v{version}: {at:#x} is a field");
                        assert_eq!((got, value), (at, 0x01));
                        assert!(offset <= at && at < offset + len);
                    }
                    Ok(_) => assert!(!reserved.contains(&at), "v{version}: {at:#x} missed"),
                    // KEY_INFO bits 31:8.
                    Err(ReportError::KeyInfoReservedBits { .. }) if (0x49..0x4C).contains(&at) => {}
                    Err(e) => panic!("v{version}: byte {at:#x}: {e}"),
                }
            }
        }
    }

    #[test]
    fn key_info_bits() {
        let mut r = raw(3);
        r.key_info.set(1 | (1 << 2));
        let k = AttestationReport::parse(r.as_bytes()).unwrap().key_info;
        assert!(k.author_key_en && !k.mask_chip_key);
        assert_eq!(k.signing_key, SigningKey::Vlek);
        r.key_info.set(2 | (7 << 2));
        let k = AttestationReport::parse(r.as_bytes()).unwrap().key_info;
        assert!(k.mask_chip_key);
        assert_eq!(k.signing_key, SigningKey::None);
        r.key_info.set(1 << 5);
        assert_eq!(
            AttestationReport::parse(r.as_bytes()).unwrap_err(),
            ReportError::KeyInfoReservedBits { key_info: 0x20 }
        );
    }

    #[test]
    fn fields_by_version() {
        let mut r = raw(2);
        r.launch_mit_vector.set(0);
        r.chip_id[..8].copy_from_slice(&[1; 8]);
        r.reported_tcb.set(0x0000_0000_0403_0201);
        let p = AttestationReport::parse(r.as_bytes()).unwrap();
        assert_eq!(p.cpuid, None);
        assert_eq!(p.launch_mit_vector, None);
        // A v2 report with an 8-byte chip ID has Turin's TCB layout.
        assert_eq!(p.reported_tcb.layout, TcbLayout::Turin);
        assert_eq!(p.reported_tcb.fmc, Some(1));
        assert_eq!(p.reported_tcb.snp, 4);

        let mut r = raw(5);
        r.cpuid = [0x19, 0x11, 0x01];
        r.launch_mit_vector.set(7);
        r.current_mit_vector.set(9);
        r.current_version = [3, 55, 1];
        let p = AttestationReport::parse(r.as_bytes()).unwrap();
        assert_eq!(p.launch_mit_vector, Some(7));
        assert_eq!(p.current_mit_vector, Some(9));
        assert_eq!(p.current_version.to_string(), "1.55.3");
        assert_eq!(p.reported_tcb.layout, TcbLayout::MilanGenoa);
        assert_eq!(p.cpuid.unwrap().signature(), 0xA10F11);
        assert_eq!(p.signed_bytes(), &r.as_bytes()[..0x2A0]);
    }
}
