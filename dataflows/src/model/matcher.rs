//! Label matchers as accepted by Thanos's `--matcher` flag.
//!
//! A block is replicated only if its external labels satisfy every matcher the
//! user gave, so this module parses the flag value (Prometheus selector syntax,
//! plus the looser Alertmanager forms people commonly type) and evaluates the
//! result against a block's labels with Prometheus semantics.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::{Chars, FromStr};
use std::sync::LazyLock;

use regex::Regex;

/// A run of characters that is neither whitespace nor syntax; this is the form
/// of unquoted label names and unquoted (Alertmanager-style) label values.
static WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"^[^\s{}!=~,"'`\\]+"#).unwrap());
/// Label names that may be written without quotes.
static LABEL_NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[a-zA-Z_][a-zA-Z0-9_]*$").unwrap());
/// The operators, longest first so that `=~` is not read as `=` followed by `~`.
static OP: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(?:=~|!~|!=|=)").unwrap());
/// Quoted strings; escaped characters are skipped so `\"` does not end the string,
/// and a raw newline ends nothing, as in Prometheus, so it reads as unterminated.
static DOUBLE_QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"^"(?:[^"\\\n]|\\.)*""#).unwrap());
static SINGLE_QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^'(?:[^'\\\n]|\\.)*'").unwrap());
static BACKTICK_QUOTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^`[^`]*`").unwrap());

/// The comparison a [`Matcher`] performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`: the label value equals the given string.
    Equal,
    /// `!=`: the label value differs from the given string.
    NotEqual,
    /// `=~`: the whole label value matches the given regex.
    RegexMatch,
    /// `!~`: the whole label value does not match the given regex.
    RegexNoMatch,
}

impl MatchOp {
    /// The operator as written in a selector, so errors and logs echo the user's syntax.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }

    fn from_token(token: &str) -> MatchOp {
        match token {
            "!=" => MatchOp::NotEqual,
            "=~" => MatchOp::RegexMatch,
            "!~" => MatchOp::RegexNoMatch,
            _ => MatchOp::Equal,
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a matcher could not be parsed or built. Every variant carries the full
/// text the user gave, so the message can be acted upon without further context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// The input contained no matcher at all (blank, or `{}`).
    #[error("invalid matcher {input:?}: no matchers given")]
    Empty {
        /// The text as the user gave it.
        input: String,
    },
    /// The input does not follow the selector grammar.
    #[error("invalid matcher {input:?}: {message} (at byte {position})")]
    Syntax {
        /// The text as the user gave it.
        input: String,
        /// Byte offset into `input` where parsing stopped.
        position: usize,
        /// What was expected or found there.
        message: String,
    },
    /// An unquoted label name that Prometheus would not accept.
    #[error("invalid matcher {input:?}: {name:?} is not a valid label name (use [a-zA-Z_][a-zA-Z0-9_]* or quote it)")]
    BadLabelName {
        /// The text as the user gave it.
        input: String,
        /// The offending name.
        name: String,
    },
    /// A quoted string with no closing quote.
    #[error("invalid matcher {input:?}: unterminated quoted string starting at byte {position}")]
    UnterminatedQuote {
        /// The text as the user gave it.
        input: String,
        /// Byte offset of the opening quote.
        position: usize,
    },
    /// The value of a `=~` or `!~` matcher is not a valid regex.
    #[error("invalid matcher {input:?}: invalid regex {regex:?}: {reason}")]
    BadRegex {
        /// The text as the user gave it (the matcher itself when built by [`Matcher::new`]).
        input: String,
        /// The pattern as written, before anchoring.
        regex: String,
        /// The regex crate's explanation, which may span several lines.
        reason: String,
    },
}

impl MatcherError {
    /// Replaces the reported input, so errors from [`Matcher::new`] name the whole flag value once parsing is involved.
    fn with_input(mut self, text: &str) -> MatcherError {
        match &mut self {
            MatcherError::Empty { input }
            | MatcherError::Syntax { input, .. }
            | MatcherError::BadLabelName { input, .. }
            | MatcherError::UnterminatedQuote { input, .. }
            | MatcherError::BadRegex { input, .. } => *input = text.to_owned(),
        }
        self
    }
}

/// One label matcher such as `env=~"prod.*"`.
///
/// The fields are public for inspection; build matchers with [`Matcher::new`]
/// (or [`parse_matchers`]) because the compiled regex is derived from them.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name, without quotes.
    pub name: String,
    /// The comparison to perform.
    pub op: MatchOp,
    /// The string or regex to compare with, unescaped.
    pub value: String,
    /// The anchored regex for `=~` and `!~`; `None` for the equality operators.
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher, compiling the value as a regex for `=~` and `!~` so
    /// that a bad pattern is reported up front rather than at match time.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, MatcherError> {
        let regex = match op {
            MatchOp::Equal | MatchOp::NotEqual => None,
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                Some(compile_anchored(value).map_err(|reason| MatcherError::BadRegex {
                    input: format!("{}{op}{}", format_name(name), quote(value)),
                    regex: value.to_owned(),
                    reason,
                })?)
            }
        };
        Ok(Matcher { name: name.to_owned(), op, value: value.to_owned(), regex })
    }

    /// Prometheus semantics: a missing label matches as the empty string; regexes are fully anchored (^(?:re)$).
    ///
    /// Regexes also run in `s` mode, as in Prometheus, so `.` matches newlines.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        // The regex is only absent if `op` was changed after construction; treating that as "no match" avoids a panic.
        let regex_matches = || self.regex.as_ref().is_some_and(|re| re.is_match(value));
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::RegexMatch => regex_matches(),
            MatchOp::RegexNoMatch => !regex_matches(),
        }
    }
}

