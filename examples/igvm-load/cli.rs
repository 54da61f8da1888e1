//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Inspect, measure and launch IGVM files as AMD SEV-SNP guests on KVM.
#[derive(Debug, Parser)]
#[command(name = "igvm-load", version, about, long_about = None)]
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
    /// For every measurement profile: whether the file can be launched that way, its digest,
    /// and why the profiles differ.
    Check(crate::check::CheckArgs),
    /// Build the built-in demo IGVM file, show its plan and digest, and run it natively on
    /// /dev/kvm when present.
    Demo {
        /// Also write the demo file here.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

/// Rules that change what is launched, and hence the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// The IGVM spec with the SEV-SNP VMSA page type (default).
    Spec,
    /// Data-less pages as the firmware's ZERO type (cloud-hypervisor on KVM).
    NativeZero,
    /// coconut-svsm igvmmeasure: shared pages measured, one page per parameter insert.
    Igvmmeasure,
}

/// Options shared by the commands that plan a launch.
#[derive(Debug, Args)]
pub struct LaunchArgs {
    /// Guest RAM, e.g. 512M or 2G (RAM above 3 GiB is placed from 4 GiB).
    #[arg(long, default_value = "512M", value_parser = crate::config::parse_size)]
    pub memory: u64,
    /// Number of vCPUs (written to the VP count parameter).
    #[arg(long, default_value_t = 1)]
    pub vcpus: u32,
    /// Kernel command line (written to the command line parameter).
    #[arg(long)]
    pub cmdline: Option<String>,
    /// HOST_DATA for SNP_LAUNCH_FINISH: 64 hexadecimal digits.
    #[arg(long, value_parser = crate::config::parse_host_data)]
    pub host_data: Option<[u8; 32]>,
    /// Measure data-less pages with the firmware's ZERO page type (same as --profile native-zero).
    #[arg(long)]
    pub native_zero: bool,
    /// Measurement rules.
    #[arg(long, value_enum, default_value_t = ProfileArg::Spec)]
    pub profile: ProfileArg,
}
