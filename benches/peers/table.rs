//! The figures of each run, their medians over the repetitions, and the
//! two tables printed at the end (throughput and latency; server CPU per
//! event), or one JSON object.

use serde_json::{json, Value};

use crate::workload::{Measured, Params, Workload};
use crate::Side;

/// What the tables show of one run.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// Events in the timed phase.
    pub events: u64,
    /// Seconds of the timed phase.
    pub seconds: f64,
    /// Events a second.
    pub rate: f64,
    /// Latency percentiles in milliseconds (see [`Measured::latency`]).
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Highest.
    pub max_ms: f64,
    /// Server CPU per event in microseconds, when its pid is known.
    pub cpu_us: Option<f64>,
}

impl Figures {
    /// The figures of a run.
    pub fn of(m: &Measured) -> Figures {
        let ms = |micros: u64| micros as f64 / 1000.0;
        let events = m.events.max(1) as f64;
        Figures {
            events: m.events,
            seconds: m.usage.seconds,
            rate: m.events as f64 / m.usage.seconds,
            p50_ms: ms(m.latency.value_at_quantile(0.50)),
            p99_ms: ms(m.latency.value_at_quantile(0.99)),
            max_ms: ms(m.latency.max()),
            cpu_us: m.usage.cpu_seconds.map(|s| s * 1e6 / events),
        }
    }

    /// The workload's figures in one cell: what the table shows of it.
    pub fn cell(&self, workload: Workload) -> String {
        let (p50, p99, max) = (ms(self.p50_ms), ms(self.p99_ms), ms(self.max_ms));
        let rate = thousands(self.rate);
        match workload {
            Workload::W1 => format!("{rate}/s, p50 {p50} / p99 {p99} / max {max} ms"),
            Workload::W2 => format!("{rate}/s, p99 {p99} / max {max} ms"),
            Workload::W3 => format!("{rate}/s"),
            Workload::W4 => format!("p50 {p50} / p99 {p99} ms"),
        }
    }

    fn json(&self) -> Value {
        json!({
            "events": self.events,
            "seconds": self.seconds,
            "events_per_s": self.rate,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "server_cpu_us_per_event": self.cpu_us,
        })
    }
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workload.
    pub workload: Workload,
    /// The server.
    pub side: Side,
    /// Which repetition, from 1.
    pub rep: u32,
    /// What it measured.
    pub figures: Figures,
}

/// The runs of one workload against one server, and their medians.
struct Runs<'a> {
    runs: Vec<&'a Figures>,
}

