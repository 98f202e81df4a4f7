//! deploy/: `ritma run` as a non-root user with exactly the capabilities of
//! deploy/systemd/ritma.service (the one place the set is written) captures and seals;
//! without any one of them it fails naming it. The DaemonSet and the Dockerfile grant the
//! same set, and the unit, the manifests and the Dockerfile pass their linters.

#[allow(dead_code)]
mod live;
#[allow(dead_code)]
mod util;

use live::{skip_without_root, wait_until_started};
use ritma_sources::trace::{TraceItem, TraceReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use util::{Dir, OutputExt};

/// The non-root user the capture runs as (`nobody`, present on every Debian).
const UID: u32 = 65534;

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy(rel)).unwrap_or_else(|e| panic!("deploy/{rel}: {e}"))
}

/// The value of the unit's `KEY=` line, split on whitespace.
fn unit_list(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(lines.len(), 1, "ritma.service has one {key}= line");
    lines[0].split_whitespace().map(str::to_owned).collect()
}

/// The capabilities the unit grants: its AmbientCapabilities line, e.g. `CAP_BPF`.
fn unit_capabilities() -> Vec<String> {
    let caps = unit_list(&read("systemd/ritma.service"), "AmbientCapabilities");
    assert!(!caps.is_empty(), "AmbientCapabilities lists the set");
    for c in &caps {
        assert!(
            c.starts_with("CAP_")
                && c[4..]
                    .chars()
                    .all(|ch| ch.is_ascii_uppercase() || ch == '_'),
            "{c} is not a capability name"
        );
    }
    caps
}

/// `setpriv` arguments giving a process exactly `caps` (ambient, inheritable and bounding).
fn setpriv_caps(caps: &[String]) -> String {
    let mut s = "-all".to_string();
    for c in caps {
        s.push_str(",+");
        s.push_str(&c["CAP_".len()..].to_ascii_lowercase());
    }
    s
}

/// `ritma ARGS` in `d` as user `UID` with exactly `caps`, no new privileges (the unit's
/// NoNewPrivileges=yes), no groups, and the writer locks in `d` (the unit's RuntimeDirectory).
fn ritma_as_nobody(d: &Dir, caps: &[String], args: &[&str]) -> Command {
    let set = setpriv_caps(caps);
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={UID}"))
        .arg(format!("--regid={UID}"))
        .arg("--clear-groups")
        .arg("--no-new-privs")
        .arg(format!("--inh-caps={set}"))
        .arg(format!("--ambient-caps={set}"))
        .arg(format!("--bounding-set={set}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_ritma"))
        .args(args)
        .current_dir(d.path())
        .env_remove("RITMA_OUT")
        .env_remove("RITMA_NODE_ID")
        .env_remove("RITMA_TRUST")
        .env("RITMA_LOCK_DIR", d.join("locks"));
    c
}

/// A temporary directory owned by the non-root user, where it keeps its store.
fn nobody_dir() -> Dir {
    let d = Dir::new();
    std::os::unix::fs::chown(d.path(), Some(UID), Some(UID)).unwrap();
    d
}

/// Fails in CI, skips elsewhere, when `tool` is not installed.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !found && std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs {tool} (test.sh installs it; CI=true: a skip is a failure)");
    }
    if !found {
        eprintln!("skipping {test}: {tool} is not installed");
    }
    found
}

#[test]
fn the_unit_the_daemonset_and_the_image_grant_the_same_capabilities() {
    let caps = unit_capabilities();
    let unit = read("systemd/ritma.service");
    assert_eq!(
        unit_list(&unit, "CapabilityBoundingSet"),
        caps,
        "the unit's bounding set is its ambient set"
    );

    // The ritma container's `add:` list, without CAP_; the init container's is CHOWN alone.
    let yaml = read("kubernetes/daemonset.yaml");
    let adds: Vec<Vec<String>> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("add: ["))
        .map(|l| {
            l.trim_end_matches(']')
                .split(',')
                .map(|c| format!("CAP_{}", c.trim().trim_matches('"')))
                .collect()
        })
        .collect();
    assert!(
        adds.contains(&caps),
        "the DaemonSet adds {caps:?} (found {adds:?})"
    );
    for a in &adds {
        assert!(a == &caps || a == &["CAP_CHOWN".to_string()], "{a:?}");
    }
    assert!(yaml.contains("drop: [\"ALL\"]"));
    assert!(!yaml.contains("privileged: true"));

    // The image's file capabilities, and the `docker run` example's --cap-add.
    let docker = read("docker/Dockerfile");
    let setcap: Vec<String> = docker
        .split_whitespace()
        .skip_while(|w| *w != "setcap")
        .nth(1)
        .expect("the Dockerfile runs setcap")
        .trim_end_matches("+ep")
        .split(',')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    assert_eq!(setcap, caps, "the image's file capabilities");
    let cap_adds: Vec<String> = docker
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("--cap-add="))
        .map(|c| format!("CAP_{c}"))
        .collect();
    assert_eq!(cap_adds, caps, "the docker run example's --cap-add");
}

