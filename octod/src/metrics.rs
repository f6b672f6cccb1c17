//! Lock-free latency histograms for `/metrics`: the engine records how long each successful
//! create and resume took until the session was ready; the API renders them in the
//! Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the buckets of the session latency histograms; `+Inf` is implied.
pub const SESSION_BUCKETS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A Prometheus histogram with fixed buckets: one atomic per bucket, the sum in microseconds.
/// Recording costs a few `fetch_add`s and takes no lock.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative: `counts[i]` counts values in `(bounds[i-1], bounds[i]]`; the last one
    /// counts values above every bound.
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many observations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the histogram as `name` in the Prometheus text format: `# HELP`, `# TYPE`,
    /// cumulative `_bucket{le=…}` lines ending with `+Inf`, `_sum` (seconds) and `_count`.
    pub fn render_prometheus(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            match self.bounds.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        // Precision-lossy only past 2^53 µs (285 years of summed latency).
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        // The count is the +Inf bucket's, so that a scrape is self-consistent.
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The engine's latency histograms. Shared by every clone of the engine.
#[derive(Debug)]
pub struct EngineMetrics {
    /// From a create request to the session being ready (running and healthy).
    pub create: Histogram,
    /// From a resume (or a wake on access) to the session being ready.
    pub resume: Histogram,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            create: Histogram::new(&SESSION_BUCKETS),
            resume: Histogram::new(&SESSION_BUCKETS),
        }
    }
}

impl EngineMetrics {
    /// Appends `octo_session_create_seconds` and `octo_session_resume_seconds`.
    pub fn render_prometheus(&self, out: &mut String) {
        self.create.render_prometheus(
            out,
            "octo_session_create_seconds",
            "Seconds from a session create to the session being ready (successful creates).",
        );
        self.resume.render_prometheus(
            out,
            "octo_session_resume_seconds",
            "Seconds from a session resume to the session being ready (successful resumes).",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_histogram_renders_zeros() {
        let h = Histogram::new(&[0.5, 1.0]);
        let mut out = String::new();
        h.render_prometheus(&mut out, "x_seconds", "Help.");
        assert_eq!(
            out,
            "# HELP x_seconds Help.\n\
             # TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"0.5\"} 0\n\
             x_seconds_bucket{le=\"1\"} 0\n\
             x_seconds_bucket{le=\"+Inf\"} 0\n\
             x_seconds_sum 0\n\
             x_seconds_count 0\n"
        );
    }

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::new(&SESSION_BUCKETS);
        h.observe(Duration::from_millis(250)); // on the 0.25 bound: counted in it
        h.observe(Duration::from_millis(300));
        h.observe(Duration::from_secs(3));
        h.observe(Duration::from_secs(121)); // above every bound: only +Inf
        let mut out = String::new();
        h.render_prometheus(&mut out, "octo_session_create_seconds", "Create latency.");
        assert_eq!(
            out,
            "# HELP octo_session_create_seconds Create latency.\n\
             # TYPE octo_session_create_seconds histogram\n\
             octo_session_create_seconds_bucket{le=\"0.25\"} 1\n\
             octo_session_create_seconds_bucket{le=\"0.5\"} 2\n\
             octo_session_create_seconds_bucket{le=\"1\"} 2\n\
             octo_session_create_seconds_bucket{le=\"2\"} 2\n\
             octo_session_create_seconds_bucket{le=\"5\"} 3\n\
             octo_session_create_seconds_bucket{le=\"10\"} 3\n\
             octo_session_create_seconds_bucket{le=\"30\"} 3\n\
             octo_session_create_seconds_bucket{le=\"60\"} 3\n\
             octo_session_create_seconds_bucket{le=\"120\"} 3\n\
             octo_session_create_seconds_bucket{le=\"+Inf\"} 4\n\
             octo_session_create_seconds_sum 124.55\n\
             octo_session_create_seconds_count 4\n"
        );
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn engine_metrics_render_both_histograms() {
        let m = EngineMetrics::default();
        m.resume.observe(Duration::from_millis(1500));
        let mut out = String::new();
        m.render_prometheus(&mut out);
        assert!(out.contains("# TYPE octo_session_create_seconds histogram\n"));
        assert!(out.contains("octo_session_create_seconds_count 0\n"));
        assert!(out.contains("octo_session_resume_seconds_bucket{le=\"1\"} 0\n"));
        assert!(out.contains("octo_session_resume_seconds_bucket{le=\"2\"} 1\n"));
        assert!(out.contains("octo_session_resume_seconds_sum 1.5\n"));
        assert!(out.contains("octo_session_resume_seconds_count 1\n"));
    }
}
