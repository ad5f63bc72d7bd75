//! Reading a script's stdout/stderr as lines, and keeping the tail that goes into the
//! event's diagnostics.
//!
//! Output comes from user scripts, so both are bounded: a line longer than
//! [`LINE_BYTES_MAX`] is cut into pieces, and the tail never holds more than twice its
//! cap. The reader is cancel-safe so the runner can `select!` over both streams, the
//! exit and the deadline without losing bytes.

use std::mem;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Longest line kept whole; longer lines are logged in pieces of this size. Scripts
/// that print a binary blob without newlines would otherwise grow memory unbounded.
pub(crate) const LINE_BYTES_MAX: usize = 16 * 1024;

/// Lines of one output stream.
pub(crate) struct LineReader<R> {
    reader: BufReader<R>,
    partial: Vec<u8>,
    is_closed: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Reads lines from `reader`.
    pub(crate) fn new(reader: R) -> Self {
        Self { reader: BufReader::new(reader), partial: Vec::new(), is_closed: false }
    }

    /// True once the stream ended (or failed) and the last line was returned.
    pub(crate) fn is_closed(&self) -> bool {
        self.is_closed
    }

    /// The next line without its `\n` (and `\r`), or `None` at the end of the stream.
    ///
    /// Cancel-safe: the only await is `fill_buf`, and a partial line is kept in `self`,
    /// so dropping the future loses nothing.
    pub(crate) async fn next_line(&mut self) -> Option<Vec<u8>> {
        // Each pass consumes at least one byte or ends the stream.
        loop {
            let available = match self.reader.fill_buf().await {
                Ok(available) if !available.is_empty() => available,
                // End of stream, or a read error (the pipe broke): either way no more output.
                Ok(_) | Err(_) => {
                    self.is_closed = true;
                    return (!self.partial.is_empty()).then(|| finish(mem::take(&mut self.partial)));
                }
            };
            let newline = available.iter().position(|byte| *byte == b'\n');
            let wanted = newline.unwrap_or(available.len());
            let taken = wanted.min(LINE_BYTES_MAX - self.partial.len());
            self.partial.extend_from_slice(&available[..taken]);
            let is_line_end = newline.is_some() && taken == wanted;
            self.reader.consume(taken + usize::from(is_line_end));
            if is_line_end || self.partial.len() >= LINE_BYTES_MAX {
                return Some(finish(mem::take(&mut self.partial)));
            }
        }
    }

    /// The underlying buffered reader, to keep draining after the runner stops reading.
    pub(crate) fn into_inner(self) -> BufReader<R> {
        self.reader
    }
}

fn finish(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// The last bytes of an event's output, for `diagnostics.logTail`.
#[derive(Debug)]
pub(crate) struct OutputTail {
    text: String,
    bytes_max: usize,
}

impl OutputTail {
    /// A tail keeping the last `bytes_max` bytes.
    pub(crate) fn new(bytes_max: usize) -> Self {
        Self { text: String::new(), bytes_max }
    }

    /// Appends `line` and a newline.
    pub(crate) fn push_line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        // Trim only when twice over, so appending stays amortized O(1).
        if self.text.len() > 2 * self.bytes_max {
            let keep_from = self.text.len() - tail(&self.text, self.bytes_max).len();
            self.text.drain(..keep_from);
        }
    }

    /// The last `bytes_max` bytes (fewer when a character straddles the cut).
    pub(crate) fn contents(&self) -> String {
        tail(&self.text, self.bytes_max).to_string()
    }
}

/// The last `bytes_max` bytes of `text`, moved forward to a character boundary.
pub(crate) fn tail(text: &str, bytes_max: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes_max);
    // At most 3 steps: a UTF-8 character is at most 4 bytes.
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_trimmed_and_bounded() {
        // Reads CRLF lines, an over-long line and a last line without newline; asserts
        // each piece and the end of stream.
        let long = vec![b'a'; LINE_BYTES_MAX + 10];
        let mut input = b"one\r\ntwo\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nlast");
        let mut reader = LineReader::new(input.as_slice());
        assert_eq!(reader.next_line().await, Some(b"one".to_vec()));
        assert_eq!(reader.next_line().await, Some(b"two".to_vec()));
        assert_eq!(reader.next_line().await.map(|line| line.len()), Some(LINE_BYTES_MAX));
        assert_eq!(reader.next_line().await, Some(vec![b'a'; 10]));
        assert_eq!(reader.next_line().await, Some(b"last".to_vec()));
        assert!(!reader.is_closed() || reader.next_line().await.is_none());
        assert_eq!(reader.next_line().await, None);
        assert!(reader.is_closed());
    }

    #[test]
    fn tail_keeps_the_end_on_a_character_boundary() {
        // Cuts a text inside a multi-byte character and keeps a bounded rolling tail;
        // asserts valid UTF-8 and the size bound.
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
        let mut rolling = OutputTail::new(8);
        for index in 0..100 {
            rolling.push_line(&format!("line{index}"));
        }
        assert_eq!(rolling.contents(), "\nline99\n");
        assert!(rolling.text.len() <= 16 + "line99\n".len());
    }
}
