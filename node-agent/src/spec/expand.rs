//! `$(VAR)` expansion in command, args, env values and subPathExpr, as kubelet does it.
//!
//! Rules (from Kubernetes' `third_party/forked/golang/expansion`):
//! - `$(NAME)` is replaced by NAME's value when NAME is known, and kept verbatim otherwise;
//! - `$$` is an escaped `$`;
//! - a `$(` with no closing `)` and a `$` before any other character are kept verbatim.

/// Expand `input` with `lookup` giving the value of a name, or `None` when unknown.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        match after.as_bytes().first() {
            Some(b'$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some(b'(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            // A lone `$` (also at the very end) is literal; the next character is copied by the
            // next iteration.
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ex(input: &str) -> String {
        let vars: HashMap<&str, &str> = [("VAR_A", "A"), ("VAR_B", "B"), ("EMPTY", "")].into_iter().collect();
        expand(input, |n| vars.get(n).map(|v| v.to_string()))
    }

    #[test]
    fn expansion_table() {
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_A)___", "___A___"),
            ("$(VAR_A)$(VAR_B)", "AB"),
            ("$(EMPTY)x", "x"),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$(VAR_A", "$(VAR_A"),
            ("$VAR_A", "$VAR_A"),
            ("$", "$"),
            ("x$", "x$"),
            ("$()", "$()"),
            ("$($(VAR_A))", "$($(VAR_A))"),
            ("ünï$(VAR_B)cödé$é", "ünïBcödé$é"),
            ("no vars", "no vars"),
        ];
        for (input, want) in cases {
            assert_eq!(ex(input), want, "input {input:?}");
        }
    }
}
