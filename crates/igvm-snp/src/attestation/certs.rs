//! AMD's certificates and the report signature: the ARK (AMD Root Key)
//! signs itself and the ASK (or ASVK for VLEKs); the ASK signs the VCEK (or
//! the ASVK the VLEK), all with RSASSA-PSS / SHA-384; the VCEK or VLEK, an
//! ECDSA P-384 key, signs the report's bytes 0x000..0x2A0 with SHA-384.
//!
//! The VCEK's extensions (AMD's "Versioned Chip Endorsement Key (VCEK)
//! Certificate and KDS Interface Specification"; OIDs under
//! 1.3.6.1.4.1.3704.1) carry the TCB it was derived for and the chip's
//! hardware ID:
//!
//! ```text
//! 1.3.6.1.4.1.3704.1.2    productName  IA5String, e.g. "Milan-B0"
//! 1.3.6.1.4.1.3704.1.3.1  blSPL        INTEGER  bootloader SVN
//! 1.3.6.1.4.1.3704.1.3.2  teeSPL       INTEGER  PSP OS SVN
//! 1.3.6.1.4.1.3704.1.3.3  snpSPL       INTEGER  SNP firmware SVN
//! 1.3.6.1.4.1.3704.1.3.8  ucodeSPL     INTEGER  microcode patch level
//! 1.3.6.1.4.1.3704.1.3.9  fmcSPL       INTEGER  FMC SVN (Turin and later)
//! 1.3.6.1.4.1.3704.1.4    hwID         64 bytes (Milan, Genoa) or 8 (Turin), raw or as
//!                                      a DER OCTET STRING (newer VCEKs)
//! ```
//!
//! Nothing here reads a file or the network, or looks at a clock: the
//! caller passes the certificates, and the time to check their validity
//! periods at ([`Certificate::validity`]).

use std::fmt;
use std::time::SystemTime;

use der::asn1::{Ia5StringRef, ObjectIdentifier};
use der::referenced::OwnedToRef;
use der::{Decode, DecodePem, Encode};
use p384::ecdsa::VerifyingKey;
use p384::ecdsa::signature::Verifier;
use rsa::pkcs1::{RsaPssParams, TrailerField};
use serde::Serialize;
use x509_cert::der;

use super::report::{AttestationReport, SIGNATURE_ALGO_ECDSA_P384_SHA384, SigningKey, TcbVersion};

const ID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const ID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_PRODUCT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
const OID_BOOTLOADER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
const OID_TEE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
const OID_SNP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
const OID_MICROCODE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
const OID_FMC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
const OID_HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");

/// Why a certificate cannot be read, or does not certify what it should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Neither a DER nor a PEM X.509 certificate.
    #[error("not an X.509 certificate (DER or PEM): {reason}")]
    Decode {
        /// The decoder's message.
        reason: String,
    },
    /// A signature algorithm other than RSASSA-PSS.
    #[error("{subject}: signed with algorithm {oid}, not RSASSA-PSS (1.2.840.113549.1.1.10)")]
    NotRsaPss {
        /// The signed certificate's subject.
        subject: String,
        /// Its signature algorithm.
        oid: String,
    },
    /// RSASSA-PSS parameters other than SHA-384 with MGF1-SHA-384.
    #[error("{subject}: RSASSA-PSS parameters: {reason}")]
    PssParameters {
        /// The signed certificate's subject.
        subject: String,
        /// What is wrong.
        reason: String,
    },
    /// The signer's key is not an RSA key.
    #[error("{subject}: its public key is not an RSA key: {reason}")]
    NotRsaKey {
        /// The signer's subject.
        subject: String,
        /// The decoder's message.
        reason: String,
    },
    /// The certificate's key is not an ECDSA P-384 key.
    #[error("{subject}: its public key is not an ECDSA P-384 key: {reason}")]
    NotP384Key {
        /// The certificate's subject.
        subject: String,
        /// The decoder's message.
        reason: String,
    },
    /// The certificate names another issuer than the signer's subject.
    #[error("{subject}: issued by \"{issuer}\", not by \"{signer}\"")]
    IssuerMismatch {
        /// The certificate's subject.
        subject: String,
        /// Its issuer.
        issuer: String,
        /// The signer's subject.
        signer: String,
    },
    /// The RSA signature does not verify.
    #[error("{subject}: its signature does not verify with the key of \"{signer}\"")]
    BadSignature {
        /// The signed certificate's subject.
        subject: String,
        /// The signer's subject.
        signer: String,
    },
    /// An AMD extension whose value cannot be decoded.
    #[error("{subject}: extension {oid}: {reason}")]
    Extension {
        /// The certificate's subject.
        subject: String,
        /// The extension.
        oid: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a report's signature does not verify with a VCEK or VLEK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The report is not signed (MASK_CHIP_KEY, or SIGNING_KEY "none").
    #[error("the report is not signed (KEY_INFO: MASK_CHIP_KEY set or SIGNING_KEY none)")]
    NotSigned,
    /// SIGNATURE_ALGO is not ECDSA P-384 with SHA-384.
    #[error("SIGNATURE_ALGO (offset 0x34) is {algo}, not 1 (ECDSA P-384 with SHA-384)")]
    UnsupportedAlgorithm {
        /// The field.
        algo: u32,
    },
    /// R or S is not a P-384 scalar.
    #[error("SIGNATURE (offset 0x2A0): R or S is not a valid P-384 scalar")]
    Malformed,
    /// The certificate's key is unusable.
    #[error(transparent)]
    Key(#[from] CertError),
    /// The signature does not verify.
    #[error(
        "the signature over bytes 0x000..0x2A0 does not verify with the public key of \"{subject}\" (another chip's or TCB's key, or a changed report)"
    )]
    Mismatch {
        /// The certificate's subject.
        subject: String,
    },
}

