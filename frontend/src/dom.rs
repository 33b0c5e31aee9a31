//! A small DOM layer of the page's own, which draws both participant pages
//! instead of yew (issue #14, figure 5: the download's size); nothing here
//! knows yew.
//!
//! A drawing is described as [`Node`]s: an element with a static tag, its
//! attributes and one content, its text, static markup, or its children in
//! slots. [`patch`] brings the real DOM from the description drawn last
//! ([`Live`], which also holds the DOM elements) to a new one, in place:
//!
//! - children are compared by position within their slot. A slot is what
//!   yew's lists were: the children of one `if` or one loop, so a slot that
//!   grows or shrinks does not shift the slots after it onto other nodes;
//! - the same tag keeps its element: only the attributes that changed are
//!   set (those gone removed), a changed text is set on its text node (a
//!   `characterData` change, never a new node);
//! - another tag replaces the element; new children are added at the end of
//!   their slot, children no longer there removed;
//! - a child that is the very node (`Rc`) drawn last is skipped whole: the
//!   caller keeps the nodes of what did not change, as yew's props
//!   comparison skipped a component.
//!
//! New elements are written as markup ([`El::write`], text and attribute
//! values escaped) and parsed by the browser in one call (`innerHTML` of a
//! scratch element in the parent's namespace, then moved into place): a first
//! drawing of hundreds of rows is one call, not thousands, and in an SVG the
//! parser gives each element the SVG namespace itself (no `createElementNS`
//! per element). The patcher is written against [`Dom`], so its decisions
//! are host-tested against a DOM of plain values.

use std::borrow::Cow;
use std::rc::Rc;

use wasm_bindgen::JsCast;

/// A described element, shared: a drawing keeps the nodes of what did not
/// change, and the patcher skips them by pointer.
pub type Node = Rc<El>;

/// An element: its tag, attributes and content.
#[derive(Debug, PartialEq)]
pub struct El {
    tag: &'static str,
    /// Drawn anew, not patched, when it changes (yew's `key`: a form
    /// rebuilt from the settings in force).
    key: u64,
    attrs: Vec<(&'static str, Cow<'static, str>)>,
    inner: Inner,
}