/// Every exes entry of the WAL at `wal`: (dev, ino) → hash.
fn wal_exes(wal: &Path) -> Vec<((u64, u64), [u8; 32])> {
    let mut r = TraceReader::open(wal).unwrap();
    let mut out = Vec::new();
    while let Some(item) = r.next_item().unwrap() {
        if let TraceItem::Exes { entries, .. } = item {
            out.extend(entries.iter().map(|e| ((e.dev, e.ino), e.hash)));
        }
    }
    out
}

/// A read-only memfd holding `bytes`, inherited by children, the path a child execs it
/// by, and its metadata (a memfd open for writing could not be executed: ETXTBSY).
fn memfd_executable(bytes: &[u8]) -> (String, std::fs::File, std::fs::Metadata) {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: a valid NUL-terminated name; the returned descriptor is owned below.
    let fd = unsafe { libc::memfd_create(c"ritma-deploy-test".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just returned by memfd_create and is owned by nothing else.
    let mut rw = unsafe { std::fs::File::from_raw_fd(fd) };
    rw.write_all(bytes).unwrap();
    let ro = std::fs::File::open(format!("/proc/self/fd/{fd}")).unwrap();
    drop(rw);
    // SAFETY: F_SETFD on a descriptor we own: children keep it across exec.
    assert_eq!(unsafe { libc::fcntl(ro.as_raw_fd(), libc::F_SETFD, 0) }, 0);
    let meta = ro.metadata().unwrap();
    (format!("/proc/self/fd/{}", ro.as_raw_fd()), ro, meta)
}

fn wal_of(store: &Path) -> Option<PathBuf> {
    std::fs::read_dir(store.join("wal"))
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "rtrace"))
}