/// An X.509 certificate of AMD's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    cert: x509_cert::Certificate,
}

/// A certificate's validity period (`notBefore` to `notAfter`, both
/// included, as RFC 5280 §4.1.2.5 has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// `notBefore`.
    pub not_before: SystemTime,
    /// `notAfter`.
    pub not_after: SystemTime,
}

impl Validity {
    /// Whether `at` lies within the period.
    pub fn contains(&self, at: SystemTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ`, or as seconds since the Unix epoch
/// where that form cannot hold it (before 1970 or after 9999).
pub fn utc_time(t: SystemTime) -> String {
    match der::DateTime::from_system_time(t) {
        Ok(d) => d.to_string(),
        Err(_) => match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => format!("{} s after the Unix epoch", d.as_secs()),
            Err(e) => format!("{} s before the Unix epoch", e.duration().as_secs()),
        },
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (UTC) or `YYYY-MM-DD` (its midnight, UTC).
///
/// ```
/// use igvm_snp::attestation::{parse_utc_time, utc_time};
/// let t = parse_utc_time("2030-04-03").unwrap();
/// assert_eq!(utc_time(t), "2030-04-03T00:00:00Z");
/// assert!(parse_utc_time("2030-02-30").is_none());
/// ```
pub fn parse_utc_time(text: &str) -> Option<SystemTime> {
    let full;
    let text = if text.len() == 10 {
        full = format!("{text}T00:00:00Z");
        &full
    } else {
        text
    };
    text.parse::<der::DateTime>().ok().map(SystemTime::from)
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to {}",
            utc_time(self.not_before),
            utc_time(self.not_after)
        )
    }
}

/// The TCB and hardware ID a VCEK certifies, from its AMD extensions (each
/// `None` when the certificate lacks it; a VLEK has no hardware ID).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VekExtensions {
    /// `productName`, e.g. "Milan-B0".
    pub product_name: Option<String>,
    /// `blSPL`.
    pub bootloader: Option<u8>,
    /// `teeSPL`.
    pub tee: Option<u8>,
    /// `snpSPL`.
    pub snp: Option<u8>,
    /// `ucodeSPL`.
    pub microcode: Option<u8>,
    /// `fmcSPL` (Turin and later).
    pub fmc: Option<u8>,
    /// `hwID`.
    pub hw_id: Option<Vec<u8>>,
}

impl Certificate {
    /// Reads a certificate in DER, or in PEM (text starting with
    /// `-----BEGIN`).
    ///
    /// # Errors
    /// [`CertError::Decode`].
    pub fn parse(bytes: &[u8]) -> Result<Self, CertError> {
        let text = bytes.trim_ascii_start();
        let cert = if text.starts_with(b"-----BEGIN") {
            x509_cert::Certificate::from_pem(text)
        } else {
            x509_cert::Certificate::from_der(bytes)
        }
        .map_err(|e| CertError::Decode {
            reason: e.to_string(),
        })?;
        Ok(Certificate { cert })
    }

