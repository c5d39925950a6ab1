//! Turning a byte offset or a key path (`services.web.command`) into line and column.
//!
//! serde types carry no positions, so after validation finds a problem by key path, we look the
//! path up in a span-keeping parse of the same text (toml_edit). One lookup per problem; the
//! happy path never pays for it.

/// 1-based line and column of byte `offset` in `source` (columns count characters).
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    // Never a panic on an offset inside a character (a config reload must not abort the
    // daemon): the character it falls in.
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Line and column of the value at `path`, or of the nearest parent that exists.
pub(crate) fn locate_key(source: &str, path: &[&str]) -> Option<(usize, usize)> {
    use toml_edit::{Item, Value};
    // Tables hold `Item`s, inline tables and arrays hold `Value`s: walk either. A numeric key
    // indexes an array (`probes.0`) or an array of tables (`[[...probes]]`).
    enum Node<'a> {
        Item(&'a Item),
        Value(&'a Value),
        Table(&'a toml_edit::Table),
    }
    let doc = toml_edit::Document::parse(source).ok()?;
    let mut node = Node::Item(doc.as_item());
    let mut best = None;
    for key in path {
        let index = key.parse::<usize>().ok();
        let next = match (node, index) {
            (Node::Item(Item::Table(t)) | Node::Table(t), _) => t.get(key).map(Node::Item),
            (
                Node::Item(Item::Value(Value::InlineTable(t))) | Node::Value(Value::InlineTable(t)),
                _,
            ) => t.get(key).map(Node::Value),
            (Node::Item(Item::ArrayOfTables(a)), Some(i)) => a.get(i).map(Node::Table),
            (Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)), Some(i)) => {
                a.get(i).map(Node::Value)
            }
            _ => None,
        };
        let Some(next) = next else { break };
        let span = match next {
            Node::Item(Item::Table(t)) | Node::Table(t) => t.span(),
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
        };
        if let Some(span) = span {
            best = Some(line_col(source, span.start));
        }
        node = next;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let s = "a = 1\nbb = 2\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 6), (2, 1));
        assert_eq!(line_col(s, 11), (2, 6));
    }

    #[test]
    fn finds_values_in_tables_and_inline_tables() {
        let s = "[services.web]\ncommand = \"x\"\nlog = { keep = 3 }\n";
        assert_eq!(
            locate_key(s, &["services", "web", "command"]),
            Some((2, 11))
        );
        assert_eq!(
            locate_key(s, &["services", "web", "log", "keep"]),
            Some((3, 16))
        );
        // Arrays and arrays of tables.
        let s = "[[p]]\nkind = \"a\"\n[[p]]\nkind = \"b\"\n[q]\nl = [1, { x = 2 }]\n";
        assert_eq!(locate_key(s, &["p", "1", "kind"]), Some((4, 8)));
        assert_eq!(locate_key(s, &["q", "l", "1", "x"]), Some((6, 15)));
        let s = "[services.web]\ncommand = \"x\"\nlog = { keep = 3 }\n";
        // A missing key points at its parent.
        assert_eq!(
            locate_key(s, &["services", "web", "cwd"]).map(|p| p.0),
            Some(1)
        );
    }
}
