//! Reading server-sent events from an upstream body, one event's `data` at a time. Cancel-safe: a read
//! abandoned at an await point loses no bytes, so it can sit in a `select!` beside keep-alive timers.

use bytes::{Bytes, BytesMut};
use futures::{stream::BoxStream, StreamExt};

pub struct SseReader {
    body: BoxStream<'static, Result<Bytes, reqwest::Error>>,
    buf: BytesMut,
}

#[derive(Debug)]
pub enum SseError {
    /// The connection broke mid-body.
    Broken(String),
    /// An event larger than we accept.
    TooLarge,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::Broken(why) => write!(f, "connection broke ({why})"),
            SseError::TooLarge => f.write_str("an event was larger than 8 MiB"),
        }
    }
}

const MAX_EVENT: usize = 8 * 1024 * 1024;

impl SseReader {
    pub fn new(resp: reqwest::Response) -> Self {
        SseReader {
            body: resp.bytes_stream().boxed(),
            buf: BytesMut::new(),
        }
    }

    /// The next event's data (lines joined by `\n`); `None` when the body ended.
    pub async fn next_data(&mut self) -> Result<Option<String>, SseError> {
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
