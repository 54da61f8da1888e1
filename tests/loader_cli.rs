//! End-to-end tests of the example loader: every command of the built
//! `igvm-load` binary, on files the tests write (`demo --write` and files
//! built with the `igvm` crate's builder), including bad files and usage
//! errors.
//!
//! The binary is the example built next to this test executable:
//! `cargo test` builds the package's examples before running its
//! integration tests (`target/<profile>/examples/igvm-load`). A run limited
//! to this target (`cargo test --test loader_cli`) does not build them;
//! build the example first then (`cargo build --example igvm-load`).
//!
//! Tests that run a guest need /dev/kvm: skipped with a note without it,
//! failing instead when IGVM_SNP_REQUIRE_KVM=1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IgvmRevision};
use igvm_defs::{
    IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
};
use igvm_snp::demo::{CODE_GPA, DATA_GPA, GREETING};
use igvm_snp::{GpaRange, LaunchConfig, LaunchPlan, PlanOptions};
use igvm_snp_kvm::host::{DEFAULT_VM_TYPE, HOST_WITHOUT_VAR};
use igvm_snp_kvm::kvm_check::{host_or_skip, kvm_or_skip};
use igvm_snp_kvm::preflight::PreflightReport;
use igvm_snp_test_support::demo_with_id_block;

/// The example binary, next to this test executable.
fn loader() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/loader_cli-<hash> → target/<profile>/examples/
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/<profile>/deps");
    let bin = dir.join("examples").join("igvm-load");
    let built = std::fs::metadata(&bin).and_then(|m| m.modified());
    let Ok(built) = built else {
        panic!(
            "{} is missing: run `cargo test` for the whole package, or `cargo build --example \
             igvm-load` first",
            bin.display()
        );
    };
    // A run of this target alone does not rebuild the example: refuse to test
    // a binary older than the loader's sources.
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/igvm-load");
    for entry in std::fs::read_dir(&sources).unwrap() {
        let source = entry.unwrap().path();
        let changed = std::fs::metadata(&source)
            .and_then(|m| m.modified())
            .unwrap();
        assert!(
            changed <= built,
            "{} is older than {}: run `cargo test` for the whole package, or `cargo build \
             --example igvm-load` first",
            bin.display(),
            source.display()
        );
    }
    bin
}

/// Another example binary built next to the loader.
fn example(name: &str) -> PathBuf {
    loader().with_file_name(name)
}

/// Runs the loader with `args`, without RUST_LOG (so stderr holds only what
/// the loader itself prints).
fn igvm_load(args: &[&str]) -> Output {
    Command::new(loader())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the loader runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// A directory of its own for test `name`.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("loader_cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` as `dir/name` and returns the path as a string.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// The demo file with its directives edited, serialized by the igvm crate.
fn demo_with(edit: impl FnOnce(&mut Vec<IgvmDirectiveHeader>)) -> Vec<u8> {
    let file = igvm_snp::demo::demo_file();
    let mut dirs = file.directives().to_vec();
    edit(&mut dirs);
    serialize(IgvmFile::new(
        IgvmRevision::V1,
        file.platforms().to_vec(),
        file.initializations().to_vec(),
        dirs,
    ))
}

fn serialize(file: Result<IgvmFile, igvm::Error>) -> Vec<u8> {
    let mut bytes = Vec::new();
    file.unwrap().serialize(&mut bytes).unwrap();
    bytes
}

/// Replaces the demo's data page with `data`.
fn demo_with_data(data: Vec<u8>) -> Vec<u8> {
    demo_with(|dirs| {
        for d in dirs.iter_mut() {
            if let IgvmDirectiveHeader::PageData { gpa, data: old, .. } = d {
                if *gpa == DATA_GPA {
                    *old = data.clone();
                }
            }
        }
    })
}

/// Replaces the demo's code page with `code` at the reset vector (page
/// offset 0xFF0).
fn demo_with_reset_code(code: &[u8]) -> Vec<u8> {
    demo_with(|dirs| {
        for d in dirs.iter_mut() {
            if let IgvmDirectiveHeader::PageData { gpa, data, .. } = d {
                if *gpa == CODE_GPA {
                    data[0xFF0..0xFF0 + code.len()].copy_from_slice(code);
                }
            }
        }
    })
}

/// A file whose only platform is VSM isolation: no SEV-SNP platform.
fn no_snp_platform() -> Vec<u8> {
    serialize(IgvmFile::new(
        IgvmRevision::V1,
        vec![IgvmPlatformHeader::SupportedPlatform(
            IGVM_VHS_SUPPORTED_PLATFORM {
                compatibility_mask: 1,
                highest_vtl: 0,
                platform_type: IgvmPlatformType::VSM_ISOLATION,
                platform_version: 1,
                shared_gpa_boundary: 0,
            },
        )],
        vec![],
        vec![IgvmDirectiveHeader::PageData {
            gpa: 0x1000,
            compatibility_mask: 1,
            flags: IgvmPageDataFlags::new(),
            data_type: IgvmPageDataType::NORMAL,
            data: vec![0x90; 4096],
        }],
    ))
}

/// The digest the library gives for `bytes` with the loader's defaults
/// (1 vCPU, 512 MiB).
fn library_digest(bytes: &[u8], options: PlanOptions) -> String {
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 512 << 20)]);
    LaunchPlan::new(bytes, &config, options)
        .unwrap()
        .launch_digest()
        .to_string()
}

/// The line the demo guest prints for a data page (computed here from the
/// page, not by the library).
fn greeting_for(data: &[u8]) -> String {
    let sum = data.iter().fold(0u16, |s, b| s.wrapping_add(u16::from(*b)));
    format!("{GREETING}{sum:04X}\n")
}

