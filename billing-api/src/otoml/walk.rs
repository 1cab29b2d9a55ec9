//! A walk over the tokens of a usage file that finds its records without
//! building any value, so that a file of any size is read in bounded memory.
//!
//! The walk checks the document's structure (statements, table headers,
//! balanced brackets), the `version` key and the shape of `records`, and hands
//! out the text of each record in file order:
//! - `[[records]]` entries: from the header to the next header that is not a
//!   sub-table of the entry (`[records.x]`);
//! - an inline `records = [ … ]` array: each element.
//!
//! Values are checked by the full TOML parser: records by the caller (in
//! groups), other keys here, one statement at a time.

use std::ops::{ControlFlow, Range};

use toml_parser::Raw;
use toml_parser::lexer::{Lexer, Token, TokenKind};

use super::{BatchError, OTOML_VERSION};

/// Deepest nesting of arrays and inline tables accepted.
const MAX_DEPTH: usize = 64;
/// Largest value of a key other than `records` (or of `version`); a larger one
/// rejects the file, since OTOML files carry records and little else.
pub const MAX_OTHER_VALUE_BYTES: usize = 64 * 1024;

/// The text of one record: its byte range in the file, and whether it is an
/// element of an inline array (`records = [ {…}, … ]`) or a `[[records]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordText {
    pub span: Range<usize>,
    pub inline: bool,
}

/// Walks `text`, calling `on_record` for every record in file order, until it
/// returns `Break`. Returns the number of records seen (those handed out), or
/// why the file as a whole cannot be read.
pub fn walk(
    text: &str,
    on_record: &mut dyn FnMut(RecordText) -> ControlFlow<()>,
) -> Result<u64, BatchError> {
    let mut walker = Walker {
        text,
        tokens: Tokens::new(text),
        on_record,
        records: 0,
        open_entry: None,
        in_other_table: false,
        inline_records: false,
        table_records: false,
        version_seen: false,
        stopped: false,
    };
    walker.document()?;
    Ok(walker.records)
}

/// The lexer with one token of lookahead; answers its final Eof token forever.
struct Tokens<'i> {
    lexer: Lexer<'i>,
    peeked: Option<Token>,
    eof: Option<Token>,
}

impl<'i> Tokens<'i> {
    fn new(text: &'i str) -> Self {
        Self {
            lexer: toml_parser::Source::new(text).lex(),
            peeked: None,
            eof: None,
        }
    }

    fn next(&mut self) -> Token {
        if let Some(t) = self.peeked.take() {
            return t;
        }
        match self.lexer.next() {
            Some(t) => {
                if t.kind() == TokenKind::Eof {
                    self.eof = Some(t);
                }
                t
            }
            None => self.eof.expect("the lexer ends with an Eof token"),
        }
    }

    fn peek(&mut self) -> Token {
        let t = self.next();
        self.peeked = Some(t);
        t
    }

    /// Next token that is not whitespace (newlines and comments count).
    fn next_on_line(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.kind() != TokenKind::Whitespace {
                return t;
            }
        }
    }

    /// Next token that is not whitespace, a comment or a newline.
    fn next_significant(&mut self) -> Token {
        loop {
            let t = self.next();
            if !matches!(
                t.kind(),
                TokenKind::Whitespace | TokenKind::Comment | TokenKind::Newline
            ) {
                return t;
            }
        }
    }

    fn peek_significant(&mut self) -> Token {
        let t = self.next_significant();
        self.peeked = Some(t);
        t
    }
}

struct Walker<'i, 'f> {
    text: &'i str,
    tokens: Tokens<'i>,
    on_record: &'f mut dyn FnMut(RecordText) -> ControlFlow<()>,
    records: u64,
    /// Start of the `[[records]]` entry being read, if any.
    open_entry: Option<usize>,
    /// Inside a table that is neither the root nor a records entry.
    in_other_table: bool,
    inline_records: bool,
    table_records: bool,
    version_seen: bool,
    stopped: bool,
}

/// A dotted key: its first segment (decoded) and how many segments it has.
struct Key {
    first: String,
    segments: usize,
}

