//! The figures of one run (criterion's estimates and the load test's JSON) and what
//! `BENCHMARKS.md` and the throughput plot say about them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::scenario::{IN_PROCESS_ONLY, Job, Who};

/// One scenario as the report lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// The scenario's name.
    pub name: String,
    /// What it does.
    pub job: Job,
    /// Who does it.
    pub who: Who,
    /// What exactly is measured.
    pub about: String,
}

/// `wrk` against one scenario at one connection count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadRun {
    /// The scenario.
    pub scenario: String,
    /// Concurrent connections.
    pub connections: u32,
    /// Throughput.
    pub requests_per_second: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Connect, read, write and timeout errors `wrk` counted, over all rounds.
    pub socket_errors: u64,
    /// Responses other than 2xx and 3xx, over all rounds.
    pub refused: u64,
}

/// Argon2id logins from 64 connections next to one connection on a cheap endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FloodRun {
    /// Login throughput.
    pub logins_per_second: f64,
    /// Login 99th percentile latency, microseconds.
    pub login_p99_us: f64,
    /// Cheap endpoint p99 with no flood, microseconds.
    pub cheap_p99_quiet_us: f64,
    /// Cheap endpoint p99 during the flood, microseconds.
    pub cheap_p99_during_us: f64,
    /// Cheap endpoint throughput with no flood.
    pub cheap_rps_quiet: f64,
    /// Cheap endpoint throughput during the flood.
    pub cheap_rps_during: f64,
}

/// The memory cached credentials take, and what floods add.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemoryRun {
    /// Credentials cached.
    pub entries: u64,
    /// Resident bytes added per cached credential.
    pub bytes_per_entry: f64,
    /// How many distinct invalid tokens, and distinct client addresses, each flood sent.
    pub flood: u64,
    /// Resident bytes the invalid-token flood added (default cache configuration).
    pub invalid_token_bytes: u64,
    /// Resident bytes the address flood added to an in-memory per-IP rate limiter.
    pub address_bytes: u64,
}

/// Everything the load test measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadTest {
    /// Seconds per `wrk` run.
    pub seconds: u64,
    /// Rounds per cell (each cell reports the median).
    pub rounds: usize,
    /// The load client's version line.
    pub client: String,
    /// Every scenario that was built, measured or not.
    pub scenarios: Vec<ScenarioInfo>,
    /// One entry per scenario and connection count.
    pub runs: Vec<LoadRun>,
    /// The login flood.
    pub flood: FloodRun,
    /// Memory per cached credential.
    pub memory: MemoryRun,
}

/// Criterion's median estimates (nanoseconds) for every benchmark under `group`, keyed by the
/// benchmark's path below the group (`portcullis_api_key_cached`, `api_key_cached/1000`).
pub fn criterion_medians(criterion_dir: &Path, group: &str) -> BTreeMap<String, f64> {
    let mut medians = BTreeMap::new();
    let root = criterion_dir.join(group);
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.ends_with("new") {
                let estimates = path.join("estimates.json");
                if let Some(median) = std::fs::read_to_string(&estimates)
                    .ok()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                    .and_then(|json| json["median"]["point_estimate"].as_f64())
                {
                    let name = dir
                        .strip_prefix(&root)
                        .expect("below the group")
                        .to_string_lossy()
                        .into_owned();
                    medians.insert(name, median);
                }
            } else if path.is_dir() && !path.ends_with("report") {
                pending.push(path);
            }
        }
    }
    medians
}

