//! Prometheus metrics (prometheus-client): what the API served and what the log
//! recorded, counted as it happens; gauges read from the projection when scraped.

use leviathan_events::{Event, Projection};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Labels of an API request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Labels of a finished attempt.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric the host exports.
pub struct Metrics {
    registry: Registry,
    events_appended: Counter,
    append_seconds: Histogram,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RequestLabels>,
    attempts: Family<OutcomeLabels, Counter>,
    instantiate_seconds: Histogram,
    run_seconds: Histogram,
    fuel_used: Histogram,
    breakers_open: Gauge,
    last_seq: Gauge,
    sse_clients: Gauge,
    plugin_reload_seconds: Histogram,
    connections_evicted: Counter,
    connections_refused: Counter,
    requests_shed: Counter,
}

fn latency_histogram() -> Histogram {
    // 10 µs to ~10 s.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 11))
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric under the `leviathan_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("leviathan");
        let m = Metrics {
            events_appended: Counter::default(),
            append_seconds: latency_histogram(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            attempts: Family::default(),
            instantiate_seconds: latency_histogram(),
            run_seconds: latency_histogram(),
            fuel_used: Histogram::new(exponential_buckets(1e4, 10.0, 7)),
            breakers_open: Gauge::default(),
            last_seq: Gauge::default(),
            sse_clients: Gauge::default(),
            plugin_reload_seconds: latency_histogram(),
            connections_evicted: Counter::default(),
            connections_refused: Counter::default(),
            requests_shed: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_appended",
            "Events appended to the log (durably acknowledged)",
            m.events_appended.clone(),
        );
        registry.register(
            "event_append_seconds",
            "Time to append a batch of events, including the durable flush",
            m.append_seconds.clone(),
        );
        registry.register(
            "api_requests",
            "API requests by route, method and status",
            m.requests.clone(),
        );
        registry.register(
            "api_request_seconds",
            "API request latency by route, method and status",
            m.request_seconds.clone(),
        );
        registry.register(
            "attempts",
            "Finished attempts by outcome",
            m.attempts.clone(),
        );
        registry.register(
            "executor_instantiate_seconds",
            "Executor instantiation time in the sandbox",
            m.instantiate_seconds.clone(),
        );
        registry.register(
            "executor_run_seconds",
            "Executor run time in the sandbox",
            m.run_seconds.clone(),
        );
        registry.register(
            "executor_fuel_used",
            "Fuel (wasm instructions, roughly) an executor run used",
            m.fuel_used.clone(),
        );
        registry.register(
            "circuit_breakers_open",
            "Targets whose circuit breaker is open",
            m.breakers_open.clone(),
        );
        registry.register(
            "event_log_last_seq",
            "Sequence number of the newest event",
            m.last_seq.clone(),
        );
        registry.register(
            "sse_clients",
            "Connected event-stream clients",
            m.sse_clients.clone(),
        );
        registry.register(
            "plugin_reload_seconds",
            "Time to reload the plugin registry after a change settled",
            m.plugin_reload_seconds.clone(),
        );
        registry.register(
            "connections_evicted",
            "Connections closed at the connection cap before they sent a request",
            m.connections_evicted.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because the cap was reached by busy ones",
            m.connections_refused.clone(),
        );
        registry.register(
            "requests_shed",
            "Requests answered 503 because the concurrency or stream limit was reached",
            m.requests_shed.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The listener's counters (connections evicted, refused).
    pub fn connection_stats(&self) -> super::listener::ConnectionStats {
        super::listener::ConnectionStats {
            evicted: self.connections_evicted.clone(),
            refused: self.connections_refused.clone(),
        }
    }

    /// Counts a request answered 503 at a limit.
    pub fn shed(&self) {
        self.requests_shed.inc();
    }

    /// Times one append through the API.
    pub fn observe_append(&self, took: Duration) {
        self.append_seconds.observe(took.as_secs_f64());
    }

    /// Starts the attempt counters at what the log already holds (so a restart does
    /// not reset them).
    pub fn start_from(&self, projection: &Projection) {
        let (succeeded, failed) = projection.targets.values().fold((0, 0), |(s, f), t| {
            (s + t.attempts_succeeded, f + t.attempts_failed)
        });
        for (outcome, n) in [("succeeded", succeeded), ("failed", failed)] {
            self.attempts
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.into(),
                })
                .inc_by(n);
        }
    }

    /// Counts durable events, whoever appended them, and what they report.
    pub fn observe_events(&self, events: &[Event]) {
        self.events_appended.inc_by(events.len() as u64);
        for e in events {
            if e.origin == Some(leviathan_events::Origin::Client) {
                continue;
            }
            let outcome = match e.kind.as_str() {
                "attempt.succeeded" => "succeeded",
                "attempt.failed" => "failed",
                _ => continue,
            };
            self.attempts
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.into(),
                })
                .inc();
            let micros = |key: &str| e.payload.get(key).and_then(|v| v.as_u64());
            if let Some(us) = micros("instantiate_us") {
                self.instantiate_seconds.observe(us as f64 / 1e6);
            }
            if let Some(us) = micros("execute_us") {
                self.run_seconds.observe(us as f64 / 1e6);
            }
            if let Some(fuel) = micros("fuel_used") {
                self.fuel_used.observe(fuel as f64);
            }
        }
    }

    /// Counts one API request.
    pub fn observe_request(&self, labels: RequestLabels, took: Duration) {
        self.request_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// The plugin reload histogram, for the watch thread.
    pub fn clone_plugin_reload(&self) -> Histogram {
        self.plugin_reload_seconds.clone()
    }

    /// Tracks connected SSE clients.
    pub fn sse_clients(&self) -> &Gauge {
        &self.sse_clients
    }

    /// The OpenMetrics text exposition, gauges refreshed from `projection`.
    pub fn render(&self, projection: &Projection) -> Result<String, std::fmt::Error> {
        self.breakers_open.set(projection.open_breakers() as i64);
        self.last_seq.set(projection.last_seq as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Rewrites OpenMetrics text as the Prometheus text format (0.0.4) for scrapers that
/// do not ask for OpenMetrics: a counter's `HELP` and `TYPE` lines name the
/// `_total` series its samples use, and the `# EOF` marker goes.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match descriptor {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_counters_by_their_total_series() {
        let om = "# HELP a_events Events.\n# TYPE a_events counter\na_events_total 3\n# HELP a_g G.\n# TYPE a_g gauge\na_g 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_events_total Events.\n# TYPE a_events_total counter\na_events_total 3\n# HELP a_g G.\n# TYPE a_g gauge\na_g 1\n"
        );
    }
}
