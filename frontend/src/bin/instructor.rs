//! The instructor's page: the room, what every participant measured, and the
//! room's controls. A bundle of its own, so participants never download it.

fn main() {
    app::instructor();
}