impl Walker<'_, '_> {
    fn document(&mut self) -> Result<(), BatchError> {
        loop {
            if self.stopped {
                return Ok(());
            }
            let t = self.tokens.next_significant();
            match t.kind() {
                TokenKind::Eof => break,
                TokenKind::LeftSquareBracket => self.header(t)?,
                TokenKind::Atom | TokenKind::BasicString | TokenKind::LiteralString => {
                    self.key_value(t)?
                }
                _ => return Err(self.error(t.span().start(), "expected a key or a [table] header")),
            }
        }
        self.close_entry(self.text.len());
        Ok(())
    }

    fn emit(&mut self, span: Range<usize>, inline: bool) {
        if self.stopped {
            return;
        }
        self.records += 1;
        if (self.on_record)(RecordText { span, inline }).is_break() {
            self.stopped = true;
        }
    }

    fn close_entry(&mut self, end: usize) {
        if let Some(start) = self.open_entry.take() {
            let end = trim_end(self.text, start, end);
            self.emit(start..end, false);
        }
    }

    fn header(&mut self, open: Token) -> Result<(), BatchError> {
        let start = open.span().start();
        let next = self.tokens.peek();
        let array =
            next.kind() == TokenKind::LeftSquareBracket && next.span().start() == open.span().end();
        if array {
            self.tokens.next();
        }
        let first = self.tokens.next_on_line();
        let (key, close) = self.key(first)?;
        if close.kind() != TokenKind::RightSquareBracket {
            return Err(self.error(close.span().start(), "expected `]` to end the table header"));
        }
        if array {
            let second = self.tokens.next();
            if second.kind() != TokenKind::RightSquareBracket {
                return Err(self.error(
                    second.span().start(),
                    "expected `]]` to end the table header",
                ));
            }
        }
        self.end_of_line()?;
        let records = key.first == "records";
        match (records, key.segments, array) {
            (true, 1, true) => {
                if self.inline_records {
                    return Err(self.error(
                        start,
                        "`records` is defined twice (as an inline array and as [[records]] tables)",
                    ));
                }
                self.close_entry(start);
                self.table_records = true;
                self.in_other_table = false;
                self.open_entry = Some(start);
            }
            (true, 1, false) => {
                if self.inline_records || self.table_records {
                    return Err(self.error(start, "`records` is defined twice"));
                }
                return Err(BatchError::RecordsNotArray("table".into()));
            }
            (true, _, _) => {
                // A sub-table of the entry being read belongs to it.
                if self.open_entry.is_none() {
                    if self.table_records {
                        return Err(self.error(
                            start,
                            "a [records.…] table must directly follow its [[records]] entry",
                        ));
                    }
                    return Err(BatchError::RecordsNotArray("table".into()));
                }
            }
            (false, _, _) => {
                self.close_entry(start);
                self.in_other_table = true;
            }
        }
        Ok(())
    }

    /// Reads a dotted key starting at `first`; returns it and the token after it.
    fn key(&mut self, first: Token) -> Result<(Key, Token), BatchError> {
        let mut t = first;
        let mut key = Key {
            first: String::new(),
            segments: 0,
        };
        loop {
            let segment = self.key_segment(t)?;
            if key.segments == 0 {
                key.first = segment;
            }
            key.segments += 1;
            t = self.tokens.next_on_line();
            if t.kind() != TokenKind::Dot {
                return Ok((key, t));
            }
            t = self.tokens.next_on_line();
        }
    }

