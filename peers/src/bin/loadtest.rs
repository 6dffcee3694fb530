//! The loopback load test: each scenario served by `axum::serve` on 127.0.0.1 and driven by
//! `wrk` (one thread) at several connection counts, then an Argon2id login flood with the
//! latency of a cheap endpoint measured alongside it, then the memory a cached credential
//! costs and what a flood of distinct invalid tokens and of distinct client addresses adds. Writes the figures as JSON for `report`.
//!
//! ```sh
//! loadtest [--seconds 3] [--rounds 3] [--connections 1,64,512] [--out loadtest.json] [--only NAME,..]
//!          [--flood 1000000]
//! ```
//!
//! Every scenario is served at once, each on its own port; the cells are measured round-robin
//! (every scenario at one connection count, then the next count, then again) and each cell
//! reports the median of its rounds, so that drift during the run spreads over all rows.
//! Server and client share the machine's cores, so the figures are for comparing rows of one
//! run, not for capacity planning. Needs `wrk` on the `PATH` (Debian package `wrk`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use http::StatusCode;
use portcullis::flows::{PasswordLogin, Registration};
use portcullis::sign_in::SignInOutcome;
use portcullis::source::TokenResolver;
use portcullis::store::MemoryStore;
use portcullis::{Auth, CacheConfig, PasswordPolicy, Passwords};
use portcullis_peers::report::{FloodRun, LoadRun, LoadTest, MemoryRun, ScenarioInfo};
use portcullis_peers::{Env, Who, fixture, scenarios, stored_keys};
use serde::Deserialize;

struct Options {
    seconds: u64,
    rounds: usize,
    connections: Vec<u32>,
    out: PathBuf,
    only: Option<Vec<String>>,
    /// Distinct invalid tokens, and distinct client addresses, of the memory floods.
    flood: usize,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 3,
        rounds: 3,
        connections: vec![1, 64, 512],
        out: PathBuf::from("loadtest.json"),
        only: None,
        flood: 1_000_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => options.seconds = value().parse().expect("--seconds N"),
            "--rounds" => options.rounds = value().parse().expect("--rounds N"),
            "--connections" => {
                options.connections = value()
                    .split(',')
                    .map(|n| n.parse().expect("--connections 1,64,512"))
                    .collect();
            }
            "--out" => options.out = PathBuf::from(value()),
            "--only" => options.only = Some(value().split(',').map(str::to_owned).collect()),
            "--flood" => options.flood = value().parse().expect("--flood N"),
            other => panic!("unknown argument {other}"),
        }
    }
    options
}

/// Serves `router` on a free loopback port until the returned handle is dropped.
async fn serve(router: Router) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let address = listener.local_addr().expect("an address");
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("the server runs");
    });
    (address, server)
}

/// What `wrk --latency` printed, in the units the report uses.
#[derive(Debug, Default)]
struct WrkResult {
    requests_per_second: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
    errors: u64,
}

fn micros(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number,
        "ms" => number * 1e3,
        "s" => number * 1e6,
        "m" => number * 60e6,
        _ => f64::NAN,
    }
}