impl PartialEq for Matcher {
    /// Two matchers are equal when they were written the same way; the compiled regex follows from that.
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", format_name(&self.name), self.op, quote(&self.value))
    }
}

/// Compiles `pattern` so that it must match the whole value.
///
/// The pattern is first compiled on its own: that reports errors against the
/// text the user wrote, and rejects input such as `a)|(b` that would otherwise
/// break out of the anchoring group and silently match unanchored.
fn compile_anchored(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| e.to_string())?;
    Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| e.to_string())
}

/// A conjunction of matchers over a block's external labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// All of these must match for a block to be selected.
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// True if every matcher accepts `labels`; an empty selector accepts every block.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
    }
}

impl FromStr for Selector {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Selector, MatcherError> {
        parse_matchers(s).map(|matchers| Selector { matchers })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_char('}')
    }
}

/// Parses one `--matcher` flag value into the matchers it lists.
///
/// The value is either a single matcher such as `env="prod"` or a selector
/// such as `{env="prod", region=~"eu-.*",}`: comma separated, with optional
/// whitespace and trailing comma. Operators are `=`, `!=`, `=~` and `!~`.
/// Label names are `[a-zA-Z_][a-zA-Z0-9_]*`, or any non-empty quoted string
/// (`{"service.name"="api"}`) as Prometheus 3 allows for UTF-8 names.
/// Values are double-quoted with Go escapes (`\"`, `\\`, `\n`, `\t`, `\xHH`,
/// `\uHHHH`, ...), single-quoted likewise, backtick-quoted without escapes, or
/// unquoted as Alertmanager accepts (`env=prod`); unquoted values end at
/// whitespace or any of `` {}!=~,"'`\ ``.
///
/// Because people pass Alertmanager-style lists, several matchers are also
/// accepted without braces (`a=b,c=d`). An input with no matcher at all,
/// including `{}`, is an error: it would silently select every block.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    let mut p = Parser { input, pos: 0 };
    p.skip_ws();
    let braced = p.eat('{');
    let mut matchers = Vec::new();
    loop {
        p.skip_ws();
        if p.rest().is_empty() || (braced && p.rest().starts_with('}')) {
            break;
        }
        matchers.push(p.matcher()?);
        p.skip_ws();
        if !p.eat(',') {
            break;
        }
    }
    if braced && !p.eat('}') {
        return Err(match p.rest() {
            "" => p.syntax("missing closing '}'"),
            rest => p.syntax(format!("unexpected {rest:?}, expected ',' or '}}'")),
        });
    }
    p.skip_ws();
    if !p.rest().is_empty() {
        let expected = if braced { "end of input after '}'" } else { "',' or end of input" };
        return Err(p.syntax(format!("unexpected {:?}, expected {expected}", p.rest())));
    }
    if matchers.is_empty() {
        return Err(MatcherError::Empty { input: input.to_owned() });
    }
    Ok(matchers)
}