impl<'a> Runs<'a> {
    fn of(rows: &'a [Row], workload: Workload, side: Side) -> Runs<'a> {
        let runs = rows
            .iter()
            .filter(|r| r.workload == workload && r.side == side)
            .map(|r| &r.figures)
            .collect();
        Runs { runs }
    }

    fn median(&self) -> Option<Figures> {
        let first = self.runs.first()?;
        let m = |f: fn(&Figures) -> f64| median(self.runs.iter().map(|r| f(r)).collect());
        let cpu: Vec<f64> = self.runs.iter().filter_map(|r| r.cpu_us).collect();
        Some(Figures {
            events: first.events,
            seconds: m(|f| f.seconds),
            rate: m(|f| f.rate),
            p50_ms: m(|f| f.p50_ms),
            p99_ms: m(|f| f.p99_ms),
            max_ms: m(|f| f.max_ms),
            cpu_us: (!cpu.is_empty()).then(|| median(cpu)),
        })
    }

    /// The lowest and highest CPU per event.
    fn cpu_range(&self) -> Option<(f64, f64)> {
        let cpu = self.runs.iter().filter_map(|r| r.cpu_us);
        cpu.fold(None, |range, c| match range {
            None => Some((c, c)),
            Some((lo, hi)) => Some((f64::min(lo, c), f64::max(hi, c))),
        })
    }
}

/// The median of `values`; of an even count, the mean of the middle two.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// How a workload is named in the table.
fn label(workload: Workload, p: &Params) -> String {
    match workload {
        Workload::W1 => format!("W1 single publish, {} producers", p.w1_producers),
        Workload::W2 => format!(
            "W2 batch publish, {} producers × {}",
            p.w2_producers, p.w2_batch
        ),
        Workload::W3 => format!(
            "W3 consume + ack of {}, {} consumers × {}",
            thousands(p.w3_count as f64),
            p.w3_consumers,
            p.w3_batch
        ),
        Workload::W4 => format!(
            "W4 publish → receive at {}/s, {} consumers, p50 / p99",
            thousands(p.w4_rate as f64),
            p.w4_consumers
        ),
    }
}

/// The two tables in Markdown, of the medians of `rows`.
pub fn tables(rows: &[Row], workloads: &[Workload], p: &Params, reps: u32) -> String {
    let mut lines = vec![
        format!("medians of {reps} interleaved repetitions"),
        String::new(),
        "| workload | Redis | event-broker | ratio |".to_string(),
        "|---|---|---|---|".to_string(),
    ];
    for &w in workloads {
        let (Some(redis), Some(broker)) = (
            Runs::of(rows, w, Side::Redis).median(),
            Runs::of(rows, w, Side::Broker).median(),
        ) else {
            continue;
        };
        let ratio = match w {
            Workload::W4 => format!("p99 {:.2}×", broker.p99_ms / redis.p99_ms),
            _ => format!("{:.2}×", broker.rate / redis.rate),
        };
        let (name, r, b) = (label(w, p), redis.cell(w), broker.cell(w));
        lines.push(format!("| {name} | {r} | {b} | {ratio} |"));
    }
    lines.extend([
        String::new(),
        "ratio: event-broker ÷ Redis, of events/s for W1–W3 (above 1 the broker is faster), \
         of p99 latency for W4 (above 1 the broker is slower)"
            .to_string(),
        String::new(),
        format!(
            "Redis: W2 batches as {}, W3 and W4 acks as {}; {}-byte bodies",
            if p.w2_redis_multi {
                "MULTI/EXEC"
            } else {
                "a plain pipeline of XADDs"
            },
            if p.redis_xdel {
                "XACK then XDEL"
            } else {
                "XACK without XDEL"
            },
            p.size
        ),
        String::new(),
        "| server CPU per event, median (lowest–highest) | Redis | event-broker | ratio |"
            .to_string(),
        "|---|---|---|---|".to_string(),
    ]);
    for &w in workloads {
        let (redis, broker) = (
            Runs::of(rows, w, Side::Redis),
            Runs::of(rows, w, Side::Broker),
        );
        let cpu = |runs: &Runs| runs.median().and_then(|m| m.cpu_us);
        let (Some(r), Some(b)) = (cpu(&redis), cpu(&broker)) else {
            continue;
        };
        let (rc, bc) = (micros(r, redis.cpu_range()), micros(b, broker.cpu_range()));
        let name = w.key().to_uppercase();
        // A run too short for one clock tick of CPU has no ratio.
        let ratio = if r > 0.0 {
            format!("{:.2}×", b / r)
        } else {
            "–".to_string()
        };
        lines.push(format!("| {name} | {rc} | {bc} | {ratio} |"));
    }
    lines.push(String::new());
    lines.join("\n")
}

/// Every run and the medians as one JSON object.
pub fn json(rows: &[Row], workloads: &[Workload], p: &Params, reps: u32) -> Value {
    let runs: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = r.figures.json();
            v["workload"] = json!(r.workload.key());
            v["server"] = json!(r.side.name());
            v["rep"] = json!(r.rep);
            v
        })
        .collect();
    let mut medians = serde_json::Map::new();
    for &w in workloads {
        let mut sides = serde_json::Map::new();
        for side in [Side::Redis, Side::Broker] {
            if let Some(m) = Runs::of(rows, w, side).median() {
                sides.insert(side.name().to_string(), m.json());
            }
        }
        medians.insert(w.key().to_string(), Value::Object(sides));
    }
    json!({
        "reps": reps,
        "settings": p.json(),
        "medians": medians,
        "runs": runs,
    })
}

fn micros(median: f64, range: Option<(f64, f64)>) -> String {
    match range {
        Some((lo, hi)) => format!("{median:.1} µs ({lo:.1}–{hi:.1})"),
        None => format!("{median:.1} µs"),
    }
}

/// Milliseconds with three significant digits or so.
fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A whole number with a comma every three digits.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
