//! Turning command-line options into a launch configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use igvm_snp::kvm_legacy::{KVM_RESET_RDX, KvmLegacyInputs};
use igvm_snp::{
    GpaRange, LaunchConfig, LaunchPlan, ParameterKind, PlanOptions, Profile, ZeroPages,
};

use crate::cli::{LaunchArgs, ProfileArg};

/// Start of the 32-bit PCI hole: RAM beyond this goes above 4 GiB.
const LOW_RAM_LIMIT: u64 = 0xC000_0000;

/// Parses a size such as `512M`, `2G`, `4096` or `64K`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        Some('T' | 't') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 512M or 2G"))?;
    let bytes = n
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes == 0 || bytes % 4096 != 0 {
        return Err(format!("`{s}` must be a non-zero multiple of 4 KiB"));
    }
    Ok(bytes)
}

/// Parses a time limit in seconds, e.g. `10` or `0.5`.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if secs <= 0.0 {
        return Err(format!("`{s}`: the time limit must be positive"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

/// Parses 64 hexadecimal digits.
pub fn parse_host_data(s: &str) -> Result<[u8; 32], String> {
    parse_hex(s, "host data")
}

/// Parses 128 hexadecimal digits.
pub fn parse_report_data(s: &str) -> Result<[u8; 64], String> {
    parse_hex(s, "report data")
}

/// Parses exactly `2 * N` hexadecimal digits into `N` bytes.
pub fn parse_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    let s = s.trim();
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{what} is {} hexadecimal digits ({N} bytes)",
            2 * N
        ));
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        // Two hex digits (checked above).
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or_default();
    }
    Ok(out)
}

/// RAM ranges for a RAM size: below the 32-bit hole, then from 4 GiB.
pub fn ram_ranges(size: u64) -> Vec<GpaRange> {
    if size <= LOW_RAM_LIMIT {
        vec![GpaRange::new(0, size)]
    } else {
        vec![
            GpaRange::new(0, LOW_RAM_LIMIT),
            GpaRange::new(1 << 32, size - LOW_RAM_LIMIT),
        ]
    }
}

/// An ACPI table given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiTable {
    /// System Resource Affinity Table.
    Srat,
    /// System Locality Information Table.
    Slit,
    /// Processor Properties Topology Table.
    Pptt,
    /// Multiple APIC Description Table (replaces the one built for --vcpus).
    Madt,
}

impl AcpiTable {
    /// The parameter the table fills.
    pub fn parameter(self) -> ParameterKind {
        match self {
            AcpiTable::Srat => ParameterKind::Srat,
            AcpiTable::Slit => ParameterKind::Slit,
            AcpiTable::Pptt => ParameterKind::Pptt,
            AcpiTable::Madt => ParameterKind::Madt,
        }
    }

    /// Its name in `--acpi-table NAME=FILE`.
    pub fn name(self) -> &'static str {
        match self {
            AcpiTable::Srat => "srat",
            AcpiTable::Slit => "slit",
            AcpiTable::Pptt => "pptt",
            AcpiTable::Madt => "madt",
        }
    }
}

/// Notes for options that fill a parameter the file does not have: a
/// command line or table the guest will never see should not pass
/// silently.
pub fn unused_option_notes(plan: &LaunchPlan<'_>, args: &LaunchArgs) -> Vec<String> {
    let areas = plan.parameter_areas().iter();
    let written = areas.flat_map(|a| a.writes().iter().map(|w| w.kind));
    let unfilled = plan.unfilled_parameters().iter().map(|u| u.kind);
    let present: Vec<ParameterKind> = written.chain(unfilled).collect();
    let mut given: Vec<(String, ParameterKind)> = Vec::new();
    if args.cmdline.is_some() {
        given.push(("--cmdline".into(), ParameterKind::CommandLine));
    }
    if args.device_tree.is_some() {
        given.push(("--device-tree".into(), ParameterKind::DeviceTree));
    }
    for (table, _) in &args.acpi_tables {
        given.push((format!("--acpi-table {}", table.name()), table.parameter()));
    }
    given
        .into_iter()
        .filter(|(_, kind)| !present.contains(kind))
        .map(|(option, kind)| {
            format!(
                "note: {option} is ignored: the file has no {} parameter",
                kind.name()
            )
        })
        .collect()
}

