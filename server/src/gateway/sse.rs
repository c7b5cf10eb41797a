//! Reading an upstream's stream one event at a time: server-sent events (each event's `data`), or AWS's
//! binary event stream (Bedrock's ConverseStream; each message becomes `{"<event or exception type>":
//! <payload>}`, the shape AWS's SDKs give the same union). Cancel-safe: a read abandoned at an await point
//! loses no bytes, so it can sit in a `select!` beside keep-alive timers.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Bytes, BytesMut};
use futures::{stream::BoxStream, StreamExt};

/// How an upstream frames its stream events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Sse,
    AwsEventStream,
}

pub struct SseReader {
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    buf: BytesMut,
    /// Set for AWS's event stream.
    frames: Option<MessageFrameDecoder>,
}

#[derive(Debug)]
pub enum SseError {
    /// The connection broke mid-body.
    Broken(String),
    /// A binary frame that does not decode (bad length or checksum).
    BadFrame(String),
    /// An event larger than we accept.
    TooLarge,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::Broken(why) => write!(f, "connection broke ({why})"),
            SseError::TooLarge => f.write_str("an event was larger than 8 MiB"),
            SseError::BadFrame(why) => write!(f, "an event-stream frame did not decode ({why})"),
        }
    }
}

const MAX_EVENT: usize = 8 * 1024 * 1024;

impl SseReader {
    pub fn new(resp: reqwest::Response, framing: Framing) -> Self {
        SseReader {
            body: resp.bytes_stream().boxed(),
            buf: BytesMut::new(),
            frames: (framing == Framing::AwsEventStream).then(MessageFrameDecoder::new),
        }
    }

    /// The next event's data (lines joined by `\n`); `None` when the body ended.
    pub async fn next_data(&mut self) -> Result<Option<String>, SseError> {
        if self.frames.is_some() {
            return self.next_frame().await;
        }
        loop {
            if let Some(data) = self.take_event() {
                if data.is_some() {
                    return Ok(data);
                }
                continue;
            }
            match self.body.next().await {
                None => {
                    // A last event without its blank line still counts.
                    if !self.buf.is_empty() {
                        self.buf.extend_from_slice(b"\n\n");
                        if let Some(Some(data)) = self.take_event() {
                            return Ok(Some(data));
                        }
                    }
                    return Ok(None);
                }
                Some(Err(e)) => return Err(SseError::Broken(e.to_string())),
                Some(Ok(chunk)) => {
                    self.buf.extend(chunk.iter().filter(|b| **b != b'\r'));
                    if self.buf.len() > MAX_EVENT {
                        return Err(SseError::TooLarge);
                    }
                }
            }
        }
    }

    /// The next event-stream message as JSON text; `None` when the body ended between messages.
    async fn next_frame(&mut self) -> Result<Option<String>, SseError> {
        loop {
            let decoder = self.frames.as_mut().expect("event-stream framing");
            match decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => return Ok(Some(frame_json(&m))),
                Ok(DecodedFrame::Incomplete) => {}
                Err(e) => return Err(SseError::BadFrame(e.to_string())),
            }
            match self.body.next().await {
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    return Err(SseError::Broken(format!(
                        "the body ended inside a frame ({} bytes left over)",
                        self.buf.len()
                    )))
                }
                Some(Err(e)) => return Err(SseError::Broken(e.to_string())),
                Some(Ok(chunk)) => {
                    self.buf.extend_from_slice(&chunk);
                    if self.buf.len() > MAX_EVENT {
                        return Err(SseError::TooLarge);
                    }
                }
            }
        }
    }

    /// Some(Some(data)) for a data event, Some(None) for an event without data (comments), None when
    /// no complete event is buffered.
    fn take_event(&mut self) -> Option<Option<String>> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let block = self.buf.split_to(end + 2);
        let text = String::from_utf8_lossy(&block[..end]);
        let mut data: Option<String> = None;
        for line in text.split('\n') {
            if let Some(rest) = line.strip_prefix("data:") {
                let rest = rest.strip_prefix(' ').unwrap_or(rest);
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(rest);
                    }
                    None => data = Some(rest.to_string()),
                }
            }
        }
        Some(data)
    }
}

/// An event-stream message as `{"<type>": <payload>}`: the `:event-type` of an event, the
/// `:exception-type` of an exception, or `{"error": {"code", "message"}}` for an `error` message.
fn frame_json(m: &Message) -> String {
    let header = |name: &str| {
        m.headers().iter().find_map(|h| match h.value() {
            HeaderValue::String(s) if h.name().as_str() == name => Some(s.as_str().to_string()),
            _ => None,
        })
    };
    let payload = String::from_utf8_lossy(m.payload());
    let payload = if payload.trim().is_empty() {
        "{}".into()
    } else {
        payload
    };
    let name = match header(":message-type").as_deref() {
        Some("exception") => header(":exception-type"),
        Some("error") => {
            let v = serde_json::json!({"error": {
                "code": header(":error-code").unwrap_or_default(),
                "message": header(":error-message").unwrap_or_default(),
            }});
            return v.to_string();
        }
        _ => header(":event-type"),
    };
    let name = serde_json::Value::String(name.unwrap_or_default()).to_string();
    format!("{{{name}:{payload}}}")
}