fn is_digest(s: &str) -> bool {
    s.len() == 96 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The digest `measure FILE EXTRA…` prints (exit 0, 96 hexadecimal digits).
fn measure(file: &str, extra: &[&str]) -> String {
    let o = igvm_load(&[&["measure", file][..], extra].concat());
    assert_exit(&o, 0, &format!("measure {file} {extra:?}"));
    let digest = stdout(&o).trim_end().to_string();
    assert!(is_digest(&digest), "{digest}");
    digest
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", stdout(o)))
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["plan", "--help"],
        &["measure", "--help"],
        &["launch", "--help"],
        &["run", "--help"],
        &["check", "--help"],
        &["demo", "--help"],
        &["host", "--help"],
        &["verify", "--help"],
    ] {
        let o = igvm_load(args);
        assert_exit(&o, 0, &format!("{args:?}"));
        assert!(
            stdout(&o).contains("Usage: igvm-load"),
            "{args:?}: {}",
            stdout(&o)
        );
    }
    let o = igvm_load(&["launch", "--help"]);
    for option in [
        "--backend",
        "--memory",
        "--vcpus",
        "--cmdline",
        "--host-data",
    ] {
        assert!(stdout(&o).contains(option), "launch --help lacks {option}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch("usage");
    let demo = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    // Without a command: the help, on stderr.
    let o = igvm_load(&[]);
    assert_exit(&o, 2, "no command");
    assert!(stderr(&o).contains("Usage: igvm-load"), "{}", stderr(&o));
    for args in [
        &["frobnicate"][..],
        &["plan"],
        &["run", demo.as_str()],
        &["launch", demo.as_str()],
        &["launch", demo.as_str(), "--backend", "qemu"],
        &["plan", demo.as_str(), "--memory", "3"],
        &["plan", demo.as_str(), "--host-data", "abc"],
        &["run", "--native", demo.as_str(), "--time-limit", "0"],
        &["check", demo.as_str(), "--vcpus", "0"],
        &[
            "launch",
            demo.as_str(),
            "--backend",
            "kvm",
            "--model-no-vmsa-type",
        ],
        &["run", "--native", demo.as_str(), "--policy", "30000"],
        &["run", "--native", demo.as_str(), "--native-zero"],
        &[
            "measure",
            demo.as_str(),
            "--native-zero",
            "--profile",
            "kvm-legacy",
        ],
        &["check", demo.as_str(), "--vcpus", "4097"],
        &["check", demo.as_str(), "--vcpus", "1,2"],
        &[
            "launch",
            demo.as_str(),
            "--backend",
            "model",
            "--profile",
            "kvm-legacy",
        ],
    ] {
        let o = igvm_load(args);
        assert_exit(&o, 2, &format!("{args:?}"));
        assert!(stderr(&o).starts_with("error:"), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // Errors the loader finds after parsing show the subcommand's usage.
    let o = igvm_load(&["plan", demo.as_str(), "--vcpus", "1,2"]);
    assert_exit(&o, 2, "plan with a list");
    assert!(
        stderr(&o).contains("Usage: igvm-load plan [OPTIONS] <FILE>"),
        "{}",
        stderr(&o)
    );
}

/// Bad files: exit 1 and exactly one line on stderr, `error: FILE: …`
/// naming what is wrong, for every command that reads a file.
#[test]
fn bad_files_give_one_error_line_and_exit_1() {
    let dir = scratch("bad");
    let demo = igvm_snp::demo::demo_igvm();
    let mut wrong_checksum = demo.clone();
    // The fixed header's checksum field (offset 20).
    wrong_checksum[20] ^= 0xFF;
    let cases = [
        (
            write(
                &dir,
                "garbage.igvm",
                b"this is not an IGVM file at all, just text",
            ),
            "magic",
        ),
        (write(&dir, "truncated.igvm", &demo[..300]), "300"),
        (write(&dir, "checksum.igvm", &wrong_checksum), "checksum"),
        (
            write(&dir, "vsm.igvm", &no_snp_platform()),
            "SEV-SNP platform",
        ),
        (
            dir.join("missing.igvm").to_str().unwrap().to_string(),
            "cannot read",
        ),
    ];
    for (file, what) in &cases {
        let f = file.as_str();
        for args in [
            &["plan", f][..],
            &["plan", f, "--json"],
            &["measure", f],
            &["measure", f, "--json", "--trace"],
            &["launch", f, "--backend", "model"],
            &["launch", f, "--backend", "kvm"],
            &["run", "--native", f],
            &["check", f],
        ] {
            if args[0] == "check" && f.ends_with("vsm.igvm") {
                // check reports a parseable file profile by profile, and
                // exits 1 because none can launch it.
                let o = igvm_load(args);
                assert_exit(&o, 1, "check of a file without an SEV-SNP platform");
                let err = stderr(&o);
                assert!(err.contains("no profile can launch"), "{err}");
                assert!(err.contains(f), "{err}");
                let out = stdout(&o);
                assert_eq!(out.matches("cannot launch").count(), 4, "{out}");
                assert!(out.contains("no SEV-SNP platform"), "{out}");
                continue;
            }
            let o = igvm_load(args);
            assert_exit(&o, 1, &format!("{args:?}"));
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.starts_with("error: "), "{args:?}: {err}");
            assert!(err.contains(f), "{args:?} does not name the file: {err}");
            assert!(err.contains(what), "{args:?} does not say {what:?}: {err}");
            assert!(o.stdout.is_empty(), "{args:?}: {}", stdout(&o));
        }
    }
    // What is not a regular file: named, and never read without bound.
    let d = dir.to_str().unwrap();
    for (args, what) in [
        (&["measure", d][..], "it is a directory"),
        (&["check", d], "it is a directory"),
        (&["plan", "/dev/null"], "not a regular file"),
        (&["launch", d, "--backend", "model"], "Is a directory"),
        // An endless device: its header is read, nothing more.
        (&["launch", "/dev/zero", "--backend", "model"], "bad magic"),
        (&["run", "--native", "/dev/zero"], "bad magic"),
    ] {
        let o = igvm_load(args);
        assert_exit(&o, 1, &format!("{args:?}"));
        assert!(stderr(&o).contains(what), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn measure_prints_the_digest_and_json() {
    let dir = scratch("measure");
    let bytes = igvm_snp::demo::demo_igvm();
    let file = write(&dir, "demo.igvm", &bytes);
    let o = igvm_load(&["measure", &file]);
    assert_exit(&o, 0, "measure");
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
    let digest = measure(&file, &[]);
    assert_eq!(digest, library_digest(&bytes, PlanOptions::default()));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    let o = igvm_load(&["measure", &file, "--json"]);
    assert_exit(&o, 0, "measure --json");
    assert_eq!(json(&o)["launch_digest"], digest.as_str());

    // The streamed JSON trace: the library's trace, then the digest.
    let o = igvm_load(&["measure", &file, "--json", "--trace"]);
    assert_exit(&o, 0, "measure --json --trace");
    let v = json(&o);
    assert_eq!(v["launch_digest"], digest.as_str());
    // The loader's default RAM (512 MiB), as `library_digest`.
    let config = LaunchConfig::new(1, vec![GpaRange::new(0, 512 << 20)]);
    let plan = LaunchPlan::new(&bytes, &config, PlanOptions::default()).unwrap();
    assert_eq!(
        v["trace"],
        serde_json::to_value(plan.measure_trace()).unwrap()
    );

    // The demo's data-less page is NORMAL by default, ZERO with --native-zero.
    let zero = measure(&file, &["--native-zero"]);
    assert_ne!(zero, digest);
    assert_eq!(zero, library_digest(&bytes, PlanOptions::native_zero()));

    // The trace: one line per launched page, the last running digest the result.
    let o = igvm_load(&["measure", &file, "--trace"]);
    assert_exit(&o, 0, "measure --trace");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5 + 1, "{out}");
    assert_eq!(lines[5], digest);
    assert!(lines[4].ends_with(&digest), "{out}");
    assert!(lines[4].contains("VMSA"), "{out}");
}

#[test]
fn measure_with_a_mismatching_id_block_prints_the_digest_and_fails() {
    let dir = scratch("id_block");
    let bytes = demo_with_id_block([0xAB; 48]);
    let file = write(&dir, "id.igvm", &bytes);
    let o = igvm_load(&["measure", &file]);
    assert_exit(&o, 1, "measure with a wrong ID block");
    let digest = stdout(&o).trim_end().to_string();
    assert_eq!(digest, library_digest(&bytes, PlanOptions::default()));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains(&file), "{err}");
    assert!(
        err.contains(&"AB".repeat(48)),
        "the ID block's value: {err}"
    );
    assert!(err.contains(&digest), "the computed value: {err}");

    // With the right `ld` the same command succeeds.
    let mut ld = [0u8; 48];
    for (i, b) in ld.iter_mut().enumerate() {
        *b = u8::from_str_radix(&digest[2 * i..2 * i + 2], 16).unwrap();
    }
    let good = write(&dir, "good.igvm", &demo_with_id_block(ld));
    let o = igvm_load(&["measure", &good]);
    assert_exit(&o, 0, "measure with the right ID block");
    assert_eq!(stdout(&o).trim_end(), digest);

    // A list of counts: kvm-legacy's digests differ by count, and the ID
    // block expects none of them; the spec's is the same for every count.
    let legacy = ["--profile", "kvm-legacy", "--vcpus", "1,2"];
    let o = igvm_load(&[&["measure", &good][..], &legacy].concat());
    assert_exit(&o, 1, "kvm-legacy counts the ID block does not expect");
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    assert!(
        stderr(&o).contains("which 1, 2 vCPU(s) do not give"),
        "{}",
        stderr(&o)
    );
    let o = igvm_load(&["measure", &good, "--vcpus", "1,2"]);
    assert_exit(&o, 0, "spec digest for every count");
}

#[test]
fn plan_shows_every_step() {
    let dir = scratch("plan");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let o = igvm_load(&["plan", &file, "--json"]);
    assert_exit(&o, 0, "plan --json");
    let v = json(&o);
    let steps = v["steps"].as_array().expect("steps").len();
    // The demo: parameter area, data-less page, data + code pages, VMSA.
    assert_eq!(steps, 4, "{v}");

    let o = igvm_load(&["plan", &file]);
    assert_exit(&o, 0, "plan");
    let table = stdout(&o);
    let digest = measure(&file, &[]);
    assert!(table.contains("step  GPA range"), "{table}");
    for kind in ["UNMEASURED", "NORMAL", "VMSA"] {
        assert!(table.contains(kind), "{kind}: {table}");
    }
    assert!(table.contains(&format!(
        "4 steps, 5 pages launched, launch digest {digest}"
    )));
    assert_eq!(v["launch_digest"], digest.as_str());
}

/// A parameter area's step names the area as the file does (its index) in
/// the text and in JSON, where it also gives the area's position in
/// `parameter_areas`: igvmbuilder's qemu-nofw.igvm declares areas 1, 2, 3,
/// 0 in that order, so the two differ. (JSON gave only the position, as
/// "area", while the text gave the index under the same word.)
#[test]
fn plan_names_parameter_areas_by_their_index() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/igvmbuilder/qemu-nofw.igvm")
        .display()
        .to_string();
    let v = json(&igvm_load(&["plan", &file, "--json"]));
    let areas = v["parameter_areas"].as_array().unwrap();
    let text = stdout(&igvm_load(&["plan", &file]));
    let mut seen = Vec::new();
    for step in v["steps"].as_array().unwrap() {
        let source = &step["source"];
        if source["kind"] != "parameter_area" {
            continue;
        }
        let (position, index) = (&source["position"], &source["index"]);
        assert_eq!(
            areas[position.as_u64().unwrap() as usize]["index"],
            *index,
            "{step}"
        );
        let line = format!("#{} area {index}", step["directives"]["start"]);
        assert!(text.contains(&line), "{line}: {text}");
        seen.push((position.as_u64().unwrap(), index.as_u64().unwrap()));
    }
    assert_eq!(seen, [(0, 1), (1, 2), (2, 3), (3, 0)]);
}

#[test]
fn launch_on_the_model_reports_the_plans_digest_and_steps() {
    if kvm_or_skip("launch_on_the_model").is_none() {
        return;
    }
    let dir = scratch("launch_model");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let digest = measure(&file, &[]);
    let steps = json(&igvm_load(&["plan", &file, "--json"]))["steps"]
        .as_array()
        .unwrap()
        .len();

    let o = igvm_load(&["launch", &file, "--backend", "model", "--json"]);
    assert_exit(&o, 0, "launch --backend model --json");
    let v = json(&o);
    assert_eq!(v["launch_digest"], digest.as_str(), "{v}");
    assert_eq!(v["plan_digest"], digest.as_str(), "{v}");
    assert_eq!(v["launch_update_calls"], steps as u64, "{v}");
    assert_eq!(v["launch_update_ioctls"], steps as u64, "{v}");
    assert_eq!(v["pages"], 5, "{v}");
    assert_eq!(v["vmsa"]["kind"], "page_type", "{v}");
    let phases: Vec<&str> = v["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["phase"].as_str())
        .collect();
    for phase in ["launch_start", "launch_update", "launch_finish", "memory"] {
        assert!(phases.contains(&phase), "{phase}: {v}");
    }
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    let o = igvm_load(&["launch", &file, "--backend", "model"]);
    assert_exit(&o, 0, "launch --backend model");
    let text = stdout(&o);
    assert!(text.contains("SNP_LAUNCH_UPDATE commands: 4"), "{text}");
    assert!(
        text.contains(&format!("launch digest (backend): {digest}")),
        "{text}"
    );
}

#[test]
fn launch_on_the_model_without_the_vmsa_page_type() {
    if kvm_or_skip("launch_on_the_model_without_the_vmsa_page_type").is_none() {
        return;
    }
    let dir = scratch("launch_fallback");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    // Refused unless the fallback is allowed.
    let o = igvm_load(&[
        "launch",
        &file,
        "--backend",
        "model",
        "--model-no-vmsa-type",
    ]);
    assert_exit(&o, 1, "no VMSA page type, no fallback");
    let err = stderr(&o);
    assert!(err.starts_with(&format!("error: {file}: ")), "{err}");
    assert!(err.contains("VMSA page type"), "{err}");
    assert!(err.contains("--allow-vmsa-fallback"), "{err}");

    // With it, the digest is KVM's per-vCPU one: the kvm-legacy profile's.
    let legacy = measure(&file, &["--profile", "kvm-legacy", "--vcpus", "2"]);
    let spec = measure(&file, &["--vcpus", "2"]);
    assert_ne!(legacy, spec);
    let args = [
        "launch",
        &file,
        "--backend",
        "model",
        "--model-no-vmsa-type",
        "--allow-vmsa-fallback",
        "--vcpus",
        "2",
    ];
    let o = igvm_load(&[&args[..], &["--json"]].concat());
    assert_exit(&o, 0, "fallback --json");
    let v = json(&o);
    assert_eq!(v["vmsa"]["kind"], "fallback", "{v}");
    assert_eq!(v["vmsa"]["legacy"]["vcpus"], 2, "{v}");
    assert_eq!(v["launch_digest"], legacy.as_str(), "{v}");
    assert_eq!(v["predicted_legacy_digest"], legacy.as_str(), "{v}");
    assert_eq!(v["plan_digest"], spec.as_str(), "{v}");

    let o = igvm_load(&args);
    assert_exit(&o, 0, "fallback");
    let text = stdout(&o);
    assert!(text.contains("KVM's per-vCPU"), "{text}");
    assert!(
        text.contains(&format!("predicted KVM digest:   {legacy} (equal)")),
        "{text}"
    );
}

/// The demo with R15 set in its VMSA, and the `launch` arguments for the
/// register fallback on the model with `vcpus`.
fn r15_demo_and_fallback_args(dir: &Path) -> String {
    let bytes = demo_with(|dirs| {
        for d in dirs.iter_mut() {
            if let IgvmDirectiveHeader::SnpVpContext { vmsa, .. } = d {
                vmsa.r15 = 0x0123_4567_89AB_CDEF;
            }
        }
    });
    write(dir, "r15.igvm", &bytes)
}

const FALLBACK: [&str; 5] = [
    "--backend",
    "model",
    "--model-no-vmsa-type",
    "--allow-vmsa-fallback",
    "--vcpus",
];

/// Built with the planted translation error (R15 left out of the register
/// fallback): `launch` fails, naming the field, vCPU and both values.
#[cfg(feature = "planted-translation-error")]
#[test]
fn launch_reports_the_vmsa_fields_a_translation_error_changes() {
    if kvm_or_skip("launch_reports_the_vmsa_fields_a_translation_error_changes").is_none() {
        return;
    }
    let dir = scratch("launch_planted");
    let file = r15_demo_and_fallback_args(&dir);
    let legacy = measure(&file, &["--profile", "kvm-legacy", "--vcpus", "2"]);
    let o = igvm_load(&[&["launch", &file][..], &FALLBACK, &["2"]].concat());
    assert_exit(&o, 1, "planted translation error");
    let (text, err) = (stdout(&o), stderr(&o));
    assert!(
        text.contains(&format!("predicted KVM digest:   {legacy} (DIFFERS)")),
        "{text}"
    );
    assert!(
        text.contains("  vCPU 0 r15: backend 0x0, predicted 0x123456789abcdef\n"),
        "{text}"
    );
    assert!(!text.contains("vCPU 1"), "{text}");
    assert!(
        err.contains("differ from the prediction in: vCPU 0 r15"),
        "{err}"
    );
    let o = igvm_load(&[&["launch", &file, "--json"][..], &FALLBACK, &["2"]].concat());
    assert_exit(&o, 1, "planted translation error --json");
    let v = json(&o);
    assert_eq!(
        v["vmsa_differences"],
        serde_json::json!([{"vcpu": 0, "field": "r15", "backend": "0x0",
                            "predicted": "0x123456789abcdef"}]),
        "{v}"
    );
}

/// Without the planted error, the same file's digest on the model equals
/// the kvm-legacy prediction, and no VMSA differences are reported.
#[cfg(not(feature = "planted-translation-error"))]
#[test]
fn launch_with_r15_set_matches_the_kvm_legacy_digest() {
    if kvm_or_skip("launch_with_r15_set_matches_the_kvm_legacy_digest").is_none() {
        return;
    }
    let dir = scratch("launch_r15");
    let file = r15_demo_and_fallback_args(&dir);
    let legacy = measure(&file, &["--profile", "kvm-legacy", "--vcpus", "2"]);
    let o = igvm_load(&[&["launch", &file, "--json"][..], &FALLBACK, &["2"]].concat());
    assert_exit(&o, 0, "fallback with R15");
    let v = json(&o);
    assert_eq!(v["launch_digest"], legacy.as_str(), "{v}");
    assert_eq!(v["vmsa_differences"], serde_json::json!([]), "{v}");
}

#[test]
fn launch_on_kvm_without_snp_fails_in_the_preflight() {
    if PreflightReport::probe().require_snp().is_ok() {
        eprintln!("launch_on_kvm_without_snp: skipped, this host offers SEV-SNP");
        return;
    }
    let dir = scratch("launch_kvm");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let o = igvm_load(&["launch", &file, "--backend", "kvm", "--json"]);
    assert_exit(&o, 1, "launch --backend kvm");
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("error: {file}: cannot launch with the kvm backend").as_str()),
        "{err}"
    );
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.starts_with("  caused by: SEV-SNP is not available on this host: ")),
        "{err}"
    );
}

