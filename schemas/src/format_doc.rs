//! Keeps the worked examples of docs/FORMAT.md true. Each crate that writes bytes
//! owns a set of examples, marked in the document as `<!-- example:OWNER/NAME -->`
//! followed by a fenced block; its test calls [`check_examples`] with what its code
//! produces. `RITMA_BLESS=1` rewrites the blocks after a deliberate format change.

use std::collections::BTreeMap;
use std::path::Path;

const MARK: &str = "<!-- example:";

/// Panics (it is a test helper) unless every example of `owner` in `doc` equals
/// `examples`, and every one of `examples` appears in the document.
pub fn check_examples(doc: &Path, owner: &str, examples: &BTreeMap<String, String>) {
    let text = std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let mut out = String::new();
    let mut rest = text.as_str();
    let mut seen = Vec::new();
    let mut mismatches = Vec::new();
    while let Some(i) = rest.find(MARK) {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        let name_end = after.find(" -->").expect("unterminated example marker");
        let full_name = &after[MARK.len()..name_end];
        let fence = after[name_end..]
            .find("```\n")
            .expect("example without a code block")
            + name_end
            + 4;
        let close = after[fence..]
            .find("\n```")
            .expect("unterminated code block")
            + fence;
        out.push_str(&after[..fence]);
        match full_name
            .strip_prefix(owner)
            .and_then(|n| n.strip_prefix('/'))
        {
            Some(name) => {
                let want = examples
                    .get(name)
                    .unwrap_or_else(|| panic!("FORMAT.md names unknown example `{full_name}`"));
                if &after[fence..close] != want {
                    mismatches.push(name.to_owned());
                }
                out.push_str(want);
                seen.push(name.to_owned());
            }
            None => out.push_str(&after[fence..close]),
        }
        rest = &after[close..];
    }
    out.push_str(rest);
    if std::env::var_os("RITMA_BLESS").is_some() {
        std::fs::write(doc, out).expect("rewrite FORMAT.md");
        return;
    }
    let missing: Vec<_> = examples.keys().filter(|k| !seen.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "{owner} examples missing from FORMAT.md: {missing:?}"
    );
    assert!(mismatches.is_empty(), "FORMAT.md {owner} examples differ from the code (RITMA_BLESS=1 rewrites them): {mismatches:?}");
}