    /// The subject, e.g. `CN=SEV-VCEK,O=Advanced Micro Devices,…`.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// The subject's common name (`CN`): `SEV-VCEK` or `SEV-VLEK` for
    /// AMD's endorsement keys.
    pub fn common_name(&self) -> Option<String> {
        const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
        let subject = &self.cert.tbs_certificate.subject;
        let atv = subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|a| a.oid == CN)?;
        let text = atv.to_string();
        text.split_once('=').map(|(_, v)| v.to_string())
    }

    /// The validity period.
    pub fn validity(&self) -> Validity {
        let v = &self.cert.tbs_certificate.validity;
        Validity {
            not_before: v.not_before.to_system_time(),
            not_after: v.not_after.to_system_time(),
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate.issuer.to_string()
    }

    /// The ECDSA P-384 public key of a VCEK or VLEK.
    ///
    /// # Errors
    /// [`CertError::NotP384Key`].
    pub fn p384_key(&self) -> Result<VerifyingKey, CertError> {
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .owned_to_ref();
        // The decoder's own message names the OID it expected, not the one
        // it found: say what the certificate holds.
        const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
        const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
        let algorithm = spki.algorithm.oid;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        VerifyingKey::try_from(spki).map_err(|e| CertError::NotP384Key {
            subject: self.subject(),
            reason: match (algorithm, curve) {
                (EC_PUBLIC_KEY, Some(SECP384R1)) => e.to_string(),
                (EC_PUBLIC_KEY, Some(c)) => format!("an EC key on curve {c}, not P-384"),
                (EC_PUBLIC_KEY, None) => "an EC key with no named curve".to_string(),
                (other, _) => format!("its key algorithm is {other}, not EC"),
            },
        })
    }

    /// Checks that `signer` issued this certificate: the issuer name is the
    /// signer's subject and the RSASSA-PSS signature (SHA-384, MGF1 with
    /// SHA-384, the salt length the certificate states) verifies with the
    /// signer's RSA key.
    ///
    /// # Errors
    /// The first check that fails, as a [`CertError`].
    pub fn verify_issued_by(&self, signer: &Certificate) -> Result<(), CertError> {
        let subject = self.subject();
        let tbs = &self.cert.tbs_certificate;
        if tbs.issuer != signer.cert.tbs_certificate.subject {
            return Err(CertError::IssuerMismatch {
                subject,
                issuer: self.issuer(),
                signer: signer.subject(),
            });
        }
        let alg = &self.cert.signature_algorithm;
        if alg.oid != ID_RSASSA_PSS {
            return Err(CertError::NotRsaPss {
                subject,
                oid: alg.oid.to_string(),
            });
        }
        let salt_len = pss_salt_len(alg).map_err(|reason| CertError::PssParameters {
            subject: subject.clone(),
            reason,
        })?;
        let key = rsa::RsaPublicKey::try_from(
            signer
                .cert
                .tbs_certificate
                .subject_public_key_info
                .owned_to_ref(),
        )
        .map_err(|e| CertError::NotRsaKey {
            subject: signer.subject(),
            reason: e.to_string(),
        })?;
        let bad = || CertError::BadSignature {
            subject: subject.clone(),
            signer: signer.subject(),
        };
        // x509-cert decodes strict DER, so re-encoding gives the signed bytes.
        let message = tbs.to_der().map_err(|_| bad())?;
        let signature = self
            .cert
            .signature
            .as_bytes()
            .and_then(|b| rsa::pss::Signature::try_from(b).ok())
            .ok_or_else(bad)?;
        rsa::pss::VerifyingKey::<sha2::Sha384>::new_with_salt_len(key, salt_len)
            .verify(&message, &signature)
            .map_err(|_| bad())
    }

    /// The AMD extensions of a VCEK or VLEK.
    ///
    /// # Errors
    /// [`CertError::Extension`] for an AMD extension whose value does not
    /// decode.
    pub fn vek_extensions(&self) -> Result<VekExtensions, CertError> {
        let mut out = VekExtensions::default();
        let Some(exts) = &self.cert.tbs_certificate.extensions else {
            return Ok(out);
        };
        for ext in exts {
            let value = ext.extn_value.as_bytes();
            let bad = |reason: String| CertError::Extension {
                subject: self.subject(),
                oid: ext.extn_id.to_string(),
                reason,
            };
            let spl =
                || u8::from_der(value).map_err(|e| bad(format!("not an INTEGER 0..255: {e}")));
            match ext.extn_id {
                OID_PRODUCT_NAME => {
                    let name = Ia5StringRef::from_der(value)
                        .map_err(|e| bad(format!("not an IA5String: {e}")))?;
                    out.product_name = Some(name.as_str().to_string());
                }
                OID_BOOTLOADER => out.bootloader = Some(spl()?),
                OID_TEE => out.tee = Some(spl()?),
                OID_SNP => out.snp = Some(spl()?),
                OID_MICROCODE => out.microcode = Some(spl()?),
                OID_FMC => out.fmc = Some(spl()?),
                OID_HW_ID => out.hw_id = Some(hw_id(value).to_vec()),
                _ => {}
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject())
    }
}

/// The salt length of RSASSA-PSS parameters that use SHA-384 and MGF1 with
/// SHA-384, as AMD's certificates do.
fn pss_salt_len(alg: &x509_cert::spki::AlgorithmIdentifierOwned) -> Result<usize, String> {
    let params = alg
        .parameters
        .as_ref()
        .ok_or("parameters missing")?
        .to_der()
        .map_err(|e| e.to_string())?;
    let p = RsaPssParams::from_der(&params).map_err(|e| e.to_string())?;
    if p.hash.oid != ID_SHA384 {
        return Err(format!("hash {} is not SHA-384", p.hash.oid));
    }
    let mgf_hash = p.mask_gen.parameters.as_ref().map(|h| h.oid);
    if p.mask_gen.oid != ID_MGF1 || mgf_hash != Some(ID_SHA384) {
        return Err("mask generation is not MGF1 with SHA-384".into());
    }
    if p.trailer_field != TrailerField::BC {
        return Err("trailer field is not 1".into());
    }
    Ok(usize::from(p.salt_len))
}

/// SHA-256 of the DER SubjectPublicKeyInfo of AMD's ARKs, as
/// `openssl x509 -in ark.pem -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`
/// gives it for the ARK certificates the virtee `sev` crate ships
/// (`src/certs/snp/builtin/{milan,genoa,turin}/ark.pem`, the ones AMD's key
/// distribution service serves).
const AMD_ARKS: [(&str, &str); 3] = [
    (
        "Milan",
        "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9",
    ),
    (
        "Genoa",
        "429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831",
    ),
    (
        "Turin",
        "4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08",
    ),
];

impl Certificate {
    /// The processor generation whose AMD root key this certificate
    /// carries (`"Milan"`, `"Genoa"`, `"Turin"`), if it is one of AMD's
    /// ARKs; `None` for any other key, however it is named.
    pub fn amd_root(&self) -> Option<&'static str> {
        use sha2::{Digest, Sha256};
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .ok()?;
        let hash = super::report::to_hex(&Sha256::digest(spki));
        AMD_ARKS
            .iter()
            .find(|(_, h)| *h == hash)
            .map(|(name, _)| *name)
    }
}