/// A cursor over the flag value; `pos` is always on a character boundary
/// because it only advances past regex matches and ASCII punctuation.
struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn skip_ws(&mut self) {
        self.pos = self.input.len() - self.rest().trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.rest().starts_with(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    /// Consumes and returns the match of the `^`-anchored `re` at the cursor, if any.
    fn take(&mut self, re: &Regex) -> Option<&'a str> {
        let token = re.find(self.rest())?.as_str();
        self.pos += token.len();
        Some(token)
    }

    fn syntax(&self, message: impl Into<String>) -> MatcherError {
        self.syntax_at(self.pos, message)
    }

    fn syntax_at(&self, position: usize, message: impl Into<String>) -> MatcherError {
        MatcherError::Syntax { input: self.input.to_owned(), position, message: message.into() }
    }

    fn matcher(&mut self) -> Result<Matcher, MatcherError> {
        let name = self.label_name()?;
        self.skip_ws();
        let Some(op) = self.take(&OP) else {
            return Err(self.syntax(format!("expected an operator (=, !=, =~ or !~) after label name {name:?}")));
        };
        self.skip_ws();
        let value = self.label_value()?;
        Matcher::new(&name, MatchOp::from_token(op), &value).map_err(|e| e.with_input(self.input))
    }

    fn label_name(&mut self) -> Result<String, MatcherError> {
        let start = self.pos;
        if self.rest().starts_with(['"', '\'']) {
            let name = self.quoted()?;
            if name.is_empty() {
                return Err(self.syntax_at(start, "label name is empty"));
            }
            return Ok(name);
        }
        match self.take(&WORD) {
            None => Err(self.syntax("expected a label name")),
            Some(word) if LABEL_NAME.is_match(word) => Ok(word.to_owned()),
            Some(word) => Err(MatcherError::BadLabelName { input: self.input.to_owned(), name: word.to_owned() }),
        }
    }

    fn label_value(&mut self) -> Result<String, MatcherError> {
        if self.rest().starts_with(['"', '\'', '`']) {
            return self.quoted();
        }
        match self.take(&WORD) {
            Some(word) => Ok(word.to_owned()),
            None => Err(self.syntax("expected a label value")),
        }
    }

    /// Reads a quoted string at the cursor: backtick strings are raw, the others take Go escapes.
    fn quoted(&mut self) -> Result<String, MatcherError> {
        let start = self.pos;
        let (re, raw) = match self.rest().chars().next() {
            Some('"') => (&DOUBLE_QUOTED, false),
            Some('\'') => (&SINGLE_QUOTED, false),
            _ => (&BACKTICK_QUOTED, true),
        };
        let Some(token) = self.take(re) else {
            return Err(MatcherError::UnterminatedQuote { input: self.input.to_owned(), position: start });
        };
        // Every quote character is one byte, so these bounds are character boundaries.
        let body = &token[1..token.len() - 1];
        if raw {
            return Ok(body.to_owned());
        }
        unescape(body).map_err(|message| self.syntax_at(start, message))
    }
}

/// Resolves Go string escapes. `\x` and octal escapes denote bytes, as in Go,
/// so the result is checked to be UTF-8 only once all bytes are known.
fn unescape(body: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        let escape = chars.next().ok_or("string ends with a lone backslash")?;
        let byte = match escape {
            'a' => 0x07,
            'b' => 0x08,
            'f' => 0x0c,
            'n' => b'\n',
            'r' => b'\r',
            't' => b'\t',
            'v' => 0x0b,
            '\\' | '"' | '\'' => escape as u8,
            'x' => digits(&mut chars, 0, 2, 16).ok_or("\\x needs two hex digits")? as u8,
            '0'..='7' => digits(&mut chars, escape.to_digit(8).unwrap_or(0), 2, 8)
                .and_then(|v| u8::try_from(v).ok())
                .ok_or("octal escape needs three digits and must be at most \\377")?,
            'u' | 'U' => {
                let width = if escape == 'u' { 4 } else { 8 };
                let c = digits(&mut chars, 0, width, 16)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("\\{escape} needs {width} hex digits naming a Unicode scalar value"))?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                continue;
            }
            other => return Err(format!("unknown escape sequence \\{other}")),
        };
        out.push(byte);
    }
    String::from_utf8(out).map_err(|_| "escaped bytes do not form valid UTF-8".to_owned())
}

