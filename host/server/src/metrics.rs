//! Prometheus metrics (prometheus-client): what the API served and what the log
//! recorded, counted as it happens; gauges read from the projection when scraped.

use leviathan_events::{Event, Projection};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Labels of an API request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Labels of a target's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

/// Labels of a GitHub API's series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    api_url: String,
}

/// Labels of one GitHub identity's series (its name is where its token comes
/// from, never the token).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdentityLabels {
    api_url: String,
    identity: String,
}

/// Labels of one window of an identity's secondary budget.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowLabels {
    api_url: String,
    identity: String,
    window: &'static str,
}

/// What a scrape reads besides the projection: the passes' health, the plugin
/// watch, the data volume.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// `None` without scheduler passes (`serve` without `--config`).
    pub health: Option<crate::BackgroundHealth>,
    pub plugin_reload_failures: u64,
    /// Rejected registry entries in the set in force (`None` while loading).
    pub plugins_rejected: Option<u64>,
    /// The data directory's volume: (free bytes for the host, size in bytes).
    pub data_volume: Option<(u64, u64)>,
}

impl Scrape {
    /// Reads what `state` knows now.
    pub fn of(state: &crate::AppState) -> Scrape {
        Scrape {
            health: state.health.get().map(|probe| probe()),
            plugin_reload_failures: state.plugins.reload_failures(),
            plugins_rejected: state
                .plugins
                .current()
                .map(|set| set.registry.rejected.len() as u64),
            data_volume: volume(&state.data_dir),
        }
    }
}

/// Free bytes (for an unprivileged user) and size of the volume holding `dir`.
fn volume(dir: &std::path::Path) -> Option<(u64, u64)> {
    let st = rustix::fs::statvfs(dir).ok()?;
    let unit = if st.f_frsize > 0 {
        st.f_frsize
    } else {
        st.f_bsize
    };
    Some((
        st.f_bavail.saturating_mul(unit),
        st.f_blocks.saturating_mul(unit),
    ))
}

