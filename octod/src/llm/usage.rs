//! What an answer used: the provider's `usage` (prompt and completion tokens), read from the
//! answer as it passes through — the last `data:` event with a `usage` in a stream (asked for
//! with `stream_options.include_usage`), the JSON body otherwise — without holding anything
//! back from the client. [`Tapped`] reports once, when the body ends, fails or is dropped (a
//! client that went away), so a request is never recorded twice.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// The longest line (stream) or body (not streamed) looked into; longer ones are passed on
/// but not read for usage.
const MAX_SCANNED: usize = 16 * 1024 * 1024;

/// Prompt and completion tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
}

/// Finds the usage in an answer's bytes, fed in any pieces.
#[derive(Debug)]
pub struct Scanner {
    stream: bool,
    buf: Vec<u8>,
    overflow: bool,
    found: Option<Tokens>,
}

impl Scanner {
    pub fn new(stream: bool) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            overflow: false,
            found: None,
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        if !self.stream {
            if self.buf.len() + data.len() > MAX_SCANNED {
                self.overflow = true;
                self.buf = Vec::new();
            }
            if !self.overflow {
                self.buf.extend_from_slice(data);
            }
            return;
        }
        for piece in data.split_inclusive(|b| *b == b'\n') {
            if self.overflow {
                // Skip the rest of a line too long to read.
                if piece.ends_with(b"\n") {
                    self.overflow = false;
                }
                continue;
            }
            self.buf.extend_from_slice(piece);
            if self.buf.len() > MAX_SCANNED {
                self.buf.clear();
                self.overflow = !piece.ends_with(b"\n");
                continue;
            }
            if piece.ends_with(b"\n") {
                let line = std::mem::take(&mut self.buf);
                self.line(&line);
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if !data.windows(7).any(|w| w == b"\"usage\"") {
            return;
        }
        if let Some(tokens) = usage_in(data) {
            self.found = Some(tokens);
        }
    }

    /// The usage found, if any.
    pub fn finish(mut self) -> Option<Tokens> {
        if self.stream {
            let rest = std::mem::take(&mut self.buf);
            self.line(&rest);
            self.found
        } else if self.overflow {
            None
        } else {
            usage_in(&self.buf)
        }
    }
}

fn usage_in(json: &[u8]) -> Option<Tokens> {
    let value: serde_json::Value = serde_json::from_slice(json.trim_ascii()).ok()?;
    let usage = value.get("usage")?;
    Some(Tokens {
        prompt: usage.get("prompt_tokens")?.as_u64()?,
        completion: usage
            .get("completion_tokens")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
    })
}

/// Called once with what the answer used (`None`: no usage seen).
pub type OnEnd = Box<dyn FnOnce(Option<Tokens>) + Send>;

/// An answer's body passed through as it comes, its usage read on the way.
pub struct Tapped<B> {
    inner: B,
    state: Option<(Scanner, OnEnd)>,
}

impl<B> Tapped<B> {
    pub fn new(inner: B, scanner: Scanner, on_end: OnEnd) -> Self {
        Self {
            inner,
            state: Some((scanner, on_end)),
        }
    }

    fn end(&mut self) {
        if let Some((scanner, on_end)) = self.state.take() {
            on_end(scanner.finish());
        }
    }
}

impl<B> Drop for Tapped<B> {
    fn drop(&mut self) {
        self.end();
    }
}

impl<B> Body for Tapped<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some((scanner, _))) = (frame.data_ref(), self.state.as_mut()) {
                    scanner.feed(data);
                }
                if self.inner.is_end_stream() {
                    self.end();
                }
            }
            Poll::Ready(None | Some(Err(_))) => self.end(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counters for `/metrics`, by model.
#[derive(Debug, Default)]
pub struct Metrics {
    by_model: Mutex<std::collections::BTreeMap<String, Counts>>,
}

/// Which counter of a model a metric family shows.
type Pick = fn(&Counts) -> u64;

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: u64,
    failed: u64,
    prompt: u64,
    completion: u64,
}

impl Metrics {
    /// One forwarded request: whether the provider answered 2xx, and what it used.
    pub fn record(&self, model: &str, ok: bool, tokens: Option<Tokens>) {
        let mut map = self
            .by_model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let counts = map.entry(model.to_owned()).or_default();
        counts.requests += 1;
        if !ok {
            counts.failed += 1;
        }
        if let Some(tokens) = tokens {
            counts.prompt += tokens.prompt;
            counts.completion += tokens.completion;
        }
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self, out: &mut String) {
        let map = self
            .by_model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let families: [(&str, &str, Pick); 4] = [
            (
                "octo_llm_requests_total",
                "Requests forwarded to the model provider, by model.",
                |c| c.requests,
            ),
            (
                "octo_llm_failed_requests_total",
                "Forwarded requests the provider did not answer with 2xx, by model.",
                |c| c.failed,
            ),
            (
                "octo_llm_prompt_tokens_total",
                "Prompt tokens the provider reported, by model.",
                |c| c.prompt,
            ),
            (
                "octo_llm_completion_tokens_total",
                "Completion tokens the provider reported, by model.",
                |c| c.completion,
            ),
        ];
        for (name, help, pick) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (model, counts) in &map {
                let model = model.replace('\\', "\\\\").replace('"', "\\\"");
                let _ = writeln!(out, "{name}{{model=\"{model}\"}} {}", pick(counts));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(stream: bool, pieces: &[&[u8]]) -> Option<Tokens> {
        let mut scanner = Scanner::new(stream);
        for piece in pieces {
            scanner.feed(piece);
        }
        scanner.finish()
    }

    #[test]
    fn usage_is_found_however_the_stream_is_cut() {
        let stream: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n\
            data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n\
            data: [DONE]\n\n";
        let expected = Some(Tokens {
            prompt: 12,
            completion: 3,
        });
        assert_eq!(scan(true, &[stream]), expected);
        for cut in 1..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(scan(true, &[a, b]), expected, "cut at {cut}");
        }
        // Without a usage event: none; a null usage: none.
        assert_eq!(
            scan(true, &[b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"]),
            None
        );
        assert_eq!(scan(true, &[b"data: {\"usage\":null}\n\n"]), None);
    }

    #[test]
    fn usage_of_a_whole_answer() {
        let body: &[u8] =
            br#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}"#;
        let (a, b) = body.split_at(10);
        assert_eq!(
            scan(false, &[a, b]),
            Some(Tokens {
                prompt: 7,
                completion: 2
            })
        );
        assert_eq!(scan(false, &[b"{\"error\":{}}"]), None);
    }

    #[test]
    fn metrics_count_by_model() {
        let metrics = Metrics::default();
        metrics.record(
            "big",
            true,
            Some(Tokens {
                prompt: 10,
                completion: 5,
            }),
        );
        metrics.record("big", false, None);
        let mut out = String::new();
        metrics.render(&mut out);
        for line in [
            "octo_llm_requests_total{model=\"big\"} 2\n",
            "octo_llm_failed_requests_total{model=\"big\"} 1\n",
            "octo_llm_prompt_tokens_total{model=\"big\"} 10\n",
            "octo_llm_completion_tokens_total{model=\"big\"} 5\n",
        ] {
            assert!(out.contains(line), "{line} missing in\n{out}");
        }
    }
}