#[test]
fn run_native_prints_the_guests_output() {
    if kvm_or_skip("run_native_prints_the_guests_output").is_none() {
        return;
    }
    let dir = scratch("run_native");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let o = igvm_load(&["run", "--native", &file]);
    assert_exit(&o, 0, "run --native demo");
    assert_eq!(stdout(&o), igvm_snp::demo::expected_output());
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    // Another data page, another checksum: the loaded page reaches the guest.
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    let other = write(&dir, "other.igvm", &demo_with_data(data.clone()));
    let o = igvm_load(&["run", "--native", &other, "--memory", "64M"]);
    assert_exit(&o, 0, "run --native other");
    assert_eq!(stdout(&o), greeting_for(&data));
    assert_ne!(stdout(&o), igvm_snp::demo::expected_output());
}

/// Runs the loader with `args` and `IGVM_SNP_HOST_WITHOUT=without`.
fn igvm_load_without(without: &str, args: &[&str]) -> Output {
    Command::new(loader())
        .args(args)
        .env_remove("RUST_LOG")
        .env(HOST_WITHOUT_VAR, without)
        .output()
        .expect("the loader runs")
}

/// `host` shows what this KVM offers, as the library's probe finds it, and
/// reports a feature named in IGVM_SNP_HOST_WITHOUT as disabled.
#[test]
fn host_reports_what_kvm_offers() {
    let Some((_, host)) = host_or_skip("host_reports_what_kvm_offers") else {
        return;
    };
    let o = igvm_load(&["host", "--json"]);
    assert_exit(&o, 0, "host --json");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kvm"], true);
    let vm0 = &v["vm_types"][0];
    assert_eq!(vm0["vm_type"], 0);
    let state = if host.guest_memfd(DEFAULT_VM_TYPE) {
        "yes"
    } else {
        "no"
    };
    assert_eq!(vm0["guest_memfd"]["state"], state, "{v}");
    assert_eq!(v["disabled"], serde_json::json!([]));
    // What the text shows, the JSON has: the preflight's probes, the
    // library's own (numbers for bitmaps, a value or an error for device
    // attributes).
    let library = igvm_snp_kvm::preflight::PreflightReport::probe();
    let p = &v["preflight"];
    assert_eq!(p["vm_types"], library.vm_types, "{p}");
    assert_eq!(p["memory_attributes"], library.memory_attributes, "{p}");
    assert_eq!(p["sev_path"], "/dev/sev", "{p}");
    for attr in ["vmsa_features", "snp_policy_bits"] {
        assert!(
            p[attr].get("value").is_some() || p[attr].get("error").is_some(),
            "{attr}: {p}"
        );
    }

    let o = igvm_load_without("guest_memfd", &["host", "--json"]);
    assert_exit(&o, 0, "host --json without guest_memfd");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["vm_types"][0]["guest_memfd"]["state"], "disabled", "{v}");
    assert_eq!(v["disabled"], serde_json::json!(["guest_memfd"]));
    let missing = v["snp_missing"].to_string();
    assert!(missing.contains("KVM lacks guest_memfd"), "{missing}");

    let o = igvm_load(&["host"]);
    assert_exit(&o, 0, "host");
    let text = stdout(&o);
    assert!(text.contains("VM type 0 (default): guest_memfd "), "{text}");
    assert!(text.contains("SEV-SNP launches: "), "{text}");
    let o = igvm_load_without("guest-memfd memory_attributes", &["host"]);
    assert!(
        stdout(&o)
            .contains("treated as absent (IGVM_SNP_HOST_WITHOUT): guest_memfd, memory_attributes"),
        "{}",
        stdout(&o)
    );
    // A name that is not a feature: said, not silently ignored.
    let o = igvm_load_without("guest_memfd,bogus", &["host"]);
    assert_exit(&o, 0, "host with a bad IGVM_SNP_HOST_WITHOUT");
    assert!(
        stderr(&o)
            .contains("warning: IGVM_SNP_HOST_WITHOUT ignored: `bogus` is not a host feature"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("treated as absent"), "{}", stdout(&o));
}

/// `run --native --guest-memfd` runs the guest from guest_memfd memslots
/// where the host has them and refuses with a typed error where it has
/// none; plain memory (the default) and `launch --backend model` work on
/// both kinds of host. The "absent" branch runs on every host through
/// IGVM_SNP_HOST_WITHOUT.
#[test]
fn guest_memfd_runs_where_present_and_is_refused_where_absent() {
    let Some((_, host)) =
        host_or_skip("guest_memfd_runs_where_present_and_is_refused_where_absent")
    else {
        return;
    };
    let dir = scratch("guest_memfd");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let gmem = ["run", "--native", "--guest-memfd", "--memory", "2M", &file];
    let refused = |o: &Output, reason: &str| {
        assert_exit(o, 1, "run --native --guest-memfd without guest_memfd");
        let err = stderr(o);
        assert!(
            err.starts_with(&format!("error: {file}: cannot set up the native VM\n")),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "guest_memfd memory for GPA 0x0+0x200000 is not available: {reason}"
            )),
            "{err}"
        );
        assert!(o.stdout.is_empty());
    };
    let o = igvm_load(&gmem);
    if host.guest_memfd(DEFAULT_VM_TYPE) {
        assert_exit(&o, 0, "run --native --guest-memfd");
        assert_eq!(stdout(&o), igvm_snp::demo::expected_output());
    } else {
        refused(&o, "KVM has none for this VM type");
    }
    // Every host: treated as absent.
    refused(
        &igvm_load_without("guest_memfd", &gmem),
        "disabled by IGVM_SNP_HOST_WITHOUT",
    );
    let o = igvm_load_without("all", &["run", "--native", &file]);
    assert_exit(&o, 0, "run --native (plain memory) without guest_memfd");
    assert_eq!(stdout(&o), igvm_snp::demo::expected_output());
    let o = igvm_load_without("all", &["launch", &file, "--backend", "model", "--json"]);
    assert_exit(&o, 0, "launch --backend model without guest_memfd");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["launch_digest"], measure(&file, &[]), "{v}");
}

