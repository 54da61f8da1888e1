//! End-to-end tests of `examples/vmm-embed.rs`, the minimal VMM that owns
//! its VM, vCPU and vm-memory memory and uses the library to plan, load and
//! run an IGVM file: it runs the project's test guests (the demo's 16-bit
//! reset-vector guest, a 32-bit protected-mode and a 64-bit long-mode
//! guest, built with the igvm crate's builder) and prints what they print,
//! which depends on the pages the plan loaded; with `--model` it launches
//! a file on the firmware model and prints the plan's launch digest.
//!
//! The binary is the example built next to this test executable (`cargo
//! test` builds the package's examples first). Needs /dev/kvm: skipped with
//! a note without it, failing instead when IGVM_SNP_REQUIRE_KVM=1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_test_support::guests::{long_mode_guest, protected_mode_guest};
use igvm_snp_test_support::{byte_sum_hex, pattern_page};

fn vmm_embed() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("examples").join("vmm-embed");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test` for the whole package, or `cargo build --example \
         vmm-embed` first",
        bin.display()
    );
    bin
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vmm_embed");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn run(path: &Path, args: &[&str]) -> Output {
    Command::new(vmm_embed())
        .arg(path)
        .args(args)
        .output()
        .expect("vmm-embed runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a run that halted after printing `expected`.
fn assert_prints(o: &Output, expected: &str) {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", text(&o.stderr));
    assert_eq!(text(&o.stdout), expected);
    assert!(o.stderr.is_empty(), "{}", text(&o.stderr));
}

#[test]
fn runs_the_16_bit_32_bit_and_64_bit_test_guests() {
    if kvm_or_skip("runs_the_16_bit_32_bit_and_64_bit_test_guests").is_none() {
        return;
    }
    let demo = write("demo.igvm", &igvm_snp::demo::demo_igvm());
    assert_prints(&run(&demo, &[]), &igvm_snp::demo::expected_output());

    for (mul, add) in [(13, 5), (3, 250)] {
        let data = pattern_page(mul, add);
        let pm = write("pm32.igvm", &protected_mode_guest(&data));
        assert_prints(
            &run(&pm, &[]),
            &format!("PM32 sum {}\n", byte_sum_hex(&data)),
        );
        let lm = write("lm64.igvm", &long_mode_guest(&data));
        assert_prints(
            &run(&lm, &[]),
            &format!("LM64 sum {}\n", byte_sum_hex(&data)),
        );
    }
}

#[test]
fn a_guest_that_does_not_halt_is_a_failure_with_a_message() {
    if kvm_or_skip("a_guest_that_does_not_halt_is_a_failure_with_a_message").is_none() {
        return;
    }
    // The demo with its reset vector turned into `jmp $`.
    let spin = igvm_snp_test_support::demo_with(|dirs| {
        for d in dirs.iter_mut() {
            if let igvm::IgvmDirectiveHeader::PageData { gpa, data, .. } = d {
                if *gpa == igvm_snp::demo::CODE_GPA {
                    data[0xFF0..0xFF2].copy_from_slice(&[0xEB, 0xFE]);
                }
            }
        }
    });
    let path = write("spin.igvm", &spin);
    let o = run(&path, &["--time-limit", "0.5"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("the guest did not halt within 0.5 s"), "{err}");
    let o = run(Path::new("/nonexistent/igvm-snp/none.igvm"), &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).starts_with("error: /nonexistent/igvm-snp/none.igvm: "));
    let o = Command::new(vmm_embed()).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "usage error");
    // 2^44 + 1 MiB does not fit in bytes: a usage error, not 1 MiB of RAM.
    let o = run(&path, &["--memory-mib", "17592186044417"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    // Usage errors say what is wrong; --help is not one.
    for (args, why) in [
        (
            &["--memory-mib", "0"][..],
            "--memory-mib 0: a size in MiB, at least 1",
        ),
        (
            &["--time-limit", "0"],
            "--time-limit 0: seconds, more than 0",
        ),
        (&["--time-limit"], "--time-limit needs seconds"),
        (&["--vcpus", "2"], "unknown option --vcpus"),
    ] {
        let o = run(&path, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            text(&o.stderr).starts_with(&format!("error: {why}\nusage: ")),
            "{}",
            text(&o.stderr)
        );
    }
    let o = Command::new(vmm_embed()).arg("--help").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).starts_with("usage: vmm-embed FILE"));
}

/// `--model`: the VMM's objects launched step by step on the firmware
/// model; the printed digest is the plan's (computed here by the library
/// from the same file) and, for a real igvmbuilder file, igvmmeasure's.
#[test]
fn launches_on_the_model_and_prints_the_launch_digest() {
    if kvm_or_skip("launches_on_the_model_and_prints_the_launch_digest").is_none() {
        return;
    }
    let bytes = igvm_snp::demo::demo_igvm();
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 64 << 20)]);
    let digest = LaunchPlan::new(&bytes, &config, PlanOptions::default())
        .unwrap()
        .launch_digest();
    let o = run(&write("demo-model.igvm", &bytes), &["--model"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.ends_with(&format!("launch digest {digest}\n")), "{out}");

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/igvmbuilder");
    let o = run(&fixtures.join("qemu-nopolicy.igvm"), &["--model"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // igvmmeasure's digest of the file (tests/fixtures/igvmbuilder/expected.json).
    assert!(
        text(&o.stdout).contains(
            "A25369BB4DB67F334461E00D243082567C6DF385BE90D35D283E52EE701D7ECD27394C054E4A4D74A50FDD3F6C9CEB6D"
        ),
        "{}",
        text(&o.stdout)
    );
}

/// A guest that sets the UART up as firmware does: the divisor written
/// with DLAB set (not output), then waiting for the line status register
/// to say "transmitter empty and idle" (0x60, as OVMF's serial library
/// waits) before each byte.
#[test]
fn the_serial_port_is_a_16550_for_output() {
    use igvm_snp_test_support::asm::{Code, gdt32};
    use igvm_snp_test_support::{flat_vmsa, snp_igvm};
    if kvm_or_skip("the_serial_port_is_a_16550_for_output").is_none() {
        return;
    }
    const CODE: u64 = 0x1000;
    const GDT: u64 = 0x6000;
    let mut c = Code::new(CODE as u32);
    let out = |c: &mut Code, port: u16, value: u8| {
        c.emit(&[0xBA]); // mov edx, imm32
        c.emit(&u32::from(port).to_le_bytes());
        c.emit(&[0xB0, value]); // mov al, imm8
        c.emit(&[0xEE]); // out dx, al
    };
    out(&mut c, 0x3FB, 0x80); // LCR: DLAB on
    out(&mut c, 0x3F8, 0x01); // divisor latch low: not output
    out(&mut c, 0x3FB, 0x03); // LCR: 8N1, DLAB off
    for byte in *b"UART\n" {
        c.emit(&[0xBA, 0xFD, 0x03, 0x00, 0x00]); // mov edx, 0x3FD (LSR)
        let poll = c.here();
        c.emit(&[0xEC]); // in al, dx
        c.emit(&[0x24, 0x60]); // and al, 0x60
        c.emit(&[0x3C, 0x60]); // cmp al, 0x60
        c.short_back(0x75, poll); // jne poll
        out(&mut c, 0x3F8, byte);
    }
    c.halt();
    let file = snp_igvm(
        &[(CODE, c.page()), (GDT, gdt32())],
        flat_vmsa(CODE, 0xC9B, GDT),
    );
    let path = write("uart.igvm", &file);
    assert_prints(&run(&path, &["--time-limit", "5"]), "UART\n");
}
