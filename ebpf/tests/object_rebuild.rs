//! The committed object must be exactly what `build-bpf.sh` makes from the committed
//! sources, so the embedded bytes are reviewable through their C source. Without clang
//! the check is skipped with a reason, unless CI=true, where it fails.

use std::path::Path;
use std::process::Command;

fn clang_version() -> Option<String> {
    let out = Command::new("clang").arg("--version").output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

#[test]
fn committed_object_matches_a_rebuild() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(version) = clang_version() else {
        assert!(
            !ci,
            "CI=true but clang is missing: apt-get install -y clang libbpf-dev"
        );
        eprintln!("skipping committed_object_matches_a_rebuild: clang not found (apt-get install -y clang libbpf-dev)");
        return;
    };
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        assert!(
            !ci,
            "CI=true but libbpf headers are missing: apt-get install -y libbpf-dev"
        );
        eprintln!("skipping committed_object_matches_a_rebuild: libbpf headers not found (apt-get install -y libbpf-dev)");
        return;
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("tempdir");
    let status = Command::new("bash")
        .arg(crate_dir.join("build-bpf.sh"))
        .arg(out.path())
        .status()
        .expect("run build-bpf.sh");
    assert!(status.success(), "build-bpf.sh failed with {version}");
    let rebuilt = std::fs::read(out.path().join("ritma.bpf.o")).expect("rebuilt object");
    let committed = std::fs::read(crate_dir.join("bpf/ritma.bpf.o")).expect("committed object");
    assert!(
        rebuilt == committed,
        "bpf/ritma.bpf.o differs from a rebuild of bpf/ritma.bpf.c with {version} \
         ({} vs {} bytes): run ebpf/build-bpf.sh and commit the object",
        rebuilt.len(),
        committed.len()
    );
    // No build machine path leaks through debug info.
    for dir in [crate_dir, out.path()] {
        let needle = dir.as_os_str().as_encoded_bytes();
        assert!(
            !rebuilt.windows(needle.len()).any(|w| w == needle),
            "the object records the build path {}",
            dir.display()
        );
    }
    // The embedded bytes are the committed file.
    assert!(ritma_ebpf::programs::OBJECT == committed.as_slice());
}