#[test]
fn run_native_fails_when_the_guest_does_not_halt() {
    if kvm_or_skip("run_native_fails_when_the_guest_does_not_halt").is_none() {
        return;
    }
    let dir = scratch("run_native_loop");
    // At the reset vector: jmp $ (forever).
    let file = write(&dir, "loop.igvm", &demo_with_reset_code(&[0xEB, 0xFE]));
    let o = igvm_load(&["run", "--native", &file, "--time-limit", "0.5"]);
    assert_exit(&o, 1, "a guest that spins");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "error: {file}: the guest did not halt within 0.5 s"
        )),
        "{err}"
    );
    assert!(o.stdout.is_empty());

    // At the reset vector: mov cs:[0], al: a write to GPA 0xFFFF0000, which
    // no memory backs.
    let file = write(
        &dir,
        "mmio.igvm",
        &demo_with_reset_code(&[0x2E, 0xA2, 0x00, 0x00]),
    );
    let o = igvm_load(&["run", "--native", &file]);
    assert_exit(&o, 1, "a guest that writes to unmapped memory");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {file}: the guest stopped at RIP ")),
        "{err}"
    );
    assert!(
        err.contains("write to unmapped guest memory at 0xffff0000"),
        "{err}"
    );
}

#[test]
fn demo_shows_the_plan_the_digest_and_the_guests_output() {
    let kvm = kvm_or_skip("demo_shows_the_guests_output").is_some();
    let dir = scratch("demo");
    let path = dir.join("written.igvm");
    let path_str = path.to_str().unwrap();
    let o = igvm_load(&["demo", "--write", path_str]);
    assert_exit(&o, 0, "demo --write");
    let out = stdout(&o);
    // The written file is the demo file.
    assert_eq!(std::fs::read(&path).unwrap(), igvm_snp::demo::demo_igvm());
    let digest = measure(path_str, &[]);
    assert!(out.contains("step  GPA range"), "the plan: {out}");
    assert!(
        out.contains(&format!("launch digest {digest}")),
        "the digest: {out}"
    );
    if kvm {
        assert!(
            out.contains(&igvm_snp::demo::expected_output()),
            "the guest: {out}"
        );
        assert!(out.ends_with("The guest halted.\n"), "{out}");
    }
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn check_reports_every_profile() {
    let dir = scratch("check");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let digest = measure(&file, &[]);
    let o = igvm_load(&["check", &file]);
    assert_exit(&o, 0, "check");
    let out = stdout(&o);
    for profile in ["igvm-spec", "native-zero", "igvmmeasure", "kvm-legacy"] {
        assert!(out.contains(profile), "{profile}: {out}");
    }
    assert!(out.contains(&digest), "{out}");
}

/// The firmware model's host has SMT active, so it refuses a policy that
/// does not allow SMT as the firmware there would (POLICY_FAILURE);
/// `--model-no-smt` models a host without. (igvmbuilder's file without a
/// policy takes `--policy`.)
#[test]
fn the_model_refuses_a_policy_without_smt_on_an_smt_host() {
    if kvm_or_skip("the_model_refuses_a_policy_without_smt").is_none() {
        return;
    }
    let (dir, _) = igvmbuilder_fixtures();
    let file = dir.join("qemu-nopolicy.igvm").display().to_string();
    let launch = |extra: &[&str]| {
        let args = [
            &["launch", &file, "--backend", "model", "--policy", "20000"][..],
            extra,
        ];
        igvm_load(&args.concat())
    };
    let o = launch(&[]);
    assert_exit(&o, 1, "no SMT on an SMT host");
    assert!(
        stderr(&o).contains(
            "SNP_LAUNCH_START: model rejects: policy 0x20000 does not allow SMT (bit 16), which \
             the host has active"
        ) && stderr(&o).contains("POLICY_FAILURE"),
        "{}",
        stderr(&o)
    );
    assert_exit(&launch(&["--model-no-smt"]), 0, "no SMT on a host without");
    let o = igvm_load(&["launch", &file, "--backend", "kvm", "--model-no-smt"]);
    assert_exit(&o, 2, "--model-no-smt with the kvm backend");
    assert!(
        stderr(&o).contains("configure the firmware model"),
        "{}",
        stderr(&o)
    );
}

/// A guest that halts without a word (igvmbuilder's stand-in kernel only
/// runs `hlt`) is a success, said on stderr rather than in silence; the
/// demo, which greets, gets no such note.
#[test]
fn run_native_says_when_the_guest_halts_silently() {
    if kvm_or_skip("run_native_says_when_the_guest_halts_silently").is_none() {
        return;
    }
    let (dir, _) = igvmbuilder_fixtures();
    let file = dir.join("qemu-nofw.igvm").display().to_string();
    let o = igvm_load(&["run", "--native", &file]);
    assert_exit(&o, 0, "run --native");
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("qemu-nofw.igvm: the guest halted at RIP 0x")
            && stderr(&o).contains(" without serial output"),
        "{}",
        stderr(&o)
    );
    let scratch_dir = scratch("run-native-demo");
    let demo = write(&scratch_dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let o = igvm_load(&["run", "--native", &demo]);
    assert_exit(&o, 0, "run --native demo");
    assert!(
        !stderr(&o).contains("without serial output"),
        "{}",
        stderr(&o)
    );
}

/// A VMSA whose GPA is also a data page's: the profiles that launch the
/// VMSA page cannot plan the file and say why; kvm-legacy, which launches
/// no VMSA page, can, with the file's VMSA features (which `check` read as
/// 0 when the file could not be planned, and so reported a made-up input
/// mismatch instead).
#[test]
fn check_of_a_file_only_kvm_legacy_can_plan() {
    let dir = scratch("check-vmsa-overlap");
    let bytes = demo_with(|dirs| {
        for d in dirs.iter_mut() {
            if let IgvmDirectiveHeader::SnpVpContext { gpa, .. } = d {
                *gpa = DATA_GPA;
            }
        }
    });
    let file = write(&dir, "overlap.igvm", &bytes);
    let o = igvm_load(&["check", &file]);
    assert_exit(&o, 0, "kvm-legacy can launch it");
    let out = stdout(&o);
    // The same VMSA as the demo's, whose plan says which features it needs.
    let demo = igvm_snp::demo::demo_igvm();
    let config = LaunchConfig::new(1, Vec::new());
    let features = LaunchPlan::new(&demo, &config, PlanOptions::default())
        .unwrap()
        .init2_vmsa_features();
    assert!(
        out.contains(&format!("vmsa_features {features:#x}, CPU signature")),
        "{out}"
    );
    let overlap = format!("cannot plan: GPA {DATA_GPA:#x} is imported twice for SEV-SNP");
    assert_eq!(out.matches(&overlap).count(), 3, "{out}");
    assert!(out.contains("kvm-legacy   ok "), "{out}");
    assert!(!out.contains("kvm-legacy inputs (VMSA features"), "{out}");
}

/// Progress lines go to stderr only when it is a terminal and `--quiet` is
/// not given. The terminal comes from util-linux `script` (Debian package
/// `bsdutils`, which `.ci/run` installs when missing).
#[test]
fn progress_only_on_a_terminal() {
    let dir = scratch("progress");
    let big = big_image(&dir);
    let big = big.to_str().unwrap();
    let digest = measure(big, &[]);
    let o = igvm_load(&["measure", big]);
    assert!(o.stderr.is_empty(), "stderr is a pipe: {}", stderr(&o));

    let on_terminal = |extra: &str| {
        Command::new("script")
            .args([
                "-qec",
                &format!("{} measure {big} {extra}", loader().display()),
            ])
            .arg("/dev/null")
            .env_remove("RUST_LOG")
            .output()
    };
    let o = on_terminal("").unwrap_or_else(|e| {
        panic!("`script` (Debian package bsdutils) is needed for this test: {e}")
    });
    assert_exit(&o, 0, "measure on a terminal");
    let text = stdout(&o);
    assert!(text.contains("hashing 16"), "{text}");
    assert!(text.contains(" pages… done in "), "{text}");
    assert!(text.contains(&digest), "{text}");
    let o = on_terminal("--quiet").unwrap();
    assert_exit(&o, 0, "measure --quiet on a terminal");
    assert_eq!(stdout(&o).trim_end(), digest);
}

/// Writes a 64 MiB image of distinct data pages (bench/image.rs) into `dir`.
fn big_image(dir: &Path) -> PathBuf {
    let big = dir.join("big.igvm");
    let made = Command::new(example("make-image"))
        .arg("64")
        .arg(&big)
        .output()
        .expect("make-image runs");
    assert_exit(&made, 0, "make-image");
    big
}

/// Runs the loader with `args` under GNU time (Debian package `time`,
/// which `.ci/run` installs when missing), its stdout into `stdout` when
/// given (captured otherwise), and checks it exits 0; returns its output
/// and its peak resident set in KiB (`%M`, written to a file in `dir`).
fn loader_peak_kib<S: AsRef<std::ffi::OsStr>>(
    dir: &Path,
    args: &[S],
    stdout: Option<std::fs::File>,
) -> (Output, u64) {
    let peak = dir.join("peak");
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&peak)
        .arg(loader())
        .args(args);
    if let Some(f) = stdout {
        cmd.stdout(f);
    }
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("GNU time (Debian package time) is needed: {e}"));
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert_exit(&o, 0, &format!("{shown:?} under /usr/bin/time"));
    let text = std::fs::read_to_string(&peak).unwrap();
    let kib = text.trim().rsplit('\n').next().unwrap().parse().unwrap();
    (o, kib)
}

