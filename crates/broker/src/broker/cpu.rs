//! The process's own resource use, sampled for `/varz` and the server statistics.

use std::time::Instant;

/// Samples RSS and CPU usage of this process from `/proc/self`.
#[derive(Debug, Default)]
pub(crate) struct CpuSampler {
    last: Option<(Instant, u64)>,
    last_percent: f64,
}

impl CpuSampler {
    /// `(rss bytes, cpu percent since the previous sample)`.
    pub fn sample(&mut self) -> (u64, f64) {
        let page = 4096u64;
        let rss = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * page);
        let ticks = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| {
                // Fields after the parenthesised command name; utime and stime are
                // fields 14 and 15 overall, i.e. 12 and 13 after it.
                let rest = &s[s.rfind(')')? + 1..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
            });
        let now = Instant::now();
        if let Some(ticks) = ticks {
            if let Some((then, prev)) = self.last {
                let wall = now.duration_since(then).as_secs_f64();
                if wall > 0.05 {
                    // USER_HZ is 100 on every mainstream Linux.
                    let cpu_secs = ticks.saturating_sub(prev) as f64 / 100.0;
                    self.last_percent = (cpu_secs / wall * 1000.0).round() / 10.0;
                    self.last = Some((now, ticks));
                }
            } else {
                self.last = Some((now, ticks));
            }
        }
        (rss, self.last_percent)
    }
}
