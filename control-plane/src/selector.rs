//! Label and field selectors, as the Kubernetes API accepts them in `?labelSelector=` and
//! `?fieldSelector=` and as objects carry them (`spec.selector`, a `metav1.LabelSelector`).
//!
//! Pure: strings and JSON in, decisions out. The semantics follow apimachinery's `pkg/labels` and
//! `pkg/fields`, and the per-resource field labels follow the `AddFieldLabelConversionFunc`
//! registrations and `ToSelectableFields` functions of kubernetes/kubernetes (`pkg/apis/*/v1`,
//! `pkg/registry/*`):
//!
//! - a label selector is a conjunction of requirements: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
//!   `k notin (a,b)`, `k`, `!k`, and the numeric `k>n`, `k<n`. `!=` and `notin` also match objects
//!   without the label. The empty selector matches everything.
//! - a field selector is a conjunction of `f=v`, `f==v`, `f!=v`; `\,`, `\=` and `\\` escape those
//!   characters in values. A field the object lacks compares as `""` (so `spec.nodeName=` selects
//!   unscheduled pods), except the few Kubernetes renders from a typed zero value (`false`, `0`).
//! - which field labels a resource accepts is per resource ([`supported_fields`]); anything else is
//!   refused with Kubernetes' `field label not supported: <label>`.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};
use thiserror::Error;

/// Why a selector was refused. The texts are Kubernetes' where it has one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// A `labelSelector` string that does not parse or names an invalid key or value.
    #[error("{message}")]
    InvalidLabelSelector { selector: String, message: String },
    /// A `metav1.LabelSelector` object with a bad field; `field` is relative to the selector
    /// (`matchExpressions[0].operator`), so a caller can prefix its own path.
    #[error("{field}: {message}")]
    InvalidLabelSelectorObject { field: String, message: String },
    /// A `fieldSelector` string that does not parse.
    #[error("{message}")]
    InvalidFieldSelector { selector: String, message: String },
    /// A field selector naming a field the resource cannot be selected by.
    #[error("field label not supported: {label}")]
    FieldLabelNotSupported { label: String },
}

// ---------------------------------------------------------------------------------------------
// Key and value validation (apimachinery `validate/content`: IsLabelKey, IsLabelValue).
// ---------------------------------------------------------------------------------------------

const LABEL_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const LABEL_NAME_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
                               or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                                     characters, '-' or '.', and must start and end with an alphanumeric character";

/// Kubernetes' `RegexError`: the message, examples, and the regex, in its exact punctuation.
fn regex_error(msg: &str, re: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{example}', "));
    }
    out.push_str(&format!("regex used for validation is '{re}')"));
    out
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.split('.').all(|label| {
        let b = label.as_bytes();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                lower_alnum(first) && lower_alnum(last) && b.iter().all(|c| lower_alnum(c) || *c == b'-')
            }
            _ => false,
        }
    })
}