    fn key_segment(&self, t: Token) -> Result<String, BatchError> {
        let raw = &self.text[t.span().start()..t.span().end()];
        match t.kind() {
            TokenKind::Atom => {
                if raw
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    Ok(raw.to_string())
                } else {
                    Err(self.error(
                        t.span().start(),
                        &format!(
                            "invalid bare key at `{}` (bare keys are A-Z a-z 0-9 _ -; quote others)",
                            crate::text::echo(super::truncate(self.rest_of_line(t.span().start()), 64))
                        ),
                    ))
                }
            }
            TokenKind::BasicString | TokenKind::LiteralString => {
                let mut out = String::new();
                let mut err: Option<toml_parser::ParseError> = None;
                Raw::new_unchecked(raw, t.kind().encoding(), t.span())
                    .decode_key(&mut out, &mut err);
                match err {
                    None => Ok(out),
                    Some(e) => Err(self.error(
                        t.span().start(),
                        &format!("invalid quoted key: {}", e.description()),
                    )),
                }
            }
            _ => Err(self.error(t.span().start(), "expected a key")),
        }
    }

    /// After a header or a value: only whitespace, a comment, then a newline or the end.
    fn end_of_line(&mut self) -> Result<(), BatchError> {
        let mut t = self.tokens.next_on_line();
        if t.kind() == TokenKind::Comment {
            t = self.tokens.next_on_line();
        }
        match t.kind() {
            TokenKind::Newline => Ok(()),
            TokenKind::Eof => {
                self.tokens.peeked = Some(t);
                Ok(())
            }
            _ => Err(self.error(t.span().start(), "expected a new line")),
        }
    }

    fn key_value(&mut self, first: Token) -> Result<(), BatchError> {
        let start = first.span().start();
        let (key, eq) = self.key(first)?;
        if eq.kind() != TokenKind::Equals {
            return Err(self.error(eq.span().start(), "expected `=` after the key"));
        }
        let at_root = self.open_entry.is_none() && !self.in_other_table;
        let value_start = self.tokens.next_on_line();
        if at_root && key.first == "records" {
            if key.segments > 1 {
                return Err(BatchError::RecordsNotArray("table".into()));
            }
            if self.inline_records || self.table_records {
                return Err(self.error(start, "`records` is defined twice"));
            }
            if value_start.kind() != TokenKind::LeftSquareBracket {
                let span = self.value(value_start)?;
                let found = match parse_small(&self.text[span]) {
                    Some(v) => v.type_str().to_string(),
                    None => "a value that is not an array".to_string(),
                };
                return Err(BatchError::RecordsNotArray(found));
            }
            self.inline_records = true;
            self.records_array()?;
            if self.stopped {
                return Ok(());
            }
            return self.end_of_line();
        }
        let span = self.value(value_start)?;
        self.end_of_line()?;
        if self.open_entry.is_some() {
            // Part of a record: the caller decodes it with its record.
            return Ok(());
        }
        let text = &self.text[span.clone()];
        if at_root && key.first == "version" {
            if self.version_seen {
                return Err(self.error(start, "`version` is defined twice"));
            }
            self.version_seen = true;
            let value = if key.segments > 1 {
                None
            } else {
                parse_small(text)
            };
            return match value {
                Some(toml::Value::Integer(OTOML_VERSION)) => Ok(()),
                Some(other) => Err(BatchError::UnsupportedVersion(other.to_string())),
                None if key.segments > 1 => Err(BatchError::UnsupportedVersion("a table".into())),
                None => Err(self.bad_value(span.start, "version")),
            };
        }
        if span.len() > MAX_OTHER_VALUE_BYTES {
            return Err(self.error(
                span.start,
                &format!(
                    "the value of `{}` is {} bytes, over the {MAX_OTHER_VALUE_BYTES} bytes a key \
                     other than `records` may hold",
                    super::truncate(&key.first, 64),
                    span.len()
                ),
            ));
        }
        // Only its syntax matters, as in the whole-file decode, which passes over other keys:
        // converting it (`toml::Value`) refuses integers a document may hold
        // (`9223372036854775807` in an inline table).
        if toml::de::DeTable::parse(&format!("v = {text}")).is_err() {
            return Err(self.bad_value(span.start, &key.first));
        }
        Ok(())
    }

    fn bad_value(&self, at: usize, key: &str) -> BatchError {
        let text_end = self.text[at..]
            .find('\n')
            .map_or(self.text.len(), |i| at + i);
        let detail = self.text[at..text_end]
            .parse::<toml::Value>()
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_else(|| "not a valid TOML value".into());
        self.error(
            at,
            &format!(
                "the value of `{}` is invalid: {detail}",
                super::truncate(key, 64)
            ),
        )
    }

    /// Reads one value starting at `first` and returns its byte range. Arrays
    /// and inline tables are read to their matching bracket; a scalar to the
    /// end of its line (or the next `,` / closing bracket when nested).
    fn value(&mut self, first: Token) -> Result<Range<usize>, BatchError> {
        self.value_in(first, false)
    }

    fn value_in(&mut self, first: Token, nested: bool) -> Result<Range<usize>, BatchError> {
        let start = first.span().start();
        match first.kind() {
            TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => {
                let end = self.balanced(first)?;
                Ok(start..end)
            }
            TokenKind::Atom
            | TokenKind::Dot
            | TokenKind::BasicString
            | TokenKind::LiteralString
            | TokenKind::MlBasicString
            | TokenKind::MlLiteralString => {
                let mut end = first.span().end();
                loop {
                    let t = self.tokens.peek();
                    let stop = match t.kind() {
                        TokenKind::Newline | TokenKind::Comment | TokenKind::Eof => true,
                        TokenKind::Comma
                        | TokenKind::RightSquareBracket
                        | TokenKind::RightCurlyBracket => nested,
                        TokenKind::LeftSquareBracket
                        | TokenKind::LeftCurlyBracket
                        | TokenKind::Equals => true,
                        _ => false,
                    };
                    if stop {
                        return Ok(start..end);
                    }
                    self.tokens.next();
                    if t.kind() != TokenKind::Whitespace {
                        end = t.span().end();
                    }
                }
            }
            TokenKind::Newline | TokenKind::Eof | TokenKind::Comment => {
                Err(self.error(start, "expected a value after `=`"))
            }
            _ => Err(self.error(start, "expected a value")),
        }
    }

    /// Skips to the bracket matching `open`; returns the end of the closing bracket.
    fn balanced(&mut self, open: Token) -> Result<usize, BatchError> {
        let mut stack: Vec<TokenKind> = vec![open.kind()];
        loop {
            let t = self.tokens.next();
            match t.kind() {
                TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(self.error(
                            t.span().start(),
                            &format!("arrays and tables nested deeper than {MAX_DEPTH}"),
                        ));
                    }
                    stack.push(t.kind());
                }
                TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                    let expected = match stack.pop() {
                        Some(TokenKind::LeftSquareBracket) => TokenKind::RightSquareBracket,
                        _ => TokenKind::RightCurlyBracket,
                    };
                    if t.kind() != expected {
                        return Err(self.error(t.span().start(), "mismatched closing bracket"));
                    }
                    if stack.is_empty() {
                        return Ok(t.span().end());
                    }
                }
                TokenKind::Eof => {
                    return Err(self.error(open.span().start(), "this bracket is never closed"));
                }
                _ => {}
            }
        }
    }

    /// The root `records = [ … ]` array: hands out each element.
    fn records_array(&mut self) -> Result<(), BatchError> {
        loop {
            let t = self.tokens.next_significant();
            match t.kind() {
                TokenKind::RightSquareBracket => return Ok(()),
                TokenKind::Eof => {
                    return Err(self.error(t.span().start(), "the `records` array is never closed"));
                }
                TokenKind::Comma => {
                    return Err(self.error(t.span().start(), "expected a record before `,`"));
                }
                _ => {}
            }
            let span = self.value_in(t, true)?;
            self.emit(span, true);
            if self.stopped {
                return Ok(());
            }
            let sep = self.tokens.next_significant();
            match sep.kind() {
                TokenKind::Comma => {
                    if self.tokens.peek_significant().kind() == TokenKind::RightSquareBracket {
                        self.tokens.next_significant();
                        return Ok(());
                    }
                }
                TokenKind::RightSquareBracket => return Ok(()),
                TokenKind::Eof => {
                    return Err(
                        self.error(sep.span().start(), "the `records` array is never closed")
                    );
                }
                _ => {
                    return Err(self.error(
                        sep.span().start(),
                        "expected `,` or `]` after a record of the `records` array",
                    ));
                }
            }
        }
    }

    fn rest_of_line(&self, at: usize) -> &str {
        let rest = &self.text[at..];
        &rest[..rest.find('\n').unwrap_or(rest.len())]
    }

    fn error(&self, at: usize, what: &str) -> BatchError {
        let at = at.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, at)];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        BatchError::Toml(format!("line {line}, column {column}: {what}"))
    }
}

/// Parses one small value; `None` when it is not valid TOML or too large to check.
fn parse_small(text: &str) -> Option<toml::Value> {
    if text.len() > MAX_OTHER_VALUE_BYTES {
        return None;
    }
    text.parse::<toml::Value>().ok()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// End of `text[start..end]` without trailing whitespace and blank lines, so a
/// `[[records]]` entry's text ends with its last statement.
fn trim_end(text: &str, start: usize, end: usize) -> usize {
    start + text[start..end].trim_end().len()
}
