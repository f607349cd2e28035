//! xl.cfg files: the syntax libxlu accepts (`KEY = VALUE` with strings, numbers and nested
//! lists, `KEY += VALUE`, `#` comments, `;` or newline between settings, lists spanning lines),
//! parsed into settings that keep their line numbers, and written back.
//!
//! Errors name the file and line (`/etc/xen/web.cfg:4: …`), like `xl` does.

use std::fmt;

/// A value of a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A quoted string (escapes resolved) and its line.
    Str(String, usize),
    /// A number as written (`64`, `0x1f`) and its line.
    Num(String, usize),
    /// A list (elements may be lists) and the line of its `[`.
    List(Vec<Value>, usize),
}

impl Value {
    /// The line the value starts on (1-based).
    pub fn line(&self) -> usize {
        match self {
            Value::Str(_, l) | Value::Num(_, l) | Value::List(_, l) => *l,
        }
    }

    /// The text of a string or number.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s, _) | Value::Num(s, _) => Some(s),
            Value::List(..) => None,
        }
    }

    /// The elements of a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(v, _) => Some(v),
            _ => None,
        }
    }

    /// The value in xl.cfg syntax (strings double-quoted and escaped).
    pub fn to_xl(&self) -> String {
        match self {
            Value::Str(s, _) => quote(s),
            Value::Num(n, _) => n.clone(),
            Value::List(items, _) => {
                if items.is_empty() {
                    return "[]".into();
                }
                let inner: Vec<String> = items.iter().map(Value::to_xl).collect();
                format!("[ {} ]", inner.join(", "))
            }
        }
    }
}

/// A string in xl.cfg syntax: double quotes, with `\\`, `\"` and control characters escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `KEY = VALUE` (or `KEY += VALUE`) statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// True for `+=` (appends to a list set earlier).
    pub append: bool,
    /// Line of the key.
    pub line: usize,
}

/// A parse error: file, line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The file (as given to [`XlConfig::parse`]).
    pub source: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A parsed xl.cfg file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlConfig {
    /// Where it came from (a path, used in messages).
    pub source: String,
    /// Every statement, in file order.
    pub settings: Vec<Setting>,
}

impl XlConfig {
    /// Parses xl.cfg text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<XlConfig, ParseError> {
        let tokens = lex(text).map_err(|(line, message)| ParseError {
            source: source.to_string(),
            line,
            message,
        })?;
        let settings = Parser { tokens, pos: 0 }
            .file()
            .map_err(|(line, message)| ParseError {
                source: source.to_string(),
                line,
                message,
            })?;
        Ok(XlConfig {
            source: source.to_string(),
            settings,
        })
    }

    /// The effective value of a key: the last `=`, with later `+=` lists appended.
    pub fn get(&self, key: &str) -> Option<Value> {
        let mut out: Option<Value> = None;
        for s in self.settings.iter().filter(|s| s.key == key) {
            match (&mut out, s.append, &s.value) {
                (Some(Value::List(items, _)), true, Value::List(more, _)) => {
                    items.extend(more.iter().cloned())
                }
                (Some(Value::List(items, _)), true, v) => items.push(v.clone()),
                _ => out = Some(s.value.clone()),
            }
        }
        out
    }

    /// The line of the setting that decides a key's value.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.settings
            .iter()
            .rev()
            .find(|s| s.key == key && !s.append)
            .or_else(|| self.settings.iter().rev().find(|s| s.key == key))
            .map(|s| s.line)
    }

    /// A string or number setting.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get(key).and_then(|v| v.as_str().map(str::to_string))
    }

    /// A list setting (a single string counts as a one-element list, as in libxl).
    pub fn get_list(&self, key: &str) -> Option<Vec<Value>> {
        match self.get(key)? {
            Value::List(items, _) => Some(items),
            v => Some(vec![v]),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Eq,
    PlusEq,
    Comma,
    Open,
    Close,
    Semi,
    Newline,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Num(n) => format!("`{n}`"),
            Tok::Eq => "`=`".into(),
            Tok::PlusEq => "`+=`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Open => "`[`".into(),
            Tok::Close => "`]`".into(),
            Tok::Semi => "`;`".into(),
            Tok::Newline => "the end of the line".into(),
        }
    }
}