/// Reads exactly `count` digits in `radix`, appending them to `acc`.
fn digits(chars: &mut Chars<'_>, acc: u32, count: usize, radix: u32) -> Option<u32> {
    (0..count).try_fold(acc, |acc, _| Some(acc * radix + chars.next()?.to_digit(radix)?))
}

/// Writes a label name bare when Prometheus allows that, quoted otherwise.
fn format_name(name: &str) -> String {
    if LABEL_NAME.is_match(name) {
        name.to_owned()
    } else {
        quote(name)
    }
}

/// Double-quotes `s` with Go escapes, so the output parses back to the same string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(input: &str) -> Matcher {
        let mut ms = parse_matchers(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(ms.len(), 1, "{input}");
        ms.remove(0)
    }

    fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
        Matcher::new(name, op, value).unwrap()
    }

    #[test]
    fn parses_all_operators() {
        assert_eq!(parse_one(r#"env="prod""#), m("env", MatchOp::Equal, "prod"));
        assert_eq!(parse_one(r#"env!="prod""#), m("env", MatchOp::NotEqual, "prod"));
        assert_eq!(parse_one(r#"env=~"prod.*""#), m("env", MatchOp::RegexMatch, "prod.*"));
        assert_eq!(parse_one(r#"env!~"prod.*""#), m("env", MatchOp::RegexNoMatch, "prod.*"));
    }

    #[test]
    fn parses_selectors_with_spaces_and_trailing_comma() {
        let want = vec![m("a", MatchOp::Equal, "b"), m("c", MatchOp::RegexMatch, "x.*")];
        for input in [
            r#"{a="b",c=~"x.*"}"#,
            r#"  { a = "b" ,  c =~ "x.*" , }  "#,
            "{\n\ta=\"b\",\n\tc=~\"x.*\",\n}",
            r#"a="b", c=~"x.*""#,
            r#"a=b,c=~x.*,"#,
        ] {
            assert_eq!(parse_matchers(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn parses_quoting_styles_and_escapes() {
        assert_eq!(parse_one(r#"a="q\"b\\s\n\t""#).value, "q\"b\\s\n\t");
        assert_eq!(parse_one(r#"a="\x41\101\u00e9\U0001F600""#).value, "AAé😀");
        assert_eq!(parse_one(r#"a="\xc3\xa9""#).value, "é");
        assert_eq!(parse_one(r#"a='it\'s "x"'"#).value, r#"it's "x""#);
        assert_eq!(parse_one(r"a=`raw\n`").value, r"raw\n");
        assert_eq!(parse_one("a=prod-eu_1").value, "prod-eu_1");
        assert_eq!(parse_one(r#"a="""#).value, "");
        assert_eq!(parse_one(r#"a="ünï cødé, {x}""#).value, "ünï cødé, {x}");
        assert_eq!(parse_one(r#"{"service.name"="api"}"#).name, "service.name");
        assert_eq!(parse_one("_a1_=x").name, "_a1_");
    }

    #[test]
    fn absent_label_matches_as_empty_string() {
        assert!(m("a", MatchOp::Equal, "").matches(None));
        assert!(m("a", MatchOp::Equal, "").matches(Some("")));
        assert!(!m("a", MatchOp::Equal, "").matches(Some("x")));
        assert!(!m("a", MatchOp::NotEqual, "").matches(None));
        assert!(m("a", MatchOp::NotEqual, "x").matches(None));
        assert!(m("a", MatchOp::RegexMatch, ".*").matches(None));
        assert!(!m("a", MatchOp::RegexMatch, ".+").matches(None));
        assert!(m("a", MatchOp::RegexNoMatch, ".+").matches(None));
    }

    #[test]
    fn regexes_are_fully_anchored() {
        let re = parse_one(r#"a=~"b""#);
        assert!(re.matches(Some("b")));
        assert!(!re.matches(Some("abc")));
        assert!(!re.matches(Some("bc")));
        assert!(!re.matches(Some("ab")));
        let alt = m("a", MatchOp::RegexMatch, "x|y");
        assert!(alt.matches(Some("y")) && !alt.matches(Some("xy")));
        assert!(m("a", MatchOp::RegexNoMatch, "b").matches(Some("abc")));
        assert!(m("a", MatchOp::RegexMatch, "a.c").matches(Some("a\nc")), "dot matches newline as in Prometheus");
    }

    #[test]
    fn selector_is_a_conjunction() {
        let sel: Selector = r#"{env=~"prod|staging", region!="eu", replica=""}"#.parse().unwrap();
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(sel.matches(&labels(&[("env", "prod"), ("region", "us")])));
        assert!(sel.matches(&labels(&[("env", "staging")])));
        assert!(!sel.matches(&labels(&[("env", "prod"), ("region", "eu")])));
        assert!(!sel.matches(&labels(&[("env", "prod"), ("replica", "0")])));
        assert!(!sel.matches(&labels(&[("env", "dev")])));
        assert!(Selector::default().matches(&labels(&[])));
    }

    #[test]
    fn display_round_trips() {
        for input in [r#"env=~"prod.*""#, r#"a!="q\"b\\\n\u0001""#, r#""service.name"="x""#, r#"a!~"""#] {
            let parsed = parse_one(input);
            assert_eq!(parsed.to_string(), input);
            assert_eq!(parse_one(&parsed.to_string()), parsed);
        }
        let sel: Selector = "a=b,c!~d".parse().unwrap();
        assert_eq!(sel.to_string(), r#"{a="b", c!~"d"}"#);
    }

    #[test]
    fn rejects_bad_input_naming_it() {
        let cases: &[(&str, &str)] = &[
            ("", "no matchers"),
            ("   ", "no matchers"),
            ("{}", "no matchers"),
            ("{ , }", "expected a label name"),
            ("a", "expected an operator"),
            (r#"a "b""#, "expected an operator"),
            (r#"a:"b""#, "not a valid label name"),
            ("a=", "expected a label value"),
            (r#"a=="b""#, "expected a label value"),
            (r#"a="b"#, "unterminated"),
            (r#"a="b\""#, "unterminated"),
            ("a='b", "unterminated"),
            ("a=`b", "unterminated"),
            ("a=\"b\nc\"", "unterminated"),
            (r#"{a=~"("}"#, "invalid regex"),
            (r#"a=~"a)|(b""#, "invalid regex"),
            (r#"a!~"[z-a]""#, "invalid regex"),
            (r#"1a="b""#, "not a valid label name"),
            (r#"a-b="c""#, "not a valid label name"),
            (r#"""="c""#, "label name is empty"),
            (r#"{a="b""#, "missing closing '}'"),
            (r#"{a="b" c="d"}"#, "unexpected"),
            (r#"a="b"c"#, "unexpected \"c\""),
            (r#"a="b" "c""#, "unexpected"),
            (r#"a="b"}"#, "unexpected \"}\""),
            (r#"{a="b"} x"#, "unexpected \"x\""),
            ("a=b c", "unexpected \"c\""),
            (r#"a="\q""#, "unknown escape"),
            (r#"a="\x4""#, "hex digits"),
            (r#"a="\400""#, "octal"),
            (r#"a="\ud800""#, "Unicode scalar"),
            (r#"a="\xff""#, "UTF-8"),
        ];
        for (input, want) in cases {
            let err = parse_matchers(input).expect_err(input).to_string();
            assert!(err.contains(&format!("{input:?}")), "{input:?}: error {err:?} does not name the input");
            assert!(err.contains(want), "{input:?}: error {err:?} does not mention {want:?}");
        }
    }

    #[test]
    fn new_reports_bad_regex() {
        let err = Matcher::new("a", MatchOp::RegexMatch, "(").unwrap_err();
        assert!(matches!(&err, MatcherError::BadRegex { regex, .. } if regex == "("));
        assert!(err.to_string().starts_with(r#"invalid matcher "a=~\"(\"""#), "{err}");
        assert!(Matcher::new("a", MatchOp::Equal, "(").is_ok(), "equality values are not regexes");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let pieces = ["{", "}", ",", "=", "!", "~", "\"", "'", "`", "\\", "a", " ", "é", "\n", "x", "("];
        // Every string of up to four pieces: enough to hit each grammar branch with truncations and junk.
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            inputs = inputs.iter().flat_map(|s| pieces.iter().map(move |p| format!("{s}{p}"))).collect();
            for input in &inputs {
                let _ = parse_matchers(input);
            }
        }
    }
}