fn parse_wrk(output: &str) -> WrkResult {
    let mut result = WrkResult::default();
    for line in output.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", rate] => result.requests_per_second = rate.parse().unwrap_or(0.0),
            ["50%", value] => result.p50_us = micros(value),
            ["99%", value] => result.p99_us = micros(value),
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                result.non_2xx = count.parse().unwrap_or(0)
            }
            ["Socket", "errors:", rest @ ..] => {
                result.errors = rest
                    .iter()
                    .filter_map(|field| field.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    result
}

/// Runs `wrk` for `seconds` against `url` with `connections` connections.
async fn wrk(
    url: &str,
    connections: u32,
    seconds: u64,
    headers: &[(String, String)],
    script: Option<&std::path::Path>,
) -> WrkResult {
    let mut command = tokio::process::Command::new("wrk");
    command.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--timeout",
        "10s",
        "--latency",
    ]);
    for (name, value) in headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .output()
        .await
        .expect("wrk runs (apt-get install wrk)");
    assert!(
        output.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

async fn load(options: &Options) -> (Vec<ScenarioInfo>, Vec<LoadRun>) {
    let data = tempfile::tempdir().expect("a temporary directory");
    let env = Env {
        postgres_url: std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        data_dir: data.path().to_owned(),
    };
    let all = scenarios(&env).await;
    let infos = all
        .iter()
        .map(|scenario| ScenarioInfo {
            name: scenario.name.to_owned(),
            job: scenario.job,
            who: scenario.who,
            about: scenario.about.to_owned(),
        })
        .collect();
    let mut targets = Vec::new();
    for scenario in all {
        if let Some(only) = &options.only
            && !only.iter().any(|name| name == scenario.name)
        {
            continue;
        }
        let headers: Vec<(String, String)> = scenario
            .headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_str().expect("ASCII").to_owned()))
            .collect();
        let (address, server) = serve(scenario.router.clone()).await;
        let url = format!("http://{address}/");
        // Warm the caches and the database rows' connection pools.
        wrk(&url, 8, 1, &headers, None).await;
        targets.push((scenario, url, headers, server));
    }
    let mut cells: Vec<Vec<WrkResult>> = (0..targets.len() * options.connections.len())
        .map(|_| Vec::new())
        .collect();
    for round in 0..options.rounds {
        for (c, &connections) in options.connections.iter().enumerate() {
            for (t, (scenario, url, headers, _)) in targets.iter().enumerate() {
                let result = wrk(url, connections, options.seconds, headers, None).await;
                // A refusal from portcullis under load would be a bug; a peer's is recorded.
                if scenario.who != Who::Peer {
                    assert_eq!(result.non_2xx, 0, "{}: refused under load", scenario.name);
                }
                eprintln!(
                    "round {round} {:32} c={connections:<4} {:>10.0} req/s  p99 {:>8.0} us",
                    scenario.name, result.requests_per_second, result.p99_us
                );
                cells[t * options.connections.len() + c].push(result);
            }
        }
    }
    let mut runs = Vec::new();
    for (t, (scenario, _, _, server)) in targets.iter().enumerate() {
        server.abort();
        for (c, &connections) in options.connections.iter().enumerate() {
            let rounds = &cells[t * options.connections.len() + c];
            let median = |value: fn(&WrkResult) -> f64| {
                let mut values: Vec<f64> = rounds.iter().map(value).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            runs.push(LoadRun {
                scenario: scenario.name.to_owned(),
                connections,
                requests_per_second: median(|r| r.requests_per_second),
                p50_us: median(|r| r.p50_us),
                p99_us: median(|r| r.p99_us),
                socket_errors: rounds.iter().map(|r| r.errors).sum(),
                refused: rounds.iter().map(|r| r.non_2xx).sum(),
            });
        }
    }
    (infos, runs)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login(State(login): State<PasswordLogin>, Json(form): Json<LoginForm>) -> StatusCode {
    match login.sign_in(&form.username, &form.password, None).await {
        Ok(SignInOutcome::SignedIn(_)) => StatusCode::NO_CONTENT,
        Ok(_) => StatusCode::UNAUTHORIZED,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Argon2id logins from 64 connections while one connection asks a cheap endpoint: the
/// hashing runs on the blocking pool, so the cheap endpoint's p99 must stay small.
async fn flood(seconds: u64) -> FloodRun {
    let auth = Auth::builder(MemoryStore::new()).build();
    let passwords = Passwords::new(PasswordPolicy::default());
    let flow = PasswordLogin::new(&auth, &passwords);
    flow.register(Registration::new("ada", "correct horse battery staple"))
        .await
        .expect("a registered user");
    let router = Router::new()
        .route("/login", post(login))
        .with_state(flow)
        .route("/cheap", get(|| async { "ok" }));
    let (address, server) = serve(router).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("login.lua");
    std::fs::write(
        &script,
        r#"wrk.method = "POST"
wrk.body = '{"username":"ada","password":"correct horse battery staple"}'
wrk.headers["Content-Type"] = "application/json"
"#,
    )
    .expect("a wrk script");
    let cheap_url = format!("http://{address}/cheap");
    let quiet = wrk(&cheap_url, 1, seconds, &[], None).await;
    // Warms the blocking pool before the measured flood.
    wrk(&format!("http://{address}/login"), 2, 1, &[], Some(&script)).await;
    let login_url = format!("http://{address}/login");
    let (logins, during) = tokio::join!(
        wrk(&login_url, 64, seconds, &[], Some(&script)),
        wrk(&cheap_url, 1, seconds, &[], None),
    );
    server.abort();
    assert_eq!(logins.non_2xx, 0, "logins were refused");
    eprintln!(
        "login flood: {:.0} logins/s; cheap endpoint p99 {:.0} us quiet, {:.0} us during the flood",
        logins.requests_per_second, quiet.p99_us, during.p99_us
    );
    FloodRun {
        logins_per_second: logins.requests_per_second,
        login_p99_us: logins.p99_us,
        cheap_p99_quiet_us: quiet.p99_us,
        cheap_p99_during_us: during.p99_us,
        cheap_rps_quiet: quiet.requests_per_second,
        cheap_rps_during: during.requests_per_second,
    }
}

/// Resident memory in bytes, from `/proc/self/statm`.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("a resident page count");
    pages * 4_096
}

/// Keeps what one memory measurement built alive until the process exits, so that the next
/// measurement cannot reuse its freed memory and read as smaller than it is.
fn keep<T>(built: T) {
    std::mem::forget(built);
}

/// The memory 100 000 cached API keys take: RSS after resolving them minus RSS before.
async fn cached_keys() -> (u64, f64) {
    const KEYS: usize = 100_000;
    let fixture = fixture(MemoryStore::new(), CacheConfig::default().capacity(200_000)).await;
    let keys = stored_keys(&fixture, KEYS, KEYS).await;
    let before = resident_bytes();
    for key in &keys {
        fixture.api_keys.resolve(key).await.expect("a valid key");
    }
    let after = resident_bytes();
    let per_entry = after.saturating_sub(before) as f64 / KEYS as f64;
    eprintln!("memory: {KEYS} cached API keys add {per_entry:.0} bytes each");
    keep(fixture);
    (KEYS as u64, per_entry)
}

/// What a flood of distinct well-formed but unknown API keys (each one a store miss and a
/// cached refusal) adds to the resident memory, with the default cache configuration.
async fn invalid_token_flood(count: usize) -> u64 {
    let fixture = fixture(MemoryStore::new(), CacheConfig::default()).await;
    let format = portcullis::token::TokenFormat::new("smtk_").expect("a valid prefix");
    // Generated before measuring: the flood's own strings are the client's, not the server's.
    let tokens: Vec<String> = (0..count)
        .map(|_| {
            format
                .generate()
                .expect("randomness")
                .into_secret()
                .into_exposed()
        })
        .collect();
    let before = resident_bytes();
    for token in &tokens {
        let refused = fixture.api_keys.resolve(token).await;
        assert!(refused.is_err(), "an unknown key must be refused");
    }
    let added = resident_bytes().saturating_sub(before);
    eprintln!(
        "memory: {count} distinct unknown API keys add {:.1} MiB",
        added as f64 / 1_048_576.0
    );
    keep((fixture, tokens));
    added
}

/// What `count` distinct client addresses, one request each within one window, add to the
/// resident memory of an in-memory rate limiter (one policy per client IP).
async fn address_flood(count: u32) -> u64 {
    use portcullis::ratelimit::{ClientIp, KeyBy, Limit, Policy, RateLimitLayer};
    use tower::ServiceExt;

    let limiter = RateLimitLayer::builder()
        .policy(
            Policy::new(
                "ip",
                // Ten an hour, as for sign-in attempts: a bucket takes six minutes to refill,
                // so the janitor keeps every one of the flood's for the whole measurement.
                Limit::new(10, std::time::Duration::from_secs(3_600)),
                KeyBy::ClientIp,
            )
            .expect("a valid policy"),
        )
        .client_ip(ClientIp::new(|parts| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|info| info.0)
        }))
        .build()
        .expect("a valid limiter");
    let router: Router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(limiter);
    let before = resident_bytes();
    for n in 0..count {
        let address = SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + n).into(), 40_000);
        let mut request = http::Request::get("/")
            .body(axum::body::Body::empty())
            .expect("a request");
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(address));
        let response = router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let added = resident_bytes().saturating_sub(before);
    eprintln!(
        "memory: {count} distinct client addresses add {:.1} MiB to the rate limiter",
        added as f64 / 1_048_576.0
    );
    keep(router);
    added
}