/// What an element holds.
#[derive(Debug, PartialEq)]
enum Inner {
    /// One text (escaped when written).
    Text(Cow<'static, str>),
    /// Static markup, written as it is (the pieces one after the other).
    Markup(Vec<&'static str>),
    /// Child elements, in slots: each slot is patched by position on its own.
    Kids(Vec<Vec<Node>>),
}

/// The tag of a text node: a [`text`] among an element's children.
const TEXT: &str = "#text";

/// A text node, to stand among an element's children (mixed content, as
/// `<p><strong>Predict: </strong>the question</p>`). Two texts must not
/// stand next to each other in one element: the browser's parser would make
/// them one node.
#[inline(never)]
pub fn text(text: impl Into<Cow<'static, str>>) -> Node {
    Rc::new(El {
        tag: TEXT,
        key: 0,
        attrs: Vec::new(),
        inner: Inner::Text(text.into()),
    })
}

/// A new element `tag`, empty.
///
/// The builder's steps are never inlined: a drawing calls them hundreds of
/// times, and each inlined call was a copy of a vector push in the download.
#[inline(never)]
pub fn el(tag: &'static str) -> El {
    El {
        tag,
        key: 0,
        attrs: Vec::new(),
        inner: Inner::Kids(Vec::new()),
    }
}

impl El {
    /// With attribute `name`.
    #[inline(never)]
    pub fn attr(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> El {
        self.attrs.push((name, value.into()));
        self
    }

    /// With attribute `name`, the whole number nearest `v` (whole pixels:
    /// integers are cheaper to format and to set than `{:.1}` floats, and a
    /// live frame can set hundreds of them).
    #[inline(never)]
    pub fn num(self, name: &'static str, v: f64) -> El {
        self.attr(name, (v.round() as i64).to_string())
    }

    /// With attribute `name` when there is a value (yew left out a `None`).
    #[inline(never)]
    pub fn attr_if(self, name: &'static str, value: Option<impl Into<Cow<'static, str>>>) -> El {
        match value {
            Some(v) => self.attr(name, v),
            None => self,
        }
    }

    /// Holding `text`.
    #[inline(never)]
    pub fn text(mut self, text: impl Into<Cow<'static, str>>) -> El {
        self.inner = Inner::Text(text.into());
        self
    }

    /// Holding static markup, `pieces` one after the other.
    #[inline(never)]
    pub fn markup(mut self, pieces: Vec<&'static str>) -> El {
        self.inner = Inner::Markup(pieces);
        self
    }

    /// With one more slot of children (each call adds one, after the
    /// others).
    #[inline(never)]
    pub fn kids(mut self, kids: Vec<Node>) -> El {
        if let Inner::Kids(slots) = &mut self.inner {
            slots.push(kids);
        }
        self
    }

    /// With `key`: an element of another key in its place is made anew.
    #[inline(never)]
    pub fn key(mut self, key: u64) -> El {
        self.key = key;
        self
    }

    /// Done: a shared node.
    #[inline(never)]
    pub fn done(self) -> Node {
        Rc::new(self)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| &**v)
    }

    /// The element as markup, text and attribute values escaped.
    pub fn write(&self, out: &mut String) {
        if self.tag == TEXT {
            return self.write_inner(out);
        }
        out.push('<');
        out.push_str(self.tag);
        // `xmlns` is set after parsing (see `create`).
        for (name, value) in self.attrs.iter().filter(|(n, _)| *n != "xmlns") {
            out.push(' ');
            out.push_str(name);
            out.push_str("=\"");
            escape(value, out);
            out.push('"');
        }
        out.push('>');
        self.write_inner(out);
        out.push_str("</");
        out.push_str(self.tag);
        out.push('>');
    }

    fn write_inner(&self, out: &mut String) {
        match &self.inner {
            Inner::Text(text) => escape(text, out),
            Inner::Markup(pieces) => pieces.iter().for_each(|p| out.push_str(p)),
            Inner::Kids(slots) => slots.iter().flatten().for_each(|k| k.write(out)),
        }
    }
}

/// `text` with `&`, `<`, `>` and `"` as character references: a text or a
/// double-quoted attribute value (a request's tag is the learner's words).
fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// What the patcher does to a document: the browser's ([`Web`]), or, in the
/// host tests, one of plain values.
pub trait Dom {
    /// An element.
    type El: Clone;
    /// Adds `node` to `parent`, before `before` or at its end, and returns
    /// the new element.
    fn insert(
        &mut self,
        parent: &Self::El,
        before: Option<&Self::El>,
        node: &El,
    ) -> Option<Self::El>;
    /// The first child element of `el`.
    fn first(&self, el: &Self::El) -> Option<Self::El>;
    /// The next sibling element of `el`.
    fn next(&self, el: &Self::El) -> Option<Self::El>;
    /// Sets attribute `name`.
    fn set_attr(&mut self, el: &Self::El, name: &str, value: &str);
    /// Removes attribute `name`.
    fn remove_attr(&mut self, el: &Self::El, name: &str);
    /// Changes the text of an element that holds text.
    fn set_text(&mut self, el: &Self::El, text: &str);
    /// Replaces what `el` holds with `markup`.
    fn set_markup(&mut self, el: &Self::El, markup: &str);
    /// Takes `el` out of `parent`.
    fn remove(&mut self, parent: &Self::El, el: &Self::El);
}

/// A drawn element: the node it was drawn from, its DOM element, and its
/// drawn children, slot by slot.
pub struct Live<E> {
    node: Node,
    dom: E,
    kids: Vec<Vec<Live<E>>>,
}

impl<E> Live<E> {
    /// Its DOM element.
    pub fn dom(&self) -> &E {
        &self.dom
    }

    /// Its child `i` of slot `slot`.
    pub fn kid(&self, slot: usize, i: usize) -> Option<&Live<E>> {
        self.kids.get(slot)?.get(i)
    }

    /// Its children in slot `slot`.
    pub fn slot(&self, slot: usize) -> &[Live<E>] {
        self.kids.get(slot).map_or(&[], Vec::as_slice)
    }

    /// Its DOM element and its children, slot by slot: to patch one slot
    /// with [`patch_slot`].
    pub fn parts(&mut self) -> (&E, &mut Vec<Vec<Live<E>>>) {
        (&self.dom, &mut self.kids)
    }
}

/// Brings the children of `parent`, drawn as `live`, to `new`, slot by slot.
pub fn patch<D: Dom>(
    d: &mut D,
    parent: &D::El,
    live: &mut Vec<Vec<Live<D::El>>>,
    new: &[Vec<Node>],
) {
    for gone in live.drain(new.len().min(live.len())..).flatten() {
        d.remove(parent, &gone.dom);
    }
    live.resize_with(new.len(), Vec::new);
    // From the last slot to the first, so that each slot knows the element
    // its new children go before: the first of the slots after it.
    let mut before: Option<D::El> = None;
    for (slot, kids) in live.iter_mut().zip(new).rev() {
        patch_list(d, parent, slot, kids, before.as_ref());
        if let Some(first) = slot.first() {
            before = Some(first.dom.clone());
        }
    }
}

/// Brings slot `slot` of `parent`'s children, drawn as `live`, to `new`,
/// leaving the other slots as they are (a live frame's "now" line).
pub fn patch_slot<D: Dom>(
    d: &mut D,
    parent: &D::El,
    live: &mut [Vec<Live<D::El>>],
    slot: usize,
    new: &[Node],
) {
    let before = live
        .iter()
        .skip(slot + 1)
        .find_map(|s| s.first())
        .map(|l| l.dom.clone());
    if let Some(kids) = live.get_mut(slot) {
        patch_list(d, parent, kids, new, before.as_ref());
    }
}

/// One slot: by position, new children before `before`.
fn patch_list<D: Dom>(
    d: &mut D,
    parent: &D::El,
    live: &mut Vec<Live<D::El>>,
    new: &[Node],
    before: Option<&D::El>,
) {
    for (i, node) in new.iter().enumerate() {
        match live.get_mut(i) {
            Some(l) if Rc::ptr_eq(&l.node, node) => {}
            Some(l) if l.node.tag == node.tag && l.node.key == node.key => update(d, l, node),
            Some(l) => {
                let Some(fresh) = create(d, parent, Some(&l.dom), node) else {
                    return;
                };
                d.remove(parent, &l.dom);
                *l = fresh;
            }
            None => {
                let Some(fresh) = create(d, parent, before, node) else {
                    return;
                };
                live.push(fresh);
            }
        }
    }
    for gone in live.drain(new.len().min(live.len())..) {
        d.remove(parent, &gone.dom);
    }
}

/// The same tag: only what changed.
fn update<D: Dom>(d: &mut D, l: &mut Live<D::El>, node: &Node) {
    for (name, value) in &node.attrs {
        if l.node.get(name) != Some(value) {
            d.set_attr(&l.dom, name, value);
        }
    }
    for (name, _) in &l.node.attrs {
        if node.get(name).is_none() {
            d.remove_attr(&l.dom, name);
        }
    }
    match (&l.node.inner, &node.inner) {
        (Inner::Text(was), Inner::Text(text)) if was != text => d.set_text(&l.dom, text),
        (Inner::Markup(was), Inner::Markup(now)) if was != now => {
            d.set_markup(&l.dom, &now.concat())
        }
        (Inner::Kids(_), Inner::Kids(slots)) => patch(d, &l.dom, &mut l.kids, slots),
        (Inner::Text(_), Inner::Text(_)) | (Inner::Markup(_), Inner::Markup(_)) => {}
        // Another kind of content: written anew.
        _ => {
            let mut markup = String::new();
            node.write_inner(&mut markup);
            d.set_markup(&l.dom, &markup);
            l.kids = adopt_kids(d, &l.dom, node);
        }
    }
    l.node = node.clone();
}

/// `node` added to `parent` before `before` (or at its end), with its
/// children's elements found in what the browser made of it.
fn create<D: Dom>(
    d: &mut D,
    parent: &D::El,
    before: Option<&D::El>,
    node: &Node,
) -> Option<Live<D::El>> {
    let dom = d.insert(parent, before, node)?;
    Some(adopt(d, dom, node))
}

/// `dom`, just made from `node`, with its children's elements.
fn adopt<D: Dom>(d: &mut D, dom: D::El, node: &Node) -> Live<D::El> {
    // The parser would make `xmlns` an attribute in the XMLNS namespace;
    // set, it is a plain one, as yew made it (the same markup either way).
    if let Some(xmlns) = node.get("xmlns") {
        d.set_attr(&dom, "xmlns", xmlns);
    }
    Live {
        kids: adopt_kids(d, &dom, node),
        node: node.clone(),
        dom,
    }
}

/// The drawn children of `dom`, just made from `node`.
fn adopt_kids<D: Dom>(d: &mut D, dom: &D::El, node: &El) -> Vec<Vec<Live<D::El>>> {
    let Inner::Kids(slots) = &node.inner else {
        return Vec::new();
    };
    let mut at = d.first(dom);
    let mut kids = Vec::with_capacity(slots.len());
    for slot in slots {
        let mut live = Vec::with_capacity(slot.len());
        for kid in slot {
            let Some(el) = at.take() else { break };
            at = d.next(&el);
            live.push(adopt(d, el, kid));
        }
        kids.push(live);
    }
    kids
}

/// A listener, taken off its element when dropped (its view gone).
pub struct Listener {
    target: web_sys::EventTarget,
    kind: &'static str,
    f: wasm_bindgen::closure::Closure<dyn FnMut(web_sys::Event)>,
}

impl Listener {
    /// Calls `f` with each `kind` event on `target`, until dropped.
    pub fn new(
        target: &web_sys::EventTarget,
        kind: &'static str,
        f: impl FnMut(web_sys::Event) + 'static,
    ) -> Listener {
        let f = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::Event)>::new(f);
        let _ = target.add_event_listener_with_callback(kind, f.as_ref().unchecked_ref());
        Listener {
            target: target.clone(),
            kind,
            f,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let f = self.f.as_ref().unchecked_ref();
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, f);
    }
}

/// The element an event happened on (the listeners are on elements, whose
/// events happen on elements).
pub fn target(e: &web_sys::Event) -> Option<web_sys::Element> {
    e.target().map(JsCast::unchecked_into)
}

/// `el` and the elements it is in, outwards (a delegated listener finds
/// what was clicked this way).
pub fn outwards(el: Option<web_sys::Element>) -> impl Iterator<Item = web_sys::Element> {
    std::iter::successors(el, |e| e.parent_element())
}

/// Shows in `control`, a form control the learner just changed, the value
/// its drawing holds: an edit the page clamped or did not take (a count
/// over the maximum, a limit that is not a number, a setting the server has
/// not confirmed yet) snaps back to what is in use, as yew's render did.
/// The patcher sets a value only when the drawing's changed, and an edit
/// that changes nothing in the state changes nothing in the drawing.
pub fn show_drawn_value(control: &web_sys::Element) {
    let set = |name: &str, value: wasm_bindgen::JsValue| {
        let _ = js_sys::Reflect::set(control, &wasm_bindgen::JsValue::from_str(name), &value);
    };
    match control.local_name().as_str() {
        "input" if control.get_attribute("type").as_deref() == Some("checkbox") => {
            set("checked", control.has_attribute("checked").into());
        }
        "input" => set(
            "value",
            control.get_attribute("value").unwrap_or_default().into(),
        ),
        "select" => {
            if let Ok(Some(drawn)) = control.query_selector("option[selected]") {
                set(
                    "value",
                    drawn.get_attribute("value").unwrap_or_default().into(),
                );
            }
        }
        _ => {}
    }
}

/// The browser's document.
pub struct Web;

impl Dom for Web {
    type El = web_sys::Element;

