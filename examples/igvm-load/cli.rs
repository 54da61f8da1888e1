//! Command-line definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Inspect, measure and launch IGVM files as AMD SEV-SNP guests on KVM.
#[derive(Debug, Parser)]
#[command(name = "igvm-load", version)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
    /// No progress output on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the launch plan: one row per SNP_LAUNCH_UPDATE step.
    Plan {
        /// The IGVM file.
        file: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        launch: LaunchArgs,
    },
    /// Print the SEV-SNP launch digest (96 hexadecimal digits).
    Measure {
        /// The IGVM file.
        file: PathBuf,
        /// Print JSON: {"launch_digest": "..."}.
        #[arg(long)]
        json: bool,
        /// Also print the per-page trace (GPA, page type, contents hash, running digest).
        #[arg(long)]
        trace: bool,
        #[command(flatten)]
        launch: LaunchArgs,
    },
    /// Execute the plan: SEV-SNP on this host's KVM, or the firmware model on a plain KVM VM.
    ///
    /// Pages are loaded and launched 16 MiB at a time, each window discarded after its
    /// SNP_LAUNCH_UPDATE (the launched copy lives in guest_memfd; on the model, a dry run), and
    /// the VM is not kept: the command reports what the launch did.
    Launch(LaunchCmd),
    /// Run the file natively on plain KVM (no SEV), the guest's serial output on stdout.
    Run(RunCmd),
    /// For every measurement profile: whether the file can be launched that way, its digest,
    /// and why the profiles differ.
    Check(crate::check::CheckArgs),
    /// Check an SEV-SNP attestation report against the file: which measurement profile (and
    /// vCPU count) explains MEASUREMENT; HOST_DATA, POLICY, the ID block's fields and key
    /// digests, VMPL; with certificates, the signature, AMD's chain, the TCB and the chip ID.
    /// Exit 0 when every check made passes, 1 when one fails.
    Verify(crate::verify::VerifyArgs),
    /// Show what this host's KVM offers: VM types, guest_memfd and memory attributes per VM
    /// type, SEV-SNP and what an SEV-SNP launch still lacks (IGVM_SNP_HOST_WITHOUT=guest_memfd
    /// or memory_attributes treats a feature as absent).
    Host {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Build the built-in demo IGVM file, show its plan and digest, and run it natively on
    /// /dev/kvm when present.
    Demo {
        /// Also write the demo file here.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

/// Where `launch` executes the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// SEV-SNP on this host's KVM (needs an SEV-SNP host; checked first).
    Kvm,
    /// The software model of the AMD Secure Processor, with real KVM memory and vCPUs on a
    /// plain VM. A model written from the published interfaces, not the firmware.
    Model,
}

/// Options of `launch`.
#[derive(Debug, Args)]
pub struct LaunchCmd {
    /// The IGVM file.
    pub file: PathBuf,
    /// The backend.
    #[arg(long, value_enum)]
    pub backend: Backend,
    /// Print the launch report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Without the VMSA page type in the kernel, translate the VMSA into vCPU 0's registers
    /// and let KVM measure its own VMSA per vCPU (the digest is then KVM's, not the plan's).
    #[arg(long)]
    pub allow_vmsa_fallback: bool,
    /// Configure the firmware model without the VMSA page type, as today's kernels (shows the
    /// fallback path with --allow-vmsa-fallback).
    #[arg(long)]
    pub model_no_vmsa_type: bool,
    /// The VMSA features the firmware model's KVM_SEV_INIT2 accepts, hexadecimal (e.g. 220
    /// for upstream KVM's DebugSwap | SecureTSC) [default: upstream KVM's plus whatever the
    /// file's VMSA asks for, with a note when that is more than upstream KVM offers].
    #[arg(long, value_parser = crate::check::parse_hex_u64)]
    pub model_vmsa_features: Option<u64>,
    /// Model a host with SMT inactive: the firmware model's default host has SMT active and,
    /// as the firmware there does, refuses a guest policy that does not allow SMT.
    #[arg(long)]
    pub model_no_smt: bool,
    /// Retry a CPUID page the firmware rejects once, with the firmware's corrections.
    #[arg(long)]
    pub cpuid_retry: bool,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

/// Options of `run`.
#[derive(Debug, Args)]
pub struct RunCmd {
    /// Run on plain KVM without SEV (required: SEV-SNP launches are `launch`'s).
    #[arg(long, required = true)]
    pub native: bool,
    /// The IGVM file.
    pub file: PathBuf,
    /// Stop the guest after this many seconds.
    #[arg(long, default_value = "10", value_parser = crate::config::parse_seconds)]
    pub time_limit: Duration,
    /// Back guest memory with guest_memfd memslots (as an SEV-SNP VM's memory, all shared)
    /// instead of plain memory; refused on a host whose KVM has no guest_memfd for the
    /// default VM type (`igvm-load host` tells).
    #[arg(long)]
    pub guest_memfd: bool,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

/// Rules that change what is launched, and hence the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// The IGVM spec with the SEV-SNP VMSA page type (default).
    #[value(alias = "igvm-spec")]
    Spec,
    /// Data-less pages as the firmware's ZERO type (cloud-hypervisor on KVM).
    NativeZero,
    /// coconut-svsm igvmmeasure: shared pages measured, one page per parameter insert.
    Igvmmeasure,
    /// Today's upstream KVM: no VMSA step; KVM measures one VMSA per vCPU at LAUNCH_FINISH
    /// (a model; see --cpu-signature).
    KvmLegacy,
}

/// Options shared by the commands that plan a launch.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Guest RAM, e.g. 512M or 2G (RAM above 3 GiB is placed from 4 GiB).
    #[arg(long, default_value = "512M", value_parser = crate::config::parse_size)]
    pub memory: u64,
    /// Number of vCPUs (written to the VP count parameter); `measure` also takes a list, e.g.
    /// 1,2,4,8, and prints one digest per count.
    #[arg(long, default_value = "1", value_parser = parse_vcpus)]
    pub vcpus: VcpuCounts,
    /// Kernel command line (written to the command line parameter) [default: empty, as
    /// QEMU without -append].
    #[arg(long)]
    pub cmdline: Option<String>,
    /// Guest policy for SNP_LAUNCH_START when the file has none, hexadecimal; the file's
    /// always wins [default: 30000, as QEMU's sev-snp-guest].
    #[arg(long, value_parser = crate::check::parse_hex_u64)]
    pub policy: Option<u64>,
    /// An ACPI table for a parameter the file asks for: srat=FILE, slit=FILE, pptt=FILE, or
    /// madt=FILE to replace the MADT built for --vcpus. Repeatable.
    #[arg(long = "acpi-table", value_name = "KIND=FILE", value_parser = crate::config::parse_acpi_table)]
    pub acpi_tables: Vec<(crate::config::AcpiTable, PathBuf)>,
    /// A flattened device tree for the device tree parameter.
    #[arg(long, value_name = "FILE")]
    pub device_tree: Option<PathBuf>,
    /// HOST_DATA for SNP_LAUNCH_FINISH: 64 hexadecimal digits.
    #[arg(long, value_parser = crate::config::parse_host_data)]
    pub host_data: Option<[u8; 32]>,
    /// Measure data-less pages with the firmware's ZERO page type: with the default profile
    /// the same as --profile native-zero, with --profile igvmmeasure igvmmeasure's
    /// --native-zero.
    #[arg(long)]
    pub native_zero: bool,
    /// Measurement rules.
    #[arg(long, value_enum, default_value_t = ProfileArg::Spec)]
    pub profile: ProfileArg,
    /// CPU signature (CPUID 1 EAX) in the APs' RDX, hexadecimal, e.g. a00f11 for EPYC-Milan:
    /// used by the kvm-legacy profile and the launch fallback [default: 600, KVM's reset
    /// value].
    #[arg(long, value_parser = crate::check::parse_hex_u32)]
    pub cpu_signature: Option<u32>,
}

/// `--vcpus`: one count, or a comma-separated list of counts (only
/// `measure` takes more than one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuCounts {
    counts: Vec<u32>,
    /// Given as a list (with a comma), even of one distinct count.
    list: bool,
}