async fn memory(flood: usize) -> MemoryRun {
    let (entries, bytes_per_entry) = cached_keys().await;
    let invalid_token_bytes = invalid_token_flood(flood).await;
    let address_bytes = address_flood(u32::try_from(flood).expect("a flood that fits IPv4")).await;
    MemoryRun {
        entries,
        bytes_per_entry,
        flood: flood as u64,
        invalid_token_bytes,
        address_bytes,
    }
}

fn main() {
    let options = options();
    let wrk_version = Command::new("wrk")
        .arg("--version")
        .output()
        .map(|output| {
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let result = runtime.block_on(async {
        let memory = memory(options.flood).await;
        let (scenarios, runs) = load(&options).await;
        let flood = flood(options.seconds * 2).await;
        LoadTest {
            seconds: options.seconds,
            rounds: options.rounds,
            client: wrk_version,
            scenarios,
            runs,
            flood,
            memory,
        }
    });
    std::fs::write(
        &options.out,
        serde_json::to_string_pretty(&result).expect("serialisable"),
    )
    .expect("the output file");
    eprintln!("wrote {}", options.out.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OUTPUT: &str = "Running 5s test @ http://127.0.0.1:40000/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   478.21us  301.52us  12.05ms   92.31%
    Req/Sec   134.52k     4.12k  139.87k    80.00%
  Latency Distribution
     50%  421.00us
     75%  498.00us
     90%  612.00us
     99%    1.80ms
  669379 requests in 5.00s, 82.35MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 133866.42
Transfer/sec:     16.47MB
";

    #[test]
    fn reads_what_wrk_prints() {
        let result = parse_wrk(WRK_OUTPUT);
        assert_eq!(result.requests_per_second, 133_866.42);
        assert_eq!(result.p50_us, 421.0);
        assert_eq!(result.p99_us, 1_800.0);
        assert_eq!(result.non_2xx, 4);
        assert_eq!(result.errors, 3);
    }

    #[test]
    fn converts_every_latency_unit_to_microseconds() {
        assert_eq!(micros("12.5us"), 12.5);
        assert_eq!(micros("3ms"), 3_000.0);
        assert_eq!(micros("1.5s"), 1_500_000.0);
        assert!(micros("7parsecs").is_nan());
    }
}
