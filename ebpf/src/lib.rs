//! Live capture: eBPF programs (C with CO-RE, `bpf/ritma.bpf.c`, committed compiled as
//! `bpf/ritma.bpf.o`) hooked on sched and syscall tracepoints, and the loader that
//! attaches them and decodes their ring-buffer records into raw events
//! (`ritma_sources::raw::RawEvent`), plus a task iterator that reports the processes
//! already running at start. README.md specifies the hooks and the wire format.

pub mod canary;
pub mod error;
pub mod health;
pub mod pinned;
pub mod programs;
pub mod sensor;
pub mod snapshot;
pub mod system;
pub mod wire;

pub use error::EbpfError;
pub use health::{CallCounts, Gap, HookMonitor};
pub use sensor::{verify_object, DropCounts, ProgramRuns, Sensor, SensorConfig};
pub use wire::{decode_record, WireError};