impl VcpuCounts {
    /// One count.
    pub fn one(count: u32) -> Self {
        VcpuCounts {
            counts: vec![count],
            list: false,
        }
    }

    /// The counts, in the order given, each once.
    pub fn all(&self) -> &[u32] {
        &self.counts
    }

    /// The largest count: the VM's when there is only one.
    pub fn max(&self) -> u32 {
        self.counts.iter().copied().max().unwrap_or(1)
    }

    /// Whether a list was given (`1,2,4`, or `2,2`): `measure` then prints
    /// one digest per count, keyed by count.
    pub fn is_list(&self) -> bool {
        self.list
    }
}

/// Parses one count from 1 to KVM's limit (for commands that plan one VM).
pub fn parse_vcpu_count(s: &str) -> Result<u32, String> {
    match parse_vcpus(s)?.counts.as_slice() {
        [n] => Ok(*n),
        _ => Err(format!("`{s}`: this command takes one vCPU count")),
    }
}

/// Parses `4` or `1,2,4,8`: counts from 1 to KVM's limit, repeats dropped.
pub fn parse_vcpus(s: &str) -> Result<VcpuCounts, String> {
    let max = igvm_snp::kvm_legacy::KVM_MAX_VCPUS;
    let mut counts: Vec<u32> = Vec::new();
    for part in s.split(',') {
        let n: u32 = part
            .trim()
            .parse()
            .map_err(|_| format!("`{part}` is not a vCPU count (e.g. 4, or 1,2,4,8)"))?;
        if n == 0 || n > max {
            return Err(format!("{n} vCPUs: a count is 1 to {max}"));
        }
        if !counts.contains(&n) {
            counts.push(n);
        }
    }
    Ok(VcpuCounts {
        counts,
        list: s.contains(','),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpu_lists() {
        assert_eq!(parse_vcpus("4").unwrap().all(), [4]);
        let l = parse_vcpus("1, 2,4,2,16").unwrap();
        assert_eq!(l.all(), [1, 2, 4, 16]);
        assert_eq!(l.max(), 16);
        assert!(l.is_list());
        assert!(!parse_vcpus("8").unwrap().is_list());
        // A list of one distinct count is still a list (same output shape).
        let dup = parse_vcpus("2,2").unwrap();
        assert!(dup.is_list() && dup.all() == [2]);
        for bad in ["", "0", "1,,2", "x", "4097", "-1"] {
            assert!(parse_vcpus(bad).is_err(), "{bad}");
        }
    }
}