/// Checks AMD's chain: the ARK signs itself and the ASK (or ASVK), the ASK
/// signs the VCEK (or the ASVK the VLEK).
///
/// Trust comes from the ARK: the caller must know it is AMD's (e.g. from
/// AMD's key distribution service, fetched once and kept).
///
/// # Errors
/// The first link that fails, as a [`CertError`].
pub fn verify_chain(
    ark: &Certificate,
    ask: &Certificate,
    vek: &Certificate,
) -> Result<(), CertError> {
    ark.verify_issued_by(ark)?;
    ask.verify_issued_by(ark)?;
    vek.verify_issued_by(ask)
}

/// Checks the report's ECDSA P-384 / SHA-384 signature over bytes
/// 0x000..0x2A0 with the VCEK's or VLEK's public key.
///
/// # Errors
/// A [`SignatureError`] saying why.
pub fn verify_report_signature(
    report: &AttestationReport,
    vek: &Certificate,
) -> Result<(), SignatureError> {
    let k = report.key_info;
    if k.mask_chip_key || k.signing_key == SigningKey::None {
        return Err(SignatureError::NotSigned);
    }
    if report.signature_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384 {
        return Err(SignatureError::UnsupportedAlgorithm {
            algo: report.signature_algo,
        });
    }
    let key = vek.p384_key()?;
    let sig = report
        .signature()
        .to_p384()
        .ok_or(SignatureError::Malformed)?;
    key.verify(report.signed_bytes(), &sig)
        .map_err(|_| SignatureError::Mismatch {
            subject: vek.subject(),
        })
}

