//! Native runs that do not end in HLT: a spinning guest stops at the time
//! limit, a store to unmapped memory is reported with its GPA and data, a
//! triple fault is a shutdown, and a panicking output callback still stops
//! the vCPU.

use igvm_snp_test_support as common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use common::asm::{self, Code};
use common::{flat_vmsa, snp_igvm};
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
use igvm_snp_kvm::kvm_check::kvm_or_skip;
use igvm_snp_kvm::native::{NativeConfig, NativeOutcome, NativeVm, UnexpectedExit};

const CODE: u64 = 0x1000;
const GDT: u64 = 0x6000;

fn ram() -> Vec<GpaRange> {
    vec![GpaRange::new(0, 1 << 20)]
}

/// A flat 32-bit protected-mode guest at `CODE`; its IDTR limit is 0.
fn flat32_file(code: Vec<u8>) -> Vec<u8> {
    snp_igvm(
        &[(CODE, code), (GDT, asm::gdt32())],
        flat_vmsa(CODE, 0xC9B, GDT),
    )
}

fn run(bytes: &[u8], limit: Duration, out: impl FnMut(&[u8])) -> NativeOutcome {
    let plan =
        LaunchPlan::new(bytes, &LaunchConfig::new(1, ram()), PlanOptions::default()).unwrap();
    NativeVm::run_plan(&plan, &NativeConfig::new(ram(), limit), out).unwrap()
}

#[test]
fn spinning_guest_stops_at_the_time_limit() {
    if kvm_or_skip("spinning_guest_stops_at_the_time_limit").is_none() {
        return;
    }
    let limit = Duration::from_millis(300);
    let start = Instant::now();
    let outcome = run(&flat32_file(asm::spin_forever()), limit, |_| {});
    let took = start.elapsed();
    // The guest never leaves its `jmp $` at CODE.
    assert_eq!(outcome, NativeOutcome::TimedOut { rip: CODE });
    assert!(took >= limit, "stopped after {took:?}");
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
}

#[test]
fn store_to_unmapped_memory_is_reported() {
    if kvm_or_skip("store_to_unmapped_memory_is_reported").is_none() {
        return;
    }
    let outcome = run(
        &flat32_file(asm::store_to(0x4000_0000, 0x1234_5678)),
        Duration::from_secs(10),
        |_| {},
    );
    match outcome {
        NativeOutcome::UnexpectedExit {
            exit: UnexpectedExit::MmioWrite { gpa, data },
            ..
        } => {
            assert_eq!(gpa, 0x4000_0000);
            assert_eq!(data, vec![0x78, 0x56, 0x34, 0x12]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn triple_fault_is_a_shutdown() {
    if kvm_or_skip("triple_fault_is_a_shutdown").is_none() {
        return;
    }
    // `ud2` (0F 0B) with an empty IDT: #UD cannot be delivered, nor the
    // resulting #GP or #DF, so the CPU shuts down.
    let mut c = Code::new(CODE as u32);
    c.emit(&[0x0F, 0x0B]); // ud2
    let outcome = run(&flat32_file(c.page()), Duration::from_secs(10), |_| {});
    assert!(
        matches!(outcome, NativeOutcome::Shutdown { .. }),
        "{outcome:?}"
    );
}

#[test]
fn panicking_output_callback_still_stops_the_vcpu() {
    if kvm_or_skip("panicking_output_callback_still_stops_the_vcpu").is_none() {
        return;
    }
    let mut c = Code::new(CODE as u32);
    c.emit(&[0xBA, 0xF8, 0x03, 0x00, 0x00]); // mov edx, 0x3F8
    c.emit(&[0xB0, b'x']); // mov al, 'x'
    c.emit(&[0xEE]); // out dx, al
    let spin = c.here();
    c.short_back(0xEB, spin); // jmp $ (EB FE)
    let bytes = flat32_file(c.page());
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        run(&bytes, Duration::from_secs(60), |b| {
            panic!("output callback refuses {b:?}")
        })
    }));
    assert!(result.is_err());
    // The 60 s limit was not needed: unwinding stopped the vCPU thread.
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// The kick signal must be a real-time one: an offset that lands on a
/// standard signal (SIGRTMIN - 23 is SIGSEGV with glibc) or past SIGRTMAX
/// is refused before any handler is installed, and the default still runs.
#[test]
fn a_kick_signal_outside_the_real_time_range_is_refused() {
    use igvm_snp_kvm::native::NativeError;
    if kvm_or_skip("a_kick_signal_outside_the_real_time_range_is_refused").is_none() {
        return;
    }
    let bytes = flat32_file(asm::spin_forever());
    let plan =
        LaunchPlan::new(&bytes, &LaunchConfig::new(1, ram()), PlanOptions::default()).unwrap();
    let span = libc::SIGRTMAX() - libc::SIGRTMIN();
    for offset in [-23, -1, span + 1, i32::MAX] {
        let mut config = NativeConfig::new(ram(), Duration::from_millis(100));
        config.kick_signal = offset;
        match NativeVm::run_plan(&plan, &config, |_| {}) {
            Err(NativeError::Signal { offset: got, .. }) => assert_eq!(got, offset),
            other => panic!("offset {offset}: {other:?}"),
        }
    }
    let mut config = NativeConfig::new(ram(), Duration::from_millis(100));
    config.kick_signal = span;
    let outcome = NativeVm::run_plan(&plan, &config, |_| {}).unwrap();
    assert!(
        matches!(outcome, NativeOutcome::TimedOut { .. }),
        "{outcome:?}"
    );
}