fn label_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX {
                    errs.push(format!(
                        "prefix part must be no more than {DNS1123_SUBDOMAIN_MAX} bytes"
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"])
                    ));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_NAME_MSG, LABEL_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > LABEL_NAME_MAX {
        errs.push(format!("name part must be no more than {LABEL_NAME_MAX} bytes"));
    }
    if !is_label_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(LABEL_NAME_MSG, LABEL_NAME_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errs.push(format!("must be no more than {LABEL_VALUE_MAX} bytes"));
    }
    if !value.is_empty() && !is_label_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Checks a label (or annotation) key: an optional DNS-1123 subdomain prefix and `/`, then a name
/// of at most 63 characters. The error is Kubernetes' text, several problems joined by `"; "`.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let errs = label_key_errors(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Checks a label value: empty, or at most 63 characters of the label-name alphabet.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    let errs = label_value_errors(value);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

// ---------------------------------------------------------------------------------------------
// Label selectors.
// ---------------------------------------------------------------------------------------------

/// The operator of one label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelOperator {
    /// `k=v` and `k==v`.
    Equals,
    /// `k!=v`: also true when the label is absent.
    NotEquals,
    /// `k in (a,b)`.
    In,
    /// `k notin (a,b)`: also true when the label is absent.
    NotIn,
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>n`: the label parses as an integer greater than `n`.
    GreaterThan,
    /// `k<n`.
    LessThan,
}

/// One ANDed term of a [`LabelSelector`]. `values` is sorted and free of duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub operator: LabelOperator,
    pub values: Vec<String>,
}

impl LabelRequirement {
    fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = labels.get(&self.key).and_then(label_text);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            LabelOperator::Equals | LabelOperator::In => value.is_some_and(|v| has(&v)),
            LabelOperator::NotEquals | LabelOperator::NotIn => value.is_none_or(|v| !has(&v)),
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match self.operator {
            LabelOperator::Equals => write!(f, "{key}={}", self.values.join("")),
            LabelOperator::NotEquals => write!(f, "{key}!={}", self.values.join("")),
            LabelOperator::GreaterThan => write!(f, "{key}>{}", self.values.join("")),
            LabelOperator::LessThan => write!(f, "{key}<{}", self.values.join("")),
            LabelOperator::In => write!(f, "{key} in ({})", self.values.join(",")),
            LabelOperator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
            LabelOperator::Exists => write!(f, "{key}"),
            LabelOperator::DoesNotExist => write!(f, "!{key}"),
        }
    }
}

/// A label value as text; a label map should hold only strings, anything else is rendered.
fn label_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Null => None,
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// A parsed label selector: requirements sorted by key, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<LabelRequirement>,
    /// A nil `metav1.LabelSelector` selects nothing, unlike an empty one.
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object (what a missing `metav1.LabelSelector` means).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses Kubernetes' label selector syntax; `""` matches everything.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(s);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = parser.parse().map_err(|message| SelectorError::InvalidLabelSelector {
            selector: s.to_string(),
            message,
        })?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Converts a `metav1.LabelSelector` (`matchLabels`, `matchExpressions`). `null` selects
    /// nothing; `{}` selects everything.
    pub fn from_label_selector_json(v: &Value) -> Result<LabelSelector, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError::InvalidLabelSelectorObject {
                    field: String::new(),
                    message: format!("Invalid value: {other}: must be an object"),
                })
            }
        };
        let bad = |field: String, message: String| SelectorError::InvalidLabelSelectorObject { field, message };
        let mut requirements = Vec::new();

        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Value::String(value) = value else {
                        return Err(bad(
                            format!("matchLabels[{key}]"),
                            format!("Invalid value: {value}: must be a string"),
                        ));
                    };
                    check_key(key).map_err(|m| bad("matchLabels".into(), m))?;
                    check_value(value).map_err(|m| bad(format!("matchLabels[{key}]"), m))?;
                    requirements.push(LabelRequirement {
                        key: key.clone(),
                        operator: LabelOperator::Equals,
                        values: vec![value.clone()],
                    });
                }
            }
            Some(other) => {
                return Err(bad(
                    "matchLabels".into(),
                    format!("Invalid value: {other}: must be an object"),
                ));
            }
        }

        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    requirements.push(requirement_from_json(i, expr)?);
                }
            }
            Some(other) => {
                return Err(bad(
                    "matchExpressions".into(),
                    format!("Invalid value: {other}: must be a list"),
                ));
            }
        }

        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// True for the selector that matches everything (`""`, `{}`); false for [`Self::nothing`].
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    /// True for the selector that matches nothing.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    /// `key`, `value` when this selector is exactly `key=value` (`matchLabels` with one entry):
    /// what an index of label counts can answer without a scan.
    pub fn single_equality(&self) -> Option<(&str, &str)> {
        match (self.nothing, self.requirements.as_slice()) {
            (false, [r]) if matches!(r.operator, LabelOperator::Equals | LabelOperator::In) && r.values.len() == 1 => {
                Some((r.key.as_str(), r.values[0].as_str()))
            }
            _ => None,
        }
    }

    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// Whether a label map (`metadata.labels`, string values) satisfies every requirement.
    pub fn matches(&self, labels: &Map<String, Value>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// [`Self::matches`] against an object's `metadata.labels` (absent = no labels).
    pub fn matches_object(&self, obj: &Value) -> bool {
        match obj.pointer("/metadata/labels") {
            Some(Value::Object(labels)) => self.matches(labels),
            _ => self.matches(&Map::new()),
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form (requirements sorted by key), which [`LabelSelector::parse`]
    /// reads back. The "nothing" selector has no string form and renders as `""`, like Kubernetes'.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn check_key(key: &str) -> Result<(), String> {
    validate_label_key(key).map_err(|m| format!("Invalid value: {key:?}: {m}"))
}

fn check_value(value: &str) -> Result<(), String> {
    validate_label_value(value).map_err(|m| format!("Invalid value: {value:?}: {m}"))
}

fn requirement_from_json(i: usize, expr: &Value) -> Result<LabelRequirement, SelectorError> {
    let at = |sub: &str| format!("matchExpressions[{i}]{sub}");
    let bad = |field: String, message: String| SelectorError::InvalidLabelSelectorObject { field, message };
    let Value::Object(expr) = expr else {
        return Err(bad(at(""), format!("Invalid value: {expr}: must be an object")));
    };
    let key = match expr.get("key") {
        Some(Value::String(k)) => k.clone(),
        None | Some(Value::Null) => return Err(bad(at(".key"), "Required value".into())),
        Some(other) => return Err(bad(at(".key"), format!("Invalid value: {other}: must be a string"))),
    };
    check_key(&key).map_err(|m| bad(at(".key"), m))?;
    let operator = match expr.get("operator") {
        Some(Value::String(op)) => match op.as_str() {
            "In" => LabelOperator::In,
            "NotIn" => LabelOperator::NotIn,
            "Exists" => LabelOperator::Exists,
            "DoesNotExist" => LabelOperator::DoesNotExist,
            _ => {
                return Err(bad(
                    at(".operator"),
                    format!("{op:?} is not a valid label selector operator"),
                ));
            }
        },
        None | Some(Value::Null) => return Err(bad(at(".operator"), "Required value".into())),
        Some(other) => {
            return Err(bad(
                at(".operator"),
                format!("Invalid value: {other}: must be a string"),
            ))
        }
    };
    let mut values = Vec::new();
    match expr.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(vs)) => {
            for (j, v) in vs.iter().enumerate() {
                let Value::String(v) = v else {
                    return Err(bad(
                        at(&format!(".values[{j}]")),
                        format!("Invalid value: {v}: must be a string"),
                    ));
                };
                check_value(v).map_err(|m| bad(at(&format!(".values[{j}]")), m))?;
                values.push(v.clone());
            }
        }
        Some(other) => return Err(bad(at(".values"), format!("Invalid value: {other}: must be a list"))),
    }
    match operator {
        LabelOperator::In | LabelOperator::NotIn if values.is_empty() => {
            return Err(bad(
                at(".values"),
                "Required value: must be specified when `operator` is 'In' or 'NotIn'".into(),
            ));
        }
        LabelOperator::Exists | LabelOperator::DoesNotExist if !values.is_empty() => {
            return Err(bad(
                at(".values"),
                "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'".into(),
            ));
        }
        _ => {}
    }
    values.sort();
    values.dedup();
    Ok(LabelRequirement { key, operator, values })
}

/// A token of the label selector language, with the text it was read from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    In,
    NotIn,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
    /// A run of special characters that is no operator (`!!` cannot happen: `!` is one token).
    Bad(String),
}

impl Tok {
    fn text(&self) -> &str {
        match self {
            Tok::Ident(s) | Tok::Bad(s) => s,
            Tok::In => "in",
            Tok::NotIn => "notin",
            Tok::Not => "!",
            Tok::Eq => "=",
            Tok::DoubleEq => "==",
            Tok::NotEq => "!=",
            Tok::Gt => ">",
            Tok::Lt => "<",
            Tok::Open => "(",
            Tok::Close => ")",
            Tok::Comma => ",",
            Tok::End => "",
        }
    }

    /// In value (and key) position the keywords `in`/`notin` are plain identifiers.
    fn as_value(&self) -> Option<&str> {
        match self {
            Tok::Ident(s) => Some(s),
            Tok::In => Some("in"),
            Tok::NotIn => Some("notin"),
            _ => None,
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(s: &str) -> Vec<Tok> {
    let mut tokens = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(is_space);
        let Some(c) = rest.chars().next() else {
            tokens.push(Tok::End);
            return tokens;
        };
        if is_special(c) {
            let (tok, len) = if rest.starts_with("!=") {
                (Tok::NotEq, 2)
            } else if rest.starts_with("==") {
                (Tok::DoubleEq, 2)
            } else {
                let tok = match c {
                    '=' => Tok::Eq,
                    '!' => Tok::Not,
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    ',' => Tok::Comma,
                    '>' => Tok::Gt,
                    '<' => Tok::Lt,
                    other => Tok::Bad(other.to_string()),
                };
                (tok, 1)
            };
            tokens.push(tok);
            rest = &rest[len..];
        } else {
            let end = rest.find(|c| is_special(c) || is_space(c)).unwrap_or(rest.len());
            let word = &rest[..end];
            tokens.push(match word {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident(word.to_string()),
            });
            rest = &rest[end..];
        }
    }
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).unwrap_or(&Tok::End)
    }

    fn next(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        tok
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let tok = self.peek();
            if tok.as_value().is_some() || *tok == Tok::Not {
                let r = self
                    .requirement()
                    .map_err(|e| format!("unable to parse requirement: {e}"))?;
                requirements.push(r);
                match self.next() {
                    Tok::End => return Ok(requirements),
                    Tok::Comma => {
                        let after = self.peek();
                        if after.as_value().is_none() && *after != Tok::Not {
                            return Err(format!("found '{}', expected: identifier after ','", after.text()));
                        }
                    }
                    other => return Err(format!("found '{}', expected: ',' or 'end of string'", other.text())),
                }
            } else if *tok == Tok::End {
                return Ok(requirements);
            } else {
                return Err(format!(
                    "found '{}', expected: !, identifier, or 'end of string'",
                    tok.text()
                ));
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement, String> {
        let mut tok = self.next();
        let negated = tok == Tok::Not;
        if negated {
            tok = self.next();
        }
        let Some(key) = tok.as_value().map(str::to_string) else {
            return Err(format!("found '{}', expected: identifier", tok.text()));
        };
        if let Err(m) = validate_label_key(&key) {
            return Err(format!("key: Invalid value: {key:?}: {m}"));
        }
        if negated || matches!(self.peek(), Tok::End | Tok::Comma) {
            let operator = if negated {
                LabelOperator::DoesNotExist
            } else {
                LabelOperator::Exists
            };
            return Ok(LabelRequirement {
                key,
                operator,
                values: Vec::new(),
            });
        }
        let operator = match self.next() {
            Tok::In => LabelOperator::In,
            Tok::NotIn => LabelOperator::NotIn,
            Tok::Eq | Tok::DoubleEq => LabelOperator::Equals,
            Tok::NotEq => LabelOperator::NotEquals,
            Tok::Gt => LabelOperator::GreaterThan,
            Tok::Lt => LabelOperator::LessThan,
            other => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    other.text()
                ))
            }
        };
        let mut values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        values.sort();
        values.dedup();
        if matches!(operator, LabelOperator::GreaterThan | LabelOperator::LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    return Err(format!(
                        "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            if let Err(m) = validate_label_value(v) {
                return Err(format!("values[{i}][{key}]: Invalid value: {v:?}: {m}"));
            }
        }
        Ok(LabelRequirement { key, operator, values })
    }

    /// `(a,b,c)`; empty members (`(a,,b)`, `(,a)`, `()`) stand for the empty value, as in Kubernetes.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let open = self.next();
        if open != Tok::Open {
            return Err(format!("found '{}' expected: '('", open.text()));
        }
        let mut values = Vec::new();
        // `expect_value` is true right after `(` or `,`: a `,` or `)` there means an empty member.
        let mut expect_value = true;
        loop {
            let tok = self.next();
            if let Some(v) = tok.as_value() {
                if !expect_value {
                    return Err(format!("found '{}', expected: ',' or ')'", tok.text()));
                }
                values.push(v.to_string());
                expect_value = false;
                continue;
            }
            match tok {
                Tok::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Tok::Close => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                other if expect_value => {
                    return Err(format!("found '{}', expected: ',', ')' or identifier", other.text()));
                }
                other => return Err(format!("found '{}', expected: ',' or ')'", other.text())),
            }
        }
    }

    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(), Tok::End | Tok::Comma) {
            return Ok(String::new());
        }
        let tok = self.next();
        match tok.as_value() {
            Some(v) => Ok(v.to_string()),
            None => Err(format!("found '{}', expected: identifier", tok.text())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors.
// ---------------------------------------------------------------------------------------------

/// `=`/`==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    NotEquals,
}