/// The TCB components where a VCEK's extensions and the report's
/// REPORTED_TCB differ, as text (`"snp: certificate 8, report 7"`); empty
/// when they agree. A component the certificate lacks differs.
pub fn tcb_differences(reported: &TcbVersion, ext: &VekExtensions) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |name: &str, cert: Option<u8>, report: Option<u8>| {
        if cert != report {
            let show = |v: Option<u8>| v.map_or("none".to_string(), |v| v.to_string());
            out.push(format!(
                "{name}: certificate {}, report {}",
                show(cert),
                show(report)
            ));
        }
    };
    cmp("fmc", ext.fmc, reported.fmc);
    cmp("bootloader", ext.bootloader, Some(reported.bootloader));
    cmp("tee", ext.tee, Some(reported.tee));
    cmp("snp", ext.snp, Some(reported.snp));
    cmp("microcode", ext.microcode, Some(reported.microcode));
    out
}

/// The hwID extension's ID: older VCEKs carry the 64 (Turin: 8) bytes as
/// the extension's value itself, newer ones DER-encoded as an OCTET STRING
/// (`04 40` and the 64 bytes). A raw ID is never 66 or 10 bytes long, so
/// only those lengths are unwrapped.
fn hw_id(value: &[u8]) -> &[u8] {
    match der::asn1::OctetStringRef::from_der(value) {
        Ok(inner) if value.len() == 66 || value.len() == 10 => inner.as_bytes(),
        _ => value,
    }
}

/// Whether a VCEK's hardware ID is the report's CHIP_ID: equal over the
/// ID's length (64 bytes, or 8 on Turin), the rest of CHIP_ID zero.
pub fn hw_id_matches(hw_id: &[u8], chip_id: &[u8; 64]) -> bool {
    !hw_id.is_empty()
        && hw_id.len() <= chip_id.len()
        && chip_id[..hw_id.len()] == *hw_id
        && chip_id[hw_id.len()..].iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::report::TcbLayout;

    #[test]
    fn hw_id_values_raw_or_der_wrapped() {
        let raw = [0xA1u8; 64];
        let mut wrapped = vec![0x04, 0x40];
        wrapped.extend_from_slice(&raw);
        assert_eq!(hw_id(&wrapped), raw);
        assert_eq!(hw_id(&raw), raw);
        // Turin's 8-byte ID, wrapped and not.
        assert_eq!(
            hw_id(&[0x04, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(hw_id(&[1, 2, 3, 4, 5, 6, 7, 8]), [1, 2, 3, 4, 5, 6, 7, 8]);
        // A raw 64-byte ID that happens to read as DER stays whole.
        let mut lookalike = [0u8; 64];
        lookalike[..2].copy_from_slice(&[0x04, 0x3E]);
        assert_eq!(hw_id(&lookalike), lookalike);
    }

    #[test]
    fn hw_ids() {
        let mut chip = [0u8; 64];
        chip[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(hw_id_matches(&[1, 2, 3, 4, 5, 6, 7, 8], &chip));
        assert!(!hw_id_matches(&[1, 2, 3, 4, 5, 6, 7, 9], &chip));
        assert!(!hw_id_matches(&[], &chip));
        assert!(!hw_id_matches(&[1, 2, 3, 4], &chip), "rest not zero");
        assert!(!hw_id_matches(&[0; 65], &[0; 64]));
        assert!(hw_id_matches(&[7; 64], &[7; 64]));
    }

    #[test]
    fn tcb_compare() {
        let t = TcbVersion::decode(0x7308_0000_0000_0003, TcbLayout::MilanGenoa);
        let mut e = VekExtensions {
            bootloader: Some(3),
            tee: Some(0),
            snp: Some(8),
            microcode: Some(0x73),
            ..Default::default()
        };
        assert!(tcb_differences(&t, &e).is_empty());
        e.snp = Some(7);
        e.fmc = Some(1);
        assert_eq!(
            tcb_differences(&t, &e),
            [
                "fmc: certificate 1, report none",
                "snp: certificate 7, report 8"
            ]
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        for bytes in [
            &b""[..],
            b"\x30\x03\x02\x01",
            b"-----BEGIN CERTIFICATE-----\nxx",
        ] {
            assert!(matches!(
                Certificate::parse(bytes),
                Err(CertError::Decode { .. })
            ));
        }
    }
}
