//! Canonical paths (FORMAT.md §3.2): one spelling per file, so that a file opened as
//! `./x`, `/tmp//x` or `/tmp/a/../x` is one dictionary entry and one graph node.

use std::borrow::Cow;

/// The lexical canonical form of `path`: empty and `.` components dropped, `..` removing
/// the component before it (at the root, nothing), one `/` between components, no `/` at
/// the end. An absolute path stays absolute (`/` alone for the root); a relative one (its
/// directory was not known) keeps its leading `..` and is `.` when nothing is left. The
/// empty path stays empty. Borrowed when `path` is already canonical.
pub fn canonical_path(path: &[u8]) -> Cow<'_, [u8]> {
    if path.is_empty() || is_canonical(path) {
        return Cow::Borrowed(path);
    }
    let absolute = path[0] == b'/';
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => match parts.last() {
                Some(last) if *last != b".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(c),
            },
            _ => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for (i, c) in parts.iter().enumerate() {
        if absolute || i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(if absolute { b'/' } else { b'.' });
    }
    Cow::Owned(out)
}

/// True when [`canonical_path`] would return `path` unchanged (the common case, checked
/// without allocating).
fn is_canonical(path: &[u8]) -> bool {
    if path.is_empty() || path == b"/" || path == b"." {
        return true;
    }
    if path.ends_with(b"/") {
        return false;
    }
    let absolute = path[0] == b'/';
    let body = if absolute { &path[1..] } else { path };
    let mut leading_dotdots = !absolute;
    for c in body.split(|b| *b == b'/') {
        match c {
            b"" | b"." => return false,
            b".." if leading_dotdots => {}
            b".." => return false,
            _ => leading_dotdots = false,
        }
    }
    true
}

/// `dir` joined with the relative `path` (FORMAT.md §7.1): the path a relative argument
/// names when resolved against the directory it was given relative to.
pub fn join_path(dir: &[u8], path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + path.len());
    out.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(path);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str) -> String {
        String::from_utf8(canonical_path(p.as_bytes()).into_owned()).unwrap()
    }

    #[test]
    fn lexical_forms_become_one() {
        for (given, want) in [
            ("/usr/bin/true", "/usr/bin/true"),
            ("/tmp/./x", "/tmp/x"),
            ("/tmp//x", "/tmp/x"),
            ("/tmp/a/../x", "/tmp/x"),
            ("/tmp/x/", "/tmp/x"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/", "/"),
            ("//", "/"),
            ("/.", "/"),
            ("/a/..", "/"),
            ("x", "x"),
            ("./x", "x"),
            ("../x", "../x"),
            ("a/../../x", "../x"),
            ("../../x/./y", "../../x/y"),
            (".", "."),
            ("a/..", "."),
            ("", ""),
            ("/memfd:payload", "/memfd:payload"),
            ("/a/.../b", "/a/.../b"),
        ] {
            assert_eq!(c(given), want, "{given}");
            assert_eq!(c(want), want, "canonical twice: {want}");
        }
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in ["/usr/bin/true", "/", ".", "../x", "x/y", ""] {
            assert!(
                matches!(canonical_path(p.as_bytes()), Cow::Borrowed(_)),
                "{p}"
            );
        }
        for p in ["/tmp/./x", "x/", "a/../b", "/a//b", "./x"] {
            assert!(matches!(canonical_path(p.as_bytes()), Cow::Owned(_)), "{p}");
        }
    }

    #[test]
    fn join_adds_one_separator() {
        assert_eq!(join_path(b"/", b"x"), b"/x");
        assert_eq!(join_path(b"/tmp", b"./x"), b"/tmp/./x");
        assert_eq!(
            c(std::str::from_utf8(&join_path(b"/tmp", b"../etc/x")).unwrap()),
            "/etc/x"
        );
    }

    proptest::proptest! {
        #[test]
        fn canonical_is_idempotent(p in "[/a.]{0,12}") {
            let once = canonical_path(p.as_bytes()).into_owned();
            proptest::prop_assert_eq!(canonical_path(&once).into_owned(), once.clone());
            proptest::prop_assert!(is_canonical(&once));
        }
    }
}
