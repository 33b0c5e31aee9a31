//! The participant's workbench (`#workbench`, or a link carrying burst
//! settings): a bundle of its own, so the lesson track, where a room lands,
//! does not download it.

fn main() {
    app::workbench();
}