type Lexed = Vec<(Tok, usize)>;

fn lex(text: &str) -> Result<Lexed, (usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\r' => i += 1,
            '\n' => {
                out.push((Tok::Newline, line));
                line += 1;
                i += 1;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '=' => {
                out.push((Tok::Eq, line));
                i += 1;
            }
            '+' if chars.get(i + 1) == Some(&'=') => {
                out.push((Tok::PlusEq, line));
                i += 2;
            }
            ',' => {
                out.push((Tok::Comma, line));
                i += 1;
            }
            '[' => {
                out.push((Tok::Open, line));
                i += 1;
            }
            ']' => {
                out.push((Tok::Close, line));
                i += 1;
            }
            ';' => {
                out.push((Tok::Semi, line));
                i += 1;
            }
            '"' | '\'' => {
                let (s, next) = string(&chars, i, line)?;
                out.push((Tok::Str(s), line));
                i = next;
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let ok = match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
                    Some(hex) => !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
                    None => word.chars().all(|c| c.is_ascii_digit()),
                };
                if !ok {
                    return Err((
                        line,
                        format!("`{word}` is not a number (quote strings: \"{word}\")"),
                    ));
                }
                out.push((Tok::Num(word), line));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                out.push((Tok::Ident(chars[start..i].iter().collect()), line));
            }
            c => return Err((line, format!("unexpected character `{c}`"))),
        }
    }
    Ok(out)
}

/// Lexes a quoted string starting at `chars[start]`; returns its value and the index after it.
fn string(chars: &[char], start: usize, line: usize) -> Result<(String, usize), (usize, String)> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err((line, "unterminated string".into()));
        };
        i += 1;
        match c {
            '\n' => {
                return Err((
                    line,
                    "unterminated string (strings end on their line)".into(),
                ))
            }
            c if c == quote => return Ok((out, i)),
            '\\' => {
                let Some(&e) = chars.get(i) else {
                    return Err((line, "unterminated string".into()));
                };
                i += 1;
                match e {
                    '"' | '\'' | '\\' => out.push(e),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'v' => out.push('\u{b}'),
                    'x' => {
                        let hex: String = chars[i..].iter().take(2).collect();
                        let v = u32::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == 2)
                            .ok_or((line, format!("invalid escape `\\x{hex}` in a string")))?;
                        out.push(char::from_u32(v).unwrap_or('?'));
                        i += 2;
                    }
                    '0'..='7' => {
                        let digits: String = chars[i - 1..]
                            .iter()
                            .take(3)
                            .take_while(|c| c.is_ascii_digit())
                            .collect();
                        let v = u32::from_str_radix(&digits, 8).unwrap_or(0);
                        out.push(char::from_u32(v).unwrap_or('?'));
                        i += digits.len() - 1;
                    }
                    other => return Err((line, format!("invalid escape `\\{other}` in a string"))),
                }
            }
            c => out.push(c),
        }
    }
}

struct Parser {
    tokens: Lexed,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&(Tok, usize)> {
        self.tokens.get(self.pos)
    }

    fn last_line(&self) -> usize {
        self.tokens.last().map(|t| t.1).unwrap_or(1)
    }

    fn file(mut self) -> Result<Vec<Setting>, (usize, String)> {
        let mut settings = Vec::new();
        while let Some((tok, line)) = self.peek().cloned() {
            self.pos += 1;
            let key = match tok {
                Tok::Newline | Tok::Semi => continue,
                Tok::Ident(k) => k,
                other => {
                    return Err((
                        line,
                        format!("expected a setting name, found {}", other.describe()),
                    ))
                }
            };
            let append = match self.peek().cloned() {
                Some((Tok::Eq, _)) => false,
                Some((Tok::PlusEq, _)) => true,
                Some((t, l)) => {
                    return Err((
                        l,
                        format!("expected `=` after `{key}`, found {}", t.describe()),
                    ))
                }
                None => return Err((line, format!("expected `=` after `{key}`"))),
            };
            self.pos += 1;
            let value = self.value(&key, line)?;
            match self.peek().cloned() {
                None | Some((Tok::Newline, _)) | Some((Tok::Semi, _)) => {}
                Some((t, l)) => {
                    return Err((
                        l,
                        format!(
                            "unexpected {} after the value of `{key}` (one setting per line, \
                             or separate them with `;`)",
                            t.describe()
                        ),
                    ))
                }
            }
            settings.push(Setting {
                key,
                value,
                append,
                line,
            });
        }
        Ok(settings)
    }

