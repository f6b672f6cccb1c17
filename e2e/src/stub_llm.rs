//! A stub OpenAI-compatible model (tests only; the real provider is the administrator's): the
//! agent loop of the `image` and `api-sdk` checks, and `octo-e2e stub-llm --port P`, which
//! serves it until killed for the UI's development stack and its browser checks.
//!
//! Asked with tools and no tool result since the last user message, it calls a tool: opencode's
//! `write` tool to create [`NOTE_FILE`] when that message asks to "write a note", its `question`
//! tool (two options) when it says "ask me", its `bash` tool to start `python3 -m http.server N`
//! over the home when it says "serve the workspace on port N" (the previews' check), its `bash`
//! tool to run `sleep N` when it says "keep working for N seconds" (the idle stop's check), else its
//! `bash` tool to write [`AGENT_FILE`] (into the folder `NAME` of the home when the message says
//! "into NAME/": the Files pane's live check).
//! Otherwise it answers with a short Markdown reply that
//! starts with [`AGENT_REPLY`], streamed a few words per chunk with a pause between chunks so
//! that a client sees the reply grow. Every answer reports `usage` ([`usage_of`]); a stream
//! only when asked (`stream_options.include_usage`), in a last chunk of its own, as OpenAI
//! does. It records each request's `Authorization` ([`keys_seen`]): the key octod forwards.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::util::say;

pub(crate) const LLM_MODEL: &str = "e2e-model";
/// What the stub's tool call writes, and what its final answer starts with.
pub(crate) const AGENT_FILE: &str = "agent-loop.txt";
pub(crate) const AGENT_FILE_TEXT: &str = "written by the agent through its shell tool";
pub(crate) const AGENT_REPLY: &str = "The file is written.";
/// What the `write` tool call creates (when asked to "write a note"), and its content.
const NOTE_FILE: &str = "/home/dev/notes.md";
const NOTE_TEXT: &str = "# Notes\n\n- written by the stub model\n- through opencode's write tool\n";
/// The rest of the final answer: Markdown with a code block, for the UI's rendering.
const REPLY_TAIL: &str = "\n\n`agent-loop.txt` now holds **one line**. Check it with:\n\n```sh\ncat ~/agent-loop.txt\n```\n";
/// The pause between two streamed chunks of the reply.
const CHUNK_PAUSE: Duration = Duration::from_millis(120);

/// The `Authorization` header of every request the stub answered, in order (`-` for none):
/// what the checks compare with the provider key octod holds.
static KEYS_SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// The prompt and completion tokens the stub has reported so far (in answers that carried a
/// `usage`).
static USAGE_REPORTED: std::sync::Mutex<(u64, u64)> = std::sync::Mutex::new((0, 0));

/// What the stub has reported in `usage` so far: (prompt, completion) tokens.
pub(crate) fn usage_reported() -> (u64, u64) {
    USAGE_REPORTED.lock().map(|u| *u).unwrap_or_default()
}

/// The `Authorization` headers the stub has seen so far.
pub(crate) fn keys_seen() -> Vec<String> {
    KEYS_SEEN.lock().map(|k| k.clone()).unwrap_or_default()
}

/// The usage the stub reports for a request: 10 prompt tokens per message, 1 completion
/// token per streamed chunk, so that the checks can add them up.
pub(crate) fn usage_of(messages: usize, chunks: usize) -> (u64, u64) {
    (10 * messages as u64, chunks as u64)
}

/// Serves the stub model on `listener` until the task is dropped.
pub(crate) async fn stub_llm(listener: TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(async move {
            let _ = answer(stream).await;
        });
    }
}

/// `octo-e2e stub-llm --port P`: the stub model on `0.0.0.0:P` until killed.
pub(crate) async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("binding the stub model on port {port}"))?;
    say(format!(
        "stub model {LLM_MODEL} on 0.0.0.0:{port} (OpenAI-compatible, POST /v1/chat/completions)"
    ));
    stub_llm(listener).await;
    Ok(())
}

