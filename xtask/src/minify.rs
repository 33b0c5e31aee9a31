//! The page's text files as sent: `index.html` and wasm-bindgen's JS glue
//! without their comments and indentation (bench figure 5: 2.2 KB of the
//! document's 7.0 KB gzip, and about 0.9 KB of each glue's 7.5 KB, were
//! comments and leading spaces). The sources keep theirs.
//!
//! The rules are line by line and conservative, so they cannot change what
//! the code does:
//!
//! - each line loses its leading and trailing spaces, and empty lines go;
//! - a line that *starts* with `//` goes (a comment: no statement, string or
//!   regular expression in these files begins a line with `//`);
//! - a block comment that starts a line (`/*`) goes, up to its `*/` (what
//!   follows that on its line stays), and so does a line that is one markup
//!   comment (`<!-- … -->`); a line with code after a comment stays whole;
//! - every other line is kept as it is, and line breaks stay, so automatic
//!   semicolon insertion sees the same statements.
//!
//! What could break them is a template literal or `<pre>` whose lines' spaces
//! or `//` matter: the files have none (the events Worker's template literal
//! in `index.html` is JavaScript, whose spaces do not matter), and
//! [`page_text`] refuses HTML with `<pre>` or `<textarea>`. The Chromium
//! tests run against the files as minified.

/// `text` without comment lines, leading and trailing spaces, or empty
/// lines; an error for markup whose spaces matter.
pub fn page_text(text: &str) -> Result<String, String> {
    for tag in ["<pre", "<textarea"] {
        if text.contains(tag) {
            return Err(format!(
                "the page has a {tag}> element, whose spaces the minifier would change"
            ));
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut in_block = false;
    for line in text.lines() {
        let mut line = line.trim();
        if in_block {
            // Inside a comment that started a line: up to its `*/`, and
            // whatever follows that is kept.
            let Some(end) = line.find("*/") else {
                continue;
            };
            in_block = false;
            line = line[end + 2..].trim_start();
        } else if let Some(rest) = line.strip_prefix("/*") {
            match rest.find("*/") {
                None => {
                    in_block = true;
                    continue;
                }
                // A line that is one comment goes; one with code after its
                // comment stays whole.
                Some(end) if rest[end + 2..].trim().is_empty() => continue,
                Some(_) => {}
            }
        }
        let markup_comment = line.starts_with("<!--") && line.ends_with("-->");
        if line.is_empty() || line.starts_with("//") || markup_comment {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::page_text;

    #[test]
    fn comments_and_indentation_go_and_code_stays_line_by_line() {
        let source = "<style>\n  /* light */\n  .a { color: red; } /* kept: not at the start */\n\
                      /* a block\n   * over lines\n   */\n  .b{}\n</style>\n<script>\n\
                      \x20   // issues the requests\n    const url = \"http://x/y\"; // kept\n\
                      \n    let a = b\n    (c)\n</script>\n";
        assert_eq!(
            page_text(source).unwrap(),
            "<style>\n.a { color: red; } /* kept: not at the start */\n.b{}\n</style>\n\
             <script>\nconst url = \"http://x/y\"; // kept\nlet a = b\n(c)\n</script>\n"
        );
    }

    #[test]
    fn a_one_line_block_comment_ends_on_its_line() {
        assert_eq!(
            page_text("/** doc */\nf();\n/*\n*/\n<!-- a note -->\ng();").unwrap(),
            "f();\ng();\n"
        );
    }

    #[test]
    fn code_beside_a_comment_is_never_dropped() {
        assert_eq!(
            page_text("/* a */ .a { }\n/* b\n c */ .b { }\n/* d\n*/\n.c { }").unwrap(),
            "/* a */ .a { }\n.b { }\n.c { }\n"
        );
    }

    #[test]
    fn markup_whose_spaces_matter_is_refused() {
        let error = page_text("<pre>\n  a\n</pre>").unwrap_err();
        assert!(error.contains("<pre>"), "{error}");
    }

    #[test]
    fn the_built_page_document_keeps_its_scripts_and_loses_its_comments() {
        let source = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../index.html"),
        )
        .unwrap();
        let sent = page_text(&source).unwrap();
        assert!(
            sent.len() < source.len() * 4 / 5,
            "{} of {}",
            sent.len(),
            source.len()
        );
        for kept in [
            "window.keepaliveLabBurst",
            "window.keepaliveLabSocket",
            "const inWorker = `\"use strict\";",
            "await import(`/${page}.js`);",
        ] {
            assert!(sent.contains(kept), "{kept}");
        }
        assert!(
            !sent
                .lines()
                .any(|l| l.starts_with("//") || l.starts_with("/*"))
        );
        // Nothing but comments and spaces went: without them, the two agree.
        let bare = |text: &str, line_comments: bool| {
            let mut text: String = text
                .lines()
                .filter(|l| !(line_comments && l.trim_start().starts_with("//")))
                .collect();
            for (open, close) in [("/*", "*/"), ("<!--", "-->")] {
                while let Some(start) = text.find(open) {
                    let end = text[start..]
                        .find(close)
                        .map_or(text.len(), |e| start + e + close.len());
                    text.replace_range(start..end, "");
                }
            }
            text.split_whitespace().collect::<String>()
        };
        assert_eq!(bare(&sent, false), bare(&source, true));
    }
}