/// What the machine is, for the report's header.
#[derive(Clone, Debug, Default)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// `rustc --version`.
    pub rustc: String,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc` and asks `rustc`.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1_048_576.0);
        let command = |program: &str, arg: &str| {
            std::process::Command::new(program)
                .arg(arg)
                .output()
                .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib,
            rustc: command("rustc", "--version"),
            kernel: command("uname", "-r"),
        }
    }
}

/// One target of the benchmarks issue and whether this run meets it.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// The target, in words.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Whether the target is met.
    pub met: bool,
}

/// The inputs of a report.
#[derive(Clone, Debug)]
pub struct Run<'a> {
    /// The machine.
    pub machine: &'a Machine,
    /// When the run happened (UTC, any readable form).
    pub date: &'a str,
    /// Median ns per scenario (criterion group `request`).
    pub in_process: &'a BTreeMap<String, f64>,
    /// Median ns per stored-key count (criterion group `stored_keys`).
    pub stored_keys: &'a BTreeMap<String, f64>,
    /// Median ns of one cache hit per candidate map (criterion group `cache_hit`).
    pub cache_hit: &'a BTreeMap<String, f64>,
    /// Median ns of one `SELECT 1` per database (criterion group `round_trip`).
    pub round_trip: &'a BTreeMap<String, f64>,
    /// The load test.
    pub load: &'a LoadTest,
}

const BARE: &str = "bare_axum";

/// The plain shared-secret check every cached-credential target is read against.
const PLAIN_BEARER: &str = "tower_http_bearer";

/// The cached credentials, as one stacked layer and as the README writes them.
const CACHED_CREDENTIALS: [&str; 6] = [
    "portcullis_api_key_cached",
    "portcullis_api_key_readme",
    "portcullis_session",
    "portcullis_session_readme",
    "portcullis_jwt_hs256",
    "portcullis_jwt_hs256_readme",
];

/// The rows whose loopback throughput must stay within 5 % of bare axum's.
const LOOPBACK_TARGETS: [&str; 4] = [
    "portcullis_api_key_cached",
    "portcullis_api_key_readme",
    "portcullis_session",
    "portcullis_session_readme",
];

/// The documented bound on what a flood of distinct invalid tokens adds: the credential cache
/// holds at most 100 000 entries by default (`CacheConfig::capacity`), whatever the flood.
pub const INVALID_TOKEN_BOUND_MIB: f64 = 64.0;

/// The documented bound per distinct client address an in-memory rate limit keeps (a hashed
/// key and one GCRA state in a concurrent map), until its bucket refills and the janitor drops
/// it.
pub const ADDRESS_BOUND_BYTES: u64 = 128;

impl Run<'_> {
    fn bare(&self) -> f64 {
        self.in_process.get(BARE).copied().unwrap_or(f64::NAN)
    }

    fn added(&self, name: &str) -> Option<f64> {
        Some(self.in_process.get(name)? - self.bare())
    }

    /// The scenarios in catalogue order, then the in-process-only rows, with their medians.
    fn rows(&self) -> Vec<(ScenarioInfo, Option<f64>)> {
        let extra = IN_PROCESS_ONLY
            .iter()
            .map(|&(name, job, who, about)| ScenarioInfo {
                name: name.to_owned(),
                job,
                who,
                about: about.to_owned(),
            });
        self.load
            .scenarios
            .iter()
            .cloned()
            .chain(extra)
            .map(|info| {
                let median = self.in_process.get(&info.name).copied();
                (info, median)
            })
            .collect()
    }

    /// The first portcullis scenario and the peers of each job that has both.
    fn pairs(&self) -> Vec<(&ScenarioInfo, &ScenarioInfo)> {
        let mut pairs = Vec::new();
        for peer in self.load.scenarios.iter().filter(|s| s.who == Who::Peer) {
            if let Some(ours) = self
                .load
                .scenarios
                .iter()
                .find(|s| s.who == Who::Portcullis && s.job == peer.job)
            {
                pairs.push((ours, peer));
            }
        }
        pairs
    }

    /// Loopback throughput of `name` at `connections` as a share of bare axum's.
    fn throughput_share(&self, name: &str, connections: u32) -> Option<f64> {
        let rate = |scenario: &str| {
            self.load
                .runs
                .iter()
                .find(|run| run.scenario == scenario && run.connections == connections)
                .map(|run| run.requests_per_second)
        };
        Some(rate(name)? / rate(BARE)?)
    }

    /// The connection count the plot and the throughput targets use (64, or the nearest run).
    fn reference_connections(&self) -> u32 {
        let mut counts: Vec<u32> = self.load.runs.iter().map(|run| run.connections).collect();
        counts.sort_unstable();
        counts.dedup();
        counts
            .iter()
            .copied()
            .min_by_key(|&count| count.abs_diff(64))
            .unwrap_or(64)
    }

    /// Every target of the benchmarks issue this run can judge.
    pub fn verdicts(&self) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        self.floor_verdicts(&mut verdicts);
        self.peer_verdicts(&mut verdicts);
        self.miss_verdicts(&mut verdicts);
        self.load_verdicts(&mut verdicts);
        let scaling: Vec<f64> = self.stored_keys.values().copied().collect();
        if scaling.len() >= 2 {
            let (low, high) = scaling
                .iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            verdicts.push(Verdict {
                target: "cost flat from 1 thousand to 1 million stored keys (spread ≤ 10 %)".into(),
                measured: format!(
                    "{low:.0}–{high:.0} ns ({:+.1} %)",
                    (high / low - 1.0) * 100.0
                ),
                met: high <= low * 1.10,
            });
        }
        verdicts
    }

    /// A cached credential against tower-http's plain `==` bearer check, in both shapes.
    fn floor_verdicts(&self, verdicts: &mut Vec<Verdict>) {
        let Some(floor) = self.added(PLAIN_BEARER) else {
            return;
        };
        for name in CACHED_CREDENTIALS {
            if let Some(added) = self.added(name) {
                verdicts.push(Verdict {
                    target: format!(
                        "`{name}` adds ≤ 1.4× what `{PLAIN_BEARER}` adds ({:.0} ns)",
                        floor * 1.4
                    ),
                    measured: format!("{added:+.0} ns ({:.2}×)", added / floor),
                    met: added <= floor * 1.4,
                });
            }
        }
        if let Some(added) = self.added("portcullis_jwt_hs256_first_seen") {
            verdicts.push(Verdict {
                target: "a first-seen HS256 JWT adds ≤ 1.5 µs".into(),
                measured: format!("{:+.2} µs", added / 1e3),
                met: added <= 1_500.0,
            });
        }
    }

    /// Each job against the crate users would pick for it: a third of what it adds where
    /// portcullis does more work than the peer's one job, no more where it does the same.
    fn peer_verdicts(&self, verdicts: &mut Vec<Verdict>) {
        for (ours, peer) in self.pairs() {
            let (Some(ours_added), Some(peer_added)) =
                (self.added(&ours.name), self.added(&peer.name))
            else {
                continue;
            };
            let (share, words) = match ours.job {
                Job::StaticSecret | Job::RateLimit => (1.0, "no more than"),
                _ => (1.0 / 3.0, "≤ ⅓ of"),
            };
            verdicts.push(Verdict {
                target: format!("`{}` adds {words} what `{}` adds", ours.name, peer.name),
                measured: format!(
                    "{ours_added:.0} ns vs {peer_added:.0} ns ({:.2}×)",
                    ours_added / peer_added
                ),
                met: ours_added <= peer_added * share,
            });
        }
    }

    /// A cache miss against one database round trip measured in the same run.
    fn miss_verdicts(&self, verdicts: &mut Vec<Verdict>) {
        if let Some(added) = self.added("portcullis_api_key_sqlite") {
            let select = self.round_trip.get("sqlite_select_1");
            verdicts.push(Verdict {
                target: "an uncached API key on SQLite adds ≤ 30 µs".into(),
                measured: match select {
                    Some(select) => format!(
                        "{:+.1} µs (sqlx's own `SELECT 1`: {:.1} µs)",
                        added / 1e3,
                        select / 1e3
                    ),
                    None => format!("{:+.1} µs", added / 1e3),
                },
                met: added <= 30_000.0,
            });
        }
        if let (Some(added), Some(select)) = (
            self.added("portcullis_api_key_postgres"),
            self.round_trip.get("postgres_select_1"),
        ) {
            verdicts.push(Verdict {
                target: "an uncached API key on PostgreSQL adds ≤ 1.5× one `SELECT 1` round trip"
                    .into(),
                measured: format!(
                    "{:+.0} µs vs {:.0} µs ({:.2}×)",
                    added / 1e3,
                    select / 1e3,
                    added / select
                ),
                met: added <= select * 1.5,
            });
        }
    }

    /// Loopback throughput, the login flood and the memory floods.
    fn load_verdicts(&self, verdicts: &mut Vec<Verdict>) {
        let connections = self.reference_connections();
        for name in LOOPBACK_TARGETS {
            if let Some(share) = self.throughput_share(name, connections) {
                verdicts.push(Verdict {
                    target: format!(
                        "`{name}` keeps ≥ 95 % of bare throughput ({connections} connections)"
                    ),
                    measured: format!("{:.1} %", share * 100.0),
                    met: share >= 0.95,
                });
            }
        }
        let flood = &self.load.flood;
        verdicts.push(Verdict {
            target: "a cheap authenticated route keeps p99 < 5 ms under an Argon2id login flood"
                .into(),
            measured: format!("{:.2} ms", flood.cheap_p99_during_us / 1e3),
            met: flood.cheap_p99_during_us < 5_000.0,
        });
        let memory = &self.load.memory;
        let mib = |bytes: u64| bytes as f64 / 1_048_576.0;
        verdicts.push(Verdict {
            target: format!(
                "{} distinct invalid tokens add ≤ {INVALID_TOKEN_BOUND_MIB} MiB (the cache's bound)",
                memory.flood
            ),
            measured: format!("{:.1} MiB", mib(memory.invalid_token_bytes)),
            met: mib(memory.invalid_token_bytes) <= INVALID_TOKEN_BOUND_MIB,
        });
        verdicts.push(Verdict {
            target: format!(
                "{} distinct client addresses add ≤ {ADDRESS_BOUND_BYTES} bytes each to the rate limiter",
                memory.flood
            ),
            measured: format!(
                "{:.1} MiB ({:.0} bytes each)",
                mib(memory.address_bytes),
                memory.address_bytes as f64 / memory.flood.max(1) as f64
            ),
            met: memory.address_bytes <= memory.flood * ADDRESS_BOUND_BYTES,
        });
    }

    /// `BENCHMARKS.md`.
    pub fn markdown(&self, command: &str, plot: &str) -> String {
        let mut out = String::new();
        let m = self.machine;
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Generated by `{command}` on {date}. Machine: {cpu}, {cores} cores, {mem:.0} GiB, \
             Linux {kernel}, {rustc}. Server and load client share the cores, and these machines \
             are noisy: read the ratios within one run, not the absolute figures across runs.\n",
            date = self.date,
            cpu = m.cpu,
            cores = m.cores,
            mem = m.memory_gib,
            kernel = m.kernel,
            rustc = m.rustc,
        );
        let _ = writeln!(out, "## Targets\n");
        let _ = writeln!(out, "| Target | Measured | Met |\n|---|---|---|");
        for verdict in self.verdicts() {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                verdict.target,
                verdict.measured,
                if verdict.met { "yes" } else { "**no**" }
            );
        }
        let _ = writeln!(
            out,
            "\n## One request, in process\n\nCriterion median of one `GET /` through a reused \
             service (`peers/benches/matrix.rs`). *Added* is the difference from bare axum \
             measured in the same run; every request carries the client address as \
             `into_make_service_with_connect_info` would, and one credential-sized \
             `Authorization` header (rows without a credential of their own send one they \
             ignore). Where the time goes and what was changed to cut it: \
             [docs/profiling.md](docs/profiling.md).\n"
        );
        let _ = writeln!(
            out,
            "| Scenario | Job | By | Median | Added | × bare | What is measured |\n|---|---|---|---:|---:|---:|---|"
        );
        let bare = self.bare();
        for (info, median) in self.rows() {
            let Some(median) = median else { continue };
            let _ = writeln!(
                out,
                "| `{}` | {:?} | {:?} | {:.0} ns | {:+.0} ns | {:.2} | {} |",
                info.name,
                info.job,
                info.who,
                median,
                median - bare,
                median / bare,
                info.about
            );
        }
        let _ = writeln!(
            out,
            "\n### portcullis against each peer, on the peer's own job\n"
        );
        let _ = writeln!(
            out,
            "| Job | portcullis | adds | peer | adds | portcullis / peer |\n|---|---|---:|---|---:|---:|"
        );
        for (ours, peer) in self.pairs() {
            if let (Some(a), Some(b)) = (self.added(&ours.name), self.added(&peer.name)) {
                let _ = writeln!(
                    out,
                    "| {:?} | `{}` | {a:.0} ns | `{}` | {b:.0} ns | {:.2} |",
                    ours.job,
                    ours.name,
                    peer.name,
                    a / b
                );
            }
        }
        if !self.stored_keys.is_empty() {
            let _ = writeln!(
                out,
                "\n## Stored keys\n\nA cached API key (working set of 1 024 keys, up to 90 000 \
                 cached) while the store holds this many keys:\n\n| Stored keys | Median | × bare |\n|---:|---:|---:|"
            );
            let mut scaling: Vec<(u64, f64)> = self
                .stored_keys
                .iter()
                .filter_map(|(name, &median)| {
                    Some((name.rsplit('/').next()?.parse().ok()?, median))
                })
                .collect();
            scaling.sort_by_key(|&(count, _)| count);
            for (count, median) in scaling {
                let _ = writeln!(out, "| {count} | {median:.0} ns | {:.2} |", median / bare);
            }
        }
        if !self.cache_hit.is_empty() {
            let _ = writeln!(
                out,
                "\n## Which map holds the credential cache\n\nOne hit in a warm map of 100 000 \
                 entries keyed like portcullis's (`peers/benches/cache_map.rs`); portcullis uses \
                 `quick_cache`.\n\n| Map | Median |\n|---|---:|"
            );
            for (name, median) in self.cache_hit {
                let _ = writeln!(out, "| `{name}` | {median:.1} ns |");
            }
        }
        self.loopback_section(&mut out, plot);
        let flood = &self.load.flood;
        let _ = writeln!(
            out,
            "\n## Login flood\n\nArgon2id (portcullis defaults) logins from 64 connections while one \
             more connection asks a cheap endpoint of the same server:\n\n\
             | | Value |\n|---|---:|\n\
             | logins per second | {:.1} |\n| login p99 | {:.0} ms |\n\
             | cheap endpoint p99, quiet | {:.0} µs |\n| cheap endpoint p99, during the flood | {:.0} µs |\n\
             | cheap endpoint req/s, quiet → during | {:.0} → {:.0} |\n",
            flood.logins_per_second,
            flood.login_p99_us / 1e3,
            flood.cheap_p99_quiet_us,
            flood.cheap_p99_during_us,
            flood.cheap_rps_quiet,
            flood.cheap_rps_during,
        );
        let memory = &self.load.memory;
        let _ = writeln!(
            out,
            "## Memory\n\nResident memory added, measured in one process, each measurement's \
             allocations kept so that the next cannot reuse them:\n\n| | Added |\n|---|---:|\n\
             | {} cached API keys | {:.0} bytes each (identity, user record, cache slot) |\n\
             | {} distinct well-formed unknown API keys (each a store miss and a cached refusal; \
             default cache of 100 000 entries) | {:.1} MiB in all |\n\
             | {} distinct client addresses, one request each, through an in-memory per-IP rate \
             limit | {:.1} MiB in all, {:.0} bytes each |\n",
            memory.entries,
            memory.bytes_per_entry,
            memory.flood,
            memory.invalid_token_bytes as f64 / 1_048_576.0,
            memory.flood,
            memory.address_bytes as f64 / 1_048_576.0,
            memory.address_bytes as f64 / memory.flood.max(1) as f64,
        );
        out
    }

    fn loopback_section(&self, out: &mut String, plot: &str) {
        let mut counts: Vec<u32> = self.load.runs.iter().map(|run| run.connections).collect();
        counts.sort_unstable();
        counts.dedup();
        let _ = writeln!(
            out,
            "\n## Loopback load\n\n`{}`, one client thread, against `axum::serve` on 127.0.0.1; \
             each cell is the median of {} rounds of {} s, measured round-robin across scenarios. \
             Requests per second, share of bare axum's, and p99 latency.\n\n![throughput]({plot})\n",
            self.load.client, self.load.rounds, self.load.seconds
        );
        let mut header = String::from("| Scenario |");
        let mut rule = String::from("|---|");
        for count in &counts {
            let _ = write!(header, " {count} conn. |");
            rule.push_str("---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for info in &self.load.scenarios {
            let mut line = format!("| `{}` |", info.name);
            let mut any = false;
            for &count in &counts {
                match self
                    .load
                    .runs
                    .iter()
                    .find(|run| run.scenario == info.name && run.connections == count)
                {
                    Some(run) => {
                        any = true;
                        let share = self.throughput_share(&info.name, count).unwrap_or(f64::NAN);
                        let _ = write!(
                            line,
                            " {:.0} ({:.0} %), p99 {:.0} µs",
                            run.requests_per_second,
                            share * 100.0,
                            run.p99_us
                        );
                        if run.refused > 0 {
                            let _ = write!(line, ", {} refused", run.refused);
                        }
                        line.push_str(" |");
                    }
                    None => line.push_str(" – |"),
                }
            }
            if any {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// A horizontal bar chart of loopback throughput at the reference connection count, as a
    /// share of bare axum's.
    pub fn svg(&self) -> String {
        let connections = self.reference_connections();
        let bars: Vec<(&ScenarioInfo, f64)> = self
            .load
            .scenarios
            .iter()
            .filter_map(|info| Some((info, self.throughput_share(&info.name, connections)?)))
            .collect();
        let (left, bar_height, gap, width) = (260.0, 18.0, 6.0, 420.0);
        let height = 60.0 + bars.len() as f64 * (bar_height + gap);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" \
             font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"10\" y=\"20\" font-size=\"14\">Loopback throughput, {connections} connections \
             (share of bare axum)</text>\n",
            w = left + width + 80.0
        );
        for (index, (info, share)) in bars.iter().enumerate() {
            let y = 40.0 + index as f64 * (bar_height + gap);
            let colour = match info.who {
                Who::Baseline => "#9e9e9e",
                Who::Portcullis => "#2e7d32",
                Who::Peer => "#1565c0",
            };
            let _ = writeln!(
                svg,
                "<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{name}</text>\
                 <rect x=\"{left}\" y=\"{y}\" width=\"{bw:.1}\" height=\"{bar_height}\" fill=\"{colour}\"/>\
                 <text x=\"{vx:.1}\" y=\"{ty}\">{pct:.0} %</text>",
                tx = left - 8.0,
                ty = y + 13.0,
                name = info.name,
                bw = (share.clamp(0.0, 1.2) * width).max(1.0),
                vx = left + share.clamp(0.0, 1.2) * width + 6.0,
                pct = share * 100.0,
            );
        }
        let legend_y = height - 12.0;
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{legend_y}\" fill=\"#2e7d32\">■ portcullis</text>\
             <text x=\"110\" y=\"{legend_y}\" fill=\"#1565c0\">■ peer</text>\
             <text x=\"180\" y=\"{legend_y}\" fill=\"#9e9e9e\">■ baseline</text>\n</svg>"
        );
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, job: Job, who: Who) -> ScenarioInfo {
        ScenarioInfo {
            name: name.into(),
            job,
            who,
            about: String::new(),
        }
    }

    fn run(connections: u32, scenario: &str, rate: f64) -> LoadRun {
        LoadRun {
            scenario: scenario.into(),
            connections,
            requests_per_second: rate,
            p50_us: 1.0,
            p99_us: 2.0,
            socket_errors: 0,
            refused: 0,
        }
    }

    fn load() -> LoadTest {
        LoadTest {
            seconds: 1,
            rounds: 1,
            client: "wrk".into(),
            scenarios: vec![
                info("bare_axum", Job::Baseline, Who::Baseline),
                info("tower_http_bearer", Job::StaticSecret, Who::Peer),
                info("hand_rolled_api_key", Job::ApiKey, Who::Peer),
                info("portcullis_api_key_cached", Job::ApiKey, Who::Portcullis),
                info("tower_governor", Job::RateLimit, Who::Peer),
                info("portcullis_rate_limit", Job::RateLimit, Who::Portcullis),
            ],
            runs: vec![
                run(64, "bare_axum", 100_000.0),
                run(64, "portcullis_api_key_cached", 96_000.0),
                run(64, "hand_rolled_api_key", 80_000.0),
            ],
            flood: FloodRun {
                logins_per_second: 70.0,
                login_p99_us: 900_000.0,
                cheap_p99_quiet_us: 90.0,
                cheap_p99_during_us: 4_000.0,
                cheap_rps_quiet: 15_000.0,
                cheap_rps_during: 9_000.0,
            },
            memory: MemoryRun {
                entries: 100_000,
                bytes_per_entry: 400.0,
                flood: 1_000_000,
                invalid_token_bytes: 20 << 20,
                address_bytes: 200_000_000,
            },
        }
    }

    #[test]
    fn verdicts_compare_against_bare_and_against_the_peer() {
        let in_process = BTreeMap::from([
            ("bare_axum".to_owned(), 500.0),
            ("tower_http_bearer".to_owned(), 700.0),
            ("portcullis_api_key_cached".to_owned(), 750.0),
            ("hand_rolled_api_key".to_owned(), 1_100.0),
            ("tower_governor".to_owned(), 850.0),
            ("portcullis_rate_limit".to_owned(), 800.0),
            ("portcullis_api_key_postgres".to_owned(), 160_500.0),
        ]);
        let round_trip = BTreeMap::from([("postgres_select_1".to_owned(), 100_000.0)]);
        let stored_keys = BTreeMap::from([
            ("api_key_cached/1000".to_owned(), 750.0),
            ("api_key_cached/1000000".to_owned(), 900.0),
        ]);
        let machine = Machine::default();
        let load = load();
        let empty = BTreeMap::new();
        let run = Run {
            machine: &machine,
            date: "today",
            in_process: &in_process,
            stored_keys: &stored_keys,
            cache_hit: &empty,
            round_trip: &round_trip,
            load: &load,
        };
        let verdicts = run.verdicts();
        let find = |needle: &str| {
            verdicts
                .iter()
                .find(|v| v.target.contains(needle))
                .unwrap_or_else(|| panic!("no verdict on {needle}"))
        };
        let versus_floor = find("`portcullis_api_key_cached` adds ≤ 1.4× what `tower_http_bearer`");
        assert!(
            versus_floor.met,
            "250 ns added, 1.4 × 200 ns allowed: {versus_floor:?}"
        );
        assert!(find("`portcullis_api_key_cached` keeps").met, "96 %");
        assert!(
            find("`portcullis_rate_limit` adds no more than what `tower_governor`").met,
            "300 ns against 350 ns"
        );
        let versus_peer = find("of what `hand_rolled_api_key` adds");
        assert!(!versus_peer.met, "250 ns is more than a third of 600 ns");
        assert!(!find("PostgreSQL").met, "160 µs against 1.5 × 100 µs");
        assert!(find("p99 < 5 ms").met, "4 ms");
        assert!(find("invalid tokens").met, "20 MiB");
        assert!(!find("client addresses").met, "200 bytes each");
        assert!(!find("flat").met, "20 % spread");
        let markdown = run.markdown("./scripts/bench.sh", "docs/throughput.svg");
        assert!(markdown.contains(
            "| `portcullis_api_key_cached` | ApiKey | Portcullis | 750 ns | +250 ns | 1.50 |"
        ));
        assert!(markdown.contains("96000 (96 %)"));
        assert!(run.svg().starts_with("<svg"));
    }

    #[test]
    fn reads_criterion_medians_below_a_group() {
        let dir = tempfile::tempdir().unwrap();
        let estimates = dir.path().join("request/bare_axum/new");
        std::fs::create_dir_all(&estimates).unwrap();
        std::fs::write(
            estimates.join("estimates.json"),
            r#"{"median": {"point_estimate": 431.5}}"#,
        )
        .unwrap();
        let nested = dir.path().join("request/api_key_cached/1000/new");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(
            nested.join("estimates.json"),
            r#"{"median": {"point_estimate": 900.0}}"#,
        )
        .unwrap();
        let medians = criterion_medians(dir.path(), "request");
        assert_eq!(medians.get("bare_axum"), Some(&431.5));
        assert_eq!(medians.get("api_key_cached/1000"), Some(&900.0));
    }
}