/// `measure` drops each batch of the mapped image once hashed, so its peak
/// resident set stays far below the file (about 9 MiB for 64 MiB here;
/// keeping the mapping resident would take 72 MiB). So do the other
/// commands that hash a mapped file: `plan` (its table's step digests),
/// `check` (a digest per profile) and `measure --vcpus` with kvm-legacy
/// (72 to 78 MiB each before they released it). Measured with GNU time's
/// `%M` (Debian package `time`, which `.ci/run` installs when missing;
/// bench/compare.sh needs it too).
#[test]
fn measure_does_not_hold_the_image_in_memory() {
    let dir = scratch("memory");
    let big = big_image(&dir);
    let file_kib = std::fs::metadata(&big).unwrap().len() / 1024;
    for args in [
        &["measure"][..],
        &["plan"],
        &["check"],
        &["measure", "--profile", "kvm-legacy", "--vcpus", "1,2,4"],
    ] {
        let mut args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        args.push(big.clone().into());
        let (_, peak_kib) = loader_peak_kib(&dir, &args, None);
        assert!(
            peak_kib < file_kib / 2,
            "{args:?}: peak RSS {peak_kib} KiB for a {file_kib} KiB image"
        );
    }
}

/// `launch --backend model` loads and launches 16 MiB at a time and
/// discards each window after its LAUNCH_UPDATE (issue 13): a 2 MB file
/// whose 64 2 MiB page headers share one data blob gives the guest 128 MiB,
/// which the launch held in full before (as its own memory, 130 MiB and
/// more); now it peaks far below the guest's memory, and the model's
/// digest still equals the plan's (the command fails otherwise).
#[test]
fn launch_on_the_model_holds_a_window_not_the_guest() {
    let dir = scratch("launch_window");
    let file = dir.join("shared.igvm");
    let made = Command::new(example("make-image"))
        .arg("hostile-shared")
        .arg(&file)
        .arg("64")
        .output()
        .expect("make-image runs");
    assert_exit(&made, 0, "make-image hostile-shared");
    let args = [
        "launch",
        "--backend",
        "model",
        "--json",
        file.to_str().unwrap(),
    ];
    let (o, peak_kib) = loader_peak_kib(&dir, &args, None);
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["launch_digest"], report["plan_digest"], "{report}");
    assert_eq!(report["load_window_pages"], 4096, "{report}");
    // The 128 MiB step alone is eight 16 MiB windows.
    let ioctls = report["launch_update_ioctls"].as_u64().unwrap();
    let calls = report["launch_update_calls"].as_u64().unwrap();
    assert!(ioctls >= calls + 7, "{report}");
    assert!(peak_kib < 64 << 10, "peak RSS {peak_kib} KiB");
}

/// A file shaped as coconut-svsm's igvmbuilder writes them (no guest
/// policy, required memory at 0x7FF80000000, MADT and command line
/// parameters): measured, planned, checked and launched with no option.
#[test]
fn igvmbuilder_shaped_file_measures_checks_and_launches_without_options() {
    let dir = scratch("igvmbuilder_shape");
    let bytes = igvm_snp::demo::igvmbuilder_shaped_igvm().unwrap();
    let file = write(&dir, "shaped.igvm", &bytes);
    let digest = measure(&file, &[]);
    assert_eq!(digest, library_digest(&bytes, PlanOptions::default()));
    // Launch-only inputs never change the digest.
    for extra in [
        &["--vcpus", "8"][..],
        &["--memory", "64M"],
        &["--cmdline", "console=ttyS0"],
        &["--policy", "0x70000"],
    ] {
        assert_eq!(measure(&file, extra), digest, "{extra:?}");
    }
    let o = igvm_load(&["plan", &file]);
    assert_exit(&o, 0, "plan");
    let text = stdout(&o);
    assert!(
        text.contains(
            "guest policy: 0x30000, from the default 0x30000 (the file has no guest policy"
        ),
        "{text}"
    );
    let v = json(&igvm_load(&["plan", &file, "--json"]));
    assert_eq!(v["policy_source"]["from"], "default", "{v}");
    assert_eq!(
        v["required_memory"][0]["range"]["gpa"], 0x7FF_8000_0000u64,
        "{v}"
    );
    let o = igvm_load(&["check", &file]);
    assert_exit(&o, 0, "check");
    let text = stdout(&o);
    assert!(text.contains("no guest policy"), "{text}");
    assert!(text.contains(&digest), "{text}");
    // An invalid --policy is refused by a launch only, naming its source.
    assert_eq!(measure(&file, &["--policy", "10000"]), digest);
    let o = igvm_load(&["launch", &file, "--backend", "model", "--policy", "10000"]);
    assert_exit(&o, 1, "launch --policy 10000");
    let err = stderr(&o);
    assert!(
        err.contains("guest policy 0x10000 from the configuration"),
        "{err}"
    );
    assert!(err.contains("reserved bit 17 must be set"), "{err}");

    if kvm_or_skip("igvmbuilder_shaped_file_launches_on_the_model").is_none() {
        return;
    }
    let o = igvm_load(&["launch", &file, "--backend", "model", "--json"]);
    assert_exit(&o, 0, "launch --backend model");
    let v = json(&o);
    assert_eq!(v["launch_digest"], digest.as_str(), "{v}");
    // The guest halts when run natively, with its memory outside RAM.
    let o = igvm_load(&["run", "--native", &file]);
    assert_exit(&o, 0, "run --native");
    assert!(stdout(&o).starts_with(GREETING), "{}", stdout(&o));
}

/// A file asking for a table only the command line can give: as QEMU, a
/// launch leaves its area as the file has it, with a note naming the
/// option; an unreadable table file is an error naming it.
#[test]
fn missing_acpi_table_names_the_option() {
    let dir = scratch("missing_srat");
    let bytes = demo_with(|d| {
        d.insert(
            1,
            IgvmDirectiveHeader::Srat(igvm_defs::IGVM_VHS_PARAMETER {
                parameter_area_index: 0,
                byte_offset: 64,
            }),
        );
    });
    let file = write(&dir, "srat.igvm", &bytes);
    // Measuring does not need it.
    let digest = measure(&file, &[]);
    let o = igvm_load(&["plan", &file]);
    assert_exit(&o, 0, "plan without --acpi-table srat=");
    let with_srat = |table: &str| {
        let table = format!("srat={table}");
        igvm_load(&[
            "launch",
            &file,
            "--backend",
            "model",
            "--acpi-table",
            &table,
            "--json",
        ])
    };
    let o = with_srat("/nonexistent/srat.bin");
    assert_exit(&o, 1, "unreadable table");
    assert!(
        stderr(&o).contains("/nonexistent/srat.bin"),
        "{}",
        stderr(&o)
    );
    if kvm_or_skip("missing_acpi_table_names_the_option").is_none() {
        return;
    }
    let o = igvm_load(&["launch", &file, "--backend", "model", "--json"]);
    assert_exit(&o, 0, "launch without --acpi-table srat=");
    let err = stderr(&o);
    assert!(err.contains("SRAT parameter"), "{err}");
    assert!(err.contains("--acpi-table srat=FILE"), "{err}");
    assert_eq!(json(&o)["launch_digest"], digest.as_str());
    let srat = write(&dir, "srat.bin", b"SRAT....");
    let o = with_srat(&srat);
    assert_exit(&o, 0, "launch with --acpi-table srat=");
    assert_eq!(json(&o)["launch_digest"], digest.as_str());
}

/// The committed igvmbuilder fixtures and their igvmmeasure digests
/// (tests/fixtures/igvmbuilder/expected.json; README there).
fn igvmbuilder_fixtures() -> (PathBuf, Vec<serde_json::Value>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/igvmbuilder");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let entries = expected.as_array().unwrap().clone();
    assert!(entries.len() >= 9, "{} fixtures", entries.len());
    (dir, entries)
}

/// Real igvmbuilder output (tests/fixtures/igvmbuilder, README there):
/// igvmmeasure measures `shared` pages as NORMAL, with or without
/// `--native-zero`; so `--profile igvmmeasure --native-zero` gives its
/// `--native-zero` digest where the native-zero profile (the spec's rules
/// for shared pages) cannot, and `check` says so on the native-zero row.
/// The file: igvmbuilder's qemu-nofw.igvm with the page at 0x8019000
/// flagged shared. igvmmeasure (coconut-svsm f4bc4bcd, 2026-12-05) on that
/// file: A25369BB… and, with `--native-zero`, 555BEAB8…, its digests of
/// the unflagged file (expected.json), since it ignores the flag.
#[test]
fn igvmmeasure_native_zero_with_shared_pages() {
    let (dir, entries) = igvmbuilder_fixtures();
    let e = entries
        .iter()
        .find(|e| e["file"] == "qemu-nofw.igvm")
        .unwrap();
    let mut bytes = std::fs::read(dir.join("qemu-nofw.igvm")).unwrap();
    let parsed = igvm_snp::IgvmFile::parse(&bytes).unwrap();
    let at = parsed
        .directives()
        .iter()
        .find_map(|d| match &d.kind {
            igvm_snp::parse::DirectiveKind::PageData { header, .. } if header.gpa == 0x801_9000 => {
                Some(d.at.offset)
            }
            _ => None,
        })
        .unwrap();
    // IGVM_VHS_PAGE_DATA after the 8-byte prefix: GPA, mask, file offset,
    // then the flags, whose bit 2 is `shared`.
    bytes[at + 8 + 16] |= 4;
    igvm_snp::parse::fix_checksum(&mut bytes);
    let scratch_dir = scratch("igvmmeasure-native-zero");
    let file = write(&scratch_dir, "shared.igvm", &bytes);
    let (digest, native_zero) = (
        e["digest"].as_str().unwrap(),
        e["digest_native_zero"].as_str().unwrap(),
    );
    assert_eq!(measure(&file, &["--profile", "igvmmeasure"]), digest);
    assert_eq!(
        measure(&file, &["--profile", "igvmmeasure", "--native-zero"]),
        native_zero
    );
    assert_ne!(measure(&file, &["--native-zero"]), native_zero);
    let o = igvm_load(&["check", &file]);
    assert!(
        stdout(&o).contains(
            "note: 1 shared page(s) not measured; igvmmeasure --native-zero measures them \
             (--profile igvmmeasure --native-zero)"
        ),
        "{}",
        stdout(&o)
    );
    let o = igvm_load(&["measure", &file, "--profile", "kvm-legacy", "--native-zero"]);
    assert_exit(&o, 2, "--native-zero with kvm-legacy");
}

