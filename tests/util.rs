//! A temporary directory and a command builder for the real `ritma` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// `ritma ARGS…` with a clean environment for the variables ritma reads.
    pub fn ritma(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ritma"));
        c.args(args)
            .current_dir(self.path())
            .env_remove("RITMA_OUT")
            .env_remove("RITMA_NODE_ID");
        c
    }
}

pub trait OutputExt {
    fn success(self) -> String;
    fn failure(self) -> String;
}

impl OutputExt for std::io::Result<Output> {
    /// Asserts success; returns stdout.
    fn success(self) -> String {
        let o = self.expect("run ritma");
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(
            o.status.success(),
            "ritma failed: {}\nstdout:\n{out}\nstderr:\n{err}",
            o.status
        );
        out.into_owned()
    }

    /// Asserts failure; returns stderr.
    fn failure(self) -> String {
        let o = self.expect("run ritma");
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(
            !o.status.success(),
            "ritma unexpectedly succeeded\nstdout:\n{out}\nstderr:\n{err}"
        );
        err.into_owned()
    }
}