    fn insert(
        &mut self,
        parent: &Self::El,
        before: Option<&Self::El>,
        node: &El,
    ) -> Option<Self::El> {
        let document = web_sys::window()?.document()?;
        // A text node is made as one (an empty text would parse to nothing).
        if let (TEXT, Inner::Text(text)) = (node.tag, &node.inner) {
            let made = document.create_text_node(text);
            parent.insert_before(&made, before.map(|b| &**b)).ok()?;
            return Some(made.unchecked_into());
        }
        let mut markup = String::new();
        node.write(&mut markup);
        // Parsed in an element of the parent's namespace and tag (in an
        // SVG one, the parser makes SVG elements; in a `tbody`, a `tr` is a
        // row, not text), then moved into place.
        let scratch = document
            .create_element_ns(parent.namespace_uri().as_deref(), &parent.local_name())
            .ok()?;
        scratch.set_inner_html(&markup);
        let made = scratch.last_child()?;
        parent.insert_before(&made, before.map(|b| &**b)).ok()?;
        Some(made.unchecked_into())
    }

    // Children as nodes, not as elements: texts among elements are nodes of
    // their own ([`text`]); the patcher writes no other text between them.
    fn first(&self, el: &Self::El) -> Option<Self::El> {
        el.first_child().map(JsCast::unchecked_into)
    }