/// Parses `KIND=FILE` for `--acpi-table`.
pub fn parse_acpi_table(s: &str) -> Result<(AcpiTable, PathBuf), String> {
    let (kind, file) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KIND=FILE (e.g. srat=srat.bin)"))?;
    let kind = match kind.to_ascii_lowercase().as_str() {
        "srat" => AcpiTable::Srat,
        "slit" => AcpiTable::Slit,
        "pptt" => AcpiTable::Pptt,
        "madt" => AcpiTable::Madt,
        other => {
            return Err(format!(
                "`{other}`: the tables are srat, slit, pptt and madt"
            ));
        }
    };
    if file.is_empty() {
        return Err(format!("`{s}`: no file name after `=`"));
    }
    Ok((kind, PathBuf::from(file)))
}

/// The loader option that provides a parameter, for a file that asks for
/// one the configuration lacks.
pub fn option_for(kind: ParameterKind) -> &'static str {
    match kind {
        ParameterKind::Srat => "--acpi-table srat=FILE",
        ParameterKind::Slit => "--acpi-table slit=FILE",
        ParameterKind::Pptt => "--acpi-table pptt=FILE",
        ParameterKind::Madt => "--acpi-table madt=FILE",
        ParameterKind::DeviceTree => "--device-tree FILE",
        ParameterKind::CommandLine => "--cmdline",
        ParameterKind::MemoryMap => "--memory",
        ParameterKind::VpCount => "--vcpus",
        ParameterKind::MmioRanges | ParameterKind::EnvironmentInfo => "(no loader option)",
    }
}

/// Fails, naming the loader option, on the first parameter the file asks
/// for that the configuration did not fill.
pub fn require_parameters(plan: &LaunchPlan<'_>) -> Result<(), String> {
    match plan.unfilled_parameters().first() {
        None => Ok(()),
        Some(u) => Err(format!(
            "{}: the file asks for a {} parameter (area {}); give it with {}",
            u.directive,
            u.kind.name(),
            u.area_index,
            option_for(u.kind)
        )),
    }
}

/// Notes on the optional parameters the file asks for and the options did
/// not give (their areas stay as the file has them, as QEMU leaves them).
pub fn optional_parameter_notes(plan: &LaunchPlan<'_>) -> Vec<String> {
    plan.unfilled_parameters()
        .iter()
        .filter(|u| LaunchConfig::OPTIONAL_TABLES.contains(&u.kind))
        .map(|u| {
            format!(
                "note: {}: the file asks for a {} parameter (area {}) and none is given ({}): \
                 its area stays as the file has it, as QEMU leaves it",
                u.directive,
                u.kind.name(),
                u.area_index,
                option_for(u.kind)
            )
        })
        .collect()
}

/// [`launch_config`] for a launch: the optional parameters the options do
/// not give are filled with nothing (the area keeps its initial contents).
pub fn launch_config_for_launch(args: &LaunchArgs) -> Result<LaunchConfig, String> {
    Ok(launch_config(args)?.leaving_optional_tables_unset())
}

/// Reads a table for a parameter area (at most the largest area the parser
/// takes).
fn read_table(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    let limit = igvm_snp::parse::MAX_PARAMETER_AREA_BYTES;
    crate::read_at_most(path, &format!("the {what}"), limit).map_err(|e| e.to_string())
}

/// What this loader, as a VMM, gives every file: `vcpus` vCPUs and a MADT
/// built for them, `memory` bytes of RAM (and its memory map), the command
/// line. A vCPU count no MADT describes leaves the MADT unfilled:
/// measuring does not need it, and a launch names the problem.
pub fn vmm_config(vcpus: u32, memory: u64, cmdline: String) -> LaunchConfig {
    let mut config = LaunchConfig::new(vcpus, ram_ranges(memory)).with_command_line(cmdline);
    config.madt = igvm_snp::acpi::madt_for_vcpus(vcpus).ok();
    config
}

/// The launch configuration for the options, with what a VMM provides
/// filled in as QEMU does: a MADT built for the vCPUs, an empty command
/// line, the memory map of the RAM; SRAT, SLIT, PPTT and a device tree only
/// from files named on the command line.
///
/// # Errors
/// A table file that cannot be read; a vCPU count no MADT describes.
pub fn launch_config(args: &LaunchArgs) -> Result<LaunchConfig, String> {
    let cmdline = args.cmdline.clone().unwrap_or_default();
    let mut config = vmm_config(args.vcpus.max(), args.memory, cmdline);
    if let Some(h) = args.host_data {
        config = config.with_host_data(h);
    }
    if let Some(p) = args.policy {
        config = config.with_default_policy(p);
    }
    // A kind given twice is a usage error, found before this is called.
    for (kind, path) in &args.acpi_tables {
        let bytes = read_table("ACPI table", path)?;
        match kind {
            AcpiTable::Srat => config.srat = Some(bytes),
            AcpiTable::Slit => config.slit = Some(bytes),
            AcpiTable::Pptt => config.pptt = Some(bytes),
            AcpiTable::Madt => config.madt = Some(bytes),
        }
    }
    if let Some(path) = &args.device_tree {
        config.device_tree = Some(read_table("device tree", path)?);
    }
    Ok(config)
}