async fn answer(mut stream: TcpStream) -> anyhow::Result<()> {
    let mut data = Vec::new();
    let mut buf = [0_u8; 16 * 1024];
    let (head, body) = loop {
        let n = stream.read(&mut buf).await?;
        ensure!(n > 0, "the client closed the connection");
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            if body.len() >= content_length(head) {
                break (head.to_owned(), body.to_owned());
            }
        }
    };
    let auth = head
        .lines()
        .skip(1)
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "-".to_owned());
    if let Ok(mut keys) = KEYS_SEEN.lock() {
        keys.push(auth);
    }
    let request: serde_json::Value = if head.starts_with("POST") {
        serde_json::from_str(&body)?
    } else {
        serde_json::json!({})
    };
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let has_tools = request["tools"].as_array().is_some_and(|t| !t.is_empty());
    let last_user = messages.iter().rposition(|m| m["role"] == "user");
    let tool_done = messages
        .iter()
        .skip(last_user.unwrap_or(0))
        .any(|m| m["role"] == "tool");
    let asked = last_user.map_or_else(String::new, |index| {
        text_of(&messages[index]).to_lowercase()
    });
    // Each delta is one streamed chunk.
    let (deltas, finish) = if has_tools && !tool_done {
        let (name, arguments) = if asked.contains("write a note") {
            (
                "write",
                serde_json::json!({"filePath": NOTE_FILE, "content": NOTE_TEXT}),
            )
        } else if asked.contains("ask me") {
            (
                "question",
                serde_json::json!({"questions": [{
                    "question": "Which name should the note get?",
                    "header": "Note name",
                    "options": [
                        {"label": "notes.md", "description": "Markdown"},
                        {"label": "notes.txt", "description": "Plain text"},
                    ],
                }]}),
            )
        } else if let Some(seconds) = work_asked(&asked) {
            // opencode's own limit on a command is 2 minutes unless the call names one.
            (
                "bash",
                serde_json::json!({
                    "command": format!("sleep {seconds}"),
                    "description": "Work for a while",
                    "timeout": (u64::from(seconds) + 60) * 1000,
                }),
            )
        } else if let Some(port) = serve_asked(&asked) {
            // In a session of its own (setsid -f), so that it outlives the tool call.
            (
                "bash",
                serde_json::json!({
                    "command": format!("setsid -f python3 -m http.server {port} --directory /home/dev >/dev/null 2>&1"),
                    "description": "Serve the workspace",
                }),
            )
        } else {
            let dir = folder_asked(&asked).map_or_else(String::new, |d| format!("{d}/"));
            (
                "bash",
                serde_json::json!({
                    "command": format!("echo '{AGENT_FILE_TEXT}' > /home/dev/{dir}{AGENT_FILE}"),
                    "description": "Write the file",
                }),
            )
        };
        let call = serde_json::json!({"index": 0, "id": format!("call_e2e_{name}"), "type": "function",
            "function": {"name": name, "arguments": arguments.to_string()}});
        (
            vec![serde_json::json!({"role": "assistant", "tool_calls": [call]})],
            "tool_calls",
        )
    } else {
        let deltas = reply_chunks(&format!("{AGENT_REPLY}{REPLY_TAIL}"))
            .into_iter()
            .enumerate()
            .map(|(index, chunk)| {
                if index == 0 {
                    serde_json::json!({"role": "assistant", "content": chunk})
                } else {
                    serde_json::json!({"content": chunk})
                }
            })
            .collect();
        (deltas, "stop")
    };
    let (prompt, completion) = usage_of(messages.len(), deltas.len());
    let usage = serde_json::json!({"prompt_tokens": prompt, "completion_tokens": completion,
        "total_tokens": prompt + completion});
    // As OpenAI does: a stream reports usage only when asked, in a last chunk of its own.
    let stream_usage = request["stream_options"]["include_usage"] == true;
    if (request["stream"] != true || stream_usage)
        && let Ok(mut reported) = USAGE_REPORTED.lock()
    {
        reported.0 += prompt;
        reported.1 += completion;
    }
    if request["stream"] != true {
        let content: String = deltas
            .iter()
            .filter_map(|d| d["content"].as_str())
            .collect();
        let mut message = deltas
            .first()
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        message["role"] = "assistant".into();
        if !content.is_empty() {
            message["content"] = content.into();
        }
        let body = serde_json::json!({"id": "e2e", "object": "chat.completion", "created": 0,
            "model": LLM_MODEL, "usage": usage,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}]})
        .to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        return Ok(());
    }
    let chunk = |delta: &serde_json::Value, finish: Option<&str>| {
        let c = serde_json::json!({"id": "e2e", "object": "chat.completion.chunk",
            "created": 0, "model": LLM_MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        if finish.is_some() && stream_usage {
            let u = serde_json::json!({"id": "e2e", "object": "chat.completion.chunk",
                "created": 0, "model": LLM_MODEL, "choices": [], "usage": usage});
            format!("data: {c}\n\ndata: {u}\n\n")
        } else {
            format!("data: {c}\n\n")
        }
    };
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .await?;
    for (index, delta) in deltas.iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(CHUNK_PAUSE).await;
        }
        write_chunk(&mut stream, &chunk(delta, None)).await?;
    }
    write_chunk(
        &mut stream,
        &format!(
            "{}data: [DONE]\n\n",
            chunk(&serde_json::json!({}), Some(finish))
        ),
    )
    .await?;
    stream.write_all(b"0\r\n\r\n").await?;
    stream.shutdown().await?;
    Ok(())
}