/// One ANDed term of a [`FieldSelector`]; `value` is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// A parsed field selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `f=v,g!=w`; `""` matches everything. Terms are not trimmed, as in Kubernetes.
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let bad = |message: String| SelectorError::InvalidFieldSelector {
            selector: s.to_string(),
            message,
        };
        let mut terms = split_unescaped_commas(s);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((field, operator, raw)) = split_term(term) else {
                return Err(bad(format!("invalid selector: '{s}'; can't understand '{term}'")));
            };
            let value = unescape_value(raw).map_err(bad)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value `field` must equal, if the selector pins it (`spec.nodeName=n1`): lets a caller
    /// use an index instead of a scan.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Whether the object (its JSON, as served) satisfies every term.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let have = field_value(obj, &r.field);
            match r.operator {
                FieldOperator::Equals => have == r.value,
                FieldOperator::NotEquals => have != r.value,
            }
        })
    }

    /// Refuses fields the resource cannot be selected by, with Kubernetes' message.
    pub fn check_supported(&self, group: &str, plural: &str) -> Result<(), SelectorError> {
        let supported = supported_fields(group, plural);
        match self
            .requirements
            .iter()
            .find(|r| !supported.contains(&r.field.as_str()))
        {
            Some(r) => Err(SelectorError::FieldLabelNotSupported { label: r.field.clone() }),
            None => Ok(()),
        }
    }
}