    fn next(&self, el: &Self::El) -> Option<Self::El> {
        el.next_sibling().map(JsCast::unchecked_into)
    }

    // A form control's `value`, `checked` and `selected` are set as
    // properties too when they change: once the learner has edited a
    // control, its attribute no longer changes what it shows
    // ([`show_drawn_value`] for the control they just changed).
    fn set_attr(&mut self, el: &Self::El, name: &str, value: &str) {
        let _ = el.set_attribute(name, value);
        let property = match name {
            "value" => wasm_bindgen::JsValue::from_str(value),
            "checked" | "selected" => wasm_bindgen::JsValue::TRUE,
            _ => return,
        };
        let _ = js_sys::Reflect::set(el, &wasm_bindgen::JsValue::from_str(name), &property);
    }

    fn remove_attr(&mut self, el: &Self::El, name: &str) {
        let _ = el.remove_attribute(name);
        let property = match name {
            "value" => wasm_bindgen::JsValue::from_str(""),
            "checked" | "selected" => wasm_bindgen::JsValue::FALSE,
            _ => return,
        };
        let _ = js_sys::Reflect::set(el, &wasm_bindgen::JsValue::from_str(name), &property);
    }

    fn set_text(&mut self, el: &Self::El, text: &str) {
        if el.node_type() == web_sys::Node::TEXT_NODE {
            return el.set_node_value(Some(text));
        }
        // The text node's data, not `textContent`: a `characterData`
        // change, the element's node stays (an empty text has no node yet).
        match el.last_child() {
            Some(t) => t.set_node_value(Some(text)),
            None => {
                let mut markup = String::new();
                escape(text, &mut markup);
                el.set_inner_html(&markup);
            }
        }
    }