    fn value(&mut self, key: &str, key_line: usize) -> Result<Value, (usize, String)> {
        let Some((tok, line)) = self.peek().cloned() else {
            return Err((key_line, format!("`{key} =` has no value")));
        };
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok(Value::Str(s, line)),
            Tok::Num(n) => Ok(Value::Num(n, line)),
            Tok::Open => self.list(key, line),
            Tok::Ident(w) => Err((
                line,
                format!("`{key} = {w}`: strings need quotes (\"{w}\")"),
            )),
            Tok::Newline | Tok::Semi => Err((line, format!("`{key} =` has no value"))),
            other => Err((
                line,
                format!("expected a value for `{key}`, found {}", other.describe()),
            )),
        }
    }

    fn skip_newlines(&mut self) {
        while matches!(self.peek(), Some((Tok::Newline, _))) {
            self.pos += 1;
        }
    }

    fn list(&mut self, key: &str, open_line: usize) -> Result<Value, (usize, String)> {
        let mut items = Vec::new();
        let unterminated = |p: &Parser| {
            (
                p.last_line(),
                format!("the list of `{key}` opened on line {open_line} is not closed with `]`"),
            )
        };
        loop {
            self.skip_newlines();
            match self.peek().cloned() {
                None => return Err(unterminated(self)),
                Some((Tok::Close, _)) => {
                    self.pos += 1;
                    return Ok(Value::List(items, open_line));
                }
                Some(_) => {}
            }
            if let Some((t @ (Tok::Ident(_) | Tok::Eq | Tok::PlusEq | Tok::Semi), l)) =
                self.peek().cloned()
            {
                return Err((
                    l,
                    format!(
                        "expected a value or `]` in the list of `{key}` (opened on line \
                         {open_line}), found {}",
                        t.describe()
                    ),
                ));
            }
            items.push(self.value(key, open_line)?);
            self.skip_newlines();
            match self.peek().cloned() {
                None => return Err(unterminated(self)),
                Some((Tok::Comma, _)) => self.pos += 1,
                Some((Tok::Close, _)) => {
                    self.pos += 1;
                    return Ok(Value::List(items, open_line));
                }
                Some((t, l)) => {
                    return Err((
                        l,
                        format!(
                            "expected `,` or `]` in the list of `{key}` (opened on line \
                             {open_line}), found {}",
                            t.describe()
                        ),
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> XlConfig {
        XlConfig::parse(t, "t.cfg").unwrap()
    }

    fn err(t: &str) -> String {
        XlConfig::parse(t, "t.cfg").unwrap_err().to_string()
    }

    #[test]
    fn parses_strings_numbers_and_comments() {
        let c = parse(
            "# a guest\nname = \"web\" # trailing comment\nmemory=160; vcpus = 0x2\n\
             kernel = '/boot/vmlinux'\nextra = \"a\\\"b\\\\c\\tq\\x41\\101\"\n",
        );
        assert_eq!(c.get_str("name").as_deref(), Some("web"));
        assert_eq!(c.get_str("memory").as_deref(), Some("160"));
        assert_eq!(c.get_str("vcpus").as_deref(), Some("0x2"));
        assert_eq!(c.get_str("kernel").as_deref(), Some("/boot/vmlinux"));
        assert_eq!(c.get_str("extra").as_deref(), Some("a\"b\\c\tqAA"));
        assert_eq!(c.line_of("memory"), Some(3));
        assert_eq!(c.line_of("vcpus"), Some(3));
        assert_eq!(c.get("nothing"), None);
    }

    #[test]
    fn parses_multi_line_and_nested_lists() {
        let c = parse(
            "vif = [ 'backend=netdd,mac=00:16:3e:00:00:01',\n\
             \t'bridge=xenbr0',   # second\n\
             ]\n\
             vsnd = [[ 'card, backend=snd', 'pcm, name=p' ], ['card']]\n\
             disk = []\n",
        );
        let vif = c.get_list("vif").unwrap();
        assert_eq!(vif.len(), 2);
        assert_eq!(vif[1].as_str(), Some("bridge=xenbr0"));
        assert_eq!(vif[0].line(), 1);
        assert_eq!(vif[1].line(), 2);
        let vsnd = c.get_list("vsnd").unwrap();
        assert_eq!(vsnd[0].as_list().unwrap()[1].as_str(), Some("pcm, name=p"));
        assert_eq!(c.get_list("disk").unwrap(), vec![]);
        assert_eq!(c.line_of("vsnd"), Some(4));
    }

    #[test]
    fn last_setting_wins_and_plus_equals_appends() {
        let c = parse("vif = ['a']\nvif = ['b']\nvif += ['c']\nmemory = 1\nmemory = 2\n");
        let vif: Vec<_> = c
            .get_list("vif")
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(vif, ["b", "c"]);
        assert_eq!(c.get_str("memory").as_deref(), Some("2"));
        assert_eq!(c.line_of("memory"), Some(5));
        // A single string where a list is expected is a one-element list.
        let c = parse("vif = 'bridge=x'");
        assert_eq!(c.get_list("vif").unwrap().len(), 1);
    }

    #[test]
    fn errors_name_file_and_line() {
        assert_eq!(
            err("name = \"a\"\n\nvif = [ 'x'\nmemory = 3\n"),
            "t.cfg:4: expected `,` or `]` in the list of `vif` (opened on line 3), found `memory`"
        );
        assert_eq!(
            err("name = \"a\"\nvif = [ 'x',\n"),
            "t.cfg:2: the list of `vif` opened on line 2 is not closed with `]`"
        );
        assert_eq!(
            err("\nname \"a\""),
            "t.cfg:2: expected `=` after `name`, found a string"
        );
        assert_eq!(
            err("name = 'abc\n"),
            "t.cfg:1: unterminated string (strings end on their line)"
        );
        assert_eq!(
            err("type = pvh"),
            "t.cfg:1: `type = pvh`: strings need quotes (\"pvh\")"
        );
        assert_eq!(err("a = 1 2"), "t.cfg:1: unexpected `2` after the value of `a` (one setting per line, or separate them with `;`)");
        assert_eq!(err("a = \n"), "t.cfg:1: `a =` has no value");
        assert_eq!(
            err("a = 12ab"),
            "t.cfg:1: `12ab` is not a number (quote strings: \"12ab\")"
        );
        assert_eq!(err("a = 'x' @"), "t.cfg:1: unexpected character `@`");
        assert_eq!(
            err("a = '\\q'"),
            "t.cfg:1: invalid escape `\\q` in a string"
        );
        assert_eq!(err("= 3"), "t.cfg:1: expected a setting name, found `=`");
    }

    #[test]
    fn writes_values_back_in_xl_syntax() {
        let c = parse("vsnd = [['card, backend=\"x\"', 'pcm'], []]\nm = 0x10\n");
        let v = c.get("vsnd").unwrap();
        assert_eq!(
            v.to_xl(),
            "[ [ \"card, backend=\\\"x\\\"\", \"pcm\" ], [] ]"
        );
        let again = parse(&format!("vsnd = {}\n", v.to_xl()));
        assert_eq!(again.get("vsnd").unwrap().to_xl(), v.to_xl());
        assert_eq!(c.get("m").unwrap().to_xl(), "0x10");
        assert_eq!(quote("a\nb\u{1}"), "\"a\\nb\\x01\"");
    }
}