/// Raises `counter` to `total` (a count kept elsewhere); `seen` is what it holds.
fn advance(counter: &Counter, seen: &AtomicU64, total: u64) {
    let before = seen.swap(total, Ordering::Relaxed);
    if total > before {
        counter.inc_by(total - before);
    }
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
    target_breaker_open: Family<TargetLabels, Gauge>,
    scheduler_running: Gauge,
    last_pass_completed: Gauge,
    passes_failed: Counter,
    passes_failed_seen: AtomicU64,
    plugin_reload_failures: Counter,
    plugin_reload_failures_seen: AtomicU64,
    config_reload_failing: Gauge,
    plugins_rejected: Gauge,
    data_free_bytes: Gauge,
    data_size_bytes: Gauge,
    github_remaining: Family<ApiLabels, Gauge>,
    github_limit: Family<ApiLabels, Gauge>,
    github_reset: Family<ApiLabels, Gauge>,
    github_content_requests: Family<ApiLabels, Counter>,
    github_content_seen: Mutex<BTreeMap<String, u64>>,
    identity_remaining: Family<IdentityLabels, Gauge>,
    identity_content_remaining: Family<WindowLabels, Gauge>,
    identity_in_flight: Family<IdentityLabels, Gauge>,
    identity_waiting: Family<IdentityLabels, Gauge>,
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
            target_breaker_open: Family::default(),
            scheduler_running: Gauge::default(),
            last_pass_completed: Gauge::default(),
            passes_failed: Counter::default(),
            passes_failed_seen: AtomicU64::new(0),
            plugin_reload_failures: Counter::default(),
            plugin_reload_failures_seen: AtomicU64::new(0),
            config_reload_failing: Gauge::default(),
            plugins_rejected: Gauge::default(),
            data_free_bytes: Gauge::default(),
            data_size_bytes: Gauge::default(),
            github_remaining: Family::default(),
            github_limit: Family::default(),
            github_reset: Family::default(),
            github_content_requests: Family::default(),
            github_content_seen: Mutex::new(BTreeMap::new()),
            identity_remaining: Family::default(),
            identity_content_remaining: Family::default(),
            identity_in_flight: Family::default(),
            identity_waiting: Family::default(),
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
        registry.register(
            "target_circuit_breaker_open",
            "Whether a target's circuit breaker is open (1) or closed (0)",
            m.target_breaker_open.clone(),
        );
        registry.register(
            "scheduler_running",
            "Whether scheduler passes run in this process (serve --config)",
            m.scheduler_running.clone(),
        );
        registry.register(
            "scheduler_last_pass_completed_timestamp_seconds",
            "When a scheduler pass last ran to its end (Unix seconds; 0 before the first)",
            m.last_pass_completed.clone(),
        );
        registry.register(
            "scheduler_passes_failed",
            "Scheduler passes that ended in an error of the event log",
            m.passes_failed.clone(),
        );
        registry.register(
            "plugin_reload_failures",
            "Reloads of the plugin registry that failed (the previous set stayed in force)",
            m.plugin_reload_failures.clone(),
        );
        registry.register(
            "config_reload_failing",
            "1 while the last reload of the targets configuration failed (the configuration in force is the one before it), else 0",
            m.config_reload_failing.clone(),
        );
        registry.register(
            "plugins_rejected",
            "Registry entries the plugin set in force rejected",
            m.plugins_rejected.clone(),
        );
        registry.register(
            "data_volume_free_bytes",
            "Bytes free for the host on the event store's volume",
            m.data_free_bytes.clone(),
        );
        registry.register(
            "data_volume_size_bytes",
            "Size of the event store's volume in bytes",
            m.data_size_bytes.clone(),
        );
        registry.register(
            "github_rate_limit_remaining",
            "GitHub primary rate limit: requests left in the window (the lowest of the API's identities)",
            m.github_remaining.clone(),
        );
        registry.register(
            "github_rate_limit_limit",
            "GitHub primary rate limit: the window's size",
            m.github_limit.clone(),
        );
        registry.register(
            "github_rate_limit_reset_timestamp_seconds",
            "GitHub primary rate limit: when the window resets (Unix seconds)",
            m.github_reset.clone(),
        );
        registry.register(
            "github_content_requests",
            "GitHub requests that may create content (what the secondary limits of 80 a minute and 500 an hour count)",
            m.github_content_requests.clone(),
        );
        registry.register(
            "github_identity_rate_limit_remaining",
            "GitHub primary rate limit of one identity: requests left in the window",
            m.identity_remaining.clone(),
        );
        registry.register(
            "github_identity_content_remaining",
            "Content-creating requests one identity has left in the window (minute, hour) of its planned secondary limits",
            m.identity_content_remaining.clone(),
        );
        registry.register(
            "github_identity_requests_in_flight",
            "Requests of one identity in flight",
            m.identity_in_flight.clone(),
        );
        registry.register(
            "github_identity_waiting_targets",
            "Targets waiting for one identity's budget (served first when it frees up)",
            m.identity_waiting.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records how the last reload of the targets configuration went.
    pub fn config_reloaded(&self, ok: bool) {
        self.config_reload_failing.set(i64::from(!ok));
    }

    /// Sets the series of a scrape that do not come from the projection.
    fn observe_scrape(&self, scrape: &Scrape) {
        advance(
            &self.plugin_reload_failures,
            &self.plugin_reload_failures_seen,
            scrape.plugin_reload_failures,
        );
        if let Some(rejected) = scrape.plugins_rejected {
            self.plugins_rejected.set(rejected as i64);
        }
        if let Some((free, size)) = scrape.data_volume {
            self.data_free_bytes.set(free as i64);
            self.data_size_bytes.set(size as i64);
        }
        let Some(health) = &scrape.health else {
            self.scheduler_running.set(0);
            return;
        };
        self.scheduler_running.set(1);
        self.last_pass_completed.set(
            health
                .last_pass_completed_ms
                .map_or(0, |ms| (ms / 1000) as i64),
        );
        advance(
            &self.passes_failed,
            &self.passes_failed_seen,
            health.passes_failed,
        );
        for u in &health.github {
            let labels = IdentityLabels {
                api_url: u.api_url.clone(),
                identity: u.identity.clone(),
            };
            if let Some(left) = u.budget.remaining {
                self.identity_remaining
                    .get_or_create(&labels)
                    .set(left as i64);
            }
            for (window, left) in [
                ("minute", u.secondary.minute_remaining),
                ("hour", u.secondary.hour_remaining),
            ] {
                let labels = WindowLabels {
                    api_url: u.api_url.clone(),
                    identity: u.identity.clone(),
                    window,
                };
                self.identity_content_remaining
                    .get_or_create(&labels)
                    .set(i64::from(left));
            }
            self.identity_in_flight
                .get_or_create(&labels)
                .set(i64::from(u.secondary.in_flight));
            self.identity_waiting
                .get_or_create(&labels)
                .set(u.secondary.waiting.len() as i64);
        }
        // Several identities on one API: the lowest budget, the summed requests.
        let by_api = leviathan_forge::github::clients::by_api(&health.github);
        let mut seen = self
            .github_content_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (api, usage) in by_api {
            let labels = ApiLabels {
                api_url: api.to_string(),
            };
            let budget = usage.lowest.unwrap_or_default();
            for (family, value) in [
                (&self.github_remaining, budget.remaining),
                (&self.github_limit, budget.limit),
                (&self.github_reset, budget.reset_epoch),
            ] {
                if let Some(v) = value {
                    family.get_or_create(&labels).set(v as i64);
                }
            }
            let total = usage.content_requests;
            let before = seen.insert(api.to_string(), total).unwrap_or(0);
            let counter = self.github_content_requests.get_or_create(&labels);
            if total > before {
                counter.inc_by(total - before);
            }
        }
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

    /// The OpenMetrics text exposition, gauges refreshed from `projection` and
    /// `scrape`.
    pub fn render(
        &self,
        projection: &Projection,
        scrape: &Scrape,
    ) -> Result<String, std::fmt::Error> {
        self.breakers_open.set(projection.open_breakers() as i64);
        self.last_seq.set(projection.last_seq as i64);
        self.target_breaker_open.clear();
        for (target, view) in &projection.targets {
            self.target_breaker_open
                .get_or_create(&TargetLabels {
                    target: target.clone(),
                })
                .set(i64::from(view.circuit_breaker.open));
        }
        self.observe_scrape(scrape);
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
    use leviathan_forge::github::clients::Usage;
    use leviathan_forge::github::ratelimit::Budget;

    fn usage(api: &str, remaining: u64, content: u64) -> Usage {
        Usage {
            identity: format!("env:TOKEN_{remaining}"),
            targets: vec!["a".into()],
            secondary: leviathan_forge::github::identity::SecondaryUsage {
                minute_remaining: 77,
                hour_remaining: 400 + remaining as u32,
                waiting: vec!["b".into(), "c".into()],
                ..Default::default()
            },
            api_url: api.into(),
            budget: Budget {
                remaining: Some(remaining),
                reset_epoch: Some(1_900_000_000),
                limit: Some(5000),
            },
            content_requests: content,
        }
    }

    fn scrape(m: &Metrics, s: &Scrape) -> String {
        m.render(&Projection::default(), s).expect("renders")
    }

    #[test]
    fn a_scrape_reports_the_lowest_budget_and_counts_content_requests_once() {
        let m = Metrics::new();
        let mut s = Scrape {
            health: Some(crate::BackgroundHealth {
                last_pass_completed_ms: Some(1_800_000_000_500),
                passes_failed: 2,
                github: vec![usage("https://a", 900, 3), usage("https://a", 40, 4)],
                discovered: Vec::new(),
            }),
            plugin_reload_failures: 1,
            plugins_rejected: Some(2),
            data_volume: Some((100, 1000)),
        };
        let text = scrape(&m, &s);
        for series in [
            "leviathan_scheduler_running 1",
            "leviathan_scheduler_last_pass_completed_timestamp_seconds 1800000000",
            "leviathan_scheduler_passes_failed_total 2",
            "leviathan_github_rate_limit_remaining{api_url=\"https://a\"} 40",
            "leviathan_github_rate_limit_limit{api_url=\"https://a\"} 5000",
            "leviathan_github_content_requests_total{api_url=\"https://a\"} 7",
            "leviathan_github_identity_rate_limit_remaining{api_url=\"https://a\",identity=\"env:TOKEN_40\"} 40",
            "leviathan_github_identity_content_remaining{api_url=\"https://a\",identity=\"env:TOKEN_900\",window=\"hour\"} 1300",
            "leviathan_github_identity_content_remaining{api_url=\"https://a\",identity=\"env:TOKEN_40\",window=\"minute\"} 77",
            "leviathan_github_identity_waiting_targets{api_url=\"https://a\",identity=\"env:TOKEN_40\"} 2",
            "leviathan_github_identity_requests_in_flight{api_url=\"https://a\",identity=\"env:TOKEN_40\"} 0",
            "leviathan_plugin_reload_failures_total 1",
            "leviathan_plugins_rejected 2",
            "leviathan_data_volume_free_bytes 100",
        ] {
            assert!(text.contains(series), "{series}: {text}");
        }
        // The next scrape adds only what is new; a count never goes back.
        if let Some(h) = s.health.as_mut() {
            h.github = vec![usage("https://a", 900, 5), usage("https://a", 39, 4)];
        }
        let text = scrape(&m, &s);
        assert!(
            text.contains("leviathan_github_content_requests_total{api_url=\"https://a\"} 9"),
            "{text}"
        );
        assert!(
            text.contains("leviathan_github_rate_limit_remaining{api_url=\"https://a\"} 39"),
            "{text}"
        );
        assert!(
            text.contains("leviathan_scheduler_passes_failed_total 2"),
            "{text}"
        );
        s.health = None;
        assert!(scrape(&m, &s).contains("leviathan_scheduler_running 0"));
    }

    #[test]
    fn prometheus_text_names_counters_by_their_total_series() {
        let om = "# HELP a_events Events.\n# TYPE a_events counter\na_events_total 3\n# HELP a_g G.\n# TYPE a_g gauge\na_g 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_events_total Events.\n# TYPE a_events_total counter\na_events_total 3\n# HELP a_g G.\n# TYPE a_g gauge\na_g 1\n"
        );
    }
}