    fn set_markup(&mut self, el: &Self::El, markup: &str) {
        el.set_inner_html(markup);
    }

    fn remove(&mut self, parent: &Self::El, el: &Self::El) {
        let _ = parent.remove_child(el);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document of plain values, counting what the patcher did.
    #[derive(Default)]
    struct Fake {
        els: Vec<FakeEl>,
        made: usize,
        attrs_set: usize,
        texts_set: usize,
        removed: usize,
    }

    #[derive(Default)]
    struct FakeEl {
        tag: &'static str,
        attrs: Vec<(String, String)>,
        /// Text or markup.
        inner: String,
        kids: Vec<usize>,
        parent: usize,
    }

    impl Fake {
        /// A document with one empty element, 0.
        fn new() -> Fake {
            let mut f = Fake::default();
            f.els.push(FakeEl {
                tag: "root",
                ..FakeEl::default()
            });
            f
        }

        fn make(&mut self, parent: usize, node: &El) -> usize {
            let id = self.els.len();
            self.els.push(FakeEl {
                tag: node.tag,
                attrs: node
                    .attrs
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                parent,
                ..FakeEl::default()
            });
            match &node.inner {
                Inner::Kids(slots) => {
                    for kid in slots.iter().flatten() {
                        let k = self.make(id, kid);
                        self.els[id].kids.push(k);
                    }
                }
                _ => node.write_inner(&mut self.els[id].inner),
            }
            id
        }

        /// Element `id` as markup, attributes in the order set.
        fn html(&self, id: usize) -> String {
            let e = &self.els[id];
            if e.tag == TEXT {
                return e.inner.clone();
            }
            let mut out = format!("<{}", e.tag);
            for (n, v) in &e.attrs {
                let mut value = String::new();
                escape(v, &mut value);
                out += &format!(" {n}=\"{value}\"");
            }
            out.push('>');
            out += &e.inner;
            for k in &e.kids {
                out += &self.html(*k);
            }
            out + &format!("</{}>", e.tag)
        }

        /// What the root holds.
        fn inner(&self) -> String {
            self.els[0].kids.iter().map(|k| self.html(*k)).collect()
        }
    }

    impl Dom for Fake {
        type El = usize;

        fn insert(&mut self, parent: &usize, before: Option<&usize>, node: &El) -> Option<usize> {
            self.made += 1;
            let id = self.make(*parent, node);
            let kids = &mut self.els[*parent].kids;
            let at = before.and_then(|b| kids.iter().position(|k| k == b));
            kids.insert(at.unwrap_or(kids.len()), id);
            Some(id)
        }

        fn first(&self, el: &usize) -> Option<usize> {
            self.els[*el].kids.first().copied()
        }

        fn next(&self, el: &usize) -> Option<usize> {
            let kids = &self.els[self.els[*el].parent].kids;
            let at = kids.iter().position(|k| k == el)?;
            kids.get(at + 1).copied()
        }

        fn set_attr(&mut self, el: &usize, name: &str, value: &str) {
            self.attrs_set += 1;
            let attrs = &mut self.els[*el].attrs;
            match attrs.iter_mut().find(|(n, _)| n == name) {
                Some(a) => a.1 = value.into(),
                None => attrs.push((name.into(), value.into())),
            }
        }

        fn remove_attr(&mut self, el: &usize, name: &str) {
            self.els[*el].attrs.retain(|(n, _)| n != name);
        }

        fn set_text(&mut self, el: &usize, text: &str) {
            self.texts_set += 1;
            let mut escaped = String::new();
            escape(text, &mut escaped);
            self.els[*el].inner = escaped;
        }

        fn set_markup(&mut self, el: &usize, markup: &str) {
            self.els[*el].inner = markup.into();
            self.els[*el].kids.clear();
        }

        fn remove(&mut self, parent: &usize, el: &usize) {
            self.removed += 1;
            self.els[*parent].kids.retain(|k| k != el);
        }
    }

    fn markup(slots: &[Vec<Node>]) -> String {
        let mut out = String::new();
        slots.iter().flatten().for_each(|n| n.write(&mut out));
        out
    }

    fn row(y: u32, words: &str, bars: u32) -> Node {
        el("g")
            .attr("class", "req")
            .attr("data-y", y.to_string())
            .kids(vec![el("text").text(words.to_owned()).done()])
            .kids(
                (0..bars)
                    .map(|b| el("rect").attr("x", b.to_string()).done())
                    .collect(),
            )
            .done()
    }

    #[test]
    fn text_and_attribute_values_are_escaped() {
        let mut out = String::new();
        el("text")
            .attr("aria-label", r#"a "b" & <c>"#)
            .text("<script>&</script>")
            .write(&mut out);
        assert_eq!(
            out,
            r#"<text aria-label="a &quot;b&quot; &amp; &lt;c&gt;">&lt;script&gt;&amp;&lt;/script&gt;</text>"#
        );
    }

    #[test]
    fn a_changed_row_keeps_its_elements_and_sets_only_what_changed() {
        let (mut d, mut live) = (Fake::new(), Vec::new());
        let first = vec![vec![row(0, "queued", 1), row(15, "queued", 1)]];
        patch(&mut d, &0, &mut live, &first);
        assert_eq!(d.inner(), markup(&first));
        assert_eq!(d.made, 2, "a row is one insertion, its children with it");
        let second = vec![vec![row(0, "done", 3), first[0][1].clone()]];
        patch(&mut d, &0, &mut live, &second);
        assert_eq!(d.inner(), markup(&second));
        assert_eq!(d.made, 4, "only the two new bars are made");
        assert_eq!(d.texts_set, 1, "the words are set on their text");
        assert_eq!(d.attrs_set, 0, "no attribute changed");
        assert_eq!(d.removed, 0);
        // Fewer bars: the extra ones go; another tag replaces an element.
        let third = vec![vec![row(0, "done", 1), el("path").attr("d", "M0 0").done()]];
        patch(&mut d, &0, &mut live, &third);
        assert_eq!(d.inner(), markup(&third));
        assert_eq!((d.removed, d.made), (3, 5));
    }

    #[test]
    fn an_attribute_gone_is_removed_and_a_slot_grows_before_the_next_one() {
        let (mut d, mut live) = (Fake::new(), Vec::new());
        let line = |clip: Option<&'static str>| {
            el("line").attr("x1", "1").attr_if("clip-path", clip).done()
        };
        let first = vec![vec![line(Some("url(#c)"))], vec![], vec![line(None)]];
        patch(&mut d, &0, &mut live, &first);
        let second = vec![
            vec![line(None), line(None)],
            vec![line(None)],
            vec![line(None)],
        ];
        patch(&mut d, &0, &mut live, &second);
        assert_eq!(d.inner(), markup(&second), "in slot order");
        assert_eq!(d.made, 4);
        assert_eq!(live.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1, 1]);
        let now = [el("line").attr("x1", "2").done(), line(None)];
        patch_slot(&mut d, &0, &mut live, 0, &now);
        assert_eq!(d.attrs_set, 1, "one attribute of one element");
        assert!(
            d.inner()
                .starts_with(r#"<line x1="2"></line><line x1="1">"#)
        );
    }

    #[test]
    fn a_text_among_elements_is_a_node_of_its_own_patched_in_place() {
        let (mut d, mut live) = (Fake::new(), Vec::new());
        let para = |words: &'static str| {
            el("p")
                .kids(vec![el("strong").text("Predict: ").done(), text(words)])
                .done()
        };
        patch(&mut d, &0, &mut live, &[vec![para("how many?")]]);
        assert_eq!(d.inner(), "<p><strong>Predict: </strong>how many?</p>");
        patch(&mut d, &0, &mut live, &[vec![para("a < b & c")]]);
        assert_eq!(
            d.inner(),
            "<p><strong>Predict: </strong>a &lt; b &amp; c</p>"
        );
        assert_eq!(
            (d.made, d.texts_set, d.removed),
            (1, 1, 0),
            "the text set in place"
        );
    }

