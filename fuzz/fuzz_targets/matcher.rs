//! Fuzzes `parse_matchers`, the parser of the `--matcher` flag, and the evaluation of
//! what it accepts (regex matching included) against label sets.

#![no_main]

use std::collections::BTreeMap;

use bucketflow_dataflows::{parse_matchers, MatchOp, Selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A flag value is a string: arbitrary bytes reach the parser only as valid UTF-8.
    let Ok(input) = std::str::from_utf8(data) else { return };
    let matchers = match parse_matchers(input) {
        Ok(matchers) => matchers,
        Err(e) => {
            // Every error names the whole input, so the message can be acted upon.
            let message = e.to_string();
            assert!(message.contains(&format!("{input:?}")), "{message}");
            return;
        }
    };
    assert!(!matchers.is_empty(), "{input:?} parsed to no matcher");

    for m in &matchers {
        // Equality matchers compare strings, regex matchers complement each other.
        match m.op {
            MatchOp::Equal => assert!(m.matches(Some(&m.value))),
            MatchOp::NotEqual => assert!(!m.matches(Some(&m.value))),
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => {}
        }
        for value in [None, Some(""), Some(m.value.as_str()), Some(m.name.as_str()), Some(input)] {
            let _ = m.matches(value);
        }
    }

    let selector = Selector { matchers: matchers.clone() };
    // Label sets: empty, every matcher's label set to its own value, and to the whole input.
    let own: BTreeMap<String, String> = matchers.iter().map(|m| (m.name.clone(), m.value.clone())).collect();
    let whole: BTreeMap<String, String> = matchers.iter().map(|m| (m.name.clone(), input.to_owned())).collect();
    for labels in [BTreeMap::new(), own, whole] {
        let all = matchers.iter().all(|m| m.matches(labels.get(&m.name).map(String::as_str)));
        assert_eq!(selector.matches(&labels), all);
    }

    // The printed form (used in logs and errors) parses back to the same matchers.
    let printed = selector.to_string();
    match parse_matchers(&printed) {
        Ok(reparsed) => assert_eq!(reparsed, matchers, "{input:?} printed as {printed:?}"),
        Err(e) => panic!("{input:?} printed as {printed:?}, which does not parse: {e}"),
    }
});