#[test]
fn run_as_nobody_with_the_units_capabilities_seals_and_fails_naming_each_one_missing() {
    let test = "deploy capability set";
    if skip_without_root(test) || !have("setpriv", test) {
        return;
    }
    // A non-root process cannot mount these (CAP_SYS_ADMIN): the host mounts them (systemd does).
    ritma_ebpf::system::ensure_filesystems().expect("mount tracefs and bpffs as root");
    let caps = unit_capabilities();
    // The unit's ExecStartPre: the pins' directory, the service user's.
    let pins = Path::new("/sys/fs/bpf/ritma");
    std::fs::create_dir_all(pins).unwrap();
    std::os::unix::fs::chown(pins, Some(UID), None).unwrap();

    let d = nobody_dir();
    let mut run = ritma_as_nobody(&d, &caps, &["run", "--out", "s", "--node", "deploy-1"])
        .args(["--duration", "4"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_started(&mut run, || wal_of(&d.join("s")).is_some());

    // Root runs a binary from a memfd: no path leads to it (its exec names the runner's
    // /proc/self/fd), only /proc/<pid>/exe, which CAP_SYS_PTRACE opens across users.
    let bytes = std::fs::read("/bin/sleep").unwrap();
    let (exe_path, exe, meta) = memfd_executable(&bytes);
    let mut victim = Command::new(&exe_path).arg("1.5").spawn().unwrap();
    assert!(victim.wait().unwrap().success());
    drop(exe);

    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ritma run as uid {UID} failed: {err}");
    assert!(err.contains("sealed"), "{err}");
    // With the unit's privileges it pins its counters (a kill's in-flight events counted).
    assert!(!err.contains("cannot pin"), "{err}");

    // The store is the non-root user's, it has sealed windows, and it verifies.
    let store = d.join("s");
    assert_eq!(std::fs::metadata(store.join("_meta")).unwrap().uid(), UID);
    let windows = util::window_leaves(&store);
    assert!(
        !windows.is_empty(),
        "no sealed window in {}",
        store.display()
    );
    let vkey = std::fs::read_to_string(store.join("_meta/keys/signing.vkey")).unwrap();
    let report = d
        .ritma(&["verify", "s", "--key", vkey.trim()])
        .output()
        .success();
    assert!(report.starts_with("OK deploy-1:"), "{report}");

    // The memfd binary was hashed from its bytes.
    let want = ((meta.dev(), meta.ino()), *blake3::hash(&bytes).as_bytes());
    let exes = wal_exes(&wal_of(&store).unwrap());
    assert!(
        exes.contains(&want),
        "the memfd binary's hash is not in the WAL's exes ({} entries): {err}",
        exes.len()
    );

    // Without any one capability, the run fails naming that one and only that one.
    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let d = nobody_dir();
        let err = ritma_as_nobody(&d, &fewer, &["run", "--out", "s", "--node", "deploy-1"])
            .args(["--duration", "1"])
            .output()
            .failure();
        assert!(
            err.contains(&format!("missing capability {missing} (")),
            "without {missing}: {err}"
        );
        for other in fewer {
            assert!(
                !err.contains(&other),
                "without {missing}, {other} named: {err}"
            );
        }
        assert!(
            wal_of(&d.join("s")).is_none(),
            "without {missing}, capture started anyway"
        );
    }
}

/// The unit with ExecStart pointing at the binary under test, in `d`.
fn unit_for_test(d: &Dir, unit: &str) -> PathBuf {
    let text = unit.replace(
        "/usr/local/bin/ritma ",
        &format!("{} ", env!("CARGO_BIN_EXE_ritma")),
    );
    let p = d.join("ritma.service");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_unit_passes_systemd_analyze_verify_and_security() {
    if !have("systemd-analyze", "systemd unit lint") {
        return;
    }
    let unit = read("systemd/ritma.service");
    let d = Dir::new();
    let p = unit_for_test(&d, &unit);
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.is_empty(),
        "systemd-analyze verify: {err}"
    );

    // The lint is not a no-op: a misspelt key is reported.
    let bad = unit_for_test(&d, &unit.replace("ProtectSystem=", "ProtectSytem="));
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("Unknown key 'ProtectSytem'"));

    // The user the unit runs as is the one the sysusers.d snippet creates.
    let root = Dir::new();
    let o = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg("--dry-run")
        .arg(deploy("systemd/ritma.sysusers.conf"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "systemd-sysusers: {err}");
    let user = unit_list(&unit, "User");
    assert!(
        err.contains(&format!("Creating user '{}'", user[0])),
        "ritma.sysusers.conf does not create the unit's User={user:?}: {err}"
    );

    // Overall exposure at most 3.5 of 10 (2.9 with systemd 252): the sandboxing stays on.
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=35"])
        .arg(&p)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "systemd-analyze security:\n{out}");
    // And it would catch a unit that drops the sandbox.
    let loose: String = unit
        .lines()
        .filter(|l| !l.starts_with("Protect") && !l.starts_with("SystemCall"))
        .map(|l| format!("{l}\n"))
        .collect();
    let o = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=35"])
        .arg(unit_for_test(&d, &loose))
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "an unsandboxed unit passed the threshold"
    );
}

#[test]
fn the_daemonset_and_the_dockerfile_pass_their_linters() {
    let test = "deploy manifest lint";
    let Some(bin) = std::env::var_os("RITMA_DEPLOY_LINTERS").map(PathBuf::from) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: RITMA_DEPLOY_LINTERS is unset (test.sh sets it; CI=true: a skip is a failure)");
        }
        eprintln!("skipping {test}: set RITMA_DEPLOY_LINTERS=$(tests/deploy/install-linters.sh | tail -n 1)");
        return;
    };
    let yaml = deploy("kubernetes/daemonset.yaml");
    let run = |tool: &str, args: &[&str], file: &Path| {
        Command::new(bin.join(tool))
            .args(args)
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.join(tool).display()))
    };
    let ok = |o: std::process::Output, what: &str| {
        assert!(
            o.status.success(),
            "{what}:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    // Against the Kubernetes API's schemas, unknown fields rejected.
    ok(
        run("kubernetes-validate", &["--strict"], &yaml),
        "kubernetes-validate",
    );
    let d = Dir::new();
    let bad = d.join("bad.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&bad, text.replace("hostPID: true", "hostPid: true")).unwrap();
    assert!(
        !run("kubernetes-validate", &["--strict"], &bad)
            .status
            .success(),
        "kubernetes-validate accepted a misspelt field"
    );
    let config = "{extends: default, rules: {line-length: {max: 100}, document-start: disable, \
                  braces: {max-spaces-inside: 1}}}";
    ok(
        run("yamllint", &["--strict", "-d", config], &yaml),
        "yamllint",
    );
    ok(
        run("hadolint", &[], &deploy("docker/Dockerfile")),
        "hadolint",
    );
}