    #[test]
    fn an_element_of_another_key_is_made_anew() {
        let (mut d, mut live) = (Fake::new(), Vec::new());
        let form = |key: u64, v: &'static str| {
            el("fieldset")
                .key(key)
                .kids(vec![el("input").attr("value", v).done()])
                .done()
        };
        patch(&mut d, &0, &mut live, &[vec![form(1, "5")]]);
        patch(&mut d, &0, &mut live, &[vec![form(1, "6")]]);
        assert_eq!((d.made, d.attrs_set), (1, 1), "the same key: patched");
        patch(&mut d, &0, &mut live, &[vec![form(2, "6")]]);
        assert_eq!((d.made, d.removed), (2, 1), "another key: made anew");
        assert_eq!(
            d.inner(),
            r#"<fieldset><input value="6"></input></fieldset>"#
        );
    }

    #[test]
    fn nothing_is_done_for_the_nodes_drawn_last() {
        let (mut d, mut live) = (Fake::new(), Vec::new());
        let nodes = vec![
            vec![row(0, "a", 2)],
            vec![el("defs").markup(vec!["<path/>"]).done()],
        ];
        patch(&mut d, &0, &mut live, &nodes);
        let made = d.made;
        patch(&mut d, &0, &mut live, &nodes.clone());
        assert_eq!(
            (d.made - made, d.attrs_set, d.texts_set, d.removed),
            (0, 0, 0, 0)
        );
    }
}
