//! The harness of `cargo xtask bench llm`: one binary, three roles, each its own process.
//!
//! - `provider <listen>`: a stub OpenAI-compatible provider. `POST /v1/chat/completions` with
//!   `"stream": true` answers with `bench_tokens` SSE chunks of one token each, one every
//!   `bench_interval_us` microseconds (0: as fast as the socket takes them), then a `usage`
//!   chunk when asked for (`stream_options.include_usage`, which the gateway adds) and
//!   `[DONE]`; each chunk is its own write, as a provider streams;
//! - `gateway <state-dir> <provider-url>`: octod's model gateway (`octod::llm`, the code
//!   `octod serve` runs) on the Unix socket of session `bench1` in `<state-dir>/llm/`, with a
//!   real redb store in `<state-dir>` (the session and its owner, usage recorded per request);
//!   prints `ready <socket>`;
//! - `measure <rounds> <tokens> <interval_us> <label=url>…`: streamed requests to each URL in
//!   turn, round after round (so that noise falls on all alike); for each URL prints
//!   `<label> <median time to first token, µs> <median tokens/s>`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::IntoResponse as _;
use axum::routing::post;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use octod::llm::{ApiKey, Gateway, GatewayConfig};
use octod::render::LlmMount;
use octod::session::{DesiredState, Limits, SessionName};
use octod::store::{NewSession, Store};

const SESSION: &str = "bench1";
const MODEL: &str = "bench-model";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("provider") if args.len() == 2 => runtime.block_on(provider(&args[1])),
        Some("gateway") if args.len() == 3 => {
            runtime.block_on(gateway(PathBuf::from(&args[1]), args[2].clone()))
        }
        Some("measure") if args.len() >= 5 => runtime.block_on(measure(&args[1..])),
        _ => bail!(
            "usage: bench_llm provider <listen> | gateway <state-dir> <provider-url> | measure <rounds> <tokens> <interval_us> <label=url>…"
        ),
    }
}

async fn provider(listen: &str) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/v1/chat/completions",
        post(|body: Bytes| async move {
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let tokens = body["bench_tokens"].as_u64().unwrap_or(100);
            let interval = Duration::from_micros(body["bench_interval_us"].as_u64().unwrap_or(0));
            let usage = body["stream_options"]["include_usage"] == true;
            let chunks = futures_util::stream::unfold(0_u64, move |sent| async move {
                if sent > tokens + 1 {
                    return None;
                }
                let chunk = if sent < tokens {
                    if !interval.is_zero() {
                        tokio::time::sleep(interval).await;
                    }
                    format!(
                        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"{MODEL}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{sent} \"}}}}]}}\n\n"
                    )
                } else if sent == tokens && usage {
                    format!(
                        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"{MODEL}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":{tokens},\"total_tokens\":{}}}}}\n\n",
                        tokens + 10
                    )
                } else if sent == tokens {
                    String::new()
                } else {
                    "data: [DONE]\n\n".to_owned()
                };
                Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), sent + 1))
            });
            (
                [(header::CONTENT_TYPE, "text/event-stream")],
                Body::from_stream(chunks),
            )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!("ready {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn gateway(state: PathBuf, provider: String) -> anyhow::Result<()> {
    std::fs::create_dir_all(&state)?;
    let db = state.join("octod.redb");
    let _ = std::fs::remove_file(&db);
    let store = Store::open(&db)?;
    store.create_session(NewSession {
        id: SESSION.parse()?,
        owner: "bench".into(),
        template: "coding-copilot".into(),
        name: SessionName::parse("bench")?,
        image: "localhost/octo-session:bench".into(),
        limits: Limits::default(),
        desired: DesiredState::Running,
        max_per_owner: None,
        admit: None,
    })?;
    let mount = LlmMount {
        sockets_dir: state.join("llm"),
        models: vec![MODEL.into()],
    };
    let config = GatewayConfig {
        base_url: format!("{provider}/v1"),
        api_key: Some(ApiKey::new("sk-bench")),
        models: mount.models.clone(),
        head_timeout: Duration::from_secs(30),
        max_body_bytes: octod::llm::MAX_BODY_BYTES,
        budgets: octod::config::BudgetsFragment::default(),
        providers: Vec::new(),
        allow: octod::config::AllowFragment::default(),
    };
    // The engine makes each session's directory; the gateway binds the socket in it.
    std::fs::create_dir_all(mount.sockets_dir.join(SESSION))?;
    let socket = mount.sockets_dir.join(SESSION).join("llm.sock");
    let gateway = Gateway::new(config, mount, store)?;
    let serving = tokio::spawn(octod::llm::sockets::run(gateway));
    let started = Instant::now();
    while !socket.exists() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the gateway did not bind {}", socket.display());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("ready {}", socket.display());
    serving.await?;
    Ok(())
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One streamed request: the time to the first token, and the tokens per second after it.
async fn one(
    client: &HttpClient,
    url: &str,
    tokens: u64,
    interval_us: u64,
) -> anyhow::Result<(Duration, f64)> {
    let body = serde_json::json!({
        "model": MODEL,
        "stream": true,
        "messages": [{"role": "user", "content": "bench"}],
        "bench_tokens": tokens,
        "bench_interval_us": interval_us,
    });
    let request = hyper::Request::post(format!("{url}/v1/chat/completions"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer octo-session")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let started = Instant::now();
    let response = client.request(request).await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    let mut body = response.into_body();
    let (mut first, mut last, mut seen) = (None, started, 0_u64);
    // Frames need not end where events do (unpaced, several events share a frame, and one
    // may be cut in two): count whole SSE events.
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        let mut found = 0_u64;
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            if event
                .windows(b"\"content\"".len())
                .any(|w| w == b"\"content\"")
            {
                found += 1;
            }
        }
        if found > 0 {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            seen += found;
        }
    }
    if seen != tokens {
        bail!("{url}: {seen} tokens arrived of {tokens}");
    }
    let first = first.context("no token arrived")?;
    let streaming = last.duration_since(first).as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = if streaming > 0.0 {
        (seen - 1) as f64 / streaming
    } else {
        f64::INFINITY
    };
    Ok((first.duration_since(started), rate))
}

async fn measure(args: &[String]) -> anyhow::Result<()> {
    let rounds: usize = args[0].parse().context("rounds")?;
    let tokens: u64 = args[1].parse().context("tokens")?;
    let interval_us: u64 = args[2].parse().context("interval_us")?;
    let targets: Vec<(&str, &str)> = args[3..]
        .iter()
        .map(|t| t.split_once('=').context("label=url"))
        .collect::<anyhow::Result<_>>()?;
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(http);
    let mut results: Vec<(Vec<Duration>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); targets.len()];
    // One unmeasured round warms connections and caches.
    for round in 0..=rounds {
        for (i, (_, url)) in targets.iter().enumerate() {
            let (first, rate) = one(&client, url, tokens, interval_us).await?;
            if round > 0 {
                results[i].0.push(first);
                results[i].1.push(rate);
            }
        }
    }
    for ((label, _), (mut firsts, mut rates)) in targets.iter().zip(results) {
        firsts.sort();
        rates.sort_by(f64::total_cmp);
        println!(
            "{label} {} {:.0}",
            firsts[firsts.len() / 2].as_micros(),
            rates[rates.len() / 2]
        );
    }
    Ok(())
}
