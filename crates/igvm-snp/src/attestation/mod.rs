//! SEV-SNP attestation reports checked against an IGVM file.
//!
//! * [`AttestationReport::parse`]: the ATTESTATION_REPORT, checked and
//!   decoded (the layout is in `report.rs`).
//! * [`verify_report_signature`], [`verify_chain`]: the VCEK's signature of
//!   the report and AMD's certificate chain (ARK, ASK, VCEK), offline;
//!   [`Certificate::vek_extensions`], [`tcb_differences`],
//!   [`hw_id_matches`]: the VCEK's TCB and hardware ID against the report.
//! * [`verify()`]: everything at once, and the report against an IGVM file:
//!   which measurement profile (and vCPU count) explains MEASUREMENT, and
//!   HOST_DATA, REPORT_DATA, POLICY, the ID block's fields and key
//!   digests, VMPL, a minimum TCB, as a [`Verdict`] of named [`Check`]s.
//!
//! Certificates' validity periods are checked at the time the caller gives
//! ([`Certificates::valid_at`]: nothing here looks at a clock). Not checked,
//! by design or not yet: AMD's revocation list (nothing here uses the
//! network); PLATFORM_INFO (SMT, TSME, ciphertext hiding…), a minimum for
//! CURRENT_TCB, COMMITTED_TCB or LAUNCH_TCB (REPORTED_TCB, the one the VCEK
//! is derived for, has one: [`Expected::min_tcb`]), and the VCEK's productName
//! against the report's CPUID. A guest owner with requirements on those
//! reads them from the [`AttestationReport`].

mod certs;
mod report;
mod verify;

pub use certs::{
    CertError, Certificate, SignatureError, Validity, VekExtensions, hw_id_matches, parse_utc_time,
    tcb_differences, utc_time, verify_chain, verify_report_signature,
};

pub use report::{
    AttestationReport, CpuId, FirmwareVersion, KNOWN_VERSIONS, KeyInfo, REPORT_SIZE, RawReport,
    ReportError, SIGNATURE_ALGO_ECDSA_P384_SHA384, SIGNED_SIZE, SigningKey, TcbLayout, TcbVersion,
    to_hex,
};
pub use verify::{
    Certificates, Check, Expected, MinTcb, ParseMinTcbError, ProfileMatch, Verdict,
    certificate_checks, file_checks, verify, verify_releasing,
};