/// measure equals igvmmeasure's digests, default and --native-zero, and
/// check exits 0.
#[test]
fn real_igvmbuilder_files_measure_as_igvmmeasure() {
    let (dir, entries) = igvmbuilder_fixtures();
    for e in &entries {
        let file = dir.join(e["file"].as_str().unwrap());
        let file = file.to_str().unwrap();
        assert_eq!(measure(file, &[]), e["digest"].as_str().unwrap(), "{file}");
        // A signed file's ID block holds the default digest: measure prints
        // the native-zero digest, then fails on the mismatch.
        let o = igvm_load(&["measure", file, "--native-zero"]);
        let last = stdout(&o).lines().last().unwrap_or_default().to_string();
        assert_eq!(last, e["digest_native_zero"].as_str().unwrap(), "{file}");
        let o = igvm_load(&["check", file]);
        assert_exit(&o, 0, &format!("check {file}"));
        assert!(stdout(&o).contains(e["digest"].as_str().unwrap()), "{file}");
        // A signed file: native-zero gives another digest than the ID block
        // expects, so check must not call that profile launchable.
        let v = json(&igvm_load(&["check", file, "--json"]));
        let native_zero = v["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "native-zero")
            .unwrap();
        let differs = e["digest_native_zero"] != e["digest"];
        let signed = v["id_block_digest"].is_string();
        assert_eq!(
            native_zero["launchable"],
            !(signed && differs),
            "{file}: {native_zero}"
        );
    }
    // hyper-v's VMSA sets virtual_tom, which KVM cannot set from registers
    // (README, "Files from real builders").
    let hyperv = dir.join("hyperv.igvm");
    let o = igvm_load(&["check", hyperv.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("are not zero: virtual_tom (QEMU refuses such a VMSA)"),
        "{}",
        stdout(&o)
    );
    // A MADT too large for the file's area: named with the largest count.
    let nofw = dir.join("qemu-nofw.igvm");
    let nofw = nofw.to_str().unwrap();
    let o = igvm_load(&["check", nofw, "--vcpus", "500"]);
    assert_exit(&o, 1, "check --vcpus 500");
    assert!(
        stdout(&o).contains("MADT parameter needs"),
        "{}",
        stdout(&o)
    );
    let o = igvm_load(&["measure", nofw, "--vcpus", "500"]);
    assert_exit(&o, 1, "measure --vcpus 500");
    assert!(
        stderr(&o).contains("(the MADT for --vcpus 500; at most 378 vCPUs fit)"),
        "{}",
        stderr(&o)
    );
    // A MADT given on the command line is not the one built for --vcpus:
    // no hint about the count.
    let table = write(&scratch("madt-given"), "big-madt.bin", &[0u8; 0x2000]);
    let given = format!("madt={table}");
    let o = igvm_load(&["measure", nofw, "--acpi-table", &given]);
    assert_exit(&o, 1, "a given MADT too large");
    assert!(
        stderr(&o).contains("MADT parameter needs 0x2000 bytes"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("--vcpus"), "{}", stderr(&o));
    // The bound is exact: 378 plan, 379 do not.
    assert_exit(
        &igvm_load(&["measure", nofw, "--vcpus", "378"]),
        0,
        "378 vCPUs",
    );
    assert_exit(
        &igvm_load(&["measure", nofw, "--vcpus", "379"]),
        1,
        "379 vCPUs",
    );
}

/// Real igvmbuilder output launches on the firmware model with no option
/// but the backend: no policy header (QEMU's default), required memory far
/// above RAM (a region of its own), MADT and device-tree parameters (the
/// loader's defaults), VMSA features beyond upstream KVM's (noted); the
/// backend's digest is measure's, which is igvmmeasure's.
#[test]
fn real_igvmbuilder_files_launch_on_the_model_without_options() {
    if kvm_or_skip("real_igvmbuilder_files_launch_on_the_model_without_options").is_none() {
        return;
    }
    let (dir, entries) = igvmbuilder_fixtures();
    for e in &entries {
        let file = dir.join(e["file"].as_str().unwrap());
        let file = file.to_str().unwrap();
        let o = igvm_load(&["launch", file, "--backend", "model", "--json"]);
        assert_exit(&o, 0, &format!("launch --backend model {file}"));
        let v = json(&o);
        assert_eq!(v["launch_digest"], e["digest"], "{file}: {v}");
        let err = stderr(&o);
        assert!(err.contains("upstream KVM offers 0x220"), "{file}: {err}");
        // As upstream KVM: INIT2 refuses the features, named.
        let o = igvm_load(&[
            "launch",
            file,
            "--backend",
            "model",
            "--model-vmsa-features",
            "220",
        ]);
        assert_exit(&o, 1, &format!("launch as upstream KVM {file}"));
        assert!(
            stderr(&o).contains("not within the supported 0x220"),
            "{file}"
        );
    }
}

// ----- verify ------------------------------------------------------------

/// A file of the test chain, or of the real Milan sample
/// (tests/fixtures/attestation/README.md).
fn attestation_fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/attestation");
    path.join(name).to_str().unwrap().to_string()
}

/// The demo file with a shared page: spec, native-zero, igvmmeasure and
/// kvm-legacy all give different digests for it.
fn demo_with_shared_page() -> Vec<u8> {
    demo_with(|dirs| {
        dirs.insert(
            0,
            IgvmDirectiveHeader::PageData {
                gpa: 0x20_0000,
                compatibility_mask: 1,
                flags: IgvmPageDataFlags::new().with_shared(true),
                data_type: IgvmPageDataType::NORMAL,
                data: vec![7; 32],
            },
        );
    })
}

/// A signed v3 Milan report (CPUID 0x19/1/1, TCB and CHIP_ID of the test
/// VCEK, policy 0x30000) with this MEASUREMENT.
fn test_report(
    measurement: &str,
    edit: impl FnOnce(&mut igvm_snp::attestation::RawReport),
) -> Vec<u8> {
    use p384::pkcs8::DecodePrivateKey;
    use zerocopy::{FromZeros, IntoBytes};
    let d: igvm_snp::LaunchDigest = measurement.parse().unwrap();
    let mut r = igvm_snp::attestation::RawReport::new_zeroed();
    r.version.set(3);
    r.policy.set(0x30000);
    r.measurement = d.0;
    r.cpuid = [0x19, 0x01, 0x01];
    r.reported_tcb
        .set(u64::from_le_bytes([3, 0, 0, 0, 0, 0, 8, 0x73]));
    r.chip_id = [0xA1; 64];
    edit(&mut r);
    let pem = std::fs::read_to_string(attestation_fixture("test-vcek-key.pem")).unwrap();
    r.sign_with(&p384::ecdsa::SigningKey::from_pkcs8_pem(&pem).unwrap());
    r.as_bytes().to_vec()
}

fn verify(report: &str, file: &str, extra: &[&str]) -> Output {
    igvm_load(&[&["verify", "--report", report, file][..], extra].concat())
}

/// Every check as (name, ok) from `verify --json`.
fn checks(v: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["ok"].clone()))
        .collect()
}

#[test]
fn verify_names_the_profile_that_explains_the_measurement() {
    let dir = scratch("verify-profiles");
    let bytes = demo_with_shared_page();
    let file = write(&dir, "shared.igvm", &bytes);
    let mut seen = Vec::new();
    for profile in [
        igvm_snp::Profile::IgvmSpec,
        igvm_snp::Profile::NativeZero,
        igvm_snp::Profile::Igvmmeasure,
    ] {
        let digest = library_digest(&bytes, profile.options());
        assert!(!seen.contains(&digest), "{}: same digest", profile.name());
        seen.push(digest.clone());
        let report = write(&dir, "report.bin", &test_report(&digest, |_| {}));
        // No certificate: consistent with the file, but not authenticated.
        let o = verify(&report, &file, &[]);
        assert_exit(&o, 1, profile.name());
        assert!(
            stdout(&o).ends_with(
                "verification FAILED: every check made passed, but the report is not \
                 authenticated\n"
            ),
            "{}",
            stdout(&o)
        );
        assert!(
            stderr(&o).starts_with("error: the report is not authenticated"),
            "{}",
            stderr(&o)
        );
        let o = verify(&report, &file, &["--unauthenticated"]);
        assert_exit(&o, 0, profile.name());
        let out = stdout(&o);
        assert!(
            out.contains(&format!("explained by: {}\n", profile.name())),
            "{out}"
        );
        // Not checked, never passed.
        assert!(out.contains("-    signature "), "{out}");
        assert!(
            out.ends_with("(accepted with --unauthenticated)\n"),
            "{out}"
        );
        assert!(o.stderr.is_empty(), "{}", stderr(&o));
        let o = verify(&report, &file, &["--json", "--unauthenticated"]);
        assert_exit(&o, 0, "--json");
        let v = json(&o);
        assert_eq!(
            (&v["authenticated"], &v["passed"], &v["accepted"]),
            (&false.into(), &false.into(), &true.into())
        );
        assert_eq!(v["measurement"], digest.as_str());
        assert_eq!(
            v["match"],
            serde_json::json!({"profile": profile.name(), "vcpus": null})
        );
        let c = checks(&v);
        assert!(
            c.contains(&("signature".into(), serde_json::Value::Null)),
            "{c:?}"
        );
        assert!(c.contains(&("measurement".into(), true.into())), "{c:?}");
    }
}

