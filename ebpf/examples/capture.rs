//! Prints the raw events the sensor captures for a few seconds (as root):
//! `cargo run -p ritma-ebpf --example capture -- [SECONDS]`.

use std::time::{Duration, Instant};

use ritma_ebpf::{Sensor, SensorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::args().nth(1).map_or(Ok(5), |s| s.parse())?;
    let mut sensor = Sensor::start(SensorConfig::default())?;
    eprintln!(
        "{} programs attached; optional syscalls missing: {:?}",
        sensor.attached().len(),
        sensor.missing_optional()
    );
    let end = Instant::now() + Duration::from_secs(secs);
    let mut events = Vec::new();
    while Instant::now() < end {
        events.clear();
        sensor.poll(Duration::from_millis(200), &mut events)?;
        for e in &events {
            println!(
                "{} pid={} tid={} ppid={} uid={} comm={} {}",
                e.mono_ns,
                e.task.pid,
                e.task.tid,
                e.task.ppid,
                e.task.uid,
                String::from_utf8_lossy(&e.task.comm),
                readable(&e.body)
            );
        }
    }
    eprintln!("drops: {:?}", sensor.drops()?);
    match sensor.run_counts() {
        Ok(runs) => {
            for r in runs.iter().filter(|r| r.run_count > 0) {
                eprintln!(
                    "{:>20} ran {:>8} times, {:?}",
                    r.program, r.run_count, r.run_time
                );
            }
        }
        Err(why) => eprintln!("run counts unavailable: {why}"),
    }
    Ok(())
}

/// The body's Debug form with byte strings shown as text.
fn readable(body: &ritma_sources::raw::RawBody) -> String {
    let mut out = format!("{body:?}");
    let mut from = 0;
    // Replace each innermost `[n, n, ...]` list of byte values with the text it spells.
    while let Some(close) = out[from..].find(']').map(|c| from + c) {
        let Some(open) = out[..close].rfind('[') else {
            break;
        };
        let inner = &out[open + 1..close];
        let bytes: Result<Vec<u8>, _> = inner.split(", ").map(str::parse::<u8>).collect();
        match bytes {
            Ok(bytes) if !inner.is_empty() => {
                let text = format!("{:?}", String::from_utf8_lossy(&bytes));
                out.replace_range(open..=close, &text);
                from = open + text.len();
            }
            _ => from = close + 1,
        }
    }
    out
}