/// A planning error, with a hint when it is the MADT this loader built
/// for `vcpus` that does not fit its parameter area: the largest count
/// whose MADT fits.
pub fn explain_plan_error(e: &igvm_snp::Error, vcpus: u32) -> String {
    if let igvm_snp::Error::ParameterOutOfBounds {
        kind: "MADT",
        byte_offset,
        area_size,
        ..
    } = e
    {
        let room = area_size.saturating_sub(u64::from(*byte_offset));
        let fits = |n: u32| igvm_snp::acpi::madt_for_vcpus(n).is_ok_and(|t| t.len() as u64 <= room);
        // The MADT grows with the count: the largest count that fits.
        let most = (1..=vcpus).rev().find(|&n| fits(n));
        return match most {
            Some(n) => format!("{e} (the MADT for --vcpus {vcpus}; at most {n} vCPUs fit)"),
            None => format!("{e} (the MADT for --vcpus {vcpus}; not even one vCPU's fits)"),
        };
    }
    e.to_string()
}

/// The CPU signature in the APs' RDX.
pub fn cpu_signature(args: &LaunchArgs) -> u32 {
    args.cpu_signature.unwrap_or(KVM_RESET_RDX)
}

/// What KVM's own VMSAs depend on, for a file whose boot VMSA asks for
/// `init2_vmsa_features`.
pub fn legacy_inputs(args: &LaunchArgs, init2_vmsa_features: u64) -> KvmLegacyInputs {
    KvmLegacyInputs::new(args.vcpus.max(), init2_vmsa_features, cpu_signature(args))
}

/// The planner options for the options. `init2_vmsa_features` (the file's,
/// from a first plan) is only needed by the kvm-legacy profile.
pub fn plan_options(args: &LaunchArgs, init2_vmsa_features: u64) -> PlanOptions {
    let profile = match args.profile {
        ProfileArg::Spec => Profile::IgvmSpec,
        ProfileArg::NativeZero => Profile::NativeZero,
        ProfileArg::Igvmmeasure => Profile::Igvmmeasure,
        ProfileArg::KvmLegacy => Profile::KvmLegacy(legacy_inputs(args, init2_vmsa_features)),
    };
    let mut o = profile.options();
    if args.native_zero {
        o.zero_pages = ZeroPages::NativeZero;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("1").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn ram_split() {
        assert_eq!(ram_ranges(1 << 30), vec![GpaRange::new(0, 1 << 30)]);
        let r = ram_ranges(4 << 30);
        assert_eq!(r[1], GpaRange::new(1 << 32, (4 << 30) - LOW_RAM_LIMIT));
    }

    #[test]
    fn acpi_table_options() {
        assert_eq!(
            parse_acpi_table("srat=a.bin"),
            Ok((AcpiTable::Srat, PathBuf::from("a.bin")))
        );
        assert_eq!(
            parse_acpi_table("PPTT=/x/y"),
            Ok((AcpiTable::Pptt, PathBuf::from("/x/y")))
        );
        assert!(parse_acpi_table("srat").unwrap_err().contains("KIND=FILE"));
        assert!(
            parse_acpi_table("dsdt=x")
                .unwrap_err()
                .contains("srat, slit")
        );
        assert!(
            parse_acpi_table("slit=")
                .unwrap_err()
                .contains("no file name")
        );
    }

    #[test]
    fn host_data() {
        assert_eq!(parse_host_data(&"ab".repeat(32)), Ok([0xab; 32]));
        assert!(parse_host_data("abc").is_err());
        assert!(parse_host_data(&"zz".repeat(32)).is_err());
        // from_str_radix alone would take the sign.
        assert!(parse_host_data(&"+a".repeat(32)).is_err());
        assert_eq!(parse_report_data(&"5C".repeat(64)), Ok([0x5c; 64]));
        assert_eq!(
            parse_report_data(&"5c".repeat(32)),
            Err("report data is 128 hexadecimal digits (64 bytes)".to_string())
        );
    }
}