#[test]
fn verify_names_kvm_legacy_and_the_vcpu_count() {
    let dir = scratch("verify-legacy");
    let bytes = demo_with_shared_page();
    let file = write(&dir, "shared.igvm", &bytes);
    // KVM's digest for 4 vCPUs with EPYC-Milan's signature in the APs' RDX,
    // as `measure` prints it.
    let digest = measure(
        &file,
        &[
            "--profile",
            "kvm-legacy",
            "--vcpus",
            "4",
            "--cpu-signature",
            "a00f11",
        ],
    );
    let report = write(&dir, "report.bin", &test_report(&digest, |_| {}));
    let o = verify(&report, &file, &["--json", "--unauthenticated"]);
    assert_exit(&o, 0, "kvm-legacy");
    assert_eq!(
        json(&o)["match"],
        serde_json::json!({"profile": "kvm-legacy", "vcpus": 4})
    );
    let o = verify(&report, &file, &[]);
    assert!(stdout(&o).contains("explained by: kvm-legacy with 4 vCPU(s)"));
    // Fewer vCPUs tried than the VM had: nothing explains it.
    let o = verify(&report, &file, &["--max-vcpus", "3", "--unauthenticated"]);
    assert_exit(&o, 1, "--max-vcpus 3");
    assert!(
        stderr(&o).contains("error: measurement: no profile explains"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_fails_on_other_measurements_host_data_and_policy() {
    let dir = scratch("verify-mismatch");
    let bytes = demo_with_shared_page();
    let file = write(&dir, "shared.igvm", &bytes);
    let other = write(&dir, "other.bin", &test_report(&"11".repeat(48), |_| {}));
    let o = verify(&other, &file, &["--unauthenticated"]);
    assert_exit(&o, 1, "another measurement");
    let err = stderr(&o);
    assert!(
        err.starts_with("error: measurement: no profile explains MEASUREMENT 1111"),
        "{err}"
    );
    assert!(stdout(&o).contains("explained by: no profile"));
    assert_eq!(
        json(&verify(&other, &file, &["--json"]))["match"],
        serde_json::Value::Null
    );

    let digest = library_digest(&bytes, PlanOptions::default());
    let report = write(
        &dir,
        "report.bin",
        &test_report(&digest, |r| r.host_data = [0xAB; 32]),
    );
    let unauth = "--unauthenticated";
    let o = verify(&report, &file, &["--host-data", &"ab".repeat(32), unauth]);
    assert_exit(&o, 0, "right host data");
    let o = verify(&report, &file, &["--host-data", &"cd".repeat(32), unauth]);
    assert_exit(&o, 1, "wrong host data");
    assert!(
        stderr(&o).starts_with("error: host_data: HOST_DATA abab"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    // The file's policy is 0x30000; the report's is not.
    let report = write(
        &dir,
        "policy.bin",
        &test_report(&digest, |r| r.policy.set(0xB0000)),
    );
    let o = verify(&report, &file, &[unauth]);
    assert_exit(&o, 1, "wrong policy");
    assert!(
        stderr(&o)
            .starts_with("error: policy: POLICY 0xb0000 is not the file's guest policy 0x30000"),
        "{}",
        stderr(&o)
    );
    assert_exit(
        &verify(&report, &file, &["--policy", "0xb0000", unauth]),
        0,
        "--policy",
    );

    // REPORT_DATA and an exact VMPL, when asked for.
    let report = write(
        &dir,
        "nonce.bin",
        &test_report(&digest, |r| {
            r.report_data = [0x5C; 64];
            r.vmpl.set(2);
        }),
    );
    let nonce = "5c".repeat(64);
    let o = verify(&report, &file, &["--report-data", &nonce, unauth]);
    assert_exit(&o, 0, "right report data");
    let o = verify(&report, &file, &["--report-data", &"5d".repeat(64), unauth]);
    assert_exit(&o, 1, "wrong report data");
    assert!(
        stderr(&o).starts_with("error: report_data: REPORT_DATA 5c5c"),
        "{}",
        stderr(&o)
    );
    let o = verify(&report, &file, &["--vmpl", "0", unauth]);
    assert_exit(&o, 1, "--vmpl 0");
    assert!(
        stderr(&o).starts_with("error: vmpl: report requested at VMPL 2, not the expected VMPL 0"),
        "{}",
        stderr(&o)
    );
    assert_exit(
        &verify(&report, &file, &["--vmpl", "2", unauth]),
        0,
        "--vmpl 2",
    );
}

#[test]
fn verify_checks_the_signature_and_chain() {
    let dir = scratch("verify-certs");
    let bytes = demo_with_shared_page();
    let file = write(&dir, "shared.igvm", &bytes);
    let digest = library_digest(&bytes, PlanOptions::default());
    let signed = test_report(&digest, |_| {});
    let report = write(&dir, "report.bin", &signed);
    let (vcek, ask, ark) = (
        attestation_fixture("test-vcek.der"),
        attestation_fixture("test-ask.pem"),
        attestation_fixture("test-ark.pem"),
    );
    let certs = ["--vcek", &vcek, "--ask", &ask, "--ark", &ark, "--trust-ark"];
    let (zeros, zeros64) = ("00".repeat(32), "00".repeat(64));
    let o = verify(
        &report,
        &file,
        &[
            &certs[..],
            &[
                "--json",
                "--host-data",
                &zeros,
                "--report-data",
                &zeros64,
                "--min-tcb",
                "snp=8",
            ],
        ]
        .concat(),
    );
    assert_exit(&o, 0, "signed by the test chain");
    let v = json(&o);
    for (name, ok) in checks(&v) {
        assert_eq!(ok, true, "{name}");
    }
    assert_eq!(
        (&v["authenticated"], &v["passed"], &v["accepted"]),
        (&true.into(), &true.into(), &true.into())
    );
    let o = verify(&report, &file, &certs);
    assert!(
        stdout(&o).ends_with("every check made passed, and the report is authenticated\n"),
        "{}",
        stdout(&o)
    );
    // The test ARK is not AMD's: without --trust-ark the chain fails.
    let o = verify(&report, &file, &certs[..6]);
    assert_exit(&o, 1, "test ARK not trusted");
    assert!(
        stderr(&o).contains("error: certificate_chain:")
            && stderr(&o).contains("was not marked trusted"),
        "{}",
        stderr(&o)
    );

    let mut flipped = signed.clone();
    flipped[0x21] ^= 1; // IMAGE_ID
    let flipped = write(&dir, "flipped.bin", &flipped);
    let o = verify(&flipped, &file, &certs);
    assert_exit(&o, 1, "flipped byte");
    let err = stderr(&o);
    assert!(
        err.contains("error: signature: the signature over bytes 0x000..0x2A0 does not verify"),
        "{err}"
    );

    let other = attestation_fixture("test-vcek-other-chip.der");
    let o = verify(
        &report,
        &file,
        &["--vcek", &other, "--ask", &ask, "--ark", &ark],
    );
    assert_exit(&o, 1, "another chip's VCEK");
    let err = stderr(&o);
    assert!(err.contains("error: signature:"), "{err}");
    assert!(
        err.contains("error: chip_id:") && err.contains("another chip"),
        "{err}"
    );

    // An RSA certificate given as the VCEK: the key it holds is named.
    let o = verify(&report, &file, &["--vcek", &ask, "--unauthenticated"]);
    assert_exit(&o, 1, "an ASK as the VCEK");
    assert!(
        stderr(&o).contains("its key algorithm is 1.2.840.113549.1.1.1, not EC"),
        "{}",
        stderr(&o)
    );

    // AMD's Milan chain did not issue the test VCEK.
    let (mask, mark) = (
        attestation_fixture("milan-ask.pem"),
        attestation_fixture("milan-ark.pem"),
    );
    let o = verify(
        &report,
        &file,
        &["--vcek", &vcek, "--ask", &mask, "--ark", &mark],
    );
    assert_exit(&o, 1, "wrong chain");
    assert!(
        stderr(&o).contains("error: certificate_chain:"),
        "{}",
        stderr(&o)
    );
}

/// A real report, from an AMD Milan machine, with its VCEK and AMD's chain:
/// signature, chain, TCB and chip ID pass; it was not launched from the
/// demo, so the measurement fails.
#[test]
fn verify_a_real_milan_report() {
    let dir = scratch("verify-milan");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let (report, vcek, ask, ark) = (
        attestation_fixture("milan-report.bin"),
        attestation_fixture("milan-vcek.der"),
        attestation_fixture("milan-ask.pem"),
        attestation_fixture("milan-ark.pem"),
    );
    let o = verify(
        &report,
        &file,
        &["--vcek", &vcek, "--ask", &ask, "--ark", &ark, "--json"],
    );
    assert_exit(&o, 1, "real report, other file");
    let c = checks(&json(&o));
    for name in ["signature", "certificate_chain", "tcb", "chip_id"] {
        assert!(c.contains(&(name.into(), true.into())), "{name}: {c:?}");
    }
    assert!(c.contains(&("measurement".into(), false.into())), "{c:?}");
}

/// `--at` moves the time the certificates are checked at: the README's
/// report passes at the start of 2027 and fails once the test chain has
/// expired (2051-07-26T20:45:33Z), naming the certificates; a time that is
/// not one is a usage error. `--min-tcb` checks REPORTED_TCB.
#[test]
fn verify_checks_certificate_dates_and_a_minimum_tcb() {
    let a = |n| attestation_fixture(n);
    let (report, vcek, ask, ark) = (
        a("qemu-nofw-4vcpus.bin"),
        a("test-vcek.der"),
        a("test-ask.pem"),
        a("test-ark.pem"),
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/igvmbuilder/qemu-nofw.igvm")
        .display()
        .to_string();
    let chain = ["--vcek", &vcek, "--ask", &ask, "--ark", &ark, "--trust-ark"];
    let at = |time: &str| {
        let mut args = chain.to_vec();
        args.extend(["--at", time]);
        verify(&report, &file, &args)
    };
    assert_exit(&at("2051-07-26T20:45:33Z"), 0, "last second of the chain");
    let o = at("2051-07-26T20:45:34Z");
    assert_exit(&o, 1, "expired chain");
    assert!(
        stderr(&o).contains(
            "error: certificate_dates: at 2051-07-26T20:45:34Z, the VCEK/VLEK expired at \
             2051-07-26T20:45:33Z; the ASK expired at 2051-07-26T20:45:33Z; the ARK expired at \
             2051-07-26T20:45:33Z"
        ),
        "{}",
        stderr(&o)
    );
    // Now (no --at): the chain has been valid since 2026-12-04.
    assert_exit(&verify(&report, &file, &chain), 0, "now");
    // The report's REPORTED_TCB is bootloader 3, tee 0, snp 8, microcode 115.
    let min_tcb = |min: &str| {
        let mut args = chain.to_vec();
        args.extend(["--min-tcb", min]);
        verify(&report, &file, &args)
    };
    assert_exit(&min_tcb("snp=8,microcode=115"), 0, "TCB at the minimum");
    let o = min_tcb("snp=9");
    assert_exit(&o, 1, "TCB below the minimum");
    assert!(
        stderr(&o).contains(
            "error: min_tcb: REPORTED_TCB (bootloader 3, tee 0, snp 8, microcode 115) is below \
             the minimum (bootloader 0, tee 0, snp 9, microcode 0): snp 8 < 9"
        ),
        "{}",
        stderr(&o)
    );
    let o = min_tcb("snp=9000");
    assert_exit(&o, 2, "SVN out of range");
    assert!(
        stderr(&o).contains("a minimum TCB is NAME=VALUE pairs"),
        "{}",
        stderr(&o)
    );
    for bad in ["2051-07-26 20:45:34", "26/07/2051", "2051-02-30"] {
        let o = at(bad);
        assert_exit(&o, 2, bad);
        assert!(
            stderr(&o).contains("is not a UTC time"),
            "{bad}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn verify_usage_and_input_errors() {
    let dir = scratch("verify-usage");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let report = write(&dir, "report.bin", &test_report(&"00".repeat(48), |_| {}));
    let ask = attestation_fixture("test-ask.pem");
    let vcek = attestation_fixture("test-vcek.der");
    for args in [
        &["verify", file.as_str()][..],
        &[
            "verify", "--report", &report, &file, "--ask", &ask, "--vcek", &vcek,
        ],
        &["verify", "--report", &report, &file, "--max-vcpus", "0"],
        &["verify", "--report", &report, &file, "--host-data", "12"],
        &["verify", "--report", &report, &file, "--report-data", "12"],
        &["verify", "--report", &report, &file, "--vmpl", "4"],
        &["verify", "--report", &report, &file, "--trust-ark"],
        &["measure", &file, "--vcpus", "1,x"],
        &["measure", &file, "--vcpus", "1,2", "--trace"],
        &["launch", &file, "--backend", "model", "--vcpus", "1,2"],
        &["run", "--native", &file, "--vcpus", "2,4"],
    ] {
        let o = igvm_load(args);
        assert_exit(&o, 2, &format!("{args:?}"));
        assert!(stderr(&o).starts_with("error:"), "{args:?}: {}", stderr(&o));
    }
    // A short report and a certificate that is not one: exit 1, named.
    let short = write(&dir, "short.bin", &[2, 0, 0, 0]);
    let o = verify(&short, &file, &[]);
    assert_exit(&o, 1, "short report");
    assert!(stderr(&o).contains("got only 4"), "{}", stderr(&o));
    let o = verify(&report, &file, &["--vcek", &file]);
    assert_exit(&o, 1, "not a certificate");
    assert!(
        stderr(&o).contains("not an X.509 certificate"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn measure_prints_one_digest_per_vcpu_count() {
    let dir = scratch("measure-counts");
    let bytes = demo_with_shared_page();
    let file = write(&dir, "shared.igvm", &bytes);
    let legacy = ["--profile", "kvm-legacy", "--cpu-signature", "a00f11"];
    let o = igvm_load(&[&["measure", &file, "--vcpus", "1,2,4,8,16"][..], &legacy].concat());
    assert_exit(&o, 0, "measure --vcpus list");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    for (line, n) in lines.iter().zip(["1", "2", "4", "8", "16"]) {
        let one = measure(&file, &[&legacy[..], &["--vcpus", n]].concat());
        assert_eq!(*line, format!("{n} {one}"));
    }
    let o = igvm_load(&[&["measure", &file, "--vcpus", "2,4", "--json"][..], &legacy].concat());
    assert_exit(&o, 0, "--json");
    let v = json(&o);
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    assert_eq!(v["4"], lines[2].split(' ').nth(1).unwrap());
    // A list of one distinct count keeps the list's shape.
    let o = igvm_load(&[&["measure", &file, "--vcpus", "2,2", "--json"][..], &legacy].concat());
    assert_exit(&o, 0, "--vcpus 2,2");
    let v = json(&o);
    assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
    assert_eq!(v["2"], lines[1].split(' ').nth(1).unwrap());
    // Other profiles: the count does not enter the digest.
    let o = igvm_load(&["measure", &file, "--vcpus", "1,3"]);
    let spec = library_digest(&bytes, PlanOptions::default());
    assert_eq!(stdout(&o), format!("1 {spec}\n3 {spec}\n"));
}

/// The report of README.md's "Verifying a report":
/// tests/fixtures/attestation/qemu-nofw-4vcpus.bin, a Milan v3 report
/// signed by the test VCEK (RFC 6979 signatures are deterministic) for
/// igvmbuilder's qemu-nofw.igvm launched by today's KVM with 4 vCPUs, host
/// data 01 02 … 20. This test rebuilds it and compares;
/// IGVM_SNP_WRITE_FIXTURES=1 rewrites it.
#[test]
fn readme_example_report_is_reproducible() {
    let igvm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/igvmbuilder/qemu-nofw.igvm");
    let bytes = std::fs::read(&igvm).unwrap();
    let config = LaunchConfig::new(4, Vec::new());
    let features = LaunchPlan::new(&bytes, &config, PlanOptions::default())
        .unwrap()
        .init2_vmsa_features();
    let legacy = igvm_snp::kvm_legacy::KvmLegacyInputs::new(4, features, 0xA00F11);
    let digest = LaunchPlan::new(
        &bytes,
        &config,
        igvm_snp::Profile::KvmLegacy(legacy).options(),
    )
    .unwrap()
    .launch_digest();
    let host_data: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
    let report = test_report(&digest.to_string(), |r| r.host_data = host_data);
    let path = attestation_fixture("qemu-nofw-4vcpus.bin");
    if std::env::var_os("IGVM_SNP_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, &report).unwrap();
    }
    assert!(
        std::fs::read(&path).unwrap() == report,
        "{path} differs: rerun with IGVM_SNP_WRITE_FIXTURES=1"
    );
    // The README's command, run from the repository root as there: its
    // output is in the README word for word.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let a = "tests/fixtures/attestation";
    let (report, vcek, ask, ark) = (
        format!("{a}/qemu-nofw-4vcpus.bin"),
        format!("{a}/test-vcek.der"),
        format!("{a}/test-ask.pem"),
        format!("{a}/test-ark.pem"),
    );
    let o = Command::new(loader())
        .current_dir(root)
        .args([
            "verify",
            "--report",
            &report,
            "tests/fixtures/igvmbuilder/qemu-nofw.igvm",
            "--vcek",
            &vcek,
            "--ask",
            &ask,
            "--ark",
            &ark,
            "--trust-ark",
            "--host-data",
            "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
            "--at",
            "2027-01-01",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_exit(&o, 0, "README example");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains(&stdout(&o)),
        "README.md's verify example is not this output:\n{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("explained by: kvm-legacy with 4 vCPU(s)"));
}

/// `measure --trace` prints each page as the chain reaches it instead of
/// holding the trace: 256 data-less 2 MiB pages (131,072 pages from an 8
/// KB header section) took about 50 MB held as a trace and a text table,
/// and peak at about 10 MiB streamed (debug build), in text and in JSON.
/// (The hostile file of bench/hostile.rs, four times as many pages, held
/// about 180 MB.)
#[test]
fn measure_trace_streams() {
    let dir = scratch("trace_streams");
    let pages = 256u64;
    let bytes = demo_with(|dirs| {
        for i in 0..pages {
            dirs.insert(
                0,
                IgvmDirectiveHeader::PageData {
                    gpa: (1 << 32) + (i << 21),
                    compatibility_mask: 1,
                    flags: IgvmPageDataFlags::new().with_is_2mb_page(true),
                    data_type: IgvmPageDataType::NORMAL,
                    data: Vec::new(),
                },
            );
        }
    });
    let file = write(&dir, "dataless.igvm", &bytes);
    let digest = library_digest(&bytes, PlanOptions::default());
    let launched = pages * 512 + 5;
    for json in [false, true] {
        let out = dir.join("trace");
        let mut args = vec!["measure", "--trace", &file];
        if json {
            args.push("--json");
        }
        let (_, peak_kib) =
            loader_peak_kib(&dir, &args, Some(std::fs::File::create(&out).unwrap()));
        assert!(peak_kib < 24 << 10, "json {json}: peak RSS {peak_kib} KiB");
        let printed = std::fs::read_to_string(&out).unwrap();
        if json {
            // The array's elements, then the digest, then the object's end.
            assert_eq!(printed.matches("\"step\":").count() as u64, launched);
            let end = format!("\"launch_digest\": \"{digest}\"\n}}\n");
            assert!(
                printed.ends_with(&end),
                "{}",
                &printed[printed.len() - 200..]
            );
        } else {
            assert_eq!(printed.lines().count() as u64, launched + 1);
            assert_eq!(printed.lines().last(), Some(digest.as_str()));
        }
        std::fs::remove_file(&out).unwrap();
    }
}

/// Options that fill a parameter the file does not have are named as
/// ignored, a table given twice is refused, and `--profile igvm-spec` (the
/// name `check` and `verify` print) is the spec profile.
#[test]
fn options_the_file_cannot_use_are_named() {
    let dir = scratch("unused-options");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    let table = write(&dir, "srat.bin", b"SRAT");
    let digest = measure(&file, &[]);
    let o = igvm_load(&[
        "measure",
        &file,
        "--cmdline",
        "console=ttyS0",
        "--acpi-table",
        &format!("srat={table}"),
    ]);
    assert_exit(&o, 0, "unused options");
    assert_eq!(stdout(&o).trim_end(), digest);
    assert_eq!(
        stderr(&o),
        "note: --cmdline is ignored: the file has no COMMAND_LINE parameter\n\
         note: --acpi-table srat is ignored: the file has no SRAT parameter\n"
    );
    let twice = format!("srat={table}");
    let o = igvm_load(&[
        "measure",
        &file,
        "--acpi-table",
        &twice,
        "--acpi-table",
        &twice,
    ]);
    assert_exit(&o, 2, "a table twice");
    assert!(
        stderr(&o).contains("--acpi-table srat is given twice"),
        "{}",
        stderr(&o)
    );
    assert_eq!(measure(&file, &["--profile", "igvm-spec"]), digest);
}

/// A failing stdout (a full disk behind a redirection) is named as such.
#[test]
fn a_stdout_that_cannot_be_written_is_named() {
    let dir = scratch("stdout-full");
    let file = write(&dir, "demo.igvm", &igvm_snp::demo::demo_igvm());
    for args in [&["measure", &file][..], &["measure", "--trace", &file]] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = Command::new(loader())
            .args(args)
            .stdout(full)
            .output()
            .unwrap();
        assert_exit(&o, 1, &format!("{args:?} > /dev/full"));
        assert!(
            stderr(&o).starts_with("error: cannot write to stdout: "),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}