/// A chat message's text: its `content` string, or its text parts joined.
/// The folder a message asks the file to be written into ("… into big/ …"): one name of
/// letters, digits, `-`, `_` and `.` (not `.` or `..`), else none.
fn folder_asked(asked: &str) -> Option<&str> {
    let (_, rest) = asked.split_once("into ")?;
    let (name, _) = rest.split_once('/')?;
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (plain && !name.is_empty() && name != "." && name != "..").then_some(name)
}

/// The seconds of "keep working for N seconds" (1 to 600), if asked.
fn work_asked(asked: &str) -> Option<u16> {
    let (_, rest) = asked.split_once("keep working for ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|s| (1..=600).contains(s))
}

/// The port of "serve the workspace on port N" (1024 to 65535), if asked.
fn serve_asked(asked: &str) -> Option<u16> {
    let (_, rest) = asked.split_once("serve the workspace on port ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|port| *port >= 1024)
}

fn text_of(message: &serde_json::Value) -> String {
    match &message["content"] {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// One HTTP/1.1 chunk.
async fn write_chunk(stream: &mut TcpStream, data: &str) -> anyhow::Result<()> {
    stream
        .write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await?;
    Ok(())
}

/// The text in chunks of about two words each (whitespace kept with the word before it).
fn reply_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut words = 0;
    for (index, piece) in text.split_inclusive(char::is_whitespace).enumerate() {
        current.push_str(piece);
        if !piece.trim().is_empty() || index == 0 {
            words += 1;
        }
        if words == 2 {
            chunks.push(std::mem::take(&mut current));
            words = 0;
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The request's `Content-Length` (0 without one).
fn content_length(head: &str) -> usize {
    head.lines()
        .skip(1)
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_streams_in_several_chunks_that_add_up_to_it() {
        let text = format!("{AGENT_REPLY}{REPLY_TAIL}");
        let chunks = reply_chunks(&text);
        assert!(chunks.len() > 5, "{chunks:?}");
        assert_eq!(chunks.concat(), text);
        assert!(chunks[0].starts_with("The file"));
    }

    #[test]
    fn a_server_is_asked_for_by_its_port() {
        assert_eq!(
            serve_asked("please serve the workspace on port 3000."),
            Some(3000)
        );
        assert_eq!(serve_asked("serve the workspace on port 80"), None);
        assert_eq!(serve_asked("serve the workspace on port 99999"), None);
        assert_eq!(serve_asked("serve the workspace on port $(id)"), None);
        assert_eq!(
            work_asked("please keep working for 180 seconds."),
            Some(180)
        );
        assert_eq!(work_asked("keep working for 0 seconds"), None);
        assert_eq!(work_asked("keep working for 9999 seconds"), None);
        assert_eq!(work_asked("keep working for $(id) seconds"), None);
        assert_eq!(serve_asked("please create the file."), None);
    }

    #[test]
    fn a_folder_is_asked_for_by_one_plain_name() {
        assert_eq!(
            folder_asked("please write the file into big/."),
            Some("big")
        );
        assert_eq!(folder_asked("into my-dir_2/ please"), Some("my-dir_2"));
        assert_eq!(folder_asked("please create the file."), None);
        assert_eq!(folder_asked("into ../"), None);
        assert_eq!(folder_asked("into a b/"), None);
        assert_eq!(folder_asked("into $(rm -rf ~)/"), None);
        assert_eq!(folder_asked("into /"), None);
    }

    #[tokio::test]
    async fn a_prompt_gets_a_bash_call_then_after_its_result_a_streamed_reply() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let port = listener.local_addr().expect("local address").port();
        let server = tokio::spawn(stub_llm(listener));
        let ask = |messages: serde_json::Value| async move {
            let body = serde_json::json!({"stream": true, "messages": messages,
                "tools": [{"type": "function", "function": {"name": "bash"}}]})
            .to_string();
            let mut stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            stream
                .write_all(
                    format!(
                        "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await
                .expect("write the request");
            let mut out = String::new();
            stream
                .read_to_string(&mut out)
                .await
                .expect("read the answer");
            out
        };
        let note = ask(serde_json::json!([{"role": "user",
            "content": [{"type": "text", "text": "Please write a note."}]}]))
        .await;
        assert!(note.contains("\\\"filePath\\\""), "{note}");
        assert!(note.contains(r#""name":"write""#), "{note}");
        let question = ask(serde_json::json!([{"role": "user", "content": "Ask me first."}])).await;
        assert!(question.contains(r#""name":"question""#), "{question}");
        let first = ask(serde_json::json!([{"role": "user", "content": "hi"}])).await;
        assert!(first.contains(r#""name":"bash""#), "{first}");
        assert!(first.contains("Transfer-Encoding: chunked"), "{first}");
        assert!(first.contains("\"tool_calls\""), "{first}");
        assert!(
            first.contains(&format!("/home/dev/{AGENT_FILE}")),
            "{first}"
        );
        let into =
            ask(serde_json::json!([{"role": "user", "content": "Write the file into big/."}]))
                .await;
        assert!(
            into.contains(&format!("/home/dev/big/{AGENT_FILE}")),
            "{into}"
        );
        assert!(first.ends_with("0\r\n\r\n"), "{first}");
        let second = ask(serde_json::json!([{"role": "user", "content": "hi"},
            {"role": "tool", "content": "", "tool_call_id": "call_e2e"}]))
        .await;
        let contents: String = second
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
            .filter_map(|chunk| {
                chunk["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(contents, format!("{AGENT_REPLY}{REPLY_TAIL}"));
        assert!(second.matches("data: ").count() > 5, "{second}");
        assert!(second.contains("\"finish_reason\":\"stop\""), "{second}");
        // A later prompt in the same conversation calls the tool again.
        let third = ask(serde_json::json!([{"role": "user", "content": "hi"},
            {"role": "tool", "content": "", "tool_call_id": "call_e2e"},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "again"}]))
        .await;
        assert!(third.contains(r#""name":"bash""#), "{third}");
        server.abort();
    }
}