/// Splits on commas not preceded by a backslash escape; escapes stay in the terms.
fn split_unescaped_commas(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator; `!=` and `==` are tried before `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn unescape_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(format!("invalid field selector: invalid escape sequence: \\{e}")),
                None => return Err("invalid field selector: invalid escape sequence: \\".to_string()),
            },
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: '{c}'")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// The text a field label has on an object, as Kubernetes' `ToSelectableFields` computes it.
///
/// Most labels are the JSON path itself. The exceptions come from the registry code: typed zero
/// values render as `false`/`0` rather than missing, some labels read another field
/// (`status.successful` is `status.succeeded`), and core and events.k8s.io Events spell the same
/// fields differently (`involvedObject`/`regarding`, `reportingComponent`/`reportingController`),
/// so both spellings are looked up whichever API version the object is stored in.
fn field_value(obj: &Value, label: &str) -> String {
    let get = |path: &str| lookup(obj, path).filter(|v| !v.is_null());
    let first = |paths: &[&str]| {
        paths
            .iter()
            .filter_map(|p| get(p))
            .map(scalar_text)
            .find(|s| !s.is_empty())
            .unwrap_or_default()
    };
    match label {
        "spec.hostNetwork" | "spec.unschedulable" => get(label).map_or_else(|| "false".into(), scalar_text),
        "status.replicas" => get(label).map_or_else(|| "0".into(), scalar_text),
        "status.successful" => get("status.succeeded").map_or_else(|| "0".into(), scalar_text),
        "status.podIP" => {
            let ip = first(&["status.podIP"]);
            if ip.is_empty() {
                first(&["status.podIPs.0.ip"])
            } else {
                ip
            }
        }
        "status.podIPs" => match get("status.podIPs") {
            Some(Value::Array(ips)) => ips
                .iter()
                .filter_map(|ip| ip.get("ip").map(scalar_text))
                .collect::<Vec<_>>()
                .join(","),
            _ => first(&["status.podIP"]),
        },
        "source" => first(&[
            "source.component",
            "deprecatedSource.component",
            "reportingComponent",
            "reportingController",
        ]),
        "reportingComponent" | "reportingController" => first(&["reportingComponent", "reportingController"]),
        _ => {
            if let Some(sub) = label
                .strip_prefix("involvedObject.")
                .or_else(|| label.strip_prefix("regarding."))
            {
                first(&[&format!("involvedObject.{sub}"), &format!("regarding.{sub}")])
            } else {
                get(label).map(scalar_text).unwrap_or_default()
            }
        }
    }
}

/// Follows a dotted path; a numeric segment indexes an array.
fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(obj, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// Scalars as Kubernetes prints them (`true`, `5`); a non-scalar, which no supported label points
/// at, compares as its compact JSON.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The field labels a resource can be selected by, per Kubernetes' field label conversion
/// functions. Every resource accepts `metadata.name`; namespaced ones and those without their own
/// conversion function also accept `metadata.namespace` (Nodes and Namespaces register their own
/// function without it, so Kubernetes refuses `metadata.namespace` there).
///
/// ReplicaSet's `status.replicas` is listed in the Kubernetes documentation and computed by its
/// registry, but the apps/v1 conversion function was never registered (kubernetes#135136); skiff
/// accepts it as documented.
pub fn supported_fields(group: &str, plural: &str) -> Vec<&'static str> {
    const META: &[&str] = &["metadata.name", "metadata.namespace"];
    let (base, extra): (&[&str], &[&str]) = match (group, plural) {
        ("", "pods") => (
            META,
            &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
            ],
        ),
        ("", "nodes") => (&["metadata.name"], &["spec.unschedulable"]),
        ("", "namespaces") => (&["metadata.name"], &["status.phase"]),
        ("", "secrets") => (META, &["type"]),
        ("", "services") => (META, &["spec.clusterIP", "spec.type"]),
        ("", "replicationcontrollers") | ("apps", "replicasets") => (META, &["status.replicas"]),
        ("", "events") => (
            META,
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
        ),
        ("events.k8s.io", "events") => (
            META,
            &[
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "regarding.apiVersion",
                "regarding.resourceVersion",
                "regarding.fieldPath",
                "reason",
                "reportingController",
                "source",
                "type",
            ],
        ),
        ("batch", "jobs") => (META, &["status.successful"]),
        ("certificates.k8s.io", "certificatesigningrequests") => (&["metadata.name"], &["spec.signerName"]),
        _ => (META, &[]),
    };
    base.iter().chain(extra).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn parse_err(s: &str) -> String {
        LabelSelector::parse(s).expect_err(s).to_string()
    }

    #[test]
    fn empty_selector_matches_everything() {
        let s = sel("");
        assert!(s.is_empty());
        assert!(s.matches(&Map::new()));
        assert!(s.matches(&labels(json!({"a": "b"}))));
        assert!(sel("   ").is_empty());
    }

    #[test]
    fn equality_operators() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(!sel("app=db").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(!sel("app!=web").matches(&l));
        assert!(sel("app=web,tier=front").matches(&l));
        assert!(!sel("app=web,tier=back").matches(&l));
    }

    #[test]
    fn not_equals_and_notin_match_a_missing_key() {
        let l = labels(json!({"app": "web"}));
        assert!(sel("env!=prod").matches(&l));
        assert!(sel("env notin (prod,staging)").matches(&l));
        assert!(!sel("env in (prod,staging)").matches(&l));
        assert!(!sel("env=prod").matches(&l));
    }

    #[test]
    fn set_operators() {
        let l = labels(json!({"env": "prod"}));
        assert!(sel("env in (prod,staging)").matches(&l));
        assert!(sel("env in (staging, prod)").matches(&l));
        assert!(!sel("env notin (prod)").matches(&l));
        assert!(sel("env notin (dev,qa)").matches(&l));
    }

    #[test]
    fn exists_and_does_not_exist() {
        let l = labels(json!({"env": ""}));
        assert!(sel("env").matches(&l));
        assert!(!sel("!env").matches(&l));
        assert!(sel("!other").matches(&l));
        assert!(!sel("other").matches(&l));
        assert!(sel("env,!other").matches(&l));
    }

    #[test]
    fn empty_values() {
        let l = labels(json!({"a": ""}));
        assert!(sel("a=").matches(&l));
        assert!(sel("a=,b!=").matches(&l));
        let s = sel("x in (foo,,baz)");
        assert_eq!(s.requirements()[0].values, vec!["", "baz", "foo"]);
        assert_eq!(sel("x in ()").requirements()[0].values, vec![""]);
        assert_eq!(sel("x in (,a)").requirements()[0].values, vec!["", "a"]);
        assert_eq!(sel("x in (a,)").requirements()[0].values, vec!["", "a"]);
    }

    #[test]
    fn whitespace_tolerant() {
        let s = sel("  app = web ,  env   in(  a , b ) ,!  gone , tier!=x\t");
        assert_eq!(s.requirements().len(), 4);
        assert_eq!(s.to_string(), "app=web,env in (a,b),!gone,tier!=x");
        assert!(s.matches(&labels(json!({"app": "web", "env": "b"}))));
    }

    #[test]
    fn keywords_can_be_keys_and_values() {
        let s = sel("in in (in,notin)");
        assert_eq!(s.requirements()[0].key, "in");
        assert!(s.matches(&labels(json!({"in": "notin"}))));
        assert!(sel("notin=in").matches(&labels(json!({"notin": "in"}))));
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(json!({"gen": "5"}));
        assert!(sel("gen>4").matches(&l));
        assert!(!sel("gen>5").matches(&l));
        assert!(sel("gen<6").matches(&l));
        assert!(!sel("missing<6").matches(&l));
        assert!(!sel("gen>4").matches(&labels(json!({"gen": "x"}))));
        assert!(parse_err("gen>x").contains("for 'Gt', 'Lt' operators, the value must be an integer"));
    }

    #[test]
    fn prefixed_keys() {
        let s = sel("app.kubernetes.io/name=web,kubernetes.io/os in (linux)");
        assert!(s.matches(&labels(
            json!({"app.kubernetes.io/name": "web", "kubernetes.io/os": "linux"})
        )));
    }

    #[test]
    fn syntax_errors_name_the_token() {
        assert_eq!(parse_err("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            parse_err(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            parse_err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            parse_err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("a in (=)"),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            parse_err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(parse_err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(parse_err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            parse_err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            parse_err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
    }

    #[test]
    fn invalid_key_errors() {
        let e = parse_err("-bad=x");
        assert!(
            e.starts_with("unable to parse requirement: key: Invalid value: \"-bad\": name part must consist of"),
            "{e}"
        );
        let e = parse_err("Bad_Prefix/x=y");
        assert!(e.contains("prefix part a lowercase RFC 1123 subdomain"), "{e}");
        let e = parse_err("a/b/c");
        assert!(e.contains("a valid label key must consist of"), "{e}");
        let long = "k".repeat(64);
        assert!(parse_err(&long).contains("name part must be no more than 63 bytes"));
        assert!(parse_err("/x").contains("prefix part must be non-empty"));
    }

    #[test]
    fn invalid_value_errors() {
        let e = parse_err("app=-web");
        assert!(
            e.starts_with("unable to parse requirement: values[0][app]: Invalid value: \"-web\": a valid label"),
            "{e}"
        );
        let long = "v".repeat(64);
        assert!(parse_err(&format!("app={long}")).contains("must be no more than 63 bytes"));
        assert!(parse_err("app in (ok,b@d)").contains("values[0][app]: Invalid value: \"b@d\""));
    }

    #[test]
    fn key_and_value_validators() {
        assert_eq!(validate_label_key("app"), Ok(()));
        assert_eq!(validate_label_key("example.com/My_Name.1"), Ok(()));
        assert_eq!(validate_label_key("a"), Ok(()));
        assert_eq!(
            validate_label_key("-x"),
            Err(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with \
                 an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation \
                 is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                    .to_string()
            )
        );
        let both = validate_label_key("").unwrap_err();
        assert!(
            both.starts_with("name part must be non-empty; name part must consist"),
            "{both}"
        );
        assert!(validate_label_key("UPPER.com/x").is_err());
        assert!(validate_label_key(&format!("{}/x", "a".repeat(254)))
            .unwrap_err()
            .contains("253 bytes"));
        assert_eq!(validate_label_value(""), Ok(()));
        assert_eq!(validate_label_value("v1.2_3-x"), Ok(()));
        assert!(validate_label_value("a b")
            .unwrap_err()
            .contains("(e.g. 'MyValue',  or 'my_value',  or '12345'"));
        assert!(validate_label_value("x.").is_err());
        assert!(validate_label_value("é").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "a=b",
            "a!=b",
            "a in (x,y)",
            "a notin (x)",
            "a",
            "!a",
            "a>3",
            "a<3",
            "a=b,c in (d),!e",
        ] {
            let parsed = sel(s);
            assert_eq!(sel(&parsed.to_string()), parsed, "{s}");
        }
        assert_eq!(sel("b=1,a=2").to_string(), "a=2,b=1");
        assert_eq!(sel("a==b").to_string(), "a=b");
    }

    #[test]
    fn label_selector_object() {
        let s = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "zone", "operator": "Exists"}
            ]
        }))
        .unwrap();
        assert!(s.matches(&labels(json!({"app": "web", "env": "prod", "zone": "a"}))));
        assert!(!s.matches(&labels(
            json!({"app": "web", "env": "prod", "zone": "a", "canary": "1"})
        )));
        assert!(!s.matches(&labels(json!({"app": "web", "env": "dev", "zone": "a"}))));
        assert!(!s.matches(&labels(json!({"app": "web", "env": "prod", "zone": "a", "tier": "db"}))));
        assert_eq!(
            s.to_string(),
            "app=web,!canary,env in (prod,staging),tier notin (db),zone"
        );
    }

    #[test]
    fn empty_and_null_label_selector_objects() {
        let empty = LabelSelector::from_label_selector_json(&json!({})).unwrap();
        assert!(empty.is_empty());
        assert!(empty.matches(&labels(json!({"x": "y"}))));
        let also_empty = LabelSelector::from_label_selector_json(&json!({"matchLabels": {}, "matchExpressions": []}));
        assert!(also_empty.unwrap().is_empty());
        let nothing = LabelSelector::from_label_selector_json(&Value::Null).unwrap();
        assert!(nothing.is_nothing());
        assert!(!nothing.is_empty());
        assert!(!nothing.matches(&Map::new()));
    }

    #[test]
    fn label_selector_object_errors() {
        let err = |v: Value| LabelSelector::from_label_selector_json(&v).unwrap_err().to_string();
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Foo", "values": ["x"]}]})),
            "matchExpressions[0].operator: \"Foo\" is not a valid label selector operator"
        );
        assert!(err(json!({"matchExpressions": [{"key": "a", "operator": "In"}]}))
            .starts_with("matchExpressions[0].values: Required value"));
        assert!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}))
                .starts_with("matchExpressions[0].values: Forbidden")
        );
        assert!(
            err(json!({"matchExpressions": [{"operator": "Exists"}]})).starts_with("matchExpressions[0].key: Required")
        );
        assert!(err(json!({"matchLabels": {"-a": "b"}})).starts_with("matchLabels: Invalid value: \"-a\": name part"));
        assert!(err(json!({"matchLabels": {"a": "b c"}})).starts_with("matchLabels[a]: Invalid value: \"b c\""));
        assert!(err(json!({"matchLabels": {"a": 1}})).starts_with("matchLabels[a]: Invalid value: 1"));
        assert!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "-no"]}]}))
                .starts_with("matchExpressions[0].values[1]: Invalid value: \"-no\"")
        );
        assert!(err(json!("app=web")).contains("must be an object"));
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web"}}});
        assert!(sel("app=web").matches_object(&pod));
        assert!(!sel("app=db").matches_object(&pod));
        assert!(sel("!app").matches_object(&json!({"metadata": {"name": "p"}})));
    }

    // --- field selectors ---

    fn fsel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn field_selector_parses_operators() {
        let s = fsel("metadata.name=a,status.phase!=Running,spec.nodeName==n1");
        let reqs = s.requirements();
        assert_eq!(reqs.len(), 3);
        assert_eq!(s.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(s.requires_exact_match("status.phase"), None);
        assert!(fsel("").is_empty());
        assert!(fsel(",,").is_empty());
    }

    #[test]
    fn field_selector_matches_object_paths() {
        let pod = json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"nodeName": "n1", "hostNetwork": true, "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
        });
        assert!(fsel("metadata.name=web-1").matches(&pod));
        assert!(fsel("metadata.name=web-1,metadata.namespace=default").matches(&pod));
        assert!(!fsel("metadata.name=web-2").matches(&pod));
        assert!(fsel("status.phase!=Pending").matches(&pod));
        assert!(fsel("spec.hostNetwork=true").matches(&pod));
        assert!(fsel("status.podIP=10.0.0.5").matches(&pod));
        assert!(fsel(r"status.podIPs=10.0.0.5\,fd00::5").matches(&pod));
        assert!(!fsel("spec.restartPolicy=Never").matches(&pod));
    }

    #[test]
    fn missing_field_compares_as_empty() {
        let pending = json!({"metadata": {"name": "p"}, "spec": {}});
        let scheduled = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        assert!(fsel("spec.nodeName=").matches(&pending));
        assert!(!fsel("spec.nodeName=").matches(&scheduled));
        assert!(fsel("spec.nodeName!=").matches(&scheduled));
        assert!(fsel("metadata.namespace=").matches(&json!({"metadata": {"name": "node-1"}})));
        assert!(fsel("spec.nodeName=").matches(&json!({})));
    }

    #[test]
    fn typed_zero_values() {
        let pod = json!({"spec": {}});
        assert!(fsel("spec.hostNetwork=false").matches(&pod));
        assert!(fsel("spec.unschedulable=false").matches(&json!({"spec": {}})));
        assert!(fsel("spec.unschedulable=true").matches(&json!({"spec": {"unschedulable": true}})));
        assert!(fsel("status.replicas=0").matches(&json!({"status": {}})));
        assert!(fsel("status.replicas=3").matches(&json!({"status": {"replicas": 3}})));
        assert!(fsel("status.successful=2").matches(&json!({"status": {"succeeded": 2}})));
    }

    #[test]
    fn pod_ips() {
        let only_list = json!({"status": {"podIPs": [{"ip": "10.1.1.1"}]}});
        assert!(fsel("status.podIP=10.1.1.1").matches(&only_list));
        assert!(fsel("status.podIPs=10.1.1.1").matches(&only_list));
        let dual = json!({"status": {"podIP": "10.1.1.1", "podIPs": [{"ip": "10.1.1.1"}, {"ip": "fd00::1"}]}});
        assert_eq!(field_value(&dual, "status.podIPs"), "10.1.1.1,fd00::1");
        assert!(fsel("status.podIPs=10.1.1.1\\,fd00::1").matches(&dual));
    }

    #[test]
    fn event_fields_in_both_api_versions() {
        let core = json!({
            "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            "reason": "Scheduled", "type": "Normal",
            "source": {"component": "default-scheduler"},
            "reportingComponent": "default-scheduler"
        });
        let events_v1 = json!({
            "regarding": {"kind": "Pod", "name": "web-1", "namespace": "default"},
            "reason": "Scheduled", "type": "Normal",
            "reportingController": "default-scheduler"
        });
        for ev in [&core, &events_v1] {
            assert!(fsel("involvedObject.kind=Pod,involvedObject.name=web-1").matches(ev));
            assert!(fsel("regarding.name=web-1").matches(ev));
            assert!(fsel("source=default-scheduler").matches(ev));
            assert!(fsel("reportingComponent=default-scheduler").matches(ev));
            assert!(fsel("reportingController=default-scheduler,type=Normal,reason=Scheduled").matches(ev));
        }
    }

    #[test]
    fn field_selector_escapes() {
        let s = fsel(r"metadata.name=a\,b\=c\\d");
        assert_eq!(s.requirements()[0].value, r"a,b=c\d");
        assert!(s.matches(&json!({"metadata": {"name": r"a,b=c\d"}})));
        let err = |s: &str| FieldSelector::parse(s).unwrap_err().to_string();
        assert_eq!(err(r"a=b\x"), r"invalid field selector: invalid escape sequence: \x");
        assert_eq!(err(r"a=b\"), r"invalid field selector: invalid escape sequence: \");
        assert_eq!(
            err("a=b=c"),
            "invalid field selector: unescaped character in value: '='"
        );
        assert_eq!(
            err("a=b,nonsense"),
            "invalid selector: 'a=b,nonsense'; can't understand 'nonsense'"
        );
    }

    #[test]
    fn field_selector_operator_split() {
        let s = fsel("a!=b");
        assert_eq!(s.requirements()[0].operator, FieldOperator::NotEquals);
        assert_eq!(s.requirements()[0].field, "a");
        let s = fsel("a==b");
        assert_eq!(s.requirements()[0].value, "b");
        let s = fsel("a=!b");
        assert_eq!(
            (s.requirements()[0].operator, s.requirements()[0].value.as_str()),
            (FieldOperator::Equals, "!b")
        );
    }

    #[test]
    fn booleans_and_numbers_compare_as_text() {
        let obj = json!({"spec": {"flag": false, "count": 12, "ratio": 0.5}});
        assert!(fsel("spec.flag=false").matches(&obj));
        assert!(fsel("spec.count=12").matches(&obj));
        assert!(fsel("spec.ratio=0.5").matches(&obj));
    }

    #[test]
    fn supported_field_lists() {
        let pods = supported_fields("", "pods");
        for f in [
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "status.podIPs",
            "status.nominatedNodeName",
        ] {
            assert!(pods.contains(&f), "{f}");
        }
        assert_eq!(
            supported_fields("", "nodes"),
            vec!["metadata.name", "spec.unschedulable"]
        );
        assert_eq!(
            supported_fields("", "namespaces"),
            vec!["metadata.name", "status.phase"]
        );
        assert_eq!(
            supported_fields("", "secrets"),
            vec!["metadata.name", "metadata.namespace", "type"]
        );
        assert_eq!(
            supported_fields("apps", "replicasets"),
            vec!["metadata.name", "metadata.namespace", "status.replicas"]
        );
        assert_eq!(
            supported_fields("apps", "deployments"),
            vec!["metadata.name", "metadata.namespace"]
        );
        assert_eq!(
            supported_fields("rbac.authorization.k8s.io", "clusterroles"),
            vec!["metadata.name", "metadata.namespace"]
        );
        assert!(supported_fields("", "events").contains(&"involvedObject.uid"));
        assert!(supported_fields("events.k8s.io", "events").contains(&"regarding.uid"));
        assert!(!supported_fields("events.k8s.io", "events").contains(&"involvedObject.uid"));
    }

    #[test]
    fn check_supported_uses_kubernetes_text() {
        assert_eq!(
            fsel("spec.nodeName=n1,status.phase=Running").check_supported("", "pods"),
            Ok(())
        );
        assert_eq!(
            fsel("status.hostIP=1.2.3.4")
                .check_supported("", "pods")
                .unwrap_err()
                .to_string(),
            "field label not supported: status.hostIP"
        );
        assert_eq!(
            fsel("spec.nodeName=n1").check_supported("apps", "deployments"),
            Err(SelectorError::FieldLabelNotSupported {
                label: "spec.nodeName".into()
            })
        );
        assert!(fsel("metadata.namespace=x").check_supported("", "nodes").is_err());
        assert!(fsel("spec.unschedulable=true").check_supported("", "nodes").is_ok());
        assert!(fsel("type=kubernetes.io/tls").check_supported("", "secrets").is_ok());
        assert!(fsel("").check_supported("", "pods").is_ok());
    }
}
